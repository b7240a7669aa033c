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

use std::sync::{Arc, Weak};
use std::time::Duration;

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
                let load = node.metrics().ws_connections() + node.stats().processes as i64;
                drop(node);
                if watch.sample(load) {
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
    use super::Watch;

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
