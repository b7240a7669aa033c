//! `process.host` and `process.rust`: where processes run and what they are.
//!
//! A host owns worker threads (actix arbiters) and spreads spawns over them
//! round-robin. A pid is in the node's table before `spawn` returns, so a
//! message sent right after a spawn is never lost, and its actor removes it
//! when it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use actix::{Addr, Arbiter, ArbiterHandle, Context};
use serde::Deserialize;

use super::actor::{ActorMailbox, MAILBOX_CAPACITY, ProcessActor};
use super::modules::Capabilities;
use super::{ExitReason, Node, Pid, ProcessFactory, SpawnError};
use crate::manifest::FieldError;
use crate::manifest::Lifecycle;
use crate::security::Identity;

/// The `process.host` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Worker threads; defaults to the number of cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// Where spawns run: `workers` (default; round-robin over this host's
    /// threads) or `caller` (on the spawning thread when it is an actix
    /// thread, such as an HTTP worker: a connection's handler then lives
    /// beside its socket and their messages never cross threads).
    #[serde(default)]
    pub placement: Placement,
    /// Wippy's nested form: `host: { workers, queue_size }`.
    #[serde(default)]
    pub host: Option<HostTuning>,
}

/// `process.host`'s nested `host` block, as Wippy writes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostTuning {
    /// Worker threads; the same as the flat `workers`.
    #[serde(default)]
    pub workers: Option<usize>,
    /// The most events one process on this host may have queued before
    /// further sends are refused (default 100000). Wippy's host-wide run
    /// queue has no counterpart here: actix arbiters queue without bound.
    #[serde(default)]
    pub queue_size: Option<usize>,
}

impl HostConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let nested = self.host.as_ref();
        if self.workers.is_some() && nested.is_some_and(|h| h.workers.is_some()) {
            errors.push(FieldError::at(
                "host.workers",
                "workers is given twice; write either workers or host.workers",
            ));
        }
        for (field, n) in [
            ("workers", self.workers),
            ("host.workers", nested.and_then(|h| h.workers)),
            ("host.queue_size", nested.and_then(|h| h.queue_size)),
        ] {
            if n == Some(0) {
                errors.push(FieldError::at(field, "expected at least 1, found 0"));
            }
        }
        if let Some(l) = &self.lifecycle {
            errors.extend(l.check());
        }
        errors
    }

    /// Worker threads, from `workers` or `host.workers`.
    pub fn worker_count(&self) -> Option<usize> {
        self.workers
            .or_else(|| self.host.as_ref().and_then(|h| h.workers))
    }
}

/// Where a host runs the processes it spawns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Spawns go to the host's own worker threads, round robin.
    #[default]
    Workers,
    /// Spawns run on the spawning thread (an HTTP worker).
    Caller,
}

/// The `process.rust` and `function.rust` entries: native code from the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustEntryConfig {
    /// The actor file, e.g. `file://actors/ticker.rs`.
    pub source: String,
    /// The catalog method within that file.
    pub method: String,
    /// The runtime modules this code may use.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Fixed arguments passed to every instance (merged under spawn args).
    #[serde(default)]
    pub args: Option<serde_yaml::Value>,
    /// Free-form metadata, kept as written.
    #[serde(default)]
    pub meta: Option<serde_yaml::Value>,
}

const EXIT_LABELS: [&str; 6] = ["normal", "error", "panic", "killed", "shutdown", "noproc"];

/// A booted `process.rust` entry: how to make an instance, what its code
/// may use, and its counters.
pub struct ProcessSpec {
    /// The `process.rust` entry id.
    pub id: String,
    pub(crate) caps: Capabilities,
    pub(crate) factory: ProcessFactory,
    pub(crate) default_args: serde_json::Value,
    live: AtomicI64,
    spawns: AtomicU64,
    exits: [AtomicU64; 6],
}

impl ProcessSpec {
    pub(crate) fn new(
        id: &str,
        caps: Capabilities,
        factory: ProcessFactory,
        default_args: serde_json::Value,
    ) -> Self {
        ProcessSpec {
            id: id.to_owned(),
            caps,
            factory,
            default_args,
            live: AtomicI64::new(0),
            spawns: AtomicU64::new(0),
            exits: Default::default(),
        }
    }

    /// The modules the entry listed.
    pub fn modules(&self) -> &[String] {
        self.caps.declared()
    }

    /// Live instances.
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Instances ever spawned.
    pub fn spawns(&self) -> u64 {
        self.spawns.load(Ordering::Relaxed)
    }

    /// Exits so far by reason label.
    pub fn exits(&self) -> Vec<(&'static str, u64)> {
        EXIT_LABELS
            .iter()
            .zip(&self.exits)
            .map(|(l, c)| (*l, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub(crate) fn count_exit(&self, reason: &ExitReason) {
        let i = EXIT_LABELS
            .iter()
            .position(|l| *l == reason.label())
            .unwrap_or(0);
        self.exits[i].fetch_add(1, Ordering::Relaxed);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    fn merged_args(&self, args: serde_json::Value) -> serde_json::Value {
        match (&self.default_args, args) {
            (serde_json::Value::Object(base), serde_json::Value::Object(over)) => {
                let mut merged = base.clone();
                merged.extend(over);
                serde_json::Value::Object(merged)
            }
            (base, serde_json::Value::Null) => base.clone(),
            (_, args) => args,
        }
    }
}

/// A booted `process.host`.
pub struct ProcessHost {
    id: Arc<str>,
    arbiters: Vec<Arbiter>,
    handles: Vec<ArbiterHandle>,
    next_worker: AtomicUsize,
    next_pid: AtomicU64,
    placement: Placement,
    queue_size: usize,
}

impl ProcessHost {
    /// Starts the worker threads. Must run inside an actix system.
    pub fn start(id: &str, config: &HostConfig) -> Self {
        let workers = config
            .worker_count()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(|a| a.handle()).collect();
        for handle in &handles {
            crate::memory::register_thread(handle.clone());
        }
        ProcessHost {
            id: id.into(),
            arbiters,
            handles,
            next_worker: AtomicUsize::new(0),
            next_pid: AtomicU64::new(0),
            placement: config.placement,
            queue_size: config
                .host
                .as_ref()
                .and_then(|h| h.queue_size)
                .unwrap_or(MAILBOX_CAPACITY),
        }
    }

    /// This host's entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.handles.len()
    }

    pub(crate) fn spawn(
        &self,
        node: &Arc<Node>,
        spec: Arc<ProcessSpec>,
        args: serde_json::Value,
        identity: Option<Arc<Identity>>,
        watcher: Option<&Pid>,
        parent: Option<&Pid>,
    ) -> Result<Pid, SpawnError> {
        let pid = Pid::new(
            self.id.clone(),
            self.next_pid.fetch_add(1, Ordering::Relaxed) + 1,
        );
        let process = (spec.factory)(spec.merged_args(args));
        // The mailbox exists before the actor does, so the pid can be in the
        // table (and receive messages) before the worker thread starts it.
        let (tx, rx) = actix::dev::channel::channel::<ProcessActor>(16);
        let queued = Arc::new(AtomicUsize::new(0));
        let mailbox = ActorMailbox {
            addr: Addr::new(tx),
            queued: queued.clone(),
            capacity: self.queue_size,
        };
        node.insert(
            pid.clone(),
            Arc::new(mailbox),
            watcher,
            Some(spec.caps.entry_arc().clone()),
            parent,
        );
        spec.live.fetch_add(1, Ordering::Relaxed);
        spec.spawns.fetch_add(1, Ordering::Relaxed);
        let actor = ProcessActor::new(
            pid.clone(),
            node.clone(),
            spec.clone(),
            identity,
            process,
            queued,
        );
        if self.placement == Placement::Caller && Arbiter::try_current().is_some() {
            // On the caller's own worker: start it here, not through the
            // arbiter's queue, so it runs in this thread's next turn (a
            // WebSocket handler answers `ws.join` before the `101` leaves).
            Context::with_receiver(rx).run(actor);
            return Ok(pid);
        }
        let arbiter = {
            let worker = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.handles.len();
            self.handles[worker].clone()
        };
        let started = arbiter.spawn_fn(move || {
            Context::with_receiver(rx).run(actor);
        });
        if !started {
            spec.count_exit(&ExitReason::Killed);
            node.exit(&pid, &ExitReason::Killed);
            return Err(SpawnError::HostStopped(self.id.to_string()));
        }
        Ok(pid)
    }

    /// Stops the worker threads; processes still on them end as killed.
    pub fn stop(&self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

impl Drop for ProcessHost {
    fn drop(&mut self) {
        self.stop();
    }
}
