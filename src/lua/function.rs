//! `function.lua`: HTTP endpoint functions in Lua.
//!
//! Every call gets a fresh sandboxed state (nothing survives between calls)
//! with the entry's modules, the `http` module for this request and
//! response, and `process`/`channel` globals acting as the request's
//! identity (spawns are checked as for Rust functions; an anonymous request
//! never spawns). The method is called directly, not as a coroutine: waiting
//! calls (`time.sleep`, `inbox:receive`) are process-only and raise here.
//! A Lua error, a broken budget or `return nil, "why"` answers 500 with the
//! error logged, not shown.

use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use mlua::{Lua, MultiValue, Table, Value};

use super::api::Host;
use super::engine::{error_text, new_state, setup_done, to_json, to_lua};
use super::{LuaCode, install};
use crate::function::{FunctionCall, FunctionContext, FunctionFuture, FunctionHandler};
use crate::process::{Modules, Payload, Pid, Target};
use crate::security::Identity;

impl Host for FunctionContext {
    fn entry(&self) -> &str {
        FunctionContext::entry(self)
    }
    fn modules(&self) -> Modules<'_> {
        FunctionContext::modules(self)
    }
    fn pid(&self) -> Option<&Pid> {
        None
    }
    fn identity(&self) -> Option<&Identity> {
        FunctionContext::identity(self)
    }
    fn send(&self, to: Target, topic: String, payload: Payload) -> Result<(), String> {
        FunctionContext::send(self, to, topic, payload).map_err(|e| e.to_string())
    }
    fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
        m: bool,
    ) -> Result<Pid, String> {
        if m {
            return Err("spawn_monitored: a function is not a process".into());
        }
        FunctionContext::spawn(self, entry, host, args).map_err(|e| e.to_string())
    }
    fn whereis(&self, name: &str) -> Result<Option<Pid>, String> {
        FunctionContext::whereis(self, name).map_err(|e| e.to_string())
    }
    fn register(&self, _: &str) -> Result<(), String> {
        Err("registry.register: a function is not a process".into())
    }
    fn monitor(&self, _: &Pid, _: bool) -> Result<(), String> {
        Err("monitor: a function is not a process".into())
    }
    fn terminate(&self, _: &Pid) -> Result<bool, String> {
        Err("terminate: a function is not a process".into())
    }
}

/// What the request looks like to Lua, copied out of the `HttpRequest`.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    remote: Option<String>,
}

#[derive(Default)]
struct Response {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    json: bool,
}

/// The handler of a booted `function.lua` entry.
pub(crate) fn handler(code: Arc<LuaCode>) -> FunctionHandler {
    Arc::new(move |call: FunctionCall| {
        let code = code.clone();
        let req = Request {
            method: call.req.method().to_string(),
            path: call.req.path().to_owned(),
            query: url_pairs(call.req.query_string()),
            headers: call
                .req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: call.body.to_vec(),
            remote: call.req.peer_addr().map(|a| crate::util::ip_string(a.ip())),
        };
        let ctx = call.ctx;
        Box::pin(async move { run(&code, ctx, req) }) as FunctionFuture
    })
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn run(code: &LuaCode, ctx: FunctionContext, req: Request) -> HttpResponse {
    let entry = ctx.entry().to_owned();
    let res = Arc::new(Mutex::new(Response::default()));
    match call(code, ctx, req, res.clone()) {
        Ok(()) => {
            let res = std::mem::take(&mut *res.lock().unwrap_or_else(|e| e.into_inner()));
            let status = StatusCode::from_u16(res.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
            let mut out = HttpResponse::build(status);
            if res.json {
                out.content_type("application/json");
            }
            for (k, v) in res.headers {
                out.insert_header((k, v));
            }
            out.body(res.body)
        }
        Err(message) => {
            log::error!("function failed: {message} entry={entry}");
            crate::http::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn call(
    code: &LuaCode,
    ctx: FunctionContext,
    req: Request,
    res: Arc<Mutex<Response>>,
) -> Result<(), String> {
    let fail = |e: mlua::Error| error_text(&e);
    let (lua, budget) = new_state(code.limits).map_err(fail)?;
    let http = http_module(&lua, req, res).map_err(fail)?;
    let args = match ctx.args() {
        serde_json::Value::Null => MultiValue::new(),
        v => MultiValue::from_vec(vec![to_lua(&lua, v).map_err(fail)?]),
    };
    install(&lua, Arc::new(ctx), Some(http)).map_err(fail)?;
    let method = code.method_of(&lua).map_err(fail)?;
    setup_done(&lua);
    budget.reset();
    let out: MultiValue = method.call(args).map_err(fail)?;
    match out.get(1) {
        Some(Value::String(s)) => Err(s.to_string_lossy()),
        _ => Ok(()),
    }
}

fn http_module(lua: &Lua, req: Request, res: Arc<Mutex<Response>>) -> mlua::Result<Table> {
    let http = lua.create_table()?;
    let req = Arc::new(req);
    let r = lua.create_table()?;
    let q = req.clone();
    r.set(
        "method",
        lua.create_function(move |_, _this: Value| Ok(q.method.clone()))?,
    )?;
    let q = req.clone();
    r.set(
        "path",
        lua.create_function(move |_, _this: Value| Ok(q.path.clone()))?,
    )?;
    let q = req.clone();
    r.set(
        "query",
        lua.create_function(move |_, (_this, name): (Value, String)| {
            Ok(q.query
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone()))
        })?,
    )?;
    let q = req.clone();
    r.set(
        "header",
        lua.create_function(move |_, (_this, name): (Value, String)| {
            Ok(q.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone()))
        })?,
    )?;
    let q = req.clone();
    r.set(
        "body",
        lua.create_function(move |lua, _this: Value| lua.create_string(&q.body))?,
    )?;
    let q = req.clone();
    r.set(
        "body_json",
        lua.create_function(move |lua, _this: Value| {
            match serde_json::from_slice::<serde_json::Value>(&q.body) {
                Ok(v) => Ok(MultiValue::from_vec(vec![to_lua(lua, &v)?])),
                Err(e) => Ok(MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(format!("invalid JSON body: {e}"))?),
                ])),
            }
        })?,
    )?;
    let q = req.clone();
    r.set(
        "remote_addr",
        lua.create_function(move |_, _this: Value| Ok(q.remote.clone()))?,
    )?;
    http.set("request", lua.create_function(move |_, ()| Ok(r.clone()))?)?;

    let w = lua.create_table()?;
    let o = res.clone();
    w.set(
        "set_status",
        lua.create_function(move |_, (_this, n): (Value, u16)| {
            o.lock().unwrap_or_else(|e| e.into_inner()).status = Some(n);
            Ok(())
        })?,
    )?;
    let o = res.clone();
    w.set(
        "set_header",
        lua.create_function(move |_, (_this, k, v): (Value, String, String)| {
            o.lock()
                .unwrap_or_else(|e| e.into_inner())
                .headers
                .push((k, v));
            Ok(())
        })?,
    )?;
    let o = res.clone();
    w.set(
        "write",
        lua.create_function(move |_, (_this, s): (Value, mlua::LuaString)| {
            o.lock()
                .unwrap_or_else(|e| e.into_inner())
                .body
                .extend_from_slice(&s.as_bytes());
            Ok(())
        })?,
    )?;
    let o = res.clone();
    w.set(
        "write_json",
        lua.create_function(move |lua, (_this, v): (Value, Value)| {
            let text = to_json(lua, v)?.to_string();
            let mut res = o.lock().unwrap_or_else(|e| e.into_inner());
            res.body.extend_from_slice(text.as_bytes());
            res.json = true;
            Ok(())
        })?,
    )?;
    http.set("response", lua.create_function(move |_, ()| Ok(w.clone()))?)?;

    let status = lua.create_table()?;
    for (k, v) in [
        ("OK", 200),
        ("CREATED", 201),
        ("ACCEPTED", 202),
        ("NO_CONTENT", 204),
        ("BAD_REQUEST", 400),
        ("UNAUTHORIZED", 401),
        ("FORBIDDEN", 403),
        ("NOT_FOUND", 404),
        ("METHOD_NOT_ALLOWED", 405),
        ("CONFLICT", 409),
        ("TOO_MANY_REQUESTS", 429),
        ("INTERNAL_ERROR", 500),
        ("SERVICE_UNAVAILABLE", 503),
    ] {
        status.set(k, v)?;
    }
    http.set("STATUS", status)?;
    let method = lua.create_table()?;
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] {
        method.set(m, m)?;
    }
    http.set("METHOD", method)?;
    Ok(http)
}
