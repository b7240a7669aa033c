//! Fixed-window rate limiting per key (user id, or client IP).
//!
//! A key's window opens with its first request and lasts `window`; at most
//! `requests` pass in it. Keys live in shards; every few thousand checks a
//! shard drops the windows that have ended, so idle keys do not accumulate.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::manifest::ManifestDuration;

const SHARDS: usize = 16;
const SWEEP_EVERY: u64 = 4096;

/// `rate_limit: { requests, window }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window length.
    pub window: ManifestDuration,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Seconds until the window ends (at least 1).
    pub reset_secs: u64,
}

struct Window {
    start: Instant,
    count: u32,
}

/// Per-key request counters.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    shards: Vec<Mutex<HashMap<String, Window>>>,
    checks: AtomicU64,
}

impl RateLimiter {
    /// A limiter with no clients yet.
    pub fn new(config: &RateLimitConfig) -> Self {
        RateLimiter {
            limit: config.requests,
            window: config.window.get().max(Duration::from_millis(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request for `key` and says whether it may pass.
    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.sweep(now);
        }
        let mut shard = self.shards[(h.finish() as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The key is copied only for a client seen first (or again after
        // its window was swept), not on every check.
        match shard.get_mut(key) {
            Some(w) => self.count(w, now),
            None => {
                let mut w = Window {
                    start: now,
                    count: 0,
                };
                let decision = self.count(&mut w, now);
                shard.insert(key.to_owned(), w);
                decision
            }
        }
    }

    /// Counts one request in `w` (restarted if its window has ended).
    fn count(&self, w: &mut Window, now: Instant) -> Decision {
        if now.duration_since(w.start) >= self.window {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        let left = self.window.saturating_sub(now.duration_since(w.start));
        let reset_secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let allowed = w.count < self.limit;
        if allowed {
            w.count += 1;
        }
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - w.count.min(self.limit),
            reset_secs: reset_secs.max(1),
        }
    }

    /// Drops every window that has ended, one shard at a time. Amortised
    /// over `SWEEP_EVERY` checks this is about one entry per check.
    fn sweep(&self, now: Instant) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, w| now.duration_since(w.start) < self.window);
        }
    }

    /// Keys currently held (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(requests: u32, window: Duration) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            requests,
            window: ManifestDuration(window),
        })
    }

    #[test]
    fn a_key_gets_its_quota_and_then_refusals() {
        let l = limiter(3, Duration::from_secs(60));
        let remaining: Vec<u32> = (0..3).map(|_| l.check("k").remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = l.check("k");
        assert!(!refused.allowed);
        assert!((1..=60).contains(&refused.reset_secs));
        assert!(l.check("other").allowed);
    }

    #[test]
    fn idle_keys_are_evicted() {
        let l = limiter(1, Duration::from_millis(1));
        for i in 0..5000 {
            l.check(&format!("k{i}"));
        }
        // Let every window end (time passing is the subject here, not a sync).
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..(SWEEP_EVERY * 2) {
            l.check("busy");
        }
        assert_eq!(l.keys(), 1, "only the busy key is left");
    }
}
