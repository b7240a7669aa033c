//! The node: the table of live processes, their names and monitors, and
//! the process entries and hosts a spawn may name (added by the registry as
//! it boots them). It knows no other kind of entry.
//!
//! Invariants:
//! - A pid is in the table from the moment `spawn` returns until its actor
//!   has stopped; removal happens once, under the shard lock, and that removal
//!   is what sends `EXIT` to every monitor, so each monitor gets exactly one.
//! - A name maps to a live pid; it is removed when its process ends.
//! - No two locks are held at once, except `names` then one shard in
//!   `register`, an order nothing else reverses.
//! - Each slot remembers the entry it is an instance of and the process that
//!   spawned it, so `terminate` decides "my child?" in O(1) without the
//!   parent keeping a list.
//! - Every policy check of the process layer goes through `Node::authorize`,
//!   which counts a refusal in `rippy_denials_total{action,entry}`. The node's
//!   `pub` methods are for the embedding program (the registry, tests); actor
//!   code never sees a `Node`, only its context.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::oneshot;

pub use super::delivery::{Caller, SendError, SpawnError, Target};
pub(crate) use super::delivery::{Mailbox, Refused};
use super::group::Group;
use super::pid::PidMap;
use super::{Event, ExitReason, Message, Payload, Pid, ProcessHost, ProcessSpec, Topic};
use crate::component::LookupError;
use crate::metrics::Metrics;
use crate::security::{Denied, Identity, actions};

/// The `entry` label of a refusal for a call from the embedding program.
const EXTERNAL: &str = "external";

const SHARDS: usize = 32;

struct Slot {
    mailbox: Arc<dyn Mailbox>,
    /// The entry this process is an instance of (`None`: a WebSocket client).
    entry: Option<Arc<str>>,
    /// The process that spawned this one, if any.
    parent: Option<Pid>,
    name: Option<String>,
    /// Processes that monitor this one.
    watchers: Vec<Pid>,
    /// Processes this one monitors.
    watching: Vec<Pid>,
    /// Code outside any process waiting for this one to end.
    listeners: Vec<oneshot::Sender<ExitReason>>,
    /// Broadcast groups this pid is a member of (see `group`).
    groups: Vec<Arc<Group>>,
}

/// A resolved recipient: sends without a table lookup (for fan-out).
#[derive(Clone)]
pub struct ProcessRef {
    pid: Pid,
    mailbox: Arc<dyn Mailbox>,
    node: Arc<Node>,
}

impl ProcessRef {
    /// The pid this handle sends to.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Sends a message; a refusal is counted like any dropped send.
    pub fn send(
        &self,
        from: Option<&Pid>,
        topic: Topic,
        payload: Payload,
    ) -> Result<(), SendError> {
        let event = Event::Message(Message {
            from: from.cloned(),
            topic,
            payload,
        });
        self.node.deliver_to(&self.pid, &self.mailbox, event)
    }

    /// [`send`](Self::send) of one message of a broadcast, borrowed.
    pub(crate) fn send_shared(
        &self,
        from: &Pid,
        topic: &Topic,
        payload: &Payload,
    ) -> Result<(), SendError> {
        let delivered = self.mailbox.deliver_shared(from, topic, payload);
        self.node.refused(&self.pid, delivered)
    }
}

impl fmt::Debug for ProcessRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcessRef({})", self.pid)
    }
}

/// Counts of what the node holds and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Live processes.
    pub processes: usize,
    /// Registered names.
    pub names: usize,
    /// Monitors in place.
    pub monitors: usize,
    /// The same links seen from the watchers' side (each process's list of
    /// pids it monitors); equal to `monitors` whenever the table is sound.
    pub watching: usize,
    /// Sends dropped because the recipient was dead or unknown.
    pub dropped_dead: u64,
    /// Sends dropped because the recipient's mailbox was full.
    pub dropped_full: u64,
}

/// The process table of one runtime.
pub struct Node {
    shards: Vec<Mutex<PidMap<Slot>>>,
    names: RwLock<HashMap<String, Pid>>,
    /// Broadcast groups by registered name (see `group`); a group stays
    /// while its name may be registered again.
    groups: RwLock<HashMap<String, Arc<Group>>>,
    /// What spawns may name: process entries and hosts, added at boot.
    specs: RwLock<HashMap<String, Arc<ProcessSpec>>>,
    hosts: RwLock<HashMap<String, Arc<ProcessHost>>>,
    metrics: Metrics,
    dropped_dead: AtomicU64,
    dropped_full: AtomicU64,
    dropped_conflated: AtomicU64,
}

impl Node {
    /// An empty node; the registry adds the process entries and hosts it
    /// boots (`Node::add_spec`, `Node::add_host`, crate-internal).
    pub fn new() -> Arc<Self> {
        Arc::new(Node {
            shards: (0..SHARDS).map(|_| Mutex::new(PidMap::default())).collect(),
            names: RwLock::new(HashMap::new()),
            groups: RwLock::default(),
            specs: RwLock::default(),
            hosts: RwLock::default(),
            metrics: Metrics::default(),
            dropped_dead: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
            dropped_conflated: AtomicU64::new(0),
        })
    }

    /// Makes process entry `id` spawnable.
    pub(crate) fn add_spec(&self, id: &str, spec: Arc<ProcessSpec>) {
        self.specs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), spec);
    }

    /// Makes host `id` a place to spawn on.
    pub(crate) fn add_host(&self, id: &str, host: Arc<ProcessHost>) {
        self.hosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), host);
    }

    /// The process entry `id`.
    pub(crate) fn spec(&self, id: &str) -> Result<Arc<ProcessSpec>, LookupError> {
        let specs = self.specs.read().unwrap_or_else(|e| e.into_inner());
        specs.get(id).cloned().ok_or_else(|| LookupError::Missing {
            id: id.to_owned(),
            expected: "ProcessSpec",
        })
    }

    /// The host `id`.
    pub(crate) fn host(&self, id: &str) -> Result<Arc<ProcessHost>, LookupError> {
        let hosts = self.hosts.read().unwrap_or_else(|e| e.into_inner());
        hosts.get(id).cloned().ok_or_else(|| LookupError::Missing {
            id: id.to_owned(),
            expected: "ProcessHost",
        })
    }

    /// Every spawnable process entry, by id.
    pub(crate) fn specs(&self) -> Vec<(String, Arc<ProcessSpec>)> {
        let specs = self.specs.read().unwrap_or_else(|e| e.into_inner());
        specs
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect()
    }

    /// The runtime's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The table shard of `pid`. Ids count up per host, so the low bits
    /// of the id spread a host's processes over the shards evenly, without
    /// hashing the pid a second time (the shard's map hashes it); pids of
    /// two hosts with one id share a lock, nothing else.
    fn shard(&self, pid: &Pid) -> MutexGuard<'_, PidMap<Slot>> {
        let i = (pid.id() % SHARDS as u64) as usize;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `action` on `resource` for `identity` (none: trusted, always
    /// allowed) on behalf of code of `entry`; a refusal is counted and names
    /// all four.
    pub(crate) fn authorize(
        &self,
        identity: Option<&Identity>,
        entry: &str,
        action: &'static str,
        resource: &str,
    ) -> Result<(), Denied> {
        let Some(identity) = identity else {
            return Ok(());
        };
        identity.check(action, resource).map_err(|mut denied| {
            self.metrics.denial(action, entry);
            if entry != EXTERNAL {
                denied.entry = Some(entry.to_owned());
            }
            log::warn!("denied {denied}");
            denied
        })
    }

    /// Spawns an instance of process entry `entry` on host `host`.
    ///
    /// An identity must be allowed `process.spawn` on the entry and
    /// `process.host` on the host.
    pub fn spawn(
        self: &Arc<Self>,
        caller: Caller<'_>,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        self.spawn_as(EXTERNAL, None, caller.identity(), entry, host, args, None)
    }

    /// Spawns and makes `watcher` monitor the new process in one step: the
    /// monitor is in place before the process runs, so even an exit in
    /// `init` reaches the watcher with its real reason.
    pub fn spawn_monitored(
        self: &Arc<Self>,
        watcher: &Pid,
        caller: Caller<'_>,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        self.spawn_as(
            EXTERNAL,
            None,
            caller.identity(),
            entry,
            host,
            args,
            Some(watcher),
        )
    }

    /// Spawns for code of entry `by` (the process `parent`, if a process),
    /// acting as `identity` (none: trusted). The child keeps the identity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn_as(
        self: &Arc<Self>,
        by: &str,
        parent: Option<&Pid>,
        identity: Option<&Arc<Identity>>,
        entry: &str,
        host: &str,
        args: serde_json::Value,
        watcher: Option<&Pid>,
    ) -> Result<Pid, SpawnError> {
        self.authorize(identity.map(|i| &**i), by, actions::PROCESS_SPAWN, entry)
            .map_err(SpawnError::Denied)?;
        self.authorize(identity.map(|i| &**i), by, actions::PROCESS_HOST, host)
            .map_err(SpawnError::Denied)?;
        let spec = self.spec(entry).map_err(SpawnError::Lookup)?;
        let host = self.host(host).map_err(SpawnError::Lookup)?;
        host.spawn(self, spec, args, identity.cloned(), watcher, parent)
    }

    /// Ends `target` with [`ExitReason::Killed`] on behalf of process `by`
    /// (an instance of `entry`, acting as `identity`): allowed when `by`
    /// spawned it, or when the identity may `process.terminate` the target's
    /// entry id (the host id for a WebSocket client); trusted code always may.
    /// Returns whether the target was alive.
    pub(crate) fn terminate(
        &self,
        by: &Pid,
        entry: &str,
        identity: Option<&Identity>,
        target: &Pid,
    ) -> Result<bool, Denied> {
        let found = self.shard(target).get(target).map(|slot| {
            (
                slot.mailbox.clone(),
                slot.parent.as_ref() == Some(by),
                slot.entry.clone(),
            )
        });
        let Some((mailbox, child, target_entry)) = found else {
            return Ok(false);
        };
        if !child {
            let resource = target_entry.as_deref().unwrap_or(target.host());
            self.authorize(identity, entry, actions::PROCESS_TERMINATE, resource)?;
        }
        mailbox.kill();
        Ok(true)
    }

    /// Adds a live pid, optionally already monitored by `watcher`; `entry`
    /// and `parent` say what it is and who spawned it.
    pub(crate) fn insert(
        &self,
        pid: Pid,
        mailbox: Arc<dyn Mailbox>,
        watcher: Option<&Pid>,
        entry: Option<Arc<str>>,
        parent: Option<&Pid>,
    ) {
        self.shard(&pid).insert(
            pid.clone(),
            Slot {
                mailbox,
                entry,
                parent: parent.cloned(),
                name: None,
                watchers: watcher.into_iter().cloned().collect(),
                watching: Vec::new(),
                listeners: Vec::new(),
                groups: Vec::new(),
            },
        );
        if let Some(w) = watcher
            && let Some(slot) = self.shard(w).get_mut(w)
        {
            slot.watching.push(pid);
        }
    }

    /// Whether `pid` is alive.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.shard(pid).contains_key(pid)
    }

    /// The pid registered under `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Resolves a pid to a handle that sends without a table lookup.
    pub fn resolve(self: &Arc<Self>, pid: &Pid) -> Option<ProcessRef> {
        let mailbox = self.shard(pid).get(pid)?.mailbox.clone();
        Some(ProcessRef {
            pid: pid.clone(),
            mailbox,
            node: self.clone(),
        })
    }

    /// Sends `topic` + `payload` to a pid or registered name. A send to a
    /// dead pid or unknown name is dropped and counted.
    pub fn send(
        &self,
        from: Option<&Pid>,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        let pid = match to.into() {
            Target::Pid(p) => p,
            Target::Name(n) => match self.whereis(&n) {
                Some(p) => p,
                None => {
                    self.dropped_dead.fetch_add(1, Ordering::Relaxed);
                    return Err(SendError::UnknownName(n));
                }
            },
        };
        let event = Event::Message(Message {
            from: from.cloned(),
            topic: topic.into(),
            payload: payload.into(),
        });
        self.deliver(&pid, event)
    }

    fn deliver(&self, pid: &Pid, event: Event) -> Result<(), SendError> {
        let mailbox = self.shard(pid).get(pid).map(|s| s.mailbox.clone());
        match mailbox {
            Some(mailbox) => self.deliver_to(pid, &mailbox, event),
            None => {
                self.dropped_dead.fetch_add(1, Ordering::Relaxed);
                Err(SendError::DeadPid(pid.clone()))
            }
        }
    }

    fn deliver_to(
        &self,
        pid: &Pid,
        mailbox: &Arc<dyn Mailbox>,
        event: Event,
    ) -> Result<(), SendError> {
        self.refused(pid, mailbox.deliver(event))
    }

    /// A mailbox's answer as a send's, a refusal counted.
    fn refused(&self, pid: &Pid, delivered: Result<(), Refused>) -> Result<(), SendError> {
        match delivered {
            Ok(()) => Ok(()),
            Err(Refused::Dead) => {
                self.dropped_dead.fetch_add(1, Ordering::Relaxed);
                Err(SendError::DeadPid(pid.clone()))
            }
            Err(Refused::Full) => {
                self.dropped_full.fetch_add(1, Ordering::Relaxed);
                Err(SendError::MailboxFull(pid.clone()))
            }
        }
    }

    /// Registers `name` for `pid`. Fails if the name is taken, the pid already
    /// has a name, or the pid is dead.
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), String> {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(owner) = names.get(name) {
            return Err(format!("name {name:?} is already registered to {owner}"));
        }
        let mut shard = self.shard(pid);
        let Some(slot) = shard.get_mut(pid) else {
            return Err(format!("cannot register {name:?}: no live process {pid}"));
        };
        if let Some(existing) = &slot.name {
            return Err(format!("{pid} is already registered as {existing:?}"));
        }
        slot.name = Some(name.to_owned());
        names.insert(name.to_owned(), pid.clone());
        Ok(())
    }

    /// Removes `name` if it is registered to `pid`.
    pub fn unregister(&self, name: &str, pid: &Pid) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if names.get(name) == Some(pid) {
            names.remove(name);
            if let Some(slot) = self.shard(pid).get_mut(pid) {
                slot.name = None;
            }
        }
    }

    /// `watcher` will get one `EXIT` when `target` ends; at once if it is
    /// already dead.
    pub fn monitor(&self, watcher: &Pid, target: &Pid) {
        if watcher == target {
            return;
        }
        let added = match self.shard(target).get_mut(target) {
            Some(slot) => {
                slot.watchers.push(watcher.clone());
                true
            }
            None => false,
        };
        if added {
            if let Some(slot) = self.shard(watcher).get_mut(watcher) {
                slot.watching.push(target.clone());
            }
        } else {
            let _ = self.deliver(
                watcher,
                Event::Exit {
                    from: target.clone(),
                    reason: ExitReason::NoProcess,
                },
            );
        }
    }

    /// Resolves when `pid` ends, with its exit reason; at once with
    /// [`ExitReason::NoProcess`] if it is not alive. For code outside any
    /// process (the registry, tests); processes use monitors.
    pub fn wait_exit(&self, pid: &Pid) -> impl std::future::Future<Output = ExitReason> + use<> {
        let (tx, rx) = oneshot::channel();
        match self.shard(pid).get_mut(pid) {
            Some(slot) => slot.listeners.push(tx),
            None => {
                let _ = tx.send(ExitReason::NoProcess);
            }
        }
        async move { rx.await.unwrap_or(ExitReason::NoProcess) }
    }

    /// Removes one monitor of `target` by `watcher`.
    pub fn demonitor(&self, watcher: &Pid, target: &Pid) {
        if let Some(slot) = self.shard(target).get_mut(target) {
            remove_one(&mut slot.watchers, watcher);
        }
        if let Some(slot) = self.shard(watcher).get_mut(watcher) {
            remove_one(&mut slot.watching, target);
        }
    }

    fn group(&self, name: &str) -> Arc<Group> {
        if let Some(group) = self
            .groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return group.clone();
        }
        self.groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Enrols `member` in the broadcast group of `name` (see `group`): it
    /// gets the group's kept message now and every publish after it, until
    /// it exits or leaves. Returns false if it is dead or already a member.
    pub fn join(self: &Arc<Self>, name: &str, member: &Pid) -> bool {
        let group = self.group(name);
        let mailbox = {
            let mut shard = self.shard(member);
            let Some(slot) = shard.get_mut(member) else {
                return false;
            };
            if slot.groups.iter().any(|g| Arc::ptr_eq(g, &group)) {
                return false;
            }
            slot.groups.push(group.clone());
            slot.mailbox.clone()
        };
        group.join(ProcessRef {
            pid: member.clone(),
            mailbox,
            node: self.clone(),
        })
    }

    /// Takes `member` out of the group of `name`; returns whether it was in.
    pub fn leave(&self, name: &str, member: &Pid) -> bool {
        let Some(group) = self
            .groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
        else {
            return false;
        };
        if let Some(slot) = self.shard(member).get_mut(member) {
            slot.groups.retain(|g| !Arc::ptr_eq(g, &group));
        }
        group.leave(member)
    }

    /// Publishes to the group of `name` as `from` and keeps the message
    /// (callers check that `from` holds the name). Returns how many members
    /// it reached.
    pub(crate) fn publish(
        &self,
        name: &str,
        from: &Pid,
        topic: Topic,
        payload: Payload,
        keep: bool,
    ) -> usize {
        self.group(name).publish(from, topic, payload, keep)
    }

    /// Members of the group of `name`.
    pub fn group_members(&self, name: &str) -> usize {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map_or(0, |g| g.len())
    }

    /// Removes `pid` and notifies its monitors. Called once per process, by
    /// the process's own actor when it has stopped.
    pub(crate) fn exit(&self, pid: &Pid, reason: &ExitReason) {
        let slot = {
            let mut shard = self.shard(pid);
            let slot = shard.remove(pid);
            compact(&mut shard);
            slot
        };
        let Some(slot) = slot else {
            return;
        };
        if let Some(name) = &slot.name {
            let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
            if names.get(name) == Some(pid) {
                names.remove(name);
            }
            drop(names);
            let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
            if let Some(group) = groups.get(name) {
                group.forget();
            }
        }
        for target in &slot.watching {
            if let Some(t) = self.shard(target).get_mut(target) {
                remove_one(&mut t.watchers, pid);
            }
        }
        for group in &slot.groups {
            group.leave(pid);
        }
        for listener in slot.listeners {
            let _ = listener.send(reason.clone());
        }
        for watcher in slot.watchers {
            // The EXIT uses the monitor up: the watcher no longer watches
            // this pid (a watcher that never demonitors would otherwise keep
            // every pid it ever watched).
            if let Some(w) = self.shard(&watcher).get_mut(&watcher) {
                remove_one(&mut w.watching, pid);
            }
            let _ = self.deliver(
                &watcher,
                Event::Exit {
                    from: pid.clone(),
                    reason: reason.clone(),
                },
            );
        }
    }

    /// Ends `pid` with [`ExitReason::Killed`]. Returns whether it was alive.
    pub fn kill(&self, pid: &Pid) -> bool {
        let mailbox = self.shard(pid).get(pid).map(|s| s.mailbox.clone());
        match mailbox {
            Some(m) => {
                m.kill();
                true
            }
            None => false,
        }
    }

    /// Asks `pid` to shut down.
    pub fn shutdown_process(&self, pid: &Pid) {
        let mailbox = self.shard(pid).get(pid).map(|s| s.mailbox.clone());
        if let Some(m) = mailbox {
            m.shutdown();
        }
    }

    /// Every live pid whose host is `host`.
    pub fn pids_on(&self, host: &str) -> Vec<Pid> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.keys().filter(|p| p.host() == host).cloned());
        }
        out
    }

    /// Counts a frame dropped because a newer one replaced it (conflation).
    pub(crate) fn count_conflated(&self, n: u64) {
        self.dropped_conflated.fetch_add(n, Ordering::Relaxed);
    }

    /// Dropped-message counters by reason: `dead`, `full`, `conflated`.
    pub fn dropped(&self) -> [(&'static str, u64); 3] {
        [
            ("dead", self.dropped_dead.load(Ordering::Relaxed)),
            ("full", self.dropped_full.load(Ordering::Relaxed)),
            ("conflated", self.dropped_conflated.load(Ordering::Relaxed)),
        ]
    }

    /// How many processes the node holds now: one short lock per shard,
    /// without walking the processes as [`Node::stats`] does.
    pub fn process_count(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// What the node holds now.
    pub fn stats(&self) -> NodeStats {
        let mut stats = NodeStats {
            names: self.names.read().unwrap_or_else(|e| e.into_inner()).len(),
            dropped_dead: self.dropped_dead.load(Ordering::Relaxed),
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            ..Default::default()
        };
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            stats.processes += shard.len();
            stats.monitors += shard.values().map(|s| s.watchers.len()).sum::<usize>();
            stats.watching += shard.values().map(|s| s.watching.len()).sum::<usize>();
        }
        stats
    }
}

fn remove_one(list: &mut Vec<Pid>, pid: &Pid) {
    if let Some(i) = list.iter().position(|p| p == pid) {
        list.swap_remove(i);
        // The ticker's list of watchers grows with a burst of clients; give
        // the room back once it is mostly empty (amortised O(1) per removal).
        if list.capacity() > 64 && list.len() * 4 < list.capacity() {
            list.shrink_to(list.len() * 2);
        }
    }
}

/// Gives a table's room back once a burst has left it mostly empty: a
/// hash table never shrinks by itself. Amortised O(1) per removal.
/// (The floor is per table: the process table has 32 shards, and 32 tables
/// left at 256 slots of about 200 bytes would keep 1.6 MB.)
pub(crate) fn compact<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
) {
    if map.capacity() > 32 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}
