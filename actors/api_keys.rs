//! API keys in SQL (SQLite or PostgreSQL, the same statements): only a
//! SHA-256 digest of each key is stored, and keys are looked up by digest.
//! Keys are `rk_` + 40 hex characters (160 random bits), URL-safe. Shared by
//! the migration, the token function and the CLI.

use rippy::prelude::*;
use rippy::sql::{Dialect, Sql, SqlError, cell_bool};

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

/// Revokes key `id`; returns whether a live key was revoked.
pub fn revoke(db: &dyn Sql, id: i64) -> Result<bool, SqlError> {
    let n = db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        &[(unix_secs() as i64).into(), id.into()],
    )?;
    Ok(n == 1)
}
