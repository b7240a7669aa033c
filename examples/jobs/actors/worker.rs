//! `worker`: does one job at a time for whoever sends it `work`.
//!
//! `work {id, n}` is answered with `done {id, result}` (the number of primes
//! below `n`) to the sender. A job past [`MAX_N`] is an error: the worker
//! ends with it, and whoever monitors the worker (the queue) sees the EXIT.

use rippy::prelude::*;

/// The topic of a job for a worker.
pub const TOPIC_WORK: &str = "work";
/// The topic of a finished job.
pub const TOPIC_DONE: &str = "done";
/// The largest `n` a worker accepts.
pub const MAX_N: u64 = 10_000_000;

/// A pool member; holds nothing between jobs.
pub struct Worker;

impl Worker {
    /// A worker; it takes no arguments.
    pub fn new(_args: Value) -> Self {
        Worker
    }
}

/// The number of primes below `n` (a sieve).
pub fn primes_below(n: u64) -> u64 {
    let n = n as usize;
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            for j in (i * i..n).step_by(i) {
                composite[j] = true;
            }
        }
    }
    count
}

impl Process for Worker {
    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        let Event::Message(Message {
            from: Some(from),
            topic,
            payload,
        }) = event
        else {
            return Ok(Flow::Continue);
        };
        if topic != TOPIC_WORK {
            return Ok(Flow::Continue);
        }
        let job = payload.to_json().unwrap_or(Value::Null);
        let n = job.get("n").and_then(Value::as_u64).unwrap_or(0);
        if n > MAX_N {
            return Err(format!("n={n} is over the limit of {MAX_N}").into());
        }
        let _ = ctx.send(
            &from,
            TOPIC_DONE,
            json!({ "id": job["id"], "result": primes_below(n) }),
        );
        Ok(Flow::Continue)
    }
}
