//! Addressing and delivery: what a send names ([`Target`]), what receives it
//! ([`Mailbox`], implemented by process actors and WebSocket clients), who
//! asks for a spawn ([`Caller`]), and why a send or a spawn fails.

use std::fmt;
use std::sync::Arc;

use super::{Event, Message, Payload, Pid, Topic};
use crate::component::LookupError;
use crate::security::{Denied, Identity};

/// Where a message can go: a pid or a registered name.
#[derive(Debug, Clone)]
pub enum Target {
    /// A process by pid.
    Pid(Pid),
    /// A process by registered name.
    Name(String),
}

impl From<Pid> for Target {
    fn from(p: Pid) -> Self {
        Target::Pid(p)
    }
}

impl From<&Pid> for Target {
    fn from(p: &Pid) -> Self {
        Target::Pid(p.clone())
    }
}

impl From<&str> for Target {
    fn from(n: &str) -> Self {
        Target::Name(n.to_owned())
    }
}

impl From<String> for Target {
    fn from(n: String) -> Self {
        Target::Name(n)
    }
}

/// Why a mailbox refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The process has ended.
    Dead,
    /// Its mailbox is at capacity.
    Full,
}

/// Something that can receive events for a pid: a process actor, or the
/// client side of a WebSocket connection.
pub(crate) trait Mailbox: Send + Sync {
    fn deliver(&self, event: Event) -> Result<(), Refused>;
    /// One message of a broadcast, borrowed: a mailbox that can take it
    /// without the event (a relay's client takes shared bytes as they are)
    /// saves a copy of the sender's pid per member.
    fn deliver_shared(&self, from: &Pid, topic: &Topic, payload: &Payload) -> Result<(), Refused> {
        self.deliver(shared_event(from, topic, payload))
    }
    /// Asks the process to shut down (the `on_shutdown` hook).
    fn shutdown(&self);
    /// Ends the process with [`ExitReason::Killed`](super::ExitReason::Killed).
    fn kill(&self);
}

/// The event a broadcast's borrowed message makes for one mailbox.
pub(crate) fn shared_event(from: &Pid, topic: &Topic, payload: &Payload) -> Event {
    Event::Message(Message {
        from: Some(from.clone()),
        topic: topic.clone(),
        payload: payload.clone(),
    })
}

/// Why a send was dropped. Drops are counted; they are never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No live process has this pid.
    DeadPid(Pid),
    /// No process is registered under this name.
    UnknownName(String),
    /// The recipient's mailbox is full.
    MailboxFull(Pid),
    /// The sender's scope may not send to this name.
    Denied(Denied),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::DeadPid(p) => write!(f, "no live process {p}"),
            SendError::UnknownName(n) => write!(f, "no process registered as {n:?}"),
            SendError::MailboxFull(p) => write!(f, "mailbox of {p} is full"),
            SendError::Denied(d) => write!(f, "send denied: {d}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// The caller's scope does not allow it.
    Denied(Denied),
    /// The entry or host id does not name a booted entry of the right kind.
    Lookup(LookupError),
    /// The host has stopped.
    HostStopped(String),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Denied(d) => write!(f, "spawn denied: {d}"),
            SpawnError::Lookup(e) => write!(f, "cannot spawn: {e}"),
            SpawnError::HostStopped(h) => write!(f, "cannot spawn: host {h} has stopped"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// Who is asking, for the embedding program's spawns: `Trusted` (the
/// registry, tests) or an identity whose scope is checked. Code of entries
/// cannot name a `Caller`: its context spawns as the process's own identity.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// Code the registry started, or a test: no scope check.
    Trusted,
    /// Shared, not copied, into every process it spawns.
    Identity(&'a Arc<Identity>),
}

impl<'a> Caller<'a> {
    pub(crate) fn identity(self) -> Option<&'a Arc<Identity>> {
        match self {
            Caller::Trusted => None,
            Caller::Identity(i) => Some(i),
        }
    }
}

impl<'a> From<Option<&'a Arc<Identity>>> for Caller<'a> {
    fn from(i: Option<&'a Arc<Identity>>) -> Self {
        i.map_or(Caller::Trusted, Caller::Identity)
    }
}
