//! The hub: one per HTTP worker thread, it writes the queued frames of that
//! worker's connections. A broadcast to N connections on a worker costs one
//! cross-thread wake-up; the hub then writes to each socket directly, one
//! write per connection with everything it has queued.
//!
//! Invariant: the hub's write duty cycle stays at or under one half. A
//! round that used `t` of the thread's CPU is followed by the next no sooner
//! than `2t` after it began (at most [`MAX_PACING`]), so under load frames
//! that arrive meanwhile share a write. Rounds are measured in CPU time, not
//! wall time: a round the scheduler interrupted (another process held the
//! core) is no sign that the hub is saturated, and pacing after it would
//! only hold the next tick's frames back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::outbound::{Connection, Scratch};

/// Flushes the connections of one HTTP worker. A broadcast to N connections
/// on a worker costs that worker one cross-thread wake-up; the hub then
/// writes to each socket directly, one write per connection with everything
/// it has queued, without waking a task per connection.
#[derive(Default)]
pub(super) struct Hub {
    ready: Mutex<Vec<Arc<Connection>>>,
    task: Mutex<Option<Waker>>,
    scheduled: AtomicBool,
}

/// The longest a hub holds frames back to write them together.
const MAX_PACING: Duration = Duration::from_millis(20);

thread_local! {
    static HUB: Arc<Hub> = {
        let hub = Arc::new(Hub::default());
        actix_web::rt::spawn(Hub::run(hub.clone()));
        hub
    };
}

impl Hub {
    /// The hub of the calling HTTP worker thread.
    pub(super) fn current() -> Arc<Hub> {
        HUB.with(Arc::clone)
    }

    /// Has `conn` flushed on the hub's thread.
    pub(super) fn defer(&self, conn: Arc<Connection>) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(task) = task {
                // After the sender's hook: one wake-up per burst.
                crate::process::wake(task);
            }
        }
    }

    /// Moves the waiting connections into `batch`. The flag is cleared
    /// first, so a connection pushed after the take wakes the hub again.
    fn take_ready(&self, batch: &mut Vec<Arc<Connection>>) {
        self.scheduled.store(false, Ordering::Release);
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let n = ready.len();
        batch.append(&mut ready);
        shrink_after_burst(&mut ready, n);
    }

    async fn run(hub: Arc<Hub>) {
        let mut scratch = Scratch::default();
        let mut batch = Vec::new();
        let mut last_round: Option<(Instant, Duration)> = None;
        loop {
            std::future::poll_fn(|cx| {
                *hub.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
                hub.take_ready(&mut batch);
                if batch.is_empty() {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            // Write duty cycle at most one half: a round that took `busy` of
            // the thread's CPU is followed by the next no sooner than `busy`
            // later. Invisible while rounds are short; under load, frames
            // that arrive meanwhile join their connection's next write.
            if let Some((started, busy)) = last_round {
                let next = started + (busy * 2).min(MAX_PACING);
                if next > Instant::now() {
                    tokio::time::sleep_until(next.into()).await;
                    hub.take_ready(&mut batch);
                }
            }
            let started = Instant::now();
            let cpu = thread_cpu_time();
            let mut sent = 0;
            let mut last = None;
            let n = batch.len();
            for conn in batch.drain(..) {
                sent += conn.write_queued(&mut scratch);
                last = Some(conn);
            }
            // One update of the shared counter per batch, not per connection.
            if let Some(conn) = last {
                conn.count_sent(sent);
            }
            shrink_after_burst(&mut batch, n);
            last_round = Some((started, thread_cpu_time().saturating_sub(cpu)));
        }
    }
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`);
/// zero if the clock cannot be read, which turns pacing off.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// A list sized by a burst of connections keeps its room while bursts that
/// size go on, and gives it back once a round uses less than a quarter.
fn shrink_after_burst<T>(list: &mut Vec<T>, used: usize) {
    if list.capacity() > 1024 && used * 4 < list.capacity() {
        list.shrink_to(used * 2);
    }
}
