//! The Rust half of the Lua modules: `json`, `crypto`, `logger`, `sql`,
//! `store`, `security` and the runtime calls behind the `process` global,
//! each backed by the entry's capability handles ([`Modules`]) and the same
//! checked operations a Rust actor uses. The Lua half (`prelude.lua`) builds
//! `process`, `channel`, `time` and `require` on top of these.
//!
//! Errors are values: an expected failure returns `nil, err`; only misuse
//! (a wrong argument type) raises.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, MultiValue, Table, Value};

use super::engine::{to_json, to_lua};
use crate::process::{Modules, Payload, Pid, Target};
use crate::security::{Actor, Identity};

/// What Lua code acts through: a process ([`crate::process::Acting`]) or a
/// function call ([`crate::function::FunctionContext`]).
pub(crate) trait Host: Send + Sync + 'static {
    /// The entry id.
    fn entry(&self) -> &str;
    /// The entry's modules.
    fn modules(&self) -> Modules<'_>;
    /// The running process's pid; `None` in a function.
    fn pid(&self) -> Option<&Pid>;
    /// The identity the code acts as.
    fn identity(&self) -> Option<&Identity>;
    /// A checked send.
    fn send(&self, to: Target, topic: String, payload: Payload) -> Result<(), String>;
    /// A checked spawn.
    fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
        monitored: bool,
    ) -> Result<Pid, String>;
    /// A checked name lookup.
    fn whereis(&self, name: &str) -> Result<Option<Pid>, String>;
    /// A checked register of the running process.
    fn register(&self, name: &str) -> Result<(), String>;
    /// Monitor (`on`) or demonitor a pid.
    fn monitor(&self, target: &Pid, on: bool) -> Result<(), String>;
    /// A checked terminate.
    fn terminate(&self, target: &Pid) -> Result<bool, String>;
}

impl Host for crate::process::Acting {
    fn entry(&self) -> &str {
        crate::process::Acting::entry(self)
    }
    fn modules(&self) -> Modules<'_> {
        crate::process::Acting::modules(self)
    }
    fn pid(&self) -> Option<&Pid> {
        Some(crate::process::Acting::pid(self))
    }
    fn identity(&self) -> Option<&Identity> {
        None
    }
    fn send(&self, to: Target, topic: String, payload: Payload) -> Result<(), String> {
        crate::process::Acting::send(self, to, topic.into(), payload).map_err(|e| e.to_string())
    }
    fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
        m: bool,
    ) -> Result<Pid, String> {
        crate::process::Acting::spawn(self, entry, host, args, m).map_err(|e| e.to_string())
    }
    fn whereis(&self, name: &str) -> Result<Option<Pid>, String> {
        crate::process::Acting::whereis(self, name).map_err(|e| e.to_string())
    }
    fn register(&self, name: &str) -> Result<(), String> {
        crate::process::Acting::register(self, name)
    }
    fn monitor(&self, target: &Pid, on: bool) -> Result<(), String> {
        if on {
            crate::process::Acting::monitor(self, target);
        } else {
            crate::process::Acting::demonitor(self, target);
        }
        Ok(())
    }
    fn terminate(&self, target: &Pid) -> Result<bool, String> {
        crate::process::Acting::terminate(self, target).map_err(|e| e.to_string())
    }
}

/// What a module function returns to Lua: values, or `nil, err`.
pub(super) type Ret = mlua::Result<MultiValue>;

/// One value back to Lua.
pub(super) fn ok(lua: &Lua, v: impl mlua::IntoLua) -> Ret {
    Ok(MultiValue::from_vec(vec![v.into_lua(lua)?]))
}

/// An expected failure back to Lua, as a value: `nil, err`.
pub(super) fn err(lua: &Lua, e: impl std::fmt::Display) -> Ret {
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(lua.create_string(e.to_string())?),
    ]))
}

/// A pid or a registered name, from its string form.
pub(crate) fn target(s: &str) -> Target {
    match s.parse::<Pid>() {
        Ok(pid) => Target::Pid(pid),
        Err(_) => Target::Name(s.to_owned()),
    }
}

fn pid_arg(s: &str) -> Result<Pid, String> {
    s.parse::<Pid>()
        .map_err(|e| format!("not a pid: {s:?} ({e})"))
}

/// A duration argument: milliseconds, or a string like `"10ms"`.
pub(crate) fn duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Integer(n) if *n >= 0 => Ok(Duration::from_millis(*n as u64)),
        Value::Number(n) if *n >= 0.0 => Ok(Duration::from_secs_f64(n / 1000.0)),
        Value::String(s) => {
            crate::manifest::parse_duration(&s.to_str().map_err(|e| e.to_string())?)
        }
        other => Err(format!(
            "expected a duration (\"10ms\" or milliseconds), found {}",
            other.type_name()
        )),
    }
}

/// A message payload from Lua, as JSON; except a `ws.send` of one text
/// frame (`{type = "text", data = s}`), which goes as the frame's bytes, as
/// a Rust broadcast does: no JSON on the way, and the relay treats it as a
/// frame it may conflate for a client that falls behind.
fn payload(lua: &Lua, topic: &str, v: Value) -> mlua::Result<Payload> {
    if topic == crate::http::middleware::websocket_relay::TOPIC_SEND
        && let Value::Table(t) = &v
        && t.get::<Option<mlua::LuaString>>("type")?
            .is_some_and(|k| k.as_bytes().as_ref() == b"text")
        && let Some(data) = t.get::<Option<mlua::LuaString>>("data")?
    {
        return Ok(Payload::Bytes(bytes::Bytes::copy_from_slice(
            &data.as_bytes(),
        )));
    }
    Ok(Payload::Json(to_json(lua, v)?))
}

/// The `rt` table the prelude builds the globals from.
pub(crate) fn runtime_table(lua: &Lua, host: Arc<dyn Host>) -> mlua::Result<Table> {
    let rt = lua.create_table()?;
    let h = host.clone();
    rt.set(
        "pid",
        lua.create_function(move |_, ()| Ok(h.pid().map(|p| p.to_string())))?,
    )?;
    let h = host.clone();
    rt.set(
        "entry",
        lua.create_function(move |_, ()| Ok(h.entry().to_owned()))?,
    )?;
    let h = host.clone();
    rt.set(
        "send",
        lua.create_function(move |lua, (to, topic, data): (String, String, Value)| {
            let payload = payload(lua, &topic, data)?;
            match h.send(target(&to), topic, payload) {
                Ok(()) => ok(lua, true),
                Err(e) => err(lua, e),
            }
        })?,
    )?;
    let h = host.clone();
    rt.set(
        "spawn",
        lua.create_function(
            move |lua, (monitored, entry, on, args): (bool, String, String, MultiValue)| {
                let mut vals = args
                    .into_iter()
                    .map(|v| to_json(lua, v))
                    .collect::<mlua::Result<Vec<_>>>()?;
                let args = match vals.len() {
                    0 => serde_json::Value::Null,
                    1 => vals.remove(0),
                    _ => serde_json::Value::Array(vals),
                };
                match h.spawn(&entry, &on, args, monitored) {
                    Ok(pid) => ok(lua, pid.to_string()),
                    Err(e) => err(lua, e),
                }
            },
        )?,
    )?;
    let h = host.clone();
    rt.set(
        "lookup",
        lua.create_function(move |lua, name: String| match h.whereis(&name) {
            Ok(Some(pid)) => ok(lua, pid.to_string()),
            Ok(None) => err(lua, format!("no process registered as {name:?}")),
            Err(e) => err(lua, e),
        })?,
    )?;
    let h = host.clone();
    rt.set(
        "register",
        lua.create_function(move |lua, name: String| match h.register(&name) {
            Ok(()) => ok(lua, true),
            Err(e) => err(lua, e),
        })?,
    )?;
    let h = host.clone();
    rt.set(
        "monitor",
        lua.create_function(move |lua, (pid, on): (String, bool)| {
            match pid_arg(&pid).and_then(|p| h.monitor(&p, on)) {
                Ok(()) => ok(lua, true),
                Err(e) => err(lua, e),
            }
        })?,
    )?;
    let h = host.clone();
    rt.set(
        "terminate",
        lua.create_function(move |lua, pid: String| {
            match pid_arg(&pid).and_then(|p| h.terminate(&p)) {
                Ok(alive) => ok(lua, alive),
                Err(e) => err(lua, e),
            }
        })?,
    )?;
    rt.set(
        "now",
        lua.create_function(|_, ()| Ok(crate::util::unix_ms() as i64))?,
    )?;
    rt.set(
        "ms",
        lua.create_function(|lua, v: Value| match duration(&v) {
            Ok(d) => ok(lua, d.as_millis() as i64),
            Err(e) => err(lua, e),
        })?,
    )?;
    let h = host.clone();
    rt.set(
        "undeclared",
        lua.create_function(move |_, name: String| {
            Ok(format!(
                "entry {}: module `{name}` is not listed in `modules` (declared: [{}])",
                h.entry(),
                h.modules().declared().join(", ")
            ))
        })?,
    )?;
    let declared = lua.create_table()?;
    for name in host.modules().declared() {
        declared.set(name.as_str(), true)?;
    }
    rt.set("declared", declared)?;
    let mods = lua.create_table()?;
    // Only the listed modules are built: an idle state stays small.
    let has = |m: &str| host.modules().declares(m);
    if has("json") {
        mods.set("json", json(lua)?)?;
    }
    if has("crypto") {
        mods.set("crypto", crypto(lua, host.clone())?)?;
    }
    if has("logger") {
        mods.set("logger", logger(lua, host.clone())?)?;
    }
    if has("sql") {
        mods.set("sql", super::data::sql(lua, host.clone())?)?;
    }
    if has("store") {
        mods.set("store", super::data::store(lua, host.clone())?)?;
    }
    if has("security") {
        mods.set("security", super::data::security(lua, host.clone())?)?;
    }
    rt.set("modules", mods)?;
    Ok(rt)
}

fn json(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, v: Value| match to_json(lua, v) {
            Ok(j) => ok(lua, j.to_string()),
            Err(e) => err(lua, e),
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            match serde_json::from_slice::<serde_json::Value>(&s.as_bytes()) {
                Ok(v) => ok(lua, to_lua(lua, &v)?),
                Err(e) => err(lua, format!("invalid JSON: {e}")),
            }
        })?,
    )?;
    Ok(t)
}

fn crypto(lua: &Lua, host: Arc<dyn Host>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let random = lua.create_table()?;
    let h = host.clone();
    random.set(
        "bytes",
        lua.create_function(
            move |lua, n: usize| match h.modules().random_bytes(n.min(1 << 20)) {
                Ok(b) => ok(lua, lua.create_string(b)?),
                Err(e) => err(lua, e),
            },
        )?,
    )?;
    let h = host.clone();
    random.set(
        "string",
        lua.create_function(move |lua, n: usize| {
            match h.modules().random_string(n.min(1 << 20)) {
                Ok(s) => ok(lua, s),
                Err(e) => err(lua, e),
            }
        })?,
    )?;
    t.set("random", random)?;
    let h = host.clone();
    t.set(
        "sha256",
        lua.create_function(move |lua, data: mlua::LuaString| {
            match h.modules().sha256_hex(&data.as_bytes()) {
                Ok(s) => ok(lua, s),
                Err(e) => err(lua, e),
            }
        })?,
    )?;
    let hmac = lua.create_table()?;
    hmac.set(
        "sha256",
        lua.create_function(
            move |lua, (key, data): (mlua::LuaString, mlua::LuaString)| {
                use hmac::Mac;
                let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.as_bytes()) {
                    Ok(m) => m,
                    Err(e) => return err(lua, e),
                };
                mac.update(&data.as_bytes());
                let tag = mac.finalize().into_bytes();
                ok(
                    lua,
                    tag.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                )
            },
        )?,
    )?;
    t.set("hmac", hmac)?;
    Ok(t)
}

fn logger(lua: &Lua, host: Arc<dyn Host>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for level in ["debug", "info", "warn", "error"] {
        let h = host.clone();
        t.set(
            level,
            lua.create_function(
                move |lua, (_this, msg, fields): (Value, String, Option<Table>)| {
                    let log = match h.modules().logger() {
                        Ok(l) => l,
                        Err(e) => return Err(mlua::Error::runtime(e.to_string())),
                    };
                    let mut line = msg;
                    if let Some(fields) = fields {
                        let mut pairs = Vec::new();
                        for pair in fields.pairs::<Value, Value>() {
                            let (k, v) = pair?;
                            let v = match v {
                                Value::String(s) => s.to_string_lossy(),
                                other => to_json(lua, other)
                                    .map(|j| j.to_string())
                                    .unwrap_or_default(),
                            };
                            pairs.push(format!("{}={v}", k.to_string()?));
                        }
                        pairs.sort();
                        for p in pairs {
                            line.push(' ');
                            line.push_str(&p);
                        }
                    }
                    match level {
                        "debug" => log.debug(line),
                        "info" => log.info(line),
                        "warn" => log.warn(line),
                        _ => log.error(line),
                    }
                    Ok(())
                },
            )?,
        )?;
    }
    Ok(t)
}

/// The actor a Lua value names: a table `{id = ..., meta = {...}}`.
pub(crate) fn actor_from(lua: &Lua, v: Value) -> Result<Actor, String> {
    let json = to_json(lua, v).map_err(|e| e.to_string())?;
    serde_json::from_value::<Actor>(json)
        .map_err(|e| format!("expected an actor {{id, meta}}: {e}"))
}
