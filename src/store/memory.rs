//! `store.memory`: an in-process key-value store with per-key expiry.
//!
//! Reads never return an expired value, whether or not the sweeper has run;
//! the sweeper (a background thread holding only a weak reference) reclaims
//! expired keys' memory every `sweep_interval` (Wippy's `cleanup_interval`;
//! `"0"` turns the sweeper off, as in Wippy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::manifest::{Lifecycle, ManifestDuration};

/// The `store.memory` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryStoreConfig {
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// How often expired keys are reclaimed (default 1s; 0 never).
    #[serde(default, alias = "cleanup_interval")]
    pub sweep_interval: Option<ManifestDuration>,
    /// At most this many keys (default unlimited, as is 0); a set past it
    /// fails.
    #[serde(default)]
    pub max_size: Option<usize>,
}

struct Item {
    value: serde_json::Value,
    expires: Option<Instant>,
}

/// A booted `store.memory`.
pub struct MemoryStore {
    map: Mutex<HashMap<String, Item>>,
    max_size: Option<usize>,
}

/// The store is at `max_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFull(pub usize);

impl std::fmt::Display for StoreFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store is full ({} keys)", self.0)
    }
}

impl std::error::Error for StoreFull {}

impl MemoryStore {
    /// A store with its sweeper thread running.
    pub fn start(config: &MemoryStoreConfig) -> Arc<Self> {
        let store = Arc::new(MemoryStore {
            map: Mutex::new(HashMap::new()),
            max_size: config.max_size.filter(|n| *n > 0),
        });
        let every = config
            .sweep_interval
            .map_or(Duration::from_secs(1), |d| d.get());
        if every.is_zero() {
            return store;
        }
        let every = every.max(Duration::from_millis(10));
        let weak: Weak<MemoryStore> = Arc::downgrade(&store);
        let _ = std::thread::Builder::new()
            .name("store-sweeper".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    match weak.upgrade() {
                        Some(store) => store.sweep(),
                        None => return,
                    }
                }
            });
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Item>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `key`, expiring after `ttl` if given.
    pub fn set(
        &self,
        key: &str,
        value: serde_json::Value,
        ttl: Option<Duration>,
    ) -> Result<(), StoreFull> {
        let mut map = self.lock();
        if let Some(max) = self.max_size
            && map.len() >= max
            && !map.contains_key(key)
        {
            return Err(StoreFull(max));
        }
        let expires = ttl.map(|t| Instant::now() + t);
        map.insert(key.to_owned(), Item { value, expires });
        Ok(())
    }

    /// The value of `key` if present and not expired.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.get_with(key, serde_json::Value::clone)
    }

    /// `read` applied to the value of `key` if present and not expired, in
    /// place (the store's lock is held meanwhile: keep `read` short).
    pub fn get_with<R>(&self, key: &str, read: impl FnOnce(&serde_json::Value) -> R) -> Option<R> {
        let now = Instant::now();
        let map = self.lock();
        let item = map.get(key)?;
        match item.expires {
            Some(t) if t <= now => None,
            _ => Some(read(&item.value)),
        }
    }

    /// Adds one to the counter at `key` (created with `ttl` if absent or
    /// expired); returns the new count and the time left until it expires.
    pub fn incr(&self, key: &str, ttl: Duration) -> (i64, Duration) {
        let now = Instant::now();
        let mut map = self.lock();
        let item = map
            .entry(key.to_owned())
            .and_modify(|item| {
                if item.expires.is_some_and(|t| t <= now) {
                    *item = Item {
                        value: serde_json::Value::from(0),
                        expires: Some(now + ttl),
                    };
                }
            })
            .or_insert_with(|| Item {
                value: serde_json::Value::from(0),
                expires: Some(now + ttl),
            });
        let count = item.value.as_i64().unwrap_or(0) + 1;
        item.value = serde_json::Value::from(count);
        (
            count,
            item.expires
                .map_or(ttl, |t| t.saturating_duration_since(now)),
        )
    }

    /// A counter set by [`MemoryStore::incr`]: its count and time left.
    pub fn counter(&self, key: &str) -> Option<(i64, Duration)> {
        let now = Instant::now();
        let map = self.lock();
        let item = map.get(key)?;
        match item.expires {
            Some(t) if t <= now => None,
            t => Some((
                item.value.as_i64().unwrap_or(0),
                t.map_or(Duration::MAX, |t| t.saturating_duration_since(now)),
            )),
        }
    }

    /// Removes `key`; returns whether it was present.
    pub fn delete(&self, key: &str) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Keys held, expired or not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired keys now.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|_, item| item.expires.is_none_or(|t| t > now));
    }
}
