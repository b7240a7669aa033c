//! The hub: one per HTTP worker thread, it writes the queued frames of that
//! worker's connections. A broadcast to N connections on a worker costs one
//! cross-thread wake-up; the hub then writes to each socket directly, one
//! write per connection with everything it has queued.
//!
//! Invariant: a hub that keeps up writes as soon as a connection is
//! ready. A hub that falls behind (connections became ready while it was
//! writing) keeps its write duty cycle at or under one half while its
//! rounds take under half of [`MAX_PACING`]: after a round that took `t`,
//! the next starts no sooner than `2t` after it began (never more than
//! [`MAX_PACING`] after), so frames that arrive meanwhile share a write.
//! Whether it fell behind is seen, not guessed from the round's length: on
//! cores shared with other processes a round the scheduler interrupted is
//! long without anything waiting, and holding the next round back then
//! would only delay the next tick's frames.

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

    /// Whether a connection became ready during the round and still waits.
    /// The flag alone is not enough: a connection pushed just before the
    /// round's take, whose flag landed just after it, was written in the
    /// round yet leaves the flag set.
    fn fell_behind(&self) -> bool {
        self.scheduled.load(Ordering::Acquire)
            && !self
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    async fn run(hub: Arc<Hub>) {
        let mut scratch = Scratch::default();
        let mut batch = Vec::new();
        let mut pace: Option<Instant> = None;
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
            // Behind: write duty cycle at most one half, so frames that
            // arrive meanwhile join their connection's next write.
            if let Some(next) = pace.filter(|next| *next > Instant::now()) {
                tokio::time::sleep_until(next.into()).await;
                hub.take_ready(&mut batch);
            }
            let started = Instant::now();
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
            pace = next_round(started, started.elapsed(), hub.fell_behind());
        }
    }
}

/// When the round after one that began at `started`, took `took` and ended
/// `behind` or not may begin; `None`: as soon as a connection is ready.
fn next_round(started: Instant, took: Duration, behind: bool) -> Option<Instant> {
    behind.then(|| started + (took * 2).min(MAX_PACING))
}

/// A list sized by a burst of connections keeps its room while bursts that
/// size go on, and gives it back once a round uses less than a quarter.
fn shrink_after_burst<T>(list: &mut Vec<T>, used: usize) {
    if list.capacity() > 1024 && used * 4 < list.capacity() {
        list.shrink_to(used * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hub_behind_waits_twice_its_round_at_most_max_pacing() {
        let started = Instant::now();
        let short = Duration::from_millis(3);
        let long = Duration::from_millis(15);
        assert_eq!(next_round(started, short, false), None);
        assert_eq!(next_round(started, long, false), None);
        assert_eq!(next_round(started, Duration::ZERO, true), Some(started));
        assert_eq!(next_round(started, short, true), Some(started + short * 2));
        assert_eq!(next_round(started, long, true), Some(started + MAX_PACING));
    }
}
