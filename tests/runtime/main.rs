//! Runtime tests: manifest validation, the registry, processes and services.
//! Each test names the section of docs/semantics.md it proves, where one applies.

#[path = "../support/mod.rs"]
mod support;

mod backends;
mod capabilities;
mod groups;
mod jobs;
mod lua;
mod manifest;
mod probe;
mod processes;
mod properties;
mod services;

use rippy::catalog::Catalog;
use rippy::process::{Caller, Event, ExitReason, Node, Pid};
use rippy::registry::Registry;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use probe::{Probe, Report};
use support::within;

/// A booted test manifest with probe processes and a channel of their reports.
pub struct Rt {
    pub registry: Registry,
    pub rx: UnboundedReceiver<Report>,
    _dir: tempfile::TempDir,
}

impl Rt {
    /// Boots a manifest with a host `t:host` and a probe entry `t:probe`,
    /// plus `extra` entries (YAML list items).
    pub fn boot(extra: &str) -> Rt {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            r#"version: "1.0"
namespace: t
entries:
  - name: host
    kind: process.host
    workers: 2
  - name: probe
    kind: process.rust
    source: file://tests/probe.rs
    method: run
  - name: db
    kind: db.sql.sqlite
    file: {db}
{extra}"#,
            db = dir.path().join("t.db").display()
        );
        let (tx, rx) = unbounded_channel();
        let catalog = Catalog::new().process("file://tests/probe.rs", "run", move |args| {
            Probe::new(tx.clone(), args)
        });
        let manifest = support::parse(&text);
        let registry = Registry::boot(manifest, &catalog).unwrap_or_else(|e| panic!("boot: {e}"));
        Rt {
            registry,
            rx,
            _dir: dir,
        }
    }

    pub fn node(&self) -> &Arc<Node> {
        self.registry.node()
    }

    /// Spawns a trusted probe.
    pub fn spawn(&self, args: Value) -> Pid {
        self.node()
            .spawn(Caller::Trusted, "t:probe", "t:host", args)
            .expect("spawn")
    }

    /// The next report.
    pub async fn next(&mut self) -> Report {
        within("a probe report", self.rx.recv())
            .await
            .expect("report channel open")
    }

    /// Skips reports until `pick` returns something.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&Report) -> Option<T>) -> T {
        loop {
            let r = self.next().await;
            if let Some(t) = pick(&r) {
                return t;
            }
        }
    }

    /// Waits for `pid`'s init report.
    pub async fn init_of(&mut self, pid: &Pid) {
        self.until(|r| matches!(r, Report::Init(p) if p == pid).then_some(()))
            .await
    }

    /// Waits for the EXIT `watcher` receives about `target`.
    pub async fn exit_seen_by(&mut self, watcher: &Pid, target: &Pid) -> ExitReason {
        self.until(|r| match r {
            Report::Event(w, Event::Exit { from, reason }) if w == watcher && from == target => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await
    }
}
