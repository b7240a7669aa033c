//! A test process that reports everything it sees and does what its
//! messages ask, so tests can drive every way a process can live and end,
//! and try everything a context offers (`try`, answered with an `Outcome`).

use std::time::Duration;

use rippy::prelude::*;
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

/// What a probe reports.
#[derive(Debug, Clone)]
pub enum Report {
    Init(Pid),
    Event(Pid, Event),
    Shutdown(Pid, String),
    Thread(Pid, std::thread::ThreadId),
    Exit(Pid, ExitReason),
    /// The result of a `try`: the operation and what it returned (or its
    /// error's text).
    Outcome(Pid, String, Result<String, String>),
}

/// One operation of a `try` message: `{"op": ..., ...}`.
fn attempt(ctx: &mut ProcessContext<'_>, req: &Value) -> Result<String, String> {
    let s = |key: &str| req.get(key).and_then(Value::as_str).unwrap_or("");
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match s("op") {
        "spawn" => {
            let entry = req
                .get("entry")
                .and_then(Value::as_str)
                .unwrap_or("t:probe");
            let host = req.get("host").and_then(Value::as_str).unwrap_or("t:host");
            ctx.spawn(entry, host, Value::Null)
                .map(|p| p.to_string())
                .map_err(|e| text(&e))
        }
        "send_name" => ctx
            .send(s("name"), "hello", Value::Null)
            .map(|()| "sent".into())
            .map_err(|e| text(&e)),
        "send_pid" => {
            let pid: Pid = s("pid").parse().map_err(|e| text(&e))?;
            ctx.send(&pid, "hello", Value::Null)
                .map(|()| "sent".into())
                .map_err(|e| text(&e))
        }
        "whereis" => ctx
            .whereis(s("name"))
            .map(|p| p.map(|p| p.to_string()).unwrap_or_default())
            .map_err(|e| text(&e)),
        "join" => {
            let pid: Pid = s("pid").parse().map_err(|e| text(&e))?;
            ctx.join(s("name"), &pid)
                .map(|joined| joined.to_string())
                .map_err(|e| text(&e))
        }
        "leave" => {
            let pid: Pid = s("pid").parse().map_err(|e| text(&e))?;
            ctx.leave(s("name"), &pid)
                .map(|was| was.to_string())
                .map_err(|e| text(&e))
        }
        "publish" => ctx
            .publish(s("name"), "news", json!(s("data")))
            .map(|n| n.to_string())
            .map_err(|e| text(&e)),
        "register" => ctx
            .register(s("name"))
            .map(|()| "registered".into())
            .map_err(|e| text(&e)),
        "terminate" => {
            let pid: Pid = s("pid").parse().map_err(|e| text(&e))?;
            ctx.terminate(&pid)
                .map(|alive| alive.to_string())
                .map_err(|e| text(&e))
        }
        "module" => {
            let m = ctx.modules();
            let id = s("id");
            let result = match s("name") {
                "sql" => m.sql(id).map(|_| ()),
                "store" => m.store(id).map(|_| ()),
                "security" => m.tokens(id).map(|_| ()),
                "crypto" => m.random_bytes(4).map(|_| ()),
                "time" => m.now_ms().map(|_| ()),
                "logger" => m.logger().map(|l| l.info("probe")),
                "json" => m.json_encode(&Value::Null).map(|_| ()),
                other => return Err(format!("probe knows no module {other}")),
            };
            result.map(|()| "ok".into()).map_err(|e| text(&e))
        }
        "tokens" => {
            let tokens = ctx.modules().tokens(s("store")).map_err(|e| text(&e))?;
            match s("action") {
                "create" => tokens.create(Actor::new("user:t"), vec![], None, Value::Null),
                "validate" => tokens.validate(s("token")).map(|r| r.actor.id),
                "revoke" => tokens.revoke(s("token")).map(|live| live.to_string()),
                other => return Err(format!("probe knows no token action {other}")),
            }
            .map_err(|e| text(&e))
        }
        other => Err(format!("probe knows no op {other}")),
    }
}

pub struct Probe {
    tx: UnboundedSender<Report>,
    args: Value,
    pid: Option<Pid>,
}

impl Probe {
    pub fn new(tx: UnboundedSender<Report>, args: Value) -> Self {
        Probe {
            tx,
            args,
            pid: None,
        }
    }

    fn arg(&self, key: &str) -> Option<&Value> {
        self.args.get(key)
    }
}

impl Process for Probe {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        self.pid = Some(ctx.pid().clone());
        // Reported once set up, so a test that saw Init also sees the name.
        let registered = match self.arg("register").and_then(Value::as_str) {
            Some(name) => ctx.register(name),
            None => Ok(()),
        };
        if let Some(ms) = self.arg("interval_ms").and_then(Value::as_u64) {
            ctx.interval(Duration::from_millis(ms));
        }
        let _ = self.tx.send(Report::Init(ctx.pid().clone()));
        if self.arg("report_thread").is_some() {
            let _ = self.tx.send(Report::Thread(
                ctx.pid().clone(),
                std::thread::current().id(),
            ));
        }
        registered?;
        if self.arg("fail_in_init").is_some() {
            return Err("told to fail in init".into());
        }
        if self.arg("exit_in_init").is_some() {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        let _ = self
            .tx
            .send(Report::Event(ctx.pid().clone(), event.clone()));
        let Event::Message(msg) = event else {
            return Ok(Flow::Continue);
        };
        let payload = msg.payload.to_json().unwrap_or(Value::Null);
        let pid_arg = || payload.as_str().and_then(|s| s.parse::<Pid>().ok());
        match msg.topic.as_ref() {
            "stop" => return Ok(Flow::Stop),
            "fail" => return Err("told to fail".into()),
            "panic" => panic!("told to panic"),
            "register" => ctx.register(payload.as_str().unwrap_or(""))?,
            "monitor" => {
                if let Some(p) = pid_arg() {
                    ctx.monitor(&p);
                }
            }
            "demonitor" => {
                if let Some(p) = pid_arg() {
                    ctx.demonitor(&p);
                }
            }
            "use_sql" => {
                ctx.modules().sql("t:db")?;
            }
            "spawn_on" => {
                let host = payload.as_str().unwrap_or("t:host");
                let _ = self.tx.send(Report::Thread(
                    ctx.pid().clone(),
                    std::thread::current().id(),
                ));
                ctx.spawn(
                    "t:probe",
                    host,
                    serde_json::json!({ "report_thread": true }),
                )?;
            }
            "spawn" => {
                let pid = ctx.spawn("t:probe", "t:host", Value::Null)?;
                let _ = ctx.send(&pid, "stop", Value::Null);
            }
            "try" => {
                let op = payload
                    .get("op")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let outcome = attempt(ctx, &payload);
                let _ = self
                    .tx
                    .send(Report::Outcome(ctx.pid().clone(), op, outcome));
            }
            "forward" => {
                if let Some(to) = payload.get("to").and_then(Value::as_str) {
                    let _ = ctx.send(
                        to,
                        "forwarded",
                        payload.get("data").cloned().unwrap_or(Value::Null),
                    );
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn on_shutdown(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let name = self
            .arg("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let _ = self.tx.send(Report::Shutdown(ctx.pid().clone(), name));
        if self.arg("ignore_shutdown").is_some() {
            return Ok(Flow::Continue);
        }
        Ok(Flow::Stop)
    }

    fn on_exit(&mut self, ctx: &mut ProcessContext<'_>, reason: &ExitReason) {
        let _ = self
            .tx
            .send(Report::Exit(ctx.pid().clone(), reason.clone()));
    }
}
