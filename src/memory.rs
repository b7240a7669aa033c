//! Giving memory back after a spike.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena: after a
//! burst of connections has come and gone, the heap is mostly free but RSS
//! stays near the peak (measured before this: 428 MB at the peak, 117 MB
//! with nothing connected). A watcher thread samples the load (open
//! WebSockets plus live processes) once a second and calls `malloc_trim(0)`,
//! which hands every arena's free pages back to the kernel, when the load
//! has fallen well below its peak since the last trim (by [`MIN_DROP`], or a
//! quarter of the peak) and has held steady for two samples. Steady load never
//! trims; a trim walks the heap on this thread and briefly holds each
//! arena's lock. The watcher exists only on glibc; an app that installs
//! another global allocator (the ticker binary uses jemalloc, which purges
//! on its own) loses nothing by it: the trim then touches only what C
//! libraries took from glibc.
//!
//! An allocator with per-thread caches (jemalloc's tcache) keeps what a
//! thread freed in that thread's cache until the thread allocates again:
//! after a spike, idle workers hold megabytes no purge reaches. An app
//! gives [`on_release`] a function that empties the calling thread's cache;
//! at each trim the watcher runs it on every runtime thread (process hosts'
//! and HTTP workers'), so caches stay full under load and are given back
//! once it has gone.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use actix::dev::ArbiterHandle;

use crate::process::Node;

/// The smallest fall in load (connections + processes) worth a trim.
pub const MIN_DROP: i64 = 256;

/// What the watcher decides from one sample.
#[derive(Debug, Default)]
struct Watch {
    peak: i64,
    last: i64,
    quiet: u32,
}

impl Watch {
    /// Takes one sample; true when memory should be trimmed now.
    fn sample(&mut self, load: i64) -> bool {
        let steady = (load - self.last).abs() <= (self.last / 100).max(8);
        self.quiet = if steady { self.quiet + 1 } else { 0 };
        self.last = load;
        self.peak = self.peak.max(load);
        let fallen = self.peak - load;
        if self.quiet >= 2 && fallen >= MIN_DROP.max(self.peak / 4) {
            self.peak = load;
            return true;
        }
        false
    }
}

static RELEASE: OnceLock<fn()> = OnceLock::new();
static THREADS: Mutex<Vec<ArbiterHandle>> = Mutex::new(Vec::new());

/// Sets the function each runtime thread runs when memory is given back
/// after a spike (the first call wins): for jemalloc, a flush of the calling
/// thread's cache (`thread.tcache.flush`).
pub fn on_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// A runtime thread [`on_release`] reaches.
pub(crate) fn register_thread(handle: ArbiterHandle) {
    THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(handle);
}

/// Runs the release function on every live runtime thread; forgets the
/// threads that have stopped. Returns on how many it was queued.
pub(crate) fn release_threads() -> usize {
    let Some(&release) = RELEASE.get() else {
        return 0;
    };
    let mut threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    threads.retain(|t| t.spawn_fn(release));
    threads.len()
}

/// Starts the watcher for `node`; it ends with the node.
pub fn watch(node: &Arc<Node>) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let node: Weak<Node> = Arc::downgrade(node);
    let _ = std::thread::Builder::new()
        .name("rippy-trim".into())
        .spawn(move || {
            let mut watch = Watch::default();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(node) = node.upgrade() else { return };
                let load = node.metrics().ws_connections() + node.process_count() as i64;
                drop(node);
                if watch.sample(load) {
                    release_threads();
                    trim(load);
                }
            }
        });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim(load: i64) {
    let before = crate::util::rss_kib();
    // SAFETY: malloc_trim only walks and releases the allocator's free
    // memory; mallinfo2 only reads its counters.
    let info = unsafe {
        libc::malloc_trim(0);
        libc::mallinfo2()
    };
    log::info!(
        "memory returned after a spike load={load} rss_kib_before={} rss_kib_after={} heap_in_use_kib={} heap_free_kib={}",
        before.unwrap_or(0),
        crate::util::rss_kib().unwrap_or(0),
        info.uordblks / 1024,
        info.fordblks / 1024
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim(_load: i64) {}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};
    use std::thread::ThreadId;
    use std::time::Duration;

    use super::{Watch, on_release, register_thread, release_threads};

    static SEEN: (Mutex<Vec<ThreadId>>, Condvar) = (Mutex::new(Vec::new()), Condvar::new());

    fn record() {
        SEEN.0.lock().unwrap().push(std::thread::current().id());
        SEEN.1.notify_all();
    }

    /// Waits until `id` has released `n` times.
    fn released(id: ThreadId, n: usize) {
        let seen = SEEN.0.lock().unwrap();
        let (seen, timeout) = SEEN
            .1
            .wait_timeout_while(seen, Duration::from_secs(10), |s| {
                s.iter().filter(|t| **t == id).count() < n
            })
            .unwrap();
        assert!(!timeout.timed_out(), "thread {id:?} released {seen:?}");
    }

    #[test]
    fn release_runs_on_every_registered_thread_and_forgets_stopped_ones() {
        on_release(record);
        let _system = actix::System::new();
        let id_of = |a: &actix::Arbiter| {
            let (tx, rx) = std::sync::mpsc::channel();
            a.spawn_fn(move || tx.send(std::thread::current().id()).unwrap());
            rx.recv().unwrap()
        };
        let (a, b) = (actix::Arbiter::new(), actix::Arbiter::new());
        let (ida, idb) = (id_of(&a), id_of(&b));
        register_thread(a.handle());
        register_thread(b.handle());
        assert!(release_threads() >= 2);
        released(ida, 1);
        released(idb, 1);
        b.stop();
        b.join().unwrap();
        release_threads();
        released(ida, 2);
        assert_eq!(
            SEEN.0.lock().unwrap().iter().filter(|t| **t == idb).count(),
            1
        );
        a.stop();
    }

    #[test]
    fn a_trim_follows_a_big_fall_that_has_settled_and_never_steady_load() {
        let mut w = Watch::default();
        // Rising, then steady at the peak: nothing to give back.
        for load in [10, 500, 2000, 2000, 2000, 2000] {
            assert!(!w.sample(load), "trimmed at {load}");
        }
        // Falling: wait until it has held still for two samples.
        assert!(!w.sample(1000));
        assert!(!w.sample(20));
        assert!(!w.sample(20));
        assert!(w.sample(20));
        // Done: the peak is now the low level.
        assert!(!w.sample(20));
        assert!(!w.sample(20));
        // A small fall is not worth it.
        for load in [200, 200, 100, 100, 100] {
            assert!(!w.sample(load), "trimmed at {load}");
        }
    }
}
