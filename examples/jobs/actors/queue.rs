//! `queue`: the registered service that owns a pool of workers.
//!
//! `submit {id?, n}` queues a job (an id is made up if none is given) and
//! records it as `queued` in the state store; the sender, if a process, is
//! told `accepted {id}` now and `done {id, result}` or `failed {id, error}`
//! later. Each job goes to an idle worker, in submission order. The queue
//! spawns its workers monitored: a worker that ends while it holds a job
//! fails that job, and a worker that fails (error or panic) is replaced, so
//! the pool keeps its size.
//! `stats` is answered with `stats {workers, idle, busy, waiting, done,
//! failed}`.

use std::collections::{HashMap, VecDeque};

use rippy::prelude::*;

use super::worker::{TOPIC_DONE, TOPIC_WORK};

/// The registered name.
pub const NAME: &str = "queue";
/// Queues a job.
pub const TOPIC_SUBMIT: &str = "submit";
/// The answer to a submit.
pub const TOPIC_ACCEPTED: &str = "accepted";
/// A job whose worker failed.
pub const TOPIC_FAILED: &str = "failed";
/// Asks for (and answers with) the pool's counters.
pub const TOPIC_STATS: &str = "stats";

struct Job {
    id: String,
    n: u64,
    reply_to: Option<Pid>,
}

/// The queue and its pool.
pub struct Queue {
    size: usize,
    worker: String,
    host: String,
    state: String,
    next_id: u64,
    idle: VecDeque<Pid>,
    busy: HashMap<Pid, Job>,
    waiting: VecDeque<Job>,
    done: u64,
    failed: u64,
}

impl Queue {
    /// A queue from its entry's args: `workers`, `worker`, `host`, `state`.
    pub fn new(args: Value) -> Self {
        let text = |key: &str, default: &str| {
            args.get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        Queue {
            size: args.get("workers").and_then(Value::as_u64).unwrap_or(2) as usize,
            worker: text("worker", "jobs:worker"),
            host: text("host", "jobs:processes"),
            state: text("state", "jobs:state"),
            next_id: 0,
            idle: VecDeque::new(),
            busy: HashMap::new(),
            waiting: VecDeque::new(),
            done: 0,
            failed: 0,
        }
    }

    fn record(&self, ctx: &ProcessContext<'_>, id: &str, state: Value) -> Result<(), ProcessError> {
        let store = ctx.modules().store(&self.state)?;
        store
            .set(id, state, None)
            .map_err(|e| ProcessError::from(e.to_string()))
    }

    fn add_worker(&mut self, ctx: &ProcessContext<'_>) -> Result<(), ProcessError> {
        let pid = ctx.spawn_monitored(&self.worker, &self.host, Value::Null)?;
        self.idle.push_back(pid);
        Ok(())
    }

    /// Hands waiting jobs to idle workers.
    fn dispatch(&mut self, ctx: &ProcessContext<'_>) -> Result<(), ProcessError> {
        while !self.waiting.is_empty() {
            let Some(worker) = self.idle.pop_front() else {
                break;
            };
            let Some(job) = self.waiting.pop_front() else {
                break;
            };
            self.record(ctx, &job.id, json!({ "status": "running" }))?;
            let _ = ctx.send(&worker, TOPIC_WORK, json!({ "id": job.id, "n": job.n }));
            self.busy.insert(worker, job);
        }
        Ok(())
    }

    fn submit(
        &mut self,
        ctx: &ProcessContext<'_>,
        from: Option<Pid>,
        job: &Value,
    ) -> Result<(), ProcessError> {
        let id = match job.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                self.next_id += 1;
                format!("job-{}", self.next_id)
            }
        };
        let n = job.get("n").and_then(Value::as_u64).unwrap_or(0);
        self.record(ctx, &id, json!({ "status": "queued" }))?;
        if let Some(from) = &from {
            let _ = ctx.send(from, TOPIC_ACCEPTED, json!({ "id": id }));
        }
        self.waiting.push_back(Job {
            id,
            n,
            reply_to: from,
        });
        self.dispatch(ctx)
    }

    fn finished(
        &mut self,
        ctx: &ProcessContext<'_>,
        worker: Pid,
        result: &Value,
    ) -> Result<(), ProcessError> {
        let Some(job) = self.busy.remove(&worker) else {
            return Ok(());
        };
        self.done += 1;
        self.record(ctx, &job.id, json!({ "status": "done", "result": result }))?;
        if let Some(to) = &job.reply_to {
            let _ = ctx.send(to, TOPIC_DONE, json!({ "id": job.id, "result": result }));
        }
        self.idle.push_back(worker);
        self.dispatch(ctx)
    }

    fn worker_ended(
        &mut self,
        ctx: &ProcessContext<'_>,
        worker: &Pid,
        reason: &ExitReason,
    ) -> Result<(), ProcessError> {
        self.idle.retain(|p| p != worker);
        if let Some(job) = self.busy.remove(worker) {
            self.failed += 1;
            let error = reason.to_string();
            log::warn!(
                "job failed id={} worker={worker} reason={}",
                job.id,
                reason.label()
            );
            self.record(ctx, &job.id, json!({ "status": "failed", "error": error }))?;
            if let Some(to) = &job.reply_to {
                let _ = ctx.send(to, TOPIC_FAILED, json!({ "id": job.id, "error": error }));
            }
        }
        // A worker stopped by shutdown is not replaced: the runtime is ending.
        if matches!(reason, ExitReason::Error(_) | ExitReason::Panic(_)) {
            self.add_worker(ctx)?;
        }
        self.dispatch(ctx)
    }
}

impl Process for Queue {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        for _ in 0..self.size {
            self.add_worker(ctx)?;
        }
        ctx.register(NAME)?;
        Ok(Flow::Continue)
    }

    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        match event {
            Event::Message(Message {
                from,
                topic,
                payload,
            }) => {
                let payload = payload.to_json().unwrap_or(Value::Null);
                match topic.as_ref() {
                    TOPIC_SUBMIT => self.submit(ctx, from, &payload)?,
                    TOPIC_DONE => {
                        if let Some(worker) = from {
                            self.finished(ctx, worker, &payload["result"])?;
                        }
                    }
                    TOPIC_STATS => {
                        if let Some(from) = from {
                            let stats = json!({
                                "workers": self.idle.len() + self.busy.len(),
                                "idle": self.idle.len(),
                                "busy": self.busy.len(),
                                "waiting": self.waiting.len(),
                                "done": self.done,
                                "failed": self.failed,
                            });
                            let _ = ctx.send(&from, TOPIC_STATS, stats);
                        }
                    }
                    _ => {}
                }
            }
            Event::Exit { from, reason } => self.worker_ended(ctx, &from, &reason)?,
            Event::Timer(_) => {}
        }
        Ok(Flow::Continue)
    }
}
