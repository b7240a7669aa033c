//! The application entry point: [`Runtime::builder`] turns a [`Catalog`] and
//! a manifest path into a complete program.
//!
//! [`RuntimeBuilder::run`] is an app's whole `main`: it parses the command
//! line (`run [manifest] [--dev]`, `check [manifest]`, and the app's own
//! commands; no command means `run`), sets up logging ([`crate::logging`]:
//! `env_logger`, `RUST_LOG`, default `info`), and for `run` raises the
//! descriptor limit, installs the SIGTERM/SIGINT handlers before anything
//! boots, boots the manifest, logs `rippy started`, waits for a signal
//! (`signal received`) and shuts down within the grace period. Exit codes:
//! 0 on success, 1 with the error(s) on stderr, 2 for a command-line error
//! (clap's).
//!
//! [`RuntimeBuilder::boot`] is the same boot without the CLI, signals or
//! logging, for embedding rippy in a program that owns its `main` (it must
//! run inside an actix system). Tests use [`crate::testing`] instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};

use crate::catalog::Catalog;
use crate::manifest::{Manifest, ManifestErrors, decode};
use crate::registry::{Registry, RegistryError};
use crate::sql::{Db, PostgresConfig, PostgresDb, SqliteConfig, SqliteDb};

/// The manifest `run` and `check` use when none is given.
pub const DEFAULT_MANIFEST: &str = "_index.yaml";
/// How long shutdown waits for processes before killing them, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The handler of an app command: its parsed arguments and the app's context.
pub type CommandHandler = Box<dyn Fn(&ArgMatches, &AppContext) -> Result<(), String>>;

/// The runtime of one application. Start with [`Runtime::builder`].
pub struct Runtime;

impl Runtime {
    /// A builder with an empty catalog, `_index.yaml` and a 3 s shutdown grace.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            name: "rippy".into(),
            about: None,
            version: None,
            catalog: Catalog::new(),
            manifest: PathBuf::from(DEFAULT_MANIFEST),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            commands: Vec::new(),
        }
    }
}

/// Configures an application: its code, its manifest, its command line.
pub struct RuntimeBuilder {
    name: String,
    about: Option<String>,
    version: Option<String>,
    catalog: Catalog,
    manifest: PathBuf,
    shutdown_grace: Duration,
    commands: Vec<(clap::Command, CommandHandler)>,
}

impl RuntimeBuilder {
    /// The program name shown in `--help` and usage lines (default `rippy`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The one-line description shown by `--help`.
    pub fn about(mut self, about: &str) -> Self {
        self.about = Some(about.to_owned());
        self
    }

    /// The version `--version` prints (typically `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.to_owned());
        self
    }

    /// The native processes and functions the manifest names.
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// The manifest `run`, `check` and app commands use when none is given.
    pub fn manifest(mut self, path: impl Into<PathBuf>) -> Self {
        self.manifest = path.into();
        self
    }

    /// How long shutdown waits for processes to exit before killing them.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Adds an app command. The runtime gives it a global `--manifest <path>`
    /// option (default: the builder's manifest), available to the handler as
    /// [`AppContext::manifest`]. The handler's error goes to stderr and the
    /// program exits 1.
    pub fn command<F>(mut self, command: clap::Command, handler: F) -> Self
    where
        F: Fn(&ArgMatches, &AppContext) -> Result<(), String> + 'static,
    {
        self.commands.push((command, Box::new(handler)));
        self
    }

    /// Parses the command line, runs the chosen command and returns the exit
    /// code: an app's `main` is `Runtime::builder()...run()`.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// [`RuntimeBuilder::run`] with the given arguments (the first is the
    /// program name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        crate::logging::init();
        let matches = self.cli().get_matches_from(args);
        let result = match matches.subcommand() {
            None => self.serve(&self.manifest, false),
            Some(("run", m)) => self.serve(&manifest_arg(m, &self.manifest), m.get_flag("dev")),
            Some(("check", m)) => self.check(&manifest_arg(m, &self.manifest)),
            Some((name, m)) => self.app_command(name, m),
        };
        crate::logging::flush();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    }

    /// Validates the manifest at `path` against the catalog and prints a
    /// one-line summary (`<path>: ok, N entries valid`).
    pub fn check(&self, path: &Path) -> Result<(), RuntimeError> {
        let manifest = Manifest::load(path).map_err(RuntimeError::Manifest)?;
        let plan = Registry::check(manifest, &self.catalog).map_err(RuntimeError::Manifest)?;
        println!("{}: ok, {} entries valid", path.display(), plan.len());
        Ok(())
    }

    /// Validates and boots the builder's manifest, without signals, logging
    /// or the CLI. Must run inside an actix system; the caller owns the
    /// returned registry and shuts it down with [`Registry::shutdown`].
    pub async fn boot(&self) -> Result<Registry, RuntimeError> {
        let manifest = Manifest::load(&self.manifest).map_err(RuntimeError::Manifest)?;
        Registry::boot(manifest, &self.catalog).map_err(RuntimeError::Boot)
    }

    fn cli(&self) -> clap::Command {
        let manifest_pos = || {
            Arg::new("manifest")
                .value_name("MANIFEST")
                .value_parser(clap::value_parser!(PathBuf))
                .default_value(self.manifest.clone().into_os_string())
        };
        let mut cli = clap::Command::new(self.name.clone())
            .version(
                self.version
                    .clone()
                    .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
            )
            .about(
                self.about
                    .clone()
                    .unwrap_or_else(|| env!("CARGO_PKG_DESCRIPTION").to_owned()),
            )
            .subcommand(
                clap::Command::new("run")
                    .about("Boot a manifest and serve until SIGINT/SIGTERM")
                    .arg(manifest_pos())
                    .arg(
                        Arg::new("dev")
                            .long("dev")
                            .action(ArgAction::SetTrue)
                            .help("A local run: accept an inline token_key (same as RIPPY_DEV=1)"),
                    ),
            )
            .subcommand(
                clap::Command::new("check")
                    .about("Validate a manifest and exit: 0 if valid, 1 with every error if not")
                    .arg(manifest_pos()),
            );
        for (command, _) in &self.commands {
            cli = cli.subcommand(
                command.clone().arg(
                    Arg::new("manifest")
                        .long("manifest")
                        .global(true)
                        .value_parser(clap::value_parser!(PathBuf))
                        .default_value(self.manifest.clone().into_os_string())
                        .value_name("MANIFEST")
                        .help("The manifest the command works on"),
                ),
            );
        }
        cli
    }

    fn app_command(&self, name: &str, matches: &ArgMatches) -> Result<(), RuntimeError> {
        let Some((_, handler)) = self.commands.iter().find(|(c, _)| c.get_name() == name) else {
            return Err(RuntimeError::Command(format!("unknown command {name}")));
        };
        let context = AppContext {
            manifest: manifest_arg(matches, &self.manifest),
            catalog: self.catalog.clone(),
        };
        handler(matches, &context).map_err(RuntimeError::Command)
    }

    /// `run`: boot, serve until a signal, shut down.
    fn serve(&self, path: &Path, dev: bool) -> Result<(), RuntimeError> {
        if dev {
            // SAFETY: no other thread exists yet; the runtime starts later.
            unsafe { std::env::set_var("RIPPY_DEV", "1") };
        }
        raise_fd_limit();
        let manifest = Manifest::load(path).map_err(RuntimeError::Manifest)?;
        let plan = Registry::check(manifest, &self.catalog).map_err(RuntimeError::Manifest)?;
        let grace = self.shutdown_grace;
        actix_web::rt::System::new().block_on(async move {
            // Handlers first: a signal during boot must still shut down cleanly.
            let signals = Signals::install().map_err(RuntimeError::Signals)?;
            let registry = Registry::boot_plan(plan, &self.catalog).map_err(RuntimeError::Boot)?;
            crate::memory::watch(registry.node());
            log::info!(
                "rippy started manifest={} entries={}",
                path.display(),
                registry.boot_order().len()
            );
            signals.wait().await;
            registry.shutdown(grace).await;
            Ok(())
        })
    }
}

fn manifest_arg(matches: &ArgMatches, default: &Path) -> PathBuf {
    matches
        .try_get_one::<PathBuf>("manifest")
        .ok()
        .flatten()
        .cloned()
        .unwrap_or_else(|| default.to_path_buf())
}

/// What an app command can use: the manifest it works on and the catalog.
pub struct AppContext {
    manifest: PathBuf,
    catalog: Catalog,
}

impl AppContext {
    /// The manifest path (`--manifest`, or the builder's default).
    pub fn manifest(&self) -> &Path {
        &self.manifest
    }

    /// The application's catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Loads and parses the manifest (not validated against the catalog).
    pub fn load_manifest(&self) -> Result<Manifest, String> {
        Manifest::load(&self.manifest).map_err(|e| e.to_string())
    }

    /// Opens the manifest's database entry `id` (`db.sql.sqlite` or
    /// `db.sql.postgres`), or its only one when `id` is `None`, outside any
    /// running runtime (for offline commands).
    pub fn open_db(&self, id: Option<&str>) -> Result<Db, String> {
        let manifest = self.load_manifest()?;
        let path = self.manifest.display();
        let dbs: Vec<_> = manifest
            .entries
            .iter()
            .filter(|e| {
                (e.kind == "db.sql.sqlite" || e.kind == "db.sql.postgres")
                    && id.is_none_or(|id| e.id == id)
            })
            .collect();
        let entry = match dbs.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "{path}: no db.sql.sqlite or db.sql.postgres entry{}",
                    id.map(|i| format!(" {i}")).unwrap_or_default()
                ));
            }
            _ => return Err(format!("{path}: several databases; choose one with --db")),
        };
        if entry.kind == "db.sql.postgres" {
            let config: PostgresConfig =
                decode(&manifest.file, entry).map_err(|e| e.to_string())?;
            return PostgresDb::open(&entry.id, &config)
                .map(Db::from)
                .map_err(|e| e.to_string());
        }
        let config: SqliteConfig = decode(&manifest.file, entry).map_err(|e| e.to_string())?;
        let file = manifest.base_dir.join(&config.file);
        SqliteDb::open(&entry.id, &file, &config)
            .map(Db::from)
            .map_err(|e| e.to_string())
    }
}

/// Why an application could not check, boot or run.
#[derive(Debug)]
pub enum RuntimeError {
    /// The manifest could not be read or is invalid (every error).
    Manifest(ManifestErrors),
    /// An entry failed to boot.
    Boot(RegistryError),
    /// The signal handlers could not be installed.
    Signals(std::io::Error),
    /// An app command failed.
    Command(String),
    /// A file or directory the app needs could not be read or made.
    Io(String),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Manifest(e) => e.fmt(f),
            RuntimeError::Boot(e) => e.fmt(f),
            RuntimeError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            RuntimeError::Command(message) | RuntimeError::Io(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RuntimeError {}

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
