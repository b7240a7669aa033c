//! What a process can do from inside a hook: send, name, monitor, spawn,
//! terminate, set timers, count, and use the modules its entry lists.
//!
//! The context is the whole of the world actor code can reach; there is no
//! way from it to the node or to the table of booted entries. The rules it
//! enforces (docs/semantics.md §8):
//! - Modules: [`ProcessContext::modules`] gives exactly the entry's
//!   capabilities, resolved at boot (see `modules.rs`).
//! - Trust: a process without an identity (one the registry started, or one
//!   such a process spawned) is trusted; a process with an identity acts as
//!   it, and its children inherit it. Code cannot choose or forge either.
//! - Checks, for a process with an identity (each refusal an error naming
//!   action, resource, actor and entry, counted in `rippy_denials_total`):
//!   spawn (`process.spawn` on the entry, `process.host` on the host), a send
//!   to or lookup of a registered name (`process.send` on the name),
//!   registering a name (`process.register` on the name), terminating a
//!   process it did not spawn (`process.terminate` on the target's entry).
//!   Sends by pid are not checked: a pid is a capability the process was
//!   given, and the fan-out path stays a lookup-free push.

use std::sync::Arc;
use std::time::Duration;

use actix::{AsyncContext, Context};

use super::actor::{ActorState, ProcessActor};
use super::modules::Modules;
use super::node::ProcessRef;
use super::{Node, Payload, Pid, SendError, SpawnError, Target, Topic};
use crate::metrics::Metrics;
use crate::security::{Denied, Identity, actions};

/// Identifies a timer of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

/// A process's view of the runtime during one hook.
pub struct ProcessContext<'a> {
    state: &'a mut ActorState,
    actix: &'a mut Context<ProcessActor>,
}

impl<'a> ProcessContext<'a> {
    pub(crate) fn new(state: &'a mut ActorState, actix: &'a mut Context<ProcessActor>) -> Self {
        ProcessContext { state, actix }
    }

    /// An owned copy of what this process acts with (see [`Acting`]).
    pub(crate) fn acting(&self) -> Acting {
        Acting {
            node: self.state.node.clone(),
            pid: self.state.pid.clone(),
            spec: self.state.spec.clone(),
            identity: self.state.identity.clone(),
        }
    }

    pub(crate) fn state_mut(&mut self) -> &mut ActorState {
        self.state
    }

    /// The node, for the registry's own processes (supervisors).
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.state.node
    }

    /// This process's pid.
    pub fn pid(&self) -> &Pid {
        &self.state.pid
    }

    /// The id of the `process.rust` entry this process is an instance of.
    pub fn entry(&self) -> &str {
        &self.state.spec.id
    }

    /// The identity this process acts with; `None` for trusted processes.
    pub fn identity(&self) -> Option<&Identity> {
        self.state.identity.as_deref()
    }

    /// The modules this process's entry lists.
    pub fn modules(&self) -> Modules<'_> {
        Modules::new(
            &self.state.spec.caps,
            &self.state.node,
            self.state.identity.as_ref(),
        )
    }

    /// The runtime's metrics: any process may add gauges and counters and
    /// count auth failures (metrics are not a capability).
    pub fn metrics(&self) -> &Metrics {
        self.state.node.metrics()
    }

    fn authorize(&self, action: &'static str, resource: &str) -> Result<(), Denied> {
        self.state.node.authorize(
            self.state.identity.as_deref(),
            &self.state.spec.id,
            action,
            resource,
        )
    }

    /// Sends a message; a dead pid or unknown name drops it (and counts it).
    /// A send to a registered name needs `process.send` on the name.
    pub fn send(
        &self,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        let to = to.into();
        if let Target::Name(name) = &to {
            self.authorize(actions::PROCESS_SEND, name)
                .map_err(SendError::Denied)?;
        }
        self.state
            .node
            .send(Some(&self.state.pid), to, topic, payload)
    }

    /// The pid registered under `name` (needs `process.send` on the name:
    /// the pid is what a send needs).
    pub fn whereis(&self, name: &str) -> Result<Option<Pid>, Denied> {
        self.authorize(actions::PROCESS_SEND, name)?;
        Ok(self.state.node.whereis(name))
    }

    /// Resolves a pid once, for repeated sends without a table lookup.
    pub fn resolve(&self, pid: &Pid) -> Option<ProcessRef> {
        self.state.node.resolve(pid)
    }

    /// Registers this process under `name` until it exits (needs
    /// `process.register` on the name).
    pub fn register(&self, name: &str) -> Result<(), super::ProcessError> {
        self.authorize(actions::PROCESS_REGISTER, name)?;
        self.state
            .node
            .register(name, &self.state.pid)
            .map_err(super::ProcessError)
    }

    /// Removes this process's name.
    pub fn unregister(&self, name: &str) {
        self.state.node.unregister(name, &self.state.pid);
    }

    /// Enrols `member` (this process or one it addresses, such as its
    /// WebSocket client) in the broadcast group of `name`: it gets the last
    /// message published there at once, then every publish, until it exits
    /// or leaves. Needs `process.send` on the name. Returns false if the
    /// member is dead or already in. See [`ProcessContext::publish`].
    pub fn join(&self, name: &str, member: &Pid) -> Result<bool, Denied> {
        self.authorize(actions::PROCESS_SEND, name)?;
        Ok(self.state.node.join(name, member))
    }

    /// Takes `member` out of the group of `name`.
    pub fn leave(&self, name: &str, member: &Pid) -> Result<bool, Denied> {
        self.authorize(actions::PROCESS_SEND, name)?;
        Ok(self.state.node.leave(name, member))
    }

    /// Sends a message to every member of the group of `name` and keeps it
    /// for members that join later. Only the process registered under
    /// `name` publishes there; it never hears of members joining or
    /// leaving. Returns how many members it reached.
    pub fn publish(
        &self,
        name: &str,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<usize, super::ProcessError> {
        self.publish_to(name, topic.into(), payload.into(), true)
    }

    /// [`ProcessContext::publish`] without keeping the message: a notice
    /// for the members there are now, not for those who join later.
    pub fn broadcast(
        &self,
        name: &str,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<usize, super::ProcessError> {
        self.publish_to(name, topic.into(), payload.into(), false)
    }

    fn publish_to(
        &self,
        name: &str,
        topic: Topic,
        payload: Payload,
        keep: bool,
    ) -> Result<usize, super::ProcessError> {
        if self.state.node.whereis(name).as_ref() != Some(&self.state.pid) {
            return Err(super::ProcessError(format!(
                "cannot publish to {name:?}: this process is not registered under it"
            )));
        }
        Ok(self
            .state
            .node
            .publish(name, &self.state.pid, topic, payload, keep))
    }

    /// Delivers one `EXIT` when `target` ends (at once if already dead).
    pub fn monitor(&self, target: &Pid) {
        self.state.node.monitor(&self.state.pid, target);
    }

    /// Cancels one monitor of `target`.
    pub fn demonitor(&self, target: &Pid) {
        self.state.node.demonitor(&self.state.pid, target);
    }

    /// Ends `target` with `Killed` (Wippy's `process.terminate`): allowed for
    /// a process this one spawned, else only with `process.terminate` on the
    /// target's entry id. Returns whether it was alive.
    pub fn terminate(&self, target: &Pid) -> Result<bool, Denied> {
        self.state.node.terminate(
            &self.state.pid,
            &self.state.spec.id,
            self.state.identity.as_deref(),
            target,
        )
    }

    /// Spawns a process with this process's identity (trusted if it has none).
    pub fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        self.spawn_inner(entry, host, args, false)
    }

    /// Spawns and monitors in one step: no EXIT can be missed.
    pub fn spawn_monitored(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        self.spawn_inner(entry, host, args, true)
    }

    fn spawn_inner(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
        monitored: bool,
    ) -> Result<Pid, SpawnError> {
        let me = &self.state.pid;
        self.state.node.spawn_as(
            &self.state.spec.id,
            Some(me),
            self.state.identity.as_ref(),
            entry,
            host,
            args,
            monitored.then_some(me),
        )
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

/// An owned copy of a process's acting rights (node, pid, entry, identity):
/// the same checked operations as [`ProcessContext`] minus timers, for code
/// that holds them beyond one hook (the Lua layer's module functions, which
/// only ever run inside this process's hooks).
#[derive(Clone)]
pub(crate) struct Acting {
    node: Arc<Node>,
    pid: Pid,
    spec: Arc<super::ProcessSpec>,
    identity: Option<Arc<crate::security::Identity>>,
}

impl Acting {
    fn authorize(&self, action: &'static str, resource: &str) -> Result<(), Denied> {
        self.node
            .authorize(self.identity.as_deref(), &self.spec.id, action, resource)
    }

    /// This process's pid.
    pub(crate) fn pid(&self) -> &Pid {
        &self.pid
    }

    /// The entry id.
    pub(crate) fn entry(&self) -> &str {
        &self.spec.id
    }

    /// See [`ProcessContext::modules`].
    pub(crate) fn modules(&self) -> Modules<'_> {
        Modules::new(&self.spec.caps, &self.node, self.identity.as_ref())
    }

    /// See [`ProcessContext::send`].
    pub(crate) fn send(&self, to: Target, topic: Topic, payload: Payload) -> Result<(), SendError> {
        if let Target::Name(name) = &to {
            self.authorize(actions::PROCESS_SEND, name)
                .map_err(SendError::Denied)?;
        }
        self.node.send(Some(&self.pid), to, topic, payload)
    }

    /// See [`ProcessContext::whereis`].
    pub(crate) fn whereis(&self, name: &str) -> Result<Option<Pid>, Denied> {
        self.authorize(actions::PROCESS_SEND, name)?;
        Ok(self.node.whereis(name))
    }

    /// See [`ProcessContext::register`].
    pub(crate) fn register(&self, name: &str) -> Result<(), String> {
        self.authorize(actions::PROCESS_REGISTER, name)
            .map_err(|d| d.to_string())?;
        self.node.register(name, &self.pid)
    }

    /// See [`ProcessContext::monitor`].
    pub(crate) fn monitor(&self, target: &Pid) {
        self.node.monitor(&self.pid, target);
    }

    /// See [`ProcessContext::demonitor`].
    pub(crate) fn demonitor(&self, target: &Pid) {
        self.node.demonitor(&self.pid, target);
    }

    /// See [`ProcessContext::terminate`].
    pub(crate) fn terminate(&self, target: &Pid) -> Result<bool, Denied> {
        self.node
            .terminate(&self.pid, &self.spec.id, self.identity.as_deref(), target)
    }

    /// See [`ProcessContext::spawn`] / [`ProcessContext::spawn_monitored`].
    pub(crate) fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
        monitored: bool,
    ) -> Result<Pid, SpawnError> {
        self.node.spawn_as(
            &self.spec.id,
            Some(&self.pid),
            self.identity.as_ref(),
            entry,
            host,
            args,
            monitored.then_some(&self.pid),
        )
    }
}
