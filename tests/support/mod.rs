//! Shared test support: the application's catalog, booting manifests on free
//! ports in temp dirs, and waiting on events with one shared timeout.

#![allow(dead_code)]

#[path = "../../actors/mod.rs"]
pub mod actors;

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

/// The application manifest with its data in `data_dir` and its server on a free port.
pub fn app_manifest_text(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(repo().join("_index.yaml")).expect("read _index.yaml");
    let data = format!("{}/", data_dir.display());
    text.replace("./data/", &data)
        .replace("127.0.0.1:8081", "127.0.0.1:0")
}

/// Parses manifest text with paths relative to the repository.
pub fn parse(text: &str) -> Manifest {
    Manifest::parse("test.yaml", &repo(), text).unwrap_or_else(|e| panic!("manifest: {e}"))
}

/// A booted application on a free port.
pub struct App {
    pub registry: Registry,
    pub base: String,
    pub ws_base: String,
    pub dir: PathBuf,
}

impl App {
    /// Boots the application with its data in `dir` (created if needed).
    pub async fn boot_in(dir: &Path) -> App {
        Self::boot_edited(dir, |text| text).await
    }

    /// Boots the application after `edit` has changed its manifest text.
    pub async fn boot_edited(dir: &Path, edit: impl FnOnce(String) -> String) -> App {
        std::fs::create_dir_all(dir).expect("data dir");
        let manifest = parse(&edit(app_manifest_text(dir)));
        let registry =
            Registry::boot(manifest, &actors::catalog()).unwrap_or_else(|e| panic!("boot: {e}"));
        let addr = registry.http_addr("app:gateway").expect("gateway address");
        let app = App {
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
