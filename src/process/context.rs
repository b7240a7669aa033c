//! What a process can do from inside a hook: send, name, monitor, spawn, set
//! timers, and use the runtime modules its entry declared.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::{AsyncContext, Context};

use super::actor::{ActorState, ProcessActor};
use super::node::ProcessRef;
use super::{Caller, Node, Payload, Pid, SendError, SpawnError, Target, Topic};
use crate::component::{Components, LookupError};
use crate::security::{Identity, TokenStore};
use crate::sql::SqliteDb;
use crate::store::MemoryStore;

/// Identifies a timer of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

/// A module used without being declared, or a module entry that is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    /// The entry did not list the module in `modules`.
    Undeclared {
        /// The entry that used the module.
        entry: String,
        /// The module it used.
        module: String,
        /// The modules it declared.
        declared: Vec<String>,
    },
    /// The entry the module was asked for is missing or of another kind.
    Lookup(LookupError),
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleError::Undeclared {
                entry,
                module,
                declared,
            } => write!(
                f,
                "entry {entry} used module `{module}` without declaring it in `modules` (declared: [{}])",
                declared.join(", ")
            ),
            ModuleError::Lookup(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ModuleError {}

/// The runtime modules an entry declared, and access to each.
///
/// Shared by processes and functions: every accessor first checks that the
/// module is in the entry's `modules` list.
pub struct Modules<'a> {
    pub(crate) entry: &'a str,
    pub(crate) declared: &'a [String],
    pub(crate) components: &'a Components,
}

impl Modules<'_> {
    /// Fails unless `module` is declared.
    pub fn require(&self, module: &str) -> Result<(), ModuleError> {
        if self.declared.iter().any(|m| m == module) {
            Ok(())
        } else {
            Err(ModuleError::Undeclared {
                entry: self.entry.to_owned(),
                module: module.to_owned(),
                declared: self.declared.to_vec(),
            })
        }
    }

    /// The `db.sql.sqlite` entry `id` (module `sql`).
    pub fn sql(&self, id: &str) -> Result<Arc<SqliteDb>, ModuleError> {
        self.require("sql")?;
        self.components.get(id).map_err(ModuleError::Lookup)
    }

    /// The `security.token_store` entry `id` (module `security`).
    pub fn tokens(&self, id: &str) -> Result<Arc<TokenStore>, ModuleError> {
        self.require("security")?;
        self.components.get(id).map_err(ModuleError::Lookup)
    }

    /// The `store.memory` entry `id` (module `store`).
    pub fn store(&self, id: &str) -> Result<Arc<MemoryStore>, ModuleError> {
        self.require("store")?;
        self.components.get(id).map_err(ModuleError::Lookup)
    }

    /// Random bytes (module `crypto`).
    pub fn random_bytes(&self, n: usize) -> Result<Vec<u8>, ModuleError> {
        self.require("crypto")?;
        use rand::RngCore;
        let mut buf = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut buf);
        Ok(buf)
    }

    /// Unix time in milliseconds (module `time`).
    pub fn now_ms(&self) -> Result<u64, ModuleError> {
        self.require("time")?;
        Ok(crate::util::unix_ms())
    }
}

/// A process's view of the runtime during one hook.
pub struct ProcessContext<'a> {
    state: &'a mut ActorState,
    actix: &'a mut Context<ProcessActor>,
}

impl<'a> ProcessContext<'a> {
    pub(crate) fn new(state: &'a mut ActorState, actix: &'a mut Context<ProcessActor>) -> Self {
        ProcessContext { state, actix }
    }

    pub(crate) fn state_mut(&mut self) -> &mut ActorState {
        self.state
    }

    /// This process's pid.
    pub fn pid(&self) -> &Pid {
        &self.state.pid
    }

    /// The id of the `process.rust` entry this process is an instance of.
    pub fn entry(&self) -> &str {
        &self.state.spec.id
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Arc<Node> {
        &self.state.node
    }

    /// The identity this process acts with; `None` for trusted processes.
    pub fn identity(&self) -> Option<&Identity> {
        self.state.identity.as_deref()
    }

    /// The modules this process declared.
    pub fn modules(&self) -> Modules<'_> {
        Modules {
            entry: &self.state.spec.id,
            declared: &self.state.spec.modules,
            components: self.state.node.components(),
        }
    }

    /// Sends a message; a dead pid or unknown name drops it (and counts it).
    pub fn send(
        &self,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        self.state
            .node
            .send(Some(&self.state.pid), to, topic, payload)
    }

    /// Resolves a pid once, for repeated sends without a table lookup.
    pub fn resolve(&self, pid: &Pid) -> Option<ProcessRef> {
        self.state.node.resolve(pid)
    }

    /// Registers this process under `name` until it exits.
    pub fn register(&self, name: &str) -> Result<(), super::ProcessError> {
        self.state
            .node
            .register(name, &self.state.pid)
            .map_err(super::ProcessError)
    }

    /// Removes this process's name.
    pub fn unregister(&self, name: &str) {
        self.state.node.unregister(name, &self.state.pid);
    }

    /// Delivers one `EXIT` when `target` ends (at once if already dead).
    pub fn monitor(&self, target: &Pid) {
        self.state.node.monitor(&self.state.pid, target);
    }

    /// Cancels one monitor of `target`.
    pub fn demonitor(&self, target: &Pid) {
        self.state.node.demonitor(&self.state.pid, target);
    }

    /// Spawns a process with this process's identity (trusted if it has none).
    pub fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        let caller = Caller::from(self.state.identity.as_ref());
        self.state.node.spawn(caller, entry, host, args)
    }

    /// Spawns and monitors in one step: no EXIT can be missed.
    pub fn spawn_monitored(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        let caller = Caller::from(self.state.identity.as_ref());
        self.state
            .node
            .spawn_monitored(&self.state.pid, caller, entry, host, args)
    }

    /// A timer that fires every `every`, delivering [`super::Event::Timer`].
    pub fn interval(&mut self, every: Duration) -> TimerId {
        let id = self.next_timer();
        let handle = self
            .actix
            .run_interval(every, move |act, ctx| act.fire_timer(ctx, id, true));
        self.state.timers.insert(id, handle);
        TimerId(id)
    }

    /// A timer that fires once after `delay`.
    pub fn after(&mut self, delay: Duration) -> TimerId {
        let id = self.next_timer();
        let handle = self
            .actix
            .run_later(delay, move |act, ctx| act.fire_timer(ctx, id, false));
        self.state.timers.insert(id, handle);
        TimerId(id)
    }

    /// Cancels a timer; a fired one-shot timer is already gone.
    pub fn cancel_timer(&mut self, timer: TimerId) {
        if let Some(handle) = self.state.timers.remove(&timer.0) {
            self.actix.cancel_future(handle);
        }
    }

    fn next_timer(&mut self) -> u64 {
        self.state.next_timer += 1;
        self.state.next_timer
    }
}
