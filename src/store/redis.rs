//! `store.redis`: a Redis server, for state several nodes share (token
//! records, the ticker's feed).
//!
//! Connections are synchronous, each with a connect, read and write timeout,
//! and kept in a small pool; a call takes one, runs its commands and gives
//! it back. A connection that failed is dropped, and after a failed connect
//! further calls fail at once for `retry_after` (no caller waits on a server
//! that just refused), so a Redis outage costs callers an error, never a
//! hang. Every key this entry touches starts with `key_prefix`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::manifest::{FieldError, Lifecycle, ManifestDuration};

/// The `store.redis` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreConfig {
    /// `redis://host:port/db` (for local runs).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the URL; wins when set.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Prefix of every key (default `rippy:`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Idle connections kept (default 8).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// How long connecting may take (default 1s).
    #[serde(default)]
    pub connect_timeout: Option<ManifestDuration>,
    /// How long one reply may take (default 1s).
    #[serde(default)]
    pub timeout: Option<ManifestDuration>,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

impl RedisStoreConfig {
    /// Load-time checks.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.url.is_none() && self.url_env.is_none() {
            errors.push(FieldError::at("url", "expected url or url_env"));
        }
        if let Some(url) = &self.url
            && redis::Client::open(url.as_str()).is_err()
        {
            errors.push(FieldError::at(
                "url",
                "expected a Redis URL (redis://host:port)",
            ));
        }
        if self.pool_size == Some(0) {
            errors.push(FieldError::at("pool_size", "expected at least 1"));
        }
        errors
    }
}

/// A Redis call failed.
#[derive(Debug, Clone)]
pub struct RedisError {
    /// The `store.redis` entry id.
    pub store: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis {}: {}", self.store, self.message)
    }
}

impl std::error::Error for RedisError {}

/// A booted `store.redis`.
pub struct RedisStore {
    id: String,
    client: redis::Client,
    prefix: String,
    connect_timeout: Duration,
    timeout: Duration,
    pool_size: usize,
    idle: Mutex<Vec<redis::Connection>>,
    /// After a failed connect, calls fail at once until this instant.
    down_until: Mutex<Option<Instant>>,
}

/// Whether `e` leaves the connection unusable (I/O, timeout, dropped); a
/// server error (WRONGTYPE, a script's error) does not.
fn broken(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::IoError || e.is_timeout() || e.is_connection_dropped()
}

/// How long calls fail fast after a connect failed.
const RETRY_AFTER: Duration = Duration::from_millis(200);

impl RedisStore {
    /// The store; it connects lazily (a server that is down at boot is an
    /// error at first use, and the node keeps running).
    pub fn new(id: &str, config: &RedisStoreConfig) -> Result<Self, String> {
        let url =
            crate::util::inline_or_env(config.url.as_deref(), config.url_env.as_deref(), "url")?;
        let client = redis::Client::open(url.as_str()).map_err(|e| format!("bad url: {e}"))?;
        Ok(RedisStore {
            id: id.to_owned(),
            client,
            prefix: config
                .key_prefix
                .clone()
                .unwrap_or_else(|| "rippy:".to_owned()),
            connect_timeout: config
                .connect_timeout
                .map_or(Duration::from_secs(1), |d| d.get()),
            timeout: config.timeout.map_or(Duration::from_secs(1), |d| d.get()),
            pool_size: config.pool_size.unwrap_or(8).max(1),
            idle: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
        })
    }

    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `key` with the store's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn error(&self, e: impl std::fmt::Display) -> RedisError {
        RedisError {
            store: self.id.clone(),
            message: e.to_string(),
        }
    }

    /// A new connection with the store's timeouts (for long-lived users
    /// such as a feed's reader, which blocks on it).
    pub fn connect(&self, read_timeout: Option<Duration>) -> Result<redis::Connection, RedisError> {
        let conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        conn.set_read_timeout(read_timeout.or(Some(self.timeout)))
            .and_then(|_| conn.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.error(e))?;
        Ok(conn)
    }

    /// Runs `f` on a pooled connection. A pooled connection may have died
    /// while idle (the server restarted): a connection error on one is
    /// retried once on a fresh connection.
    pub fn with<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(mut conn) = pooled {
            match f(&mut conn) {
                Err(e) if broken(&e) => {} // dropped; one more try below
                result => {
                    self.give_back(conn);
                    return result.map_err(|e| self.error(e));
                }
            }
        }
        {
            let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
            if down.is_some_and(|t| Instant::now() < t) {
                return Err(self.error("unavailable (a connect failed just now)"));
            }
        }
        let mut conn = match self.connect(None) {
            Ok(c) => c,
            Err(e) => {
                *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + RETRY_AFTER);
                return Err(e);
            }
        };
        match f(&mut conn) {
            Err(e) if broken(&e) => Err(self.error(e)),
            result => {
                self.give_back(conn);
                result.map_err(|e| self.error(e))
            }
        }
    }

    fn give_back(&self, conn: redis::Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.pool_size {
            idle.push(conn);
        }
    }

    /// The JSON value at `key`, if any.
    pub fn get_json(&self, key: &str) -> Result<Option<serde_json::Value>, RedisError> {
        let key = self.key(key);
        let text: Option<String> = self.with(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Sets `key` to `value`, expiring after `ttl` (at least a millisecond).
    pub fn set_json(
        &self,
        key: &str,
        value: &serde_json::Value,
        ttl: Option<Duration>,
    ) -> Result<(), RedisError> {
        let key = self.key(key);
        let text = value.to_string();
        self.with(|c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(&text);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            cmd.query::<()>(c)
        })
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&self, key: &str) -> Result<bool, RedisError> {
        let key = self.key(key);
        let n: i64 = self.with(|c| redis::cmd("DEL").arg(&key).query(c))?;
        Ok(n > 0)
    }

    /// The time left on `key`, if it exists and expires.
    pub fn ttl(&self, key: &str) -> Result<Option<Duration>, RedisError> {
        let key = self.key(key);
        let ms: i64 = self.with(|c| redis::cmd("PTTL").arg(&key).query(c))?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }
}
