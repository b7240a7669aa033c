//! Lua state creation: the sandboxed standard library, the per-resume
//! instruction budget, the per-state memory limit, compiling text chunks, and
//! Lua <-> JSON conversion.
//!
//! Invariants: a state opens only base, string, table, math, utf8 and
//! coroutine, plus an `os` table holding `time`, `clock` and `date`; `io`,
//! `debug`, `package`, `dofile`, `loadfile` and `string.dump` are absent and
//! `load` accepts text chunks only. A chunk is always compiled in text mode.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use mlua::chunk::ChunkMode;
use mlua::serde::{DeserializeOptions, SerializeOptions};
use mlua::{
    Function, HookTriggers, IntoLuaMulti, Lua, LuaOptions, LuaSerdeExt, StdLib, Value, VmState,
};

/// Instructions between two budget checks.
const STEP: u32 = 1_000;

/// Default instruction budget of one resume (one hook call of a function).
pub const DEFAULT_MAX_INSTRUCTIONS: u64 = 100_000_000;

/// Default memory limit of one Lua state, in bytes.
pub const DEFAULT_MAX_MEMORY: usize = 64 * 1024 * 1024;

/// The budgets of one state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Instructions one resume may run before it is stopped with an error.
    pub max_instructions: u64,
    /// Bytes the state may allocate.
    pub max_memory: usize,
}

/// The instruction counter of one state, reset before every resume.
#[derive(Clone, Default)]
pub(crate) struct Budget(Arc<AtomicU64>);

impl Budget {
    /// Starts a new resume's count.
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

fn count(counter: &AtomicU64, max: u64) -> mlua::Result<VmState> {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    if n.saturating_mul(STEP as u64) > max {
        return Err(mlua::Error::runtime(format!(
            "instruction budget exceeded ({max} instructions in one run without waiting)"
        )));
    }
    Ok(VmState::Continue)
}

/// Text-only `load`, set in every state.
const SANDBOX: &str = r#"
local raw_load = load
load = function(chunk, name, _mode, env) return raw_load(chunk, name, "t", env) end
dofile, loadfile, require, package, io, debug = nil, nil, nil, nil, nil, nil
string.dump = nil
local os_time, os_clock, os_date = os.time, os.clock, os.date
os = { time = os_time, clock = os_clock, date = os_date }
"#;

/// A fresh sandboxed state with its budgets installed on the main thread.
///
/// Its collector is stopped: everything the setup creates (libraries,
/// modules, the entry's chunk) stays alive, so a collection during it is
/// wasted work. The caller calls [`setup_done`] before running the entry's
/// code. A memory limit still holds meanwhile: an allocation over it makes
/// Lua run an emergency collection first.
pub(crate) fn new_state(limits: Limits) -> mlua::Result<(Lua, Budget)> {
    let libs = StdLib::STRING
        | StdLib::TABLE
        | StdLib::MATH
        | StdLib::UTF8
        | StdLib::COROUTINE
        | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::new())?;
    lua.gc_stop();
    static SANDBOX_CODE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    run_precompiled(&lua, &SANDBOX_CODE, "sandbox", SANDBOX, ())?;
    lua.set_memory_limit(limits.max_memory)?;
    let budget = Budget::default();
    let counter = budget.0.clone();
    // A global hook: every thread of the state runs it, including the
    // coroutines Lua code creates itself (a per-thread hook is not inherited).
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(STEP),
        move |_, _| count(&counter, limits.max_instructions),
    )?;
    Ok((lua, budget))
}

/// The setup is over: the collector runs again.
pub(crate) fn setup_done(lua: &Lua) {
    lua.gc_restart();
}

/// Runs the runtime's own chunk `text` with `args`, compiled once per process
/// into `cache` and loaded from that bytecode into every state.
pub(crate) fn run_precompiled(
    lua: &Lua,
    cache: &'static OnceLock<Result<Vec<u8>, String>>,
    name: &str,
    text: &str,
    args: impl IntoLuaMulti,
) -> mlua::Result<()> {
    let compiled = cache.get_or_init(|| {
        let lua = Lua::new();
        compile(&lua, name, text.as_bytes())
            .map(|f| f.dump(true))
            .map_err(|e| error_text(&e))
    });
    match compiled {
        Ok(bytes) => lua
            .load(&bytes[..])
            .set_mode(ChunkMode::Binary)
            .call::<()>(args),
        Err(e) => Err(mlua::Error::runtime(format!("{name}: {e}"))),
    }
}

/// Compiles `text` (named `name` in error messages, as `name:LINE:`) without
/// running it; binary chunks are refused.
pub(crate) fn compile(lua: &Lua, name: &str, text: &[u8]) -> mlua::Result<Function> {
    lua.load(text)
        .set_name(format!("@{name}"))
        .set_mode(ChunkMode::Text)
        .into_function()
}

/// A JSON value as a Lua value (null becomes nil; arrays keep an array marker
/// so they encode back as arrays).
pub(crate) fn to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value_with(
        v,
        SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false),
    )
}

/// A Lua value as JSON: an empty table is `{}`, a sequence an array;
/// functions and other non-data values are skipped.
pub(crate) fn to_json(lua: &Lua, v: Value) -> mlua::Result<serde_json::Value> {
    if v.is_nil() {
        return Ok(serde_json::Value::Null);
    }
    lua.from_value_with(v, DeserializeOptions::new().deny_unsupported_types(false))
}

/// The text of a Lua error without mlua's traceback noise: the first line.
pub(crate) fn error_text(e: &mlua::Error) -> String {
    let text = match e {
        mlua::Error::CallbackError { cause, .. } => return error_text(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        mlua::Error::MemoryError(m) => format!("memory limit exceeded: {m}"),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_owned()
}
