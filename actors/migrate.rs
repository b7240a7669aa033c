//! `migrate`: creates the schema and, on first start, the demo API key.
//!
//! Runs once at boot as a service and exits normally. The demo key is logged
//! once, at creation (`demo API key created api_key=<key>`), and written to
//! `demo.key` (mode 0600) beside the database so it can be found again; later
//! starts only say that it exists and where.
//!
//! A new key is written (atomically) to `demo.key.pending` before its digest
//! is committed, and renamed to `demo.key` after: whoever finds `demo.key`
//! can use it, and a crash never leaves a row whose key was lost. The next
//! boot finishes what a crash interrupted: a pending key with no row is
//! inserted, one with a live row is published; a revoked one is dropped.

use std::path::PathBuf;

use rippy::prelude::*;
use rippy::sql::{Db, Sql, SqlError};

use super::api_keys;

/// The demo user.
pub const DEMO_USER: &str = "demo";

pub struct Migrate {
    db: String,
    key_file: Option<String>,
}

impl Migrate {
    pub fn new(args: Value) -> Self {
        Migrate {
            db: args
                .get("db")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            key_file: args
                .get("demo_key_file")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// Where the demo key file lives: beside a SQLite database file, or where
/// the migration's `demo_key_file` arg says (a PostgreSQL database has no
/// file of its own to stand beside).
pub fn demo_key_path(db: &Db, configured: Option<&str>) -> Option<PathBuf> {
    configured
        .map(PathBuf::from)
        .or_else(|| db.sqlite().map(|s| s.path().with_file_name("demo.key")))
}

/// What the migration did about the demo key.
enum DemoKey {
    Exists,
    Created(String),
    Recovered(String),
}

/// Renames the committed key's file into place, durably.
fn publish(pending: &std::path::Path, path: &std::path::Path) -> std::io::Result<()> {
    std::fs::rename(pending, path)?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn file_error(e: std::io::Error) -> SqlError {
    SqlError::new("demo key file", e)
}

/// The schema and the demo key, in one transaction. With no key file (a
/// PostgreSQL database and no `demo_key_file`), a new key is only logged.
fn migrate(tx: &dyn Sql, path: Option<PathBuf>, fresh: String) -> Result<DemoKey, SqlError> {
    api_keys::ensure_schema(tx)?;
    let Some(path) = path else {
        return Ok(if api_keys::user_has_key(tx, DEMO_USER)? {
            DemoKey::Exists
        } else {
            api_keys::insert(tx, &fresh, DEMO_USER, "user")?;
            DemoKey::Created(fresh)
        });
    };
    let pending = path.with_file_name("demo.key.pending");
    let left = match std::fs::read_to_string(&pending) {
        Ok(k) => Some(k.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // There but unreadable (not UTF-8, say): no usable key,
        // and it must go, or no new key could take its place.
        Err(_) => Some(String::new()),
    };
    Ok(match left {
        Some(key) if api_keys::is_well_formed(&key) && !api_keys::is_known(tx, &key)? => {
            api_keys::insert(tx, &key, DEMO_USER, "user")?;
            DemoKey::Recovered(key)
        }
        Some(key) if api_keys::is_well_formed(&key) && api_keys::lookup(tx, &key)?.is_some() => {
            DemoKey::Recovered(key)
        }
        left => {
            if left.is_some() {
                // Malformed, or a key revoked since: never published.
                std::fs::remove_file(&pending).map_err(file_error)?;
            }
            if api_keys::user_has_key(tx, DEMO_USER)? {
                DemoKey::Exists
            } else {
                write_private(&pending, format!("{fresh}\n").as_bytes()).map_err(file_error)?;
                api_keys::insert(tx, &fresh, DEMO_USER, "user")?;
                DemoKey::Created(fresh)
            }
        }
    })
}

impl Process for Migrate {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let modules = ctx.modules();
        let db = modules.sql(&self.db)?;
        let random = modules.random_bytes(20)?;
        let path = demo_key_path(&db, self.key_file.as_deref());
        let fresh = api_keys::format_key(&random);
        let in_tx = path.clone();
        let outcome = db
            .transaction(move |tx| migrate(tx, in_tx, fresh))
            .map_err(|e| e.to_string())?;
        let Some(path) = path else {
            match outcome {
                DemoKey::Created(key) | DemoKey::Recovered(key) => {
                    log::info!("demo API key created api_key={key}")
                }
                DemoKey::Exists => log::info!("demo API key exists"),
            }
            log::info!("migrations applied db={}", self.db);
            return Ok(Flow::Stop);
        };
        let pending = path.with_file_name("demo.key.pending");
        if let DemoKey::Created(_) | DemoKey::Recovered(_) = outcome {
            publish(&pending, &path)
                .map_err(|e| format!("cannot publish the demo key file {}: {e}", path.display()))?;
        }
        match outcome {
            // The one place a key is ever logged: at its creation, as the tutorial does.
            DemoKey::Created(key) => log::info!("demo API key created api_key={key}"),
            DemoKey::Recovered(key) => {
                log::warn!(
                    "demo API key from an interrupted first boot completed file={}",
                    path.display()
                );
                log::info!("demo API key created api_key={key}");
            }
            DemoKey::Exists if path.exists() => {
                log::info!("demo API key exists file={}", path.display())
            }
            DemoKey::Exists => log::warn!(
                "demo API key exists but its file is gone and only its digest is stored; revoke it (rippy keys revoke <id>) to get a new one file={}",
                path.display()
            ),
        }
        log::info!("migrations applied db={}", self.db);
        Ok(Flow::Stop)
    }

    fn handle(&mut self, _ctx: &mut ProcessContext<'_>, _event: Event) -> ProcessResult {
        Ok(Flow::Stop)
    }
}
