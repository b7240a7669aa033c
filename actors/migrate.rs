//! `migrate`: creates the schema and, on first start, the demo API key.
//!
//! Runs once at boot as a service and exits normally. The demo key is logged
//! once, at creation (`demo API key created api_key=<key>`), and written to
//! `demo.key` (mode 0600) beside the database so it can be found again; later
//! starts only say that it exists and where.

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

impl Process for Migrate {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let modules = ctx.modules();
        let db = modules.sql(&self.db)?;
        let random = modules.random_bytes(20)?;
        let created = db
            .call(|conn| {
                let tx = conn.transaction()?;
                api_keys::ensure_schema(&tx)?;
                let created = if api_keys::user_has_key(&tx, DEMO_USER)? {
                    None
                } else {
                    let key = api_keys::format_key(&random);
                    api_keys::insert(&tx, &key, DEMO_USER, "user")?;
                    Some(key)
                };
                tx.commit()?;
                Ok(created)
            })
            .map_err(|e| e.to_string())?;
        let path = demo_key_path(&db);
        match created {
            Some(key) => {
                // The one place a key is ever logged: at its creation, as the tutorial does.
                log::info!("demo API key created api_key={key}");
                let _ = std::fs::remove_file(&path);
                if let Err(e) = write_private(&path, format!("{key}\n").as_bytes()) {
                    log::warn!(
                        "cannot write demo key file path={} error={e}",
                        path.display()
                    );
                }
            }
            None => log::info!("demo API key exists file={}", path.display()),
        }
        log::info!("migrations applied db={}", self.db);
        Ok(Flow::Stop)
    }

    fn handle(&mut self, _ctx: &mut ProcessContext<'_>, _event: Event) -> ProcessResult {
        Ok(Flow::Stop)
    }
}
