//! `migrate`: creates the schema and, on first start, the demo API key.
//!
//! Runs once at boot as a service and exits normally. The demo key is logged
//! once, at creation (`demo API key created api_key=<key>`), and written to
//! `demo.key` (mode 0600) beside the database so it can be found again; later
//! starts only say that it exists and where.
//!
//! The key reaches `demo.key` (written atomically) before its digest is
//! committed, so a crash can leave a key file with no row, which the next boot
//! adopts, but never a row whose key was lost. A key file whose key is already
//! in the database (revoked, say) is replaced, never adopted again.

use std::path::PathBuf;

use rippy::prelude::*;

use super::api_keys;

/// The demo user.
pub const DEMO_USER: &str = "demo";

pub struct Migrate {
    db: String,
}

impl Migrate {
    pub fn new(args: Value) -> Self {
        Migrate {
            db: args
                .get("db")
                .and_then(Value::as_str)
                .unwrap_or("app:db")
                .to_owned(),
        }
    }
}

/// Where the demo key file lives for a database file.
pub fn demo_key_path(db: &SqliteDb) -> PathBuf {
    db.path().with_file_name("demo.key")
}

/// What the migration did about the demo key.
enum DemoKey {
    Exists,
    Created(String),
    Recovered(String),
}

fn file_error(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

impl Process for Migrate {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let modules = ctx.modules();
        let db = modules.sql(&self.db)?;
        let random = modules.random_bytes(20)?;
        let path = demo_key_path(&db);
        let fresh = api_keys::format_key(&random);
        let outcome = db
            .call(|conn| {
                let tx = conn.transaction()?;
                api_keys::ensure_schema(&tx)?;
                if api_keys::user_has_key(&tx, DEMO_USER)? {
                    return Ok(DemoKey::Exists);
                }
                let left = std::fs::read_to_string(&path).ok();
                let adopt = match left.as_deref().map(str::trim) {
                    Some(key) if api_keys::is_well_formed(key) => !api_keys::is_known(&tx, key)?,
                    _ => false,
                };
                let outcome = match left {
                    Some(key) if adopt => DemoKey::Recovered(key.trim().to_owned()),
                    left => {
                        if left.is_some() {
                            std::fs::remove_file(&path).map_err(file_error)?;
                        }
                        write_private(&path, format!("{fresh}\n").as_bytes())
                            .map_err(file_error)?;
                        DemoKey::Created(fresh)
                    }
                };
                if let DemoKey::Created(key) | DemoKey::Recovered(key) = &outcome {
                    api_keys::insert(&tx, key, DEMO_USER, "user")?;
                }
                tx.commit()?;
                Ok(outcome)
            })
            .map_err(|e| e.to_string())?;
        match outcome {
            // The one place a key is ever logged: at its creation, as the tutorial does.
            DemoKey::Created(key) => log::info!("demo API key created api_key={key}"),
            DemoKey::Recovered(key) => {
                log::warn!(
                    "demo API key file had no database row (an interrupted first boot); key adopted file={}",
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
