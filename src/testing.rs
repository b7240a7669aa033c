//! A harness for integration tests of rippy applications: boot a manifest
//! in-process, spawn processes, talk to them, wait for their exits, read
//! metrics.
//!
//! [`TestApp`] boots a manifest with every `http.service` on an ephemeral
//! port of 127.0.0.1 (so tests run in parallel) and, if asked, with its
//! SQLite files and token key files in a fresh temporary directory. A
//! [`TestMailbox`] is a pid owned by the test: pass it as a reply-to (send
//! from it, or put it in a message) and await what arrives. Every wait has
//! one timeout (10 s unless set) and fails with [`TimedOut`] naming what it
//! waited for; nothing sleeps to synchronise.
//!
//! Tests run inside an actix system: `#[actix_web::test]`, or a plain
//! `#[test]` around [`block_on`].
//!
//! ```
//! use rippy::prelude::*;
//! use rippy::testing::TestApp;
//!
//! /// Answers every message with `pong`, to whoever sent it.
//! struct Echo;
//!
//! impl Process for Echo {
//!     fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
//!         if let Event::Message(Message { from: Some(from), payload, .. }) = event {
//!             let _ = ctx.send(&from, "pong", payload);
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! # rippy::testing::block_on(async {
//! let catalog = Catalog::new().process("file://echo.rs", "run", |_| Echo);
//! let app = TestApp::boot(catalog, r#"
//! version: "1.0"
//! namespace: t
//! entries:
//!   - { name: host, kind: process.host, workers: 1 }
//!   - { name: echo, kind: process.rust, source: file://echo.rs, method: run }
//! "#).await.unwrap();
//! let echo = app.spawn("t:echo", "t:host", Value::Null).unwrap();
//! let mut mailbox = app.mailbox();
//! mailbox.send(&echo, "ping", json!(1)).unwrap();
//! let reply = mailbox.recv_topic("pong").await.unwrap();
//! assert_eq!(reply.payload.to_json(), Some(json!(1)));
//! app.shutdown().await;
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_yaml::Value as Yaml;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::catalog::Catalog;
use crate::process::{
    Caller, Event, ExitReason, Mailbox, Message, Node, Payload, Pid, Refused, SendError,
    SpawnError, Target, Topic,
};
use crate::registry::Registry;
use crate::runtime::RuntimeError;

/// Runs `fut` to completion in a new actix system, for tests written as a
/// plain `#[test]` (no `#[actix_web::test]`, so no actix dependency).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    actix_web::rt::System::new().block_on(fut)
}

/// How long every wait of the harness lasts unless set otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The host part of mailbox pids: `{test:mailbox|0x00001}`.
pub const MAILBOX_HOST: &str = "test:mailbox";

/// A wait of the harness ran out of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What the test was waiting for.
    pub what: String,
    /// How long it waited.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.after, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

enum Source {
    Text { text: String, base_dir: PathBuf },
    File(PathBuf),
}

/// Configures a [`TestApp`]: the manifest, where its data goes, the timeout.
pub struct TestAppBuilder {
    catalog: Catalog,
    source: Source,
    edits: Vec<Box<dyn FnOnce(String) -> String>>,
    temp_data: bool,
    timeout: Duration,
    shutdown_grace: Duration,
}

impl TestAppBuilder {
    /// Boots the manifest file at `path` (relative paths in it resolve
    /// against its directory).
    pub fn manifest_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Source::File(path.into());
        self
    }

    /// Boots manifest text; relative paths in it resolve against the
    /// current directory unless [`TestAppBuilder::base_dir`] says otherwise.
    pub fn manifest_text(mut self, text: &str) -> Self {
        self.source = Source::Text {
            text: text.to_owned(),
            base_dir: PathBuf::from("."),
        };
        self
    }

    /// The directory relative paths of manifest text resolve against.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Source::Text { base_dir, .. } = &mut self.source {
            *base_dir = dir.into();
        }
        self
    }

    /// Changes the manifest text before it is parsed (e.g. a shorter interval).
    pub fn edit(mut self, edit: impl FnOnce(String) -> String + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Moves every relative `db.sql.sqlite` `file` and `security.token_store`
    /// `token_key_file` into a fresh temporary directory, removed when the
    /// app is dropped; [`TestApp::data_dir`] names it.
    pub fn data_in_temp_dir(mut self) -> Self {
        self.temp_data = true;
        self
    }

    /// How long each wait lasts before it fails with [`TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The grace period of [`TestApp::shutdown`] (default 2 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Validates and boots the manifest. Must run inside an actix system.
    pub async fn boot(self) -> Result<TestApp, RuntimeError> {
        let (file, base_dir, mut text) = match self.source {
            Source::Text { text, base_dir } => ("test.yaml".to_owned(), base_dir, text),
            Source::File(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    RuntimeError::Io(format!("cannot read manifest {}: {e}", path.display()))
                })?;
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                (path.display().to_string(), base, text)
            }
        };
        for edit in self.edits {
            text = edit(text);
        }
        let temp = if self.temp_data {
            Some(TempDir::new().map_err(|e| RuntimeError::Io(e.to_string()))?)
        } else {
            None
        };
        let mut manifest = crate::manifest::Manifest::parse(&file, &base_dir, &text)
            .map_err(RuntimeError::Manifest)?;
        for entry in &mut manifest.entries {
            match entry.kind.as_str() {
                "http.service" => {
                    entry
                        .fields
                        .insert(Yaml::from("addr"), Yaml::from("127.0.0.1:0"));
                }
                "db.sql.sqlite" | "security.token_store" => {
                    let Some(temp) = &temp else { continue };
                    let field = if entry.kind == "db.sql.sqlite" {
                        "file"
                    } else {
                        "token_key_file"
                    };
                    let Some(path) = entry.fields.get(field).and_then(Yaml::as_str) else {
                        continue;
                    };
                    if Path::new(path).is_absolute() {
                        continue;
                    }
                    let moved = temp.path.join(path);
                    if let Some(parent) = moved.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| RuntimeError::Io(e.to_string()))?;
                    }
                    let moved = Yaml::from(moved.display().to_string());
                    entry.fields.insert(Yaml::from(field), moved);
                }
                _ => {}
            }
        }
        let registry = Registry::boot(manifest, &self.catalog).map_err(RuntimeError::Boot)?;
        Ok(TestApp {
            registry,
            temp,
            timeout: self.timeout,
            shutdown_grace: self.shutdown_grace,
        })
    }
}

/// A booted manifest under test.
pub struct TestApp {
    registry: Registry,
    temp: Option<TempDir>,
    timeout: Duration,
    shutdown_grace: Duration,
}

impl TestApp {
    /// A builder for `catalog`; set the manifest with
    /// [`TestAppBuilder::manifest_file`] or [`TestAppBuilder::manifest_text`].
    pub fn builder(catalog: Catalog) -> TestAppBuilder {
        TestAppBuilder {
            catalog,
            source: Source::Text {
                text: String::new(),
                base_dir: PathBuf::from("."),
            },
            edits: Vec::new(),
            temp_data: false,
            timeout: DEFAULT_TIMEOUT,
            shutdown_grace: Duration::from_secs(2),
        }
    }

    /// Boots manifest text (paths relative to the current directory) with
    /// the default settings.
    pub async fn boot(catalog: Catalog, manifest_text: &str) -> Result<TestApp, RuntimeError> {
        Self::builder(catalog)
            .manifest_text(manifest_text)
            .boot()
            .await
    }

    /// The booted registry (entries by id, boot order).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The process table.
    pub fn node(&self) -> &Arc<Node> {
        self.registry.node()
    }

    /// The temporary data directory, with [`TestAppBuilder::data_in_temp_dir`].
    pub fn data_dir(&self) -> Option<&Path> {
        self.temp.as_ref().map(|t| t.path.as_path())
    }

    /// The bound address of the `http.service` entry `server`.
    ///
    /// # Panics
    /// If `server` is not a started `http.service`.
    pub fn http_addr(&self, server: &str) -> SocketAddr {
        self.registry
            .http_addr(server)
            .unwrap_or_else(|| panic!("{server} is not a started http.service"))
    }

    /// `http://<addr of server><path>`.
    pub fn url(&self, server: &str, path: &str) -> String {
        format!("http://{}{path}", self.http_addr(server))
    }

    /// Spawns an instance of `entry` on `host` as trusted code (no scope check).
    pub fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        self.node().spawn(Caller::Trusted, entry, host, args)
    }

    /// Sends a message from outside any process (`from` is `None`); to get
    /// replies, send from a [`TestMailbox`] instead.
    pub fn send(
        &self,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        self.node().send(None, to, topic, payload)
    }

    /// The pid registered under `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.node().whereis(name)
    }

    /// Waits until `name` is registered (a service that has started), and
    /// returns its pid.
    pub async fn wait_registered(&self, name: &str) -> Result<Pid, TimedOut> {
        self.within(&format!("a process registered as {name:?}"), async {
            loop {
                if let Some(pid) = self.whereis(name) {
                    return pid;
                }
                // A name has no event to await; re-check shortly.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    /// A new mailbox: a pid owned by the test that collects what is sent to it.
    pub fn mailbox(&self) -> TestMailbox {
        TestMailbox::new(self.node().clone(), self.timeout)
    }

    /// Waits for `pid` to end and returns why ([`ExitReason::NoProcess`] if
    /// it was not alive). The wait starts at the call, not at the first
    /// poll: call it, then cause the exit, then await. For a process that
    /// may end as soon as it starts, use [`TestMailbox::spawn_monitored`].
    pub fn wait_exit(
        &self,
        pid: &Pid,
    ) -> impl Future<Output = Result<ExitReason, TimedOut>> + use<> {
        let exit = self.node().wait_exit(pid);
        let what = format!("{pid} to exit");
        let after = self.timeout;
        async move {
            tokio::time::timeout(after, exit)
                .await
                .map_err(|_| TimedOut { what, after })
        }
    }

    /// Awaits `fut` for at most the app's timeout.
    pub async fn within<T>(&self, what: &str, fut: impl Future<Output = T>) -> Result<T, TimedOut> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| TimedOut {
                what: what.to_owned(),
                after: self.timeout,
            })
    }

    /// The metrics in Prometheus text format, as `GET /metrics` serves them.
    pub fn metrics_text(&self) -> String {
        self.node().metrics().render()
    }

    /// The value of one series, named as it is rendered, labels included:
    /// `rippy_process_exits_total{entry="t:echo",reason="panic"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics_text().lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    /// Shuts the app down as SIGTERM would, within the grace period.
    pub async fn shutdown(self) {
        let TestApp {
            registry,
            temp,
            shutdown_grace,
            ..
        } = self;
        registry.shutdown(shutdown_grace).await;
        drop(temp);
    }
}

/// A pid owned by a test: whatever is sent to it waits in a queue until the
/// test receives it. It ends (and its pid dies) when dropped.
pub struct TestMailbox {
    pid: Pid,
    node: Arc<Node>,
    rx: UnboundedReceiver<Event>,
    pending: VecDeque<Event>,
    timeout: Duration,
}

struct ChannelMailbox {
    tx: UnboundedSender<Event>,
}

impl Mailbox for ChannelMailbox {
    fn deliver(&self, event: Event) -> Result<(), Refused> {
        self.tx.send(event).map_err(|_| Refused::Dead)
    }

    // The test decides when its mailbox ends: shutdown and kill ask nothing of it.
    fn shutdown(&self) {}

    fn kill(&self) {}
}

impl TestMailbox {
    fn new(node: Arc<Node>, timeout: Duration) -> TestMailbox {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let pid = Pid::new(MAILBOX_HOST, NEXT.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = unbounded_channel();
        node.insert(
            pid.clone(),
            Arc::new(ChannelMailbox { tx }),
            None,
            None,
            None,
        );
        TestMailbox {
            pid,
            node,
            rx,
            pending: VecDeque::new(),
            timeout,
        }
    }

    /// This mailbox's pid, to pass as a reply-to.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Sends a message from this mailbox, so the recipient can reply to it.
    pub fn send(
        &self,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        self.node.send(Some(&self.pid), to, topic, payload)
    }

    /// Spawns `entry` on `host` as trusted code, monitored by this mailbox
    /// from before it runs: its `EXIT` arrives here with the real reason even
    /// if it ends in `init`.
    pub fn spawn_monitored(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        self.node
            .spawn_monitored(&self.pid, Caller::Trusted, entry, host, args)
    }

    /// Monitors `target`: one `EXIT` arrives here when it ends (at once,
    /// with [`ExitReason::NoProcess`], if it already has).
    pub fn monitor(&self, target: &Pid) {
        self.node.monitor(&self.pid, target);
    }

    /// The next event of any kind.
    pub async fn recv_event(&mut self) -> Result<Event, TimedOut> {
        self.recv_where("any event", |_| true).await
    }

    /// The next message (`EXIT` events stay queued for [`TestMailbox::recv_exit`]).
    pub async fn recv(&mut self) -> Result<Message, TimedOut> {
        match self
            .recv_where("a message", |e| matches!(e, Event::Message(_)))
            .await?
        {
            Event::Message(m) => Ok(m),
            _ => unreachable!("recv_where returned an event it was not asked for"),
        }
    }

    /// The next message with `topic`; others stay queued, in order.
    pub async fn recv_topic(&mut self, topic: &str) -> Result<Message, TimedOut> {
        let what = format!("a message with topic {topic:?}");
        match self
            .recv_where(
                &what,
                |e| matches!(e, Event::Message(m) if m.topic == topic),
            )
            .await?
        {
            Event::Message(m) => Ok(m),
            _ => unreachable!("recv_where returned an event it was not asked for"),
        }
    }

    /// The `EXIT` of `target` (monitor it first with [`TestMailbox::monitor`]).
    pub async fn recv_exit(&mut self, target: &Pid) -> Result<ExitReason, TimedOut> {
        let what = format!("EXIT from {target}");
        match self
            .recv_where(
                &what,
                |e| matches!(e, Event::Exit { from, .. } if from == target),
            )
            .await?
        {
            Event::Exit { reason, .. } => Ok(reason),
            _ => unreachable!("recv_where returned an event it was not asked for"),
        }
    }

    /// Events received but not yet taken, in arrival order.
    pub fn pending(&mut self) -> Vec<Event> {
        while let Ok(event) = self.rx.try_recv() {
            self.pending.push_back(event);
        }
        self.pending.iter().cloned().collect()
    }

    async fn recv_where(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Event) -> bool,
    ) -> Result<Event, TimedOut> {
        if let Some(i) = self.pending.iter().position(&mut pick)
            && let Some(event) = self.pending.remove(i)
        {
            return Ok(event);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(event)) if pick(&event) => return Ok(event),
                Ok(Some(event)) => self.pending.push_back(event),
                // The sender lives in the node until this mailbox drops;
                // a closed channel can only mean nothing more will come.
                Ok(None) | Err(_) => {
                    return Err(TimedOut {
                        what: format!("{what} at {}", self.pid),
                        after: self.timeout,
                    });
                }
            }
        }
    }
}

impl Drop for TestMailbox {
    fn drop(&mut self) {
        self.node.exit(&self.pid, &ExitReason::Normal);
    }
}

/// A directory under the system temp dir, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "rippy-test-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            crate::util::unix_ms()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
