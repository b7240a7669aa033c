//! Shared test support: the application's catalog, booting manifests on free
//! ports in temp dirs, and waiting on events with one shared timeout.

#![allow(dead_code)]

#[path = "../../actors/mod.rs"]
pub mod actors;
pub mod binary;
pub mod servers;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rippy::http::HttpService;
use rippy::manifest::Manifest;
use rippy::registry::Registry;

/// The one timeout every wait in the tests uses.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Awaits `fut`, failing the test with `what` after [`TIMEOUT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// Waits until `cond` holds, re-checking every few milliseconds, for
/// conditions that have no event to await (counters reaching a value).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Which edition of the ticker a test boots: the same wire, written in Rust
/// (`_index.yaml` + `actors/*.rs`) or in Lua (`examples/lua-ticker/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    Rust,
    Lua,
}

impl Edition {
    /// The folder its manifest's relative paths start from.
    pub fn dir(self) -> PathBuf {
        match self {
            Edition::Rust => repo(),
            Edition::Lua => repo().join("examples/lua-ticker"),
        }
    }

    /// Its manifest file.
    pub fn manifest(self) -> PathBuf {
        self.dir().join("_index.yaml")
    }

    /// The address its manifest listens on.
    pub fn addr(self) -> &'static str {
        match self {
            Edition::Rust => "127.0.0.1:8081",
            Edition::Lua => "127.0.0.1:8083",
        }
    }

    /// Whether this build can run it: the Lua edition needs the Lua engine
    /// (the `process.lua` kind); `Err` says what is missing.
    pub fn available(self) -> Result<(), String> {
        match self {
            Edition::Rust => Ok(()),
            Edition::Lua if rippy::registry::kinds::names().contains(&"process.lua") => Ok(()),
            Edition::Lua => Err("this build has no Lua engine (no `process.lua` kind)".into()),
        }
    }

    /// Whether the test named `name` must be skipped in this edition; says so.
    pub fn skip(self, name: &str) -> bool {
        match self.available() {
            Ok(()) => false,
            Err(why) => {
                eprintln!("SKIPPED {name} ({self:?} edition): {why}");
                true
            }
        }
    }
}

/// Defines one test body that runs against both editions: `mod $name` with
/// the tests `$name::rust` and `$name::lua` (skipped, saying why, in a build
/// without the Lua engine). `lua_pending = "why";` before the body skips the
/// Lua run with that reason: for what the Lua engine cannot do yet.
#[macro_export]
macro_rules! both_editions {
    (lua_pending = $why:literal; $(#[$meta:meta])* async fn $name:ident($edition:ident: Edition) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($edition: Edition) $body

            #[actix_web::test]
            async fn rust() {
                body(Edition::Rust).await
            }

            #[actix_web::test]
            async fn lua() {
                eprintln!("SKIPPED {}::lua: {}", module_path!(), $why);
            }
        }
    };
    ($(#[$meta:meta])* async fn $name:ident($edition:ident: Edition) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($edition: Edition) $body

            #[actix_web::test]
            async fn rust() {
                body(Edition::Rust).await
            }

            #[actix_web::test]
            async fn lua() {
                if !Edition::Lua.skip(concat!(module_path!(), "::lua")) {
                    body(Edition::Lua).await
                }
            }
        }
    };
}

/// The application manifest with its data in `data_dir` and its server on a free port.
pub fn app_manifest_text(data_dir: &Path) -> String {
    manifest_text(Edition::Rust, data_dir)
}

/// `edition`'s manifest with its data in `data_dir` and its server on a free port.
pub fn manifest_text(edition: Edition, data_dir: &Path) -> String {
    let text = std::fs::read_to_string(edition.manifest()).expect("read the manifest");
    let data = format!("{}/", data_dir.display());
    text.replace("./data/", &data)
        .replace(edition.addr(), "127.0.0.1:0")
}

/// Gives `data_dir` a demo key for the Lua edition before it boots, the
/// way an operator would (`rippy keys create`): with the Rust `api_keys`
/// helpers, in the SQLite file the manifest names, and the key in
/// `demo.key`. Lua has no file access, so its migration only logs a key it
/// creates; finding one for `demo`, it creates none. Idempotent.
pub fn seed_demo_key(data_dir: &Path) {
    use std::io::Read;
    let file = data_dir.join("demo.key");
    if file.exists() {
        return;
    }
    let conn =
        rippy::prelude::rusqlite::Connection::open(data_dir.join("auth.db")).expect("open auth.db");
    actors::api_keys::ensure_schema(&conn).expect("schema");
    let mut random = [0u8; 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("random bytes");
    let key = actors::api_keys::format_key(&random);
    actors::api_keys::insert(&conn, &key, actors::migrate::DEMO_USER, "user").expect("insert");
    std::fs::write(&file, format!("{key}\n")).expect("demo.key");
}

/// Parses manifest text with paths relative to the repository.
pub fn parse(text: &str) -> Manifest {
    Manifest::parse("test.yaml", &repo(), text).unwrap_or_else(|e| panic!("manifest: {e}"))
}

/// A booted application on a free port.
pub struct App {
    pub edition: Edition,
    pub registry: Registry,
    pub base: String,
    pub ws_base: String,
    pub dir: PathBuf,
}

impl App {
    /// Boots the Rust edition with its data in `dir` (created if needed).
    pub async fn boot_in(dir: &Path) -> App {
        Self::boot(Edition::Rust, dir).await
    }

    /// Boots `edition` with its data in `dir` (created if needed).
    pub async fn boot(edition: Edition, dir: &Path) -> App {
        Self::boot_edition_edited(edition, dir, |text| text).await
    }

    /// Boots the Rust edition after `edit` has changed its manifest text.
    pub async fn boot_edited(dir: &Path, edit: impl FnOnce(String) -> String) -> App {
        Self::boot_edition_edited(Edition::Rust, dir, edit).await
    }

    /// Boots `edition` after `edit` has changed its manifest text.
    pub async fn boot_edition_edited(
        edition: Edition,
        dir: &Path,
        edit: impl FnOnce(String) -> String,
    ) -> App {
        std::fs::create_dir_all(dir).expect("data dir");
        if edition == Edition::Lua {
            seed_demo_key(dir);
        }
        let text = edit(manifest_text(edition, dir));
        let manifest = Manifest::parse("test.yaml", &edition.dir(), &text)
            .unwrap_or_else(|e| panic!("manifest: {e}"));
        let registry =
            Registry::boot(manifest, &actors::catalog()).unwrap_or_else(|e| panic!("boot: {e}"));
        let addr = registry.http_addr("app:gateway").expect("gateway address");
        let app = App {
            edition,
            registry,
            base: format!("http://{addr}"),
            ws_base: format!("ws://{addr}"),
            dir: dir.to_path_buf(),
        };
        app.wait_for_demo_key().await;
        app
    }

    /// The demo key the migration wrote.
    pub fn demo_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("demo.key"))
            .expect("demo.key")
            .trim()
            .to_owned()
    }

    async fn wait_for_demo_key(&self) {
        let node = self.registry.node().clone();
        // The migration is a service that exits once it has written the key,
        // and its supervisor stops after that normal exit.
        let service = self
            .registry
            .get::<rippy::process::ServiceHandle>("app:migrate-service")
            .expect("migrate service");
        if let Some(pid) = service.supervisor() {
            within("the migration", node.wait_exit(&pid)).await;
        }
        // Tests expect the ticker's stream from the first connection on.
        eventually("the ticker", || node.whereis("ticker").is_some()).await;
        let path = self.dir.join("demo.key");
        eventually("demo.key", || {
            std::fs::read_to_string(&path).is_ok_and(|k| k.ends_with('\n'))
        })
        .await;
    }

    pub fn http(&self) -> Arc<HttpService> {
        self.registry
            .get::<HttpService>("app:gateway")
            .expect("gateway")
    }

    pub fn node(&self) -> &Arc<rippy::process::Node> {
        self.registry.node()
    }

    pub async fn shutdown(self) {
        within("shutdown", self.registry.shutdown(Duration::from_secs(2))).await;
    }
}
