//! `process.lua`: a Lua process, driven as a coroutine by the [`Process`]
//! hooks of its actor.
//!
//! `init` creates the process's own state, runs the chunk, installs the
//! modules and starts `method` as a coroutine with the spawn arguments. The
//! coroutine runs until it waits: the prelude's waiting calls yield
//! `("rippy:wait", ids)` (inbox = 1, events = 2, each timer its own id) or
//! ask for a timer (`("rippy:timer", ms, repeat)`, `("rippy:cancel", id)`);
//! the prelude's `coroutine.resume`/`wrap` pass such requests up from
//! coroutines the code creates, so waiting works at any depth. The driver
//! answers timer requests at once; for a wait it hands over the oldest
//! queued event of one of those sources, or records the wait and returns
//! `Continue`: `handle` queues every event and resumes the coroutine when one
//! it waits for arrives. No thread ever blocks on Lua.
//!
//! The coroutine's return ends the process: normal, unless it raised or its
//! second return value is a string (`return nil, "why"`), which is an error
//! exit. Each resume is bounded by the instruction budget; the state by its
//! memory limit; breaking either is an error exit of this process alone.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use mlua::thread::ThreadStatus;
use mlua::{Lua, MultiValue, Thread, Value};

use super::engine::{Budget, error_text, new_state, setup_done, to_lua};
use super::{LuaCode, install};
use crate::process::{
    Event, ExitReason, Flow, Payload, Process, ProcessContext, ProcessError, ProcessResult, TimerId,
};

const INBOX: u64 = 1;
const EVENTS: u64 = 2;

/// One running Lua process.
pub(crate) struct LuaProcess {
    code: Arc<LuaCode>,
    args: serde_json::Value,
    run: Option<Running>,
}

struct Running {
    lua: Lua,
    budget: Budget,
    thread: Thread,
    waiting: Vec<u64>,
    queue: VecDeque<(u64, Event)>,
    timers: Vec<(u64, TimerId, bool)>,
}

impl LuaProcess {
    pub(crate) fn new(code: Arc<LuaCode>, args: serde_json::Value) -> Self {
        LuaProcess {
            code,
            args,
            run: None,
        }
    }

    fn start(&mut self, ctx: &mut ProcessContext<'_>) -> Result<MultiValue, ProcessError> {
        let fail = |e: mlua::Error| ProcessError(format!("{}: {}", ctx.entry(), error_text(&e)));
        let (lua, budget) = new_state(self.code.limits).map_err(fail)?;
        let host = Arc::new(ctx.acting());
        install(&lua, host, None).map_err(fail)?;
        let method = self.code.method_of(&lua).map_err(fail)?;
        setup_done(&lua);
        let thread = lua.create_thread(method).map_err(fail)?;
        let args = match &self.args {
            serde_json::Value::Null => MultiValue::new(),
            v => MultiValue::from_vec(vec![to_lua(&lua, v).map_err(fail)?]),
        };
        self.run = Some(Running {
            lua,
            budget,
            thread,
            waiting: Vec::new(),
            queue: VecDeque::new(),
            timers: Vec::new(),
        });
        Ok(args)
    }
}

impl Running {
    /// Resumes with `args` until the coroutine waits for something not yet
    /// queued (`Continue`) or ends.
    fn drive(&mut self, ctx: &mut ProcessContext<'_>, mut args: MultiValue) -> ProcessResult {
        let entry = ctx.entry().to_owned();
        let fail = |e: mlua::Error| ProcessError(format!("{entry}: {}", error_text(&e)));
        loop {
            self.budget.reset();
            let out: MultiValue = self.thread.resume(args).map_err(fail)?;
            if self.thread.status() != ThreadStatus::Resumable {
                return match out.get(1) {
                    Some(Value::String(s)) => {
                        Err(ProcessError(format!("{entry}: {}", s.to_string_lossy())))
                    }
                    Some(Value::Error(e)) => Err(fail((**e).clone())),
                    _ => Ok(Flow::Stop),
                };
            }
            let op = match out.front() {
                Some(Value::String(s)) => s.to_string_lossy(),
                _ => {
                    return Err(ProcessError(format!(
                        "{entry}: coroutine.yield outside a waiting call (use inbox:receive, channel.select or time)"
                    )));
                }
            };
            match op.as_str() {
                "rippy:timer" => {
                    let ms = out.get(1).and_then(Value::as_integer).unwrap_or(0).max(0) as u64;
                    let repeat = out.get(2).and_then(Value::as_boolean).unwrap_or(false);
                    let d = Duration::from_millis(ms);
                    let timer = if repeat {
                        ctx.interval(d)
                    } else {
                        ctx.after(d)
                    };
                    let id = timer.0 + EVENTS;
                    self.timers.push((id, timer, repeat));
                    args = MultiValue::from_vec(vec![Value::Integer(id as i64)]);
                }
                "rippy:cancel" => {
                    let id = out.get(1).and_then(Value::as_integer).unwrap_or(0) as u64;
                    if let Some(i) = self.timers.iter().position(|(t, _, _)| *t == id) {
                        let (_, timer, _) = self.timers.swap_remove(i);
                        ctx.cancel_timer(timer);
                    }
                    self.queue.retain(|(src, _)| *src != id);
                    args = MultiValue::new();
                }
                "rippy:wait" => {
                    let ids: Vec<u64> = match out.get(1) {
                        Some(Value::Table(t)) => t
                            .sequence_values::<i64>()
                            .filter_map(Result::ok)
                            .map(|i| i as u64)
                            .collect(),
                        _ => Vec::new(),
                    };
                    match self.queue.iter().position(|(src, _)| ids.contains(src)) {
                        Some(i) => {
                            let (src, event) = self.queue.remove(i).expect("index in range");
                            args = self.deliverable(src, event).map_err(fail)?;
                        }
                        None => {
                            self.waiting = ids;
                            return Ok(Flow::Continue);
                        }
                    }
                }
                other => {
                    return Err(ProcessError(format!("{entry}: unknown request {other:?}")));
                }
            }
        }
    }

    fn source(&self, event: &Event) -> u64 {
        match event {
            Event::Message(_) => INBOX,
            Event::Exit { .. } => EVENTS,
            Event::Timer(t) => t.0 + EVENTS,
        }
    }

    /// `(source id, value)` for the prelude.
    fn deliverable(&mut self, src: u64, event: Event) -> mlua::Result<MultiValue> {
        let lua = &self.lua;
        let value = match event {
            Event::Message(m) => {
                let t = lua.create_table()?;
                t.set("topic", m.topic.as_ref())?;
                t.set("from", m.from.map(|p| p.to_string()))?;
                match &m.payload {
                    Payload::Json(v) => t.set("data", to_lua(lua, v)?)?,
                    Payload::Bytes(b) => t.set("data", lua.create_string(b)?)?,
                }
                Value::Table(t)
            }
            Event::Exit { from, reason } => {
                let t = lua.create_table()?;
                t.set("kind", "EXIT")?;
                t.set("from", from.to_string())?;
                t.set("reason", reason.label())?;
                let result = lua.create_table()?;
                if let ExitReason::Error(e) | ExitReason::Panic(e) = &reason {
                    result.set("error", e.as_str())?;
                } else if reason.is_failure() {
                    result.set("error", reason.label())?;
                }
                t.set("result", result)?;
                Value::Table(t)
            }
            Event::Timer(t) => {
                // A one-shot timer is gone once fired; an interval stays.
                let _ = t;
                if let Some(i) = self
                    .timers
                    .iter()
                    .position(|(id, _, repeat)| *id == src && !repeat)
                {
                    self.timers.swap_remove(i);
                }
                Value::Integer(crate::util::unix_ms() as i64)
            }
        };
        Ok(MultiValue::from_vec(vec![
            Value::Integer(src as i64),
            value,
        ]))
    }
}

impl Process for LuaProcess {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let args = self.start(ctx)?;
        match &mut self.run {
            Some(run) => run.drive(ctx, args),
            None => Ok(Flow::Stop),
        }
    }

    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        let Some(run) = &mut self.run else {
            return Ok(Flow::Stop);
        };
        let src = run.source(&event);
        if run.waiting.contains(&src) && run.queue.is_empty() {
            run.waiting.clear();
            let entry = ctx.entry().to_owned();
            let args = run
                .deliverable(src, event)
                .map_err(|e| ProcessError(format!("{entry}: {}", error_text(&e))))?;
            return run.drive(ctx, args);
        }
        // Ticks of a timer nobody is reading conflate: one queued is enough.
        if matches!(event, Event::Timer(_)) && run.queue.iter().any(|(s, _)| *s == src) {
            return Ok(Flow::Continue);
        }
        run.queue.push_back((src, event));
        if run.waiting.contains(&src) {
            run.waiting.clear();
            return run.drive(ctx, wait_again());
        }
        Ok(Flow::Continue)
    }
}

/// Resume arguments that make the prelude's select loop look again.
fn wait_again() -> MultiValue {
    MultiValue::new()
}
