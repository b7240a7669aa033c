//! Fixed-window rate limiting per key (user id, or client IP: an IPv4
//! address, an IPv6 /64, the block one subscriber is usually handed, so that
//! rotating through it buys no fresh quota).
//!
//! A key's window opens with its first request and lasts `window`; at most
//! `requests` pass in it. Keys live in shards; every few thousand checks (or
//! as many checks as there are keys, whichever is more: at most one entry
//! looked at per check) the shards drop the windows that have ended, so idle
//! keys do not accumulate.
//! The keys held are capped (`max_keys`): a flood of new clients fills a
//! shard, which then drops its ended windows and, if still full, the eighth
//! of its windows that opened first (those keys start afresh: the cap costs
//! precision under a flood, never a refusal of a client that did nothing).

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::manifest::ManifestDuration;

const SHARDS: usize = 16;
const SWEEP_EVERY: u64 = 4096;
/// `max_keys` unless configured: about 10 MB of windows.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// `rate_limit: { requests, window, max_keys }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window length.
    pub window: ManifestDuration,
    /// The most keys (clients) held at once; `DEFAULT_MAX_KEYS` if unset.
    #[serde(default)]
    pub max_keys: Option<usize>,
}

/// The rate-limit key of a client without a user id.
#[cfg(test)]
fn ip_key(ip: Option<IpAddr>) -> String {
    let mut key = String::new();
    write_ip_key(&mut key, ip);
    key
}

/// Writes the rate-limit key of a client without a user id: `ip:` and its
/// IPv4 address (an IPv4-mapped IPv6 one counts as IPv4) or its IPv6 /64.
fn write_ip_key(out: &mut String, ip: Option<IpAddr>) {
    use std::fmt::Write as _;
    // Writing into a `String` cannot fail.
    let _ = match ip.map(crate::util::client_net) {
        Some(IpAddr::V4(v4)) => write!(out, "ip:{v4}"),
        Some(IpAddr::V6(net)) => write!(out, "ip:{net}/64"),
        None => write!(out, "ip:"),
    };
}

/// Runs `f` with the key `write` puts in a buffer this thread reuses, so
/// that a check builds no `String` of its own.
fn with_key<R>(write: impl Fn(&mut String), f: impl Fn(&str) -> R) -> R {
    thread_local! {
        static KEY: Cell<String> = const { Cell::new(String::new()) };
    }
    crate::util::with_scratch(&KEY, |key| {
        key.clear();
        write(key);
        f(key)
    })
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
    /// Each a map keyed by std's SipHash: clients choose the keys stored.
    shards: Vec<Mutex<HashMap<String, Window>>>,
    /// Picks a key's shard: a cheaper keyed hash (std's `DefaultHasher`
    /// here before was SipHash with a fixed key). One who learnt its seed
    /// could fill a shard with a sixteenth of the keys a spread flood
    /// needs, and so restart its oldest windows (`make_room`).
    pick: foldhash::fast::RandomState,
    /// The most keys one shard holds.
    shard_cap: usize,
    checks: AtomicU64,
    /// The check count at which the next sweep runs.
    next_sweep: AtomicU64,
    warned_full: AtomicBool,
}

impl RateLimiter {
    /// A limiter with no clients yet.
    pub fn new(config: &RateLimitConfig) -> Self {
        RateLimiter {
            limit: config.requests,
            window: config.window.get().max(Duration::from_millis(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            pick: Default::default(),
            shard_cap: config
                .max_keys
                .unwrap_or(DEFAULT_MAX_KEYS)
                .div_ceil(SHARDS)
                .max(1),
            checks: AtomicU64::new(0),
            next_sweep: AtomicU64::new(0),
            warned_full: AtomicBool::new(false),
        }
    }

    /// Counts one request of the signed-in user `user_id` (key `user:<id>`).
    pub fn check_user(&self, user_id: &str) -> Decision {
        with_key(|k| k.extend(["user:", user_id]), |k| self.check(k))
    }

    /// Counts one request of the client at `ip` (key `ip:<IPv4 address>`,
    /// or `ip:<IPv6 /64>/64`).
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Decision {
        with_key(|k| write_ip_key(k, ip), |k| self.check(k))
    }

    /// Counts one request for `key` and says whether it may pass.
    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let pick = self.pick.hash_one(key);
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        let due = self.next_sweep.load(Ordering::Relaxed);
        // One thread claims the sweep (the next one is pushed out of reach
        // while it runs).
        if n >= due
            && self
                .next_sweep
                .compare_exchange(due, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let held = self.sweep(now);
            self.next_sweep
                .store(n + SWEEP_EVERY.max(held as u64), Ordering::Relaxed);
        }
        let mut shard = self.shards[(pick as usize) % SHARDS]
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
                if shard.len() >= self.shard_cap {
                    self.make_room(&mut shard, now);
                }
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

    /// Frees room in a full shard: its ended windows, else the eighth of
    /// its windows that opened first. A scan of the shard, paid only when it
    /// is full and then at most once per eighth of it refilled, so a flood
    /// of new clients costs a few comparisons per request, not a scan each.
    fn make_room(&self, shard: &mut HashMap<String, Window>, now: Instant) {
        self.drop_ended(shard, now);
        if shard.len() < self.shard_cap {
            return;
        }
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            log::warn!(
                "rate limiter full ({} keys): dropping the oldest windows; raise rate_limit.max_keys if clients are real",
                self.shard_cap * SHARDS
            );
        }
        let mut starts: Vec<Instant> = shard.values().map(|w| w.start).collect();
        let eighth = starts.len() / 8;
        let cutoff = *starts.select_nth_unstable(eighth).1;
        shard.retain(|_, w| w.start > cutoff);
    }

    /// Drops every window that has ended, one shard at a time; the keys
    /// left. Run once per `max(SWEEP_EVERY, keys)` checks, it looks at no
    /// more than about one entry per check.
    fn sweep(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                self.drop_ended(&mut shard, now);
                shard.len()
            })
            .sum()
    }

    /// Drops the windows of one shard that have ended by `now`.
    fn drop_ended(&self, shard: &mut HashMap<String, Window>, now: Instant) {
        shard.retain(|_, w| now.duration_since(w.start) < self.window);
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
            max_keys: None,
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

    #[test]
    fn the_keys_held_are_capped_and_a_full_shard_drops_its_oldest_windows() {
        let l = RateLimiter::new(&RateLimitConfig {
            requests: 1,
            window: ManifestDuration(Duration::from_secs(60)),
            max_keys: Some(SHARDS * 2),
        });
        assert!(l.check("first").allowed);
        assert!(!l.check("first").allowed);
        for i in 0..10_000 {
            assert!(
                l.check(&format!("k{i}")).allowed,
                "a new client is never refused"
            );
            assert!(l.keys() <= SHARDS * 2);
        }
        // Long since pushed out of its shard: it starts afresh.
        assert!(l.check("first").allowed);
        // A key just counted is kept while its shard drops older ones.
        assert!(!l.check("k9999").allowed);
    }

    #[test]
    fn an_ipv6_client_is_keyed_by_its_64_and_a_mapped_ipv4_one_as_ipv4() {
        let key = |s: &str| ip_key(Some(s.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            key("2001:db8:1:2::")
        );
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:198.51.100.7"), "ip:198.51.100.7");
        assert_eq!(key("198.51.100.7"), "ip:198.51.100.7");
        assert_ne!(key("198.51.100.7"), key("198.51.100.8"));
        assert_eq!(ip_key(None), "ip:");
    }
}
