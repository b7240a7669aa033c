//! API keys in SQLite: only a SHA-256 digest of each key is stored, and keys
//! are looked up by digest. Keys are `rk_` + 40 hex characters (160 random
//! bits), URL-safe. Shared by the migration, the token function and the CLI.

use rippy::prelude::rusqlite::{Connection, OptionalExtension, params};
use rippy::prelude::*;

/// The schema, idempotent.
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

pub fn ensure_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
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
pub fn insert(conn: &Connection, key: &str, user_id: &str, role: &str) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO api_keys (key_hash, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            sha256_hex(key.as_bytes()),
            user_id,
            role,
            unix_secs() as i64
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The owner of `key` if it exists and is not revoked.
pub fn lookup(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyOwner>> {
    let digest = sha256_hex(key.as_bytes());
    let row: Option<(i64, String, String, String)> = conn
        .prepare_cached("SELECT id, key_hash, user_id, role FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL")?
        .query_row(params![digest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    // The index lookup already matched; compare again without a timing signal.
    Ok(row
        .filter(|(_, stored, _, _)| constant_time_eq(stored.as_bytes(), digest.as_bytes()))
        .map(|(key_id, _, user_id, role)| KeyOwner {
            key_id,
            user_id,
            role,
        }))
}

/// Whether key `id` exists and is not revoked.
pub fn is_active(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE id = ?1 AND revoked_at IS NULL)",
    )?
    .query_row(params![id], |r| r.get(0))
}

/// Whether `key` was ever stored (live or revoked).
pub fn is_known(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE key_hash = ?1)",
        params![sha256_hex(key.as_bytes())],
        |r| r.get(0),
    )
}

/// Whether `text` has the form of a key (`rk_` + 40 lowercase hex characters).
pub fn is_well_formed(text: &str) -> bool {
    text.strip_prefix("rk_").is_some_and(|hex| {
        hex.len() == 40 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Whether any live key belongs to `user_id`.
pub fn user_has_key(conn: &Connection, user_id: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE user_id = ?1 AND revoked_at IS NULL)",
        params![user_id],
        |r| r.get(0),
    )
}

/// Every key, oldest first.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<KeyInfo>> {
    let mut stmt = conn.prepare(
        "SELECT id, user_id, role, created_at, revoked_at IS NOT NULL FROM api_keys ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(KeyInfo {
            id: r.get(0)?,
            user_id: r.get(1)?,
            role: r.get(2)?,
            created_at: r.get(3)?,
            revoked: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Revokes key `id`; returns whether a live key was revoked.
pub fn revoke(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        params![unix_secs() as i64, id],
    )?;
    Ok(n == 1)
}
