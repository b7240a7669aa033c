//! `security.identity`: maps a username to a user id with one SQL query.
//!
//! Results are cached for `cache_ttl` (read-through). Concurrent misses for
//! one name share one query: the first caller runs it, the others await the
//! same cell. Unknown names are not cached, so a user created a moment later
//! is found at once; their lookups are still shared while in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::manifest::FieldError;
use crate::manifest::ManifestDuration;
use crate::sql::Db;

/// The `security.identity` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// A `db.sql.*` entry.
    pub db: String,
    /// One `?` for the username; the first column of the first row is the id.
    pub query: String,
    /// How long a found id is reused (default 300s).
    #[serde(default)]
    pub cache_ttl: Option<ManifestDuration>,
    /// At most this many cached names (default 100,000).
    #[serde(default)]
    pub max_cache: Option<usize>,
}

impl IdentityConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let params = self.query.matches('?').count();
        if params == 1 {
            Vec::new()
        } else {
            vec![FieldError::at(
                "query",
                format!("expected a query with exactly one ? for the username, found {params}"),
            )]
        }
    }
}

/// A user id, shared by the cache and every request that found it there.
type Lookup = Result<Option<Arc<str>>, String>;

/// A booted `security.identity`.
pub struct IdentityResolver {
    db: Db,
    query: Arc<str>,
    ttl: Duration,
    max_cache: usize,
    /// By username (SipHash: an app that lets people pick their names lets
    /// them pick the keys stored).
    cache: Mutex<HashMap<String, (Arc<str>, Instant)>>,
    inflight: Mutex<HashMap<String, Arc<OnceCell<Lookup>>>>,
    queries: AtomicU64,
}

impl IdentityResolver {
    /// An identity source over its users database.
    pub fn new(config: &IdentityConfig, db: Db) -> Self {
        IdentityResolver {
            db,
            query: config.query.as_str().into(),
            ttl: config
                .cache_ttl
                .map_or(Duration::from_secs(300), |d| d.get()),
            max_cache: config.max_cache.unwrap_or(100_000).max(1),
            cache: Mutex::default(),
            inflight: Mutex::default(),
            queries: AtomicU64::new(0),
        }
    }

    /// Database queries run so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn cached(&self, username: &str) -> Option<Arc<str>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(username)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(id, _)| id.clone())
    }

    fn remember(&self, username: &str, id: &Arc<str>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.max_cache {
            let ttl = self.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= self.max_cache {
                cache.clear();
            }
        }
        cache.insert(username.to_owned(), (id.clone(), Instant::now()));
    }

    /// The user id for `username`, `None` if there is no such user.
    pub async fn resolve(&self, username: &str) -> Lookup {
        if let Some(id) = self.cached(username) {
            return Ok(Some(id));
        }
        let cell = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(username.to_owned())
            .or_default()
            .clone();
        let result = cell
            .get_or_init(|| async {
                self.queries.fetch_add(1, Ordering::Relaxed);
                let query = self.query.clone();
                let name = username.to_owned();
                self.db
                    .run(move |sql| {
                        let rows = sql.query(&query, &[serde_json::Value::from(name)])?;
                        // The id as text, whatever its column type.
                        Ok(rows.first().and_then(|r| r.first()).and_then(|v| match v {
                            serde_json::Value::Null => None,
                            serde_json::Value::String(s) => Some(s.as_str().into()),
                            other => Some(other.to_string().into()),
                        }))
                    })
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .clone();
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if inflight
                .get(username)
                .is_some_and(|c| Arc::ptr_eq(c, &cell))
            {
                inflight.remove(username);
            }
        }
        if let Ok(Some(id)) = &result {
            self.remember(username, id);
        }
        result
    }
}
