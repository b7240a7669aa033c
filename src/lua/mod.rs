//! The Lua layer: `process.lua` and `function.lua` entries run Wippy-style
//! Lua 5.4 code (through `mlua`) against the API of `LUA_API.md`.
//!
//! Rules (also in docs/semantics.md §11):
//! - An entry is `{source: file://x.lua, method, modules, args, meta, lua}`;
//!   `source` is relative to the manifest's folder. `rippy check` reads the
//!   file (missing: error at `source`), compiles it as text (syntax error at
//!   `source` as `x.lua:LINE: message`), runs the chunk in a throwaway
//!   sandboxed state without modules and checks that `method` names a
//!   function in the table it returns (error at `method`). Binary chunks are
//!   refused. Unknown `modules` names are errors, as for Rust entries.
//! - State per process: every process instance owns one Lua state (no
//!   globals shared); every function call gets a fresh state.
//! - A process is a coroutine the actor resumes (see `process.rs`): a
//!   waiting call yields, the host thread goes on with other processes.
//! - Sandbox (`engine.rs`): base, string, table, math, utf8, coroutine, and
//!   `os.time/clock/date`; no `io`, `debug`, `package`, `dofile`,
//!   `loadfile`, `string.dump`; `load` is text-only; `require` returns only
//!   the modules the entry lists (`process` and `channel` are also globals)
//!   and raises, naming the entry and the module, for any other.
//! - Budgets, per entry under `lua:`: `max_instructions` per resume (default
//!   100 million) and `max_memory` per state in bytes (default 64 MiB).
//!   Breaking either raises a Lua error that ends the process (error exit)
//!   or fails the call (500); other processes on the host are unaffected.
//! - Spawn arguments: `process.spawn(entry, host, a)` passes `a` as JSON and
//!   the method receives it as its one argument; several extra arguments
//!   travel as one array. Service `args` arrive the same way.
//! - Pids are their string form (`{host|0x...}`): `tostring` and JSON give
//!   the form the relay's `X-WS-Relay` carries; `process.send` takes a pid
//!   string or a registered name.

mod api;
mod data;
mod engine;
pub(crate) mod function;
pub(crate) mod process;

use std::path::Path;
use std::sync::Arc;

use mlua::{Function, Lua, Table, Value};
use serde::Deserialize;

use crate::manifest::FieldError;
pub use engine::{DEFAULT_MAX_INSTRUCTIONS, DEFAULT_MAX_MEMORY};
use engine::{Limits, compile, error_text, new_state};

const PRELUDE: &str = include_str!("prelude.lua");

/// Inert stand-ins for the modules while `check` runs a chunk.
const CHECK_STUBS: &str = r#"
local stub = setmetatable({}, { __index = function() return function() end end })
require = function() return stub end
process, channel = stub, stub
"#;

/// The `process.lua` and `function.lua` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuaEntryConfig {
    /// The Lua file, e.g. `file://ticker.lua`, relative to the manifest.
    pub source: String,
    /// The function in the table the file returns.
    pub method: String,
    /// The runtime modules this code may use.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Fixed arguments passed to every instance (merged under spawn args).
    #[serde(default)]
    pub args: Option<serde_yaml::Value>,
    /// Free-form metadata, kept as written.
    #[serde(default)]
    pub meta: Option<serde_yaml::Value>,
    /// Budgets.
    #[serde(default)]
    pub lua: LuaLimitsConfig,
}

/// The `lua:` block of a Lua entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuaLimitsConfig {
    /// Instructions one resume (or one function call) may run.
    #[serde(default)]
    pub max_instructions: Option<u64>,
    /// Bytes one state may allocate.
    #[serde(default)]
    pub max_memory: Option<usize>,
}

impl LuaEntryConfig {
    fn limits(&self) -> Limits {
        Limits {
            max_instructions: self
                .lua
                .max_instructions
                .unwrap_or(DEFAULT_MAX_INSTRUCTIONS),
            max_memory: self.lua.max_memory.unwrap_or(DEFAULT_MAX_MEMORY),
        }
    }

    /// The file path without `file://`, as written.
    fn rel(&self) -> &str {
        self.source.strip_prefix("file://").unwrap_or(&self.source)
    }

    /// Load-time checks: `(field, message)` pairs.
    pub(crate) fn check(&self, base_dir: &Path) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(e) = [
            (
                "max_instructions",
                self.lua.max_instructions.map(|n| n as usize),
            ),
            ("max_memory", self.lua.max_memory),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(0))
        {
            errors.push(FieldError::at(
                format!("lua.{}", e.0),
                "expected a positive number, found 0",
            ));
        }
        match LuaCode::load(base_dir, self) {
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        errors
    }
}

/// A loaded Lua entry: its text, checked once at boot, and its budgets.
pub(crate) struct LuaCode {
    name: String,
    bytecode: Vec<u8>,
    method: String,
    limits: Limits,
}

impl LuaCode {
    /// Reads, compiles and test-runs the file: `(field, message)` on failure.
    pub(crate) fn load(base_dir: &Path, c: &LuaEntryConfig) -> Result<LuaCode, FieldError> {
        let path = base_dir.join(c.rel());
        let text = std::fs::read(&path).map_err(|e| {
            FieldError::at("source", format!("cannot read {}: {e}", path.display()))
        })?;
        let mut code = LuaCode {
            name: c.rel().to_owned(),
            bytecode: Vec::new(),
            method: c.method.clone(),
            limits: c.limits(),
        };
        let (lua, _) =
            new_state(code.limits).map_err(|e| FieldError::at("source", error_text(&e)))?;
        lua.load(CHECK_STUBS)
            .set_name("=check")
            .exec()
            .map_err(|e| FieldError::at("source", error_text(&e)))?;
        let chunk = compile(&lua, &code.name, &text)
            .map_err(|e| FieldError::at("source", error_text(&e)))?;
        // Our own compilation of checked text, kept with its line info so
        // each spawn skips the parser (Lua code itself can never load
        // binary chunks).
        code.bytecode = chunk.dump(false);
        // Running the chunk without modules: `require` and the globals are
        // inert stand-ins, so `local json = require("json")` loads.
        let table: Value = chunk
            .call(())
            .map_err(|e| FieldError::at("source", error_text(&e)))?;
        match &table {
            Value::Table(t) => match t.get::<Value>(c.method.as_str()) {
                Ok(Value::Function(_)) => Ok(code),
                _ => Err(FieldError::at(
                    "method",
                    format!("{} returns no function {:?}", code.name, c.method),
                )),
            },
            other => Err(FieldError::at(
                "source",
                format!(
                    "{} must return a table, returned a {}",
                    code.name,
                    other.type_name()
                ),
            )),
        }
    }

    /// Runs the chunk in `lua` and returns its `method`.
    fn method_of(&self, lua: &Lua) -> mlua::Result<Function> {
        let chunk = lua
            .load(&self.bytecode[..])
            .set_mode(mlua::chunk::ChunkMode::Binary)
            .into_function()?;
        let table: Table = chunk.call(())?;
        table.get(self.method.as_str())
    }
}

/// Installs the modules and globals in a fresh state.
fn install(lua: &Lua, host: Arc<dyn api::Host>, http: Option<Table>) -> mlua::Result<()> {
    let rt = api::runtime_table(lua, host)?;
    if let Some(http) = http {
        rt.get::<Table>("modules")?.set("http", http)?;
    }
    static PRELUDE_CODE: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    engine::run_precompiled(lua, &PRELUDE_CODE, "prelude", PRELUDE, rt)
}

/// Makes the process factory of a booted `process.lua` entry.
pub(crate) fn process_factory(code: Arc<LuaCode>) -> crate::process::ProcessFactory {
    Arc::new(move |args| {
        Box::new(process::LuaProcess::new(code.clone(), args)) as Box<dyn crate::process::Process>
    })
}
