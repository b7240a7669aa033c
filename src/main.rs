//! The `rippy` command: run or check a manifest, manage API keys.

#[path = "../actors/mod.rs"]
mod actors;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rippy::manifest::{Manifest, decode};
use rippy::registry::Registry;
use rippy::sql::{SqliteConfig, SqliteDb};

/// How long shutdown waits for processes before killing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Parser)]
#[command(
    name = "rippy",
    version,
    about = "A Rust actor runtime for Wippy-style YAML manifests"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a manifest and serve until SIGINT/SIGTERM.
    Run {
        #[arg(default_value = "_index.yaml")]
        manifest: PathBuf,
        /// A local run: accept an inline token_key (same as RIPPY_DEV=1).
        #[arg(long)]
        dev: bool,
    },
    /// Validate a manifest and exit: 0 if valid, 1 with every error if not.
    Check {
        #[arg(default_value = "_index.yaml")]
        manifest: PathBuf,
    },
    /// Manage API keys in the manifest's database.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The manifest whose database holds the keys.
        #[arg(long, global = true, default_value = "_index.yaml")]
        manifest: PathBuf,
        /// The db.sql.sqlite entry id (needed if the manifest has several).
        #[arg(long, global = true)]
        db: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key and print it on stdout (the only time it is shown).
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by its id (from `keys list`).
    Revoke { id: i64 },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run {
        manifest: PathBuf::from("_index.yaml"),
        dev: false,
    }) {
        Command::Run { manifest, dev } => {
            if dev {
                // SAFETY: no other thread exists yet; the runtime starts later.
                unsafe { std::env::set_var("RIPPY_DEV", "1") };
            }
            run(&manifest)
        }
        Command::Check { manifest } => check(&manifest),
        Command::Keys {
            action,
            manifest,
            db,
        } => keys(action, &manifest, db.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> Result<(), String> {
    let manifest = Manifest::load(path).map_err(|e| e.to_string())?;
    let plan = Registry::check(manifest, &actors::catalog()).map_err(|e| e.to_string())?;
    println!("{}: ok, {} entries valid", path.display(), plan.len());
    Ok(())
}

fn run(path: &Path) -> Result<(), String> {
    raise_fd_limit();
    let manifest = Manifest::load(path).map_err(|e| e.to_string())?;
    let catalog = actors::catalog();
    let plan = Registry::check(manifest, &catalog).map_err(|e| e.to_string())?;
    actix_web::rt::System::new().block_on(async move {
        // Handlers first: a signal during boot must still shut down cleanly.
        let signals =
            Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let registry = Registry::boot_plan(plan, &catalog).map_err(|e| e.to_string())?;
        log::info!(
            "rippy started manifest={} entries={}",
            path.display(),
            registry.boot_order().len()
        );
        signals.wait().await;
        registry.shutdown(SHUTDOWN_GRACE).await;
        Ok(())
    })
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        log::info!("signal received signal={name}");
    }
}

/// Raises the soft descriptor limit to the hard one: each WebSocket is a descriptor.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                log::info!(
                    "file descriptor limit raised from={old} to={}",
                    lim.rlim_max
                );
            }
        }
    }
}

fn open_db(path: &Path, id: Option<&str>) -> Result<Arc<SqliteDb>, String> {
    let manifest = Manifest::load(path).map_err(|e| e.to_string())?;
    let dbs: Vec<_> = manifest
        .entries
        .iter()
        .filter(|e| e.kind == "db.sql.sqlite" && id.is_none_or(|id| e.id == id))
        .collect();
    let entry = match dbs.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "{}: no db.sql.sqlite entry{}",
                path.display(),
                id.map(|i| format!(" {i}")).unwrap_or_default()
            ));
        }
        _ => {
            return Err(format!(
                "{}: several databases; choose one with --db",
                path.display()
            ));
        }
    };
    let config: SqliteConfig = decode(&manifest.file, entry).map_err(|e| e.to_string())?;
    let file = manifest.base_dir.join(&config.file);
    let db = SqliteDb::open(&entry.id, &file, &config).map_err(|e| e.to_string())?;
    db.call(|c| actors::api_keys::ensure_schema(c))
        .map_err(|e| e.to_string())?;
    Ok(db)
}

fn keys(action: KeysAction, manifest: &Path, db: Option<&str>) -> Result<(), String> {
    let db = open_db(manifest, db)?;
    match action {
        KeysAction::Create { user, role } => {
            let mut random = [0u8; 20];
            use rand::RngCore;
            rand::rngs::OsRng.fill_bytes(&mut random);
            let key = actors::api_keys::format_key(&random);
            let id = db
                .call(|c| actors::api_keys::insert(c, &key, &user, &role))
                .map_err(|e| e.to_string())?;
            eprintln!("key {id} created for user {user} (role {role}); it is shown only once:");
            println!("{key}");
        }
        KeysAction::List => {
            let keys = db
                .call(|c| actors::api_keys::list(c))
                .map_err(|e| e.to_string())?;
            println!(
                "{:>6}  {:<24} {:<10} {:<12} status",
                "id", "user", "role", "created"
            );
            for k in keys {
                let status = if k.revoked { "revoked" } else { "active" };
                println!(
                    "{:>6}  {:<24} {:<10} {:<12} {status}",
                    k.id, k.user_id, k.role, k.created_at
                );
            }
        }
        KeysAction::Revoke { id } => {
            let revoked = db
                .call(|c| actors::api_keys::revoke(c, id))
                .map_err(|e| e.to_string())?;
            if !revoked {
                return Err(format!("no active key with id {id}"));
            }
            println!("key {id} revoked");
        }
    }
    Ok(())
}
