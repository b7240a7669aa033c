//! API keys in SQL (SQLite or PostgreSQL, the same statements): only a
//! SHA-256 digest of each key is stored, and keys are looked up by digest.
//! Keys are `rk_` + 40 hex characters (160 random bits), URL-safe. Shared by
//! the migration, the token function and the CLI.
//!
//! A WebSocket handshake asks whether its token's key is still active
//! through [`ActiveKeys::check`], which answers from memory: a revocation
//! made by this process is seen at the very next check (it bumps a
//! generation the remembered answers carry), one made elsewhere (`rippy keys
//! revoke`, another node on the same PostgreSQL, plain SQL) within
//! [`RECHECK_AFTER`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rippy::prelude::*;
use rippy::sql::{Db, Dialect, Sql, SqlError, cell_bool};

/// The schema, idempotent (SQLite).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id          INTEGER PRIMARY KEY,
    key_hash    TEXT    NOT NULL UNIQUE,
    user_id     TEXT    NOT NULL,
    role        TEXT    NOT NULL DEFAULT 'user',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
";

/// The same schema for PostgreSQL.
pub const SCHEMA_POSTGRES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS api_keys (
        id          BIGSERIAL PRIMARY KEY,
        key_hash    TEXT      NOT NULL UNIQUE,
        user_id     TEXT      NOT NULL,
        role        TEXT      NOT NULL DEFAULT 'user',
        created_at  BIGINT    NOT NULL,
        revoked_at  BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id)",
];

/// A stored key, without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: i64,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
    pub revoked: bool,
}

/// The owner of a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub key_id: i64,
    pub user_id: String,
    pub role: String,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_default()
}

pub fn ensure_schema(db: &dyn Sql) -> Result<(), SqlError> {
    match db.dialect() {
        Dialect::Sqlite => {
            for stmt in SCHEMA.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                db.execute(stmt, &[])?;
            }
        }
        Dialect::Postgres => {
            // Nodes booting together must not race on CREATE (or on the
            // demo key after it): the rest of the caller's transaction is
            // serialised behind one advisory lock.
            db.query("SELECT pg_advisory_xact_lock(7061)::text", &[])?;
            for stmt in SCHEMA_POSTGRES {
                db.execute(stmt, &[])?;
            }
        }
    }
    Ok(())
}

/// A new random key from `random` (at least 20 bytes).
pub fn format_key(random: &[u8]) -> String {
    let mut key = String::from("rk_");
    for b in random.iter().take(20) {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// Stores a key's digest for `user_id`; returns the row id.
pub fn insert(db: &dyn Sql, key: &str, user_id: &str, role: &str) -> Result<i64, SqlError> {
    let rows = db.query(
        "INSERT INTO api_keys (key_hash, user_id, role, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        &[
            sha256_hex(key.as_bytes()).into(),
            user_id.into(),
            role.into(),
            (unix_secs() as i64).into(),
        ],
    )?;
    Ok(rows.first().map(|r| int(&r[0])).unwrap_or_default())
}

/// The owner of `key` if it exists and is not revoked.
pub fn lookup(db: &dyn Sql, key: &str) -> Result<Option<KeyOwner>, SqlError> {
    let digest = sha256_hex(key.as_bytes());
    let rows = db.query(
        "SELECT id, key_hash, user_id, role FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        &[digest.clone().into()],
    )?;
    // The index lookup already matched; compare again without a timing signal.
    Ok(rows
        .first()
        .filter(|r| constant_time_eq(text(&r[1]).as_bytes(), digest.as_bytes()))
        .map(|r| KeyOwner {
            key_id: int(&r[0]),
            user_id: text(&r[2]),
            role: text(&r[3]),
        }))
}

fn exists(db: &dyn Sql, sql: &str, param: Value) -> Result<bool, SqlError> {
    let rows = db.query(sql, &[param])?;
    Ok(rows.first().is_some_and(|r| cell_bool(&r[0])))
}

/// Whether key `id` exists and is not revoked.
pub fn is_active(db: &dyn Sql, id: i64) -> Result<bool, SqlError> {
    exists(
        db,
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NULL)",
        id.into(),
    )
}

/// Whether `key` was ever stored (live or revoked).
pub fn is_known(db: &dyn Sql, key: &str) -> Result<bool, SqlError> {
    exists(
        db,
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE key_hash = ?)",
        sha256_hex(key.as_bytes()).into(),
    )
}

/// Whether `text` has the form of a key (`rk_` + 40 lowercase hex characters).
pub fn is_well_formed(text: &str) -> bool {
    text.strip_prefix("rk_").is_some_and(|hex| {
        hex.len() == 40 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Whether any live key belongs to `user_id`.
pub fn user_has_key(db: &dyn Sql, user_id: &str) -> Result<bool, SqlError> {
    exists(
        db,
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE user_id = ? AND revoked_at IS NULL)",
        user_id.into(),
    )
}

/// Every key, oldest first.
pub fn list(db: &dyn Sql) -> Result<Vec<KeyInfo>, SqlError> {
    let rows = db.query(
        "SELECT id, user_id, role, created_at, revoked_at IS NOT NULL FROM api_keys ORDER BY id",
        &[],
    )?;
    Ok(rows
        .rows
        .iter()
        .map(|r| KeyInfo {
            id: int(&r[0]),
            user_id: text(&r[1]),
            role: text(&r[2]),
            created_at: int(&r[3]),
            revoked: cell_bool(&r[4]),
        })
        .collect())
}

/// Revokes key `id`; returns whether a live key was revoked. Every
/// [`ActiveKeys`] of this process forgets what it remembered of active keys.
pub fn revoke(db: &dyn Sql, id: i64) -> Result<bool, SqlError> {
    let n = db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        &[(unix_secs() as i64).into(), id.into()],
    )?;
    // After the statement (committed, unless the caller holds a
    // transaction): a check that read the row before it carries the older
    // generation, and is not trusted again.
    REVOCATIONS.fetch_add(1, Ordering::AcqRel);
    Ok(n == 1)
}

/// How long an answer that a key is active is trusted when this process has
/// revoked nothing since: the bound on how late a revocation made by another
/// process reaches this one's handshakes (and on one made here inside a
/// transaction still open at the check).
pub const RECHECK_AFTER: Duration = Duration::from_millis(100);

/// Keys remembered per database past this many are all forgotten at once.
const REMEMBERED_KEYS: usize = 4096;

/// Revocations made by this process, by [`revoke`].
static REVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// What one database said of its keys lately ([`Db::memo`]): an answer is
/// trusted while no revocation happened in this process since it was read,
/// and for [`RECHECK_AFTER`].
#[derive(Default)]
pub struct ActiveKeys {
    seen: Mutex<HashMap<i64, Seen>>,
}

#[derive(Clone, Copy)]
struct Seen {
    active: bool,
    generation: u64,
    read_at: Instant,
}

impl ActiveKeys {
    /// Whether key `id` exists and is not revoked, from memory when that can
    /// be trusted, else read from `db` (in place on SQLite).
    pub async fn check(db: &Db, id: i64) -> Result<bool, SqlError> {
        let keys = db.memo::<ActiveKeys>();
        // Both taken before the read, so that the answer is dated no later
        // than what the database said.
        let generation = REVOCATIONS.load(Ordering::Acquire);
        let read_at = Instant::now();
        if let Some(active) = keys.remembered(id, generation, read_at) {
            return Ok(active);
        }
        let active = db.read(move |conn| is_active(conn, id)).await?;
        let mut seen = keys.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= REMEMBERED_KEYS {
            seen.clear();
        }
        seen.insert(
            id,
            Seen {
                active,
                generation,
                read_at,
            },
        );
        Ok(active)
    }

    fn remembered(&self, id: i64, generation: u64, now: Instant) -> Option<bool> {
        let seen = *self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)?;
        let fresh = seen.generation == generation
            && now.saturating_duration_since(seen.read_at) < RECHECK_AFTER;
        fresh.then_some(seen.active)
    }
}
