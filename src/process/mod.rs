//! The process layer: pids, hosts, mailboxes, names, monitors and services.
//!
//! A process is a [`Process`] value driven by an actix actor on one of its
//! host's worker threads. Everything a process can observe is an [`Event`]:
//! messages, `EXIT` notices from monitored processes, its own timers and the
//! shutdown request. The rules (ordering, monitors, panics, dropped sends,
//! restarts, shutdown) are written down in `docs/semantics.md`.

mod actor;
mod context;
mod delivery;
mod exposition;
mod group;
mod host;
pub(crate) mod modules;
mod node;
mod pid;
mod service;
mod wake;

use std::borrow::Cow;
use std::fmt;

pub(crate) use context::Acting;
pub use context::{ProcessContext, TimerId};
pub use host::{HostConfig, Placement, ProcessHost, ProcessSpec, RustEntryConfig};
pub use modules::{Capabilities, Logger, MODULES, Module, ModuleError, Modules, Tokens};
pub use node::{Caller, Node, NodeStats, ProcessRef, SendError, SpawnError, Target};
pub use pid::{Pid, PidParseError};
pub use service::{RestartPolicy, ServiceConfig, ServiceHandle};

pub(crate) use delivery::shared_event;
pub(crate) use exposition::ProcessCollector;
pub(crate) use node::{Mailbox, Refused};
pub(crate) use wake::wake;

/// Makes a process from its arguments (the entry's `args` merged with the spawn's).
pub type ProcessFactory =
    std::sync::Arc<dyn Fn(serde_json::Value) -> Box<dyn Process> + Send + Sync>;

/// A message topic. Constants cost nothing; dynamic topics allocate once.
pub type Topic = Cow<'static, str>;

/// What a message carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A structured value.
    Json(serde_json::Value),
    /// Bytes encoded once and shared: cloning is a reference-count increment,
    /// so a broadcast to any number of recipients costs one allocation.
    Bytes(bytes::Bytes),
}

impl Payload {
    /// The JSON value, if this is a JSON payload.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Bytes(_) => None,
        }
    }

    /// The payload as JSON: a JSON payload as is, bytes parsed as JSON.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        match self {
            Payload::Json(v) => Some(v.clone()),
            Payload::Bytes(b) => serde_json::from_slice(b).ok(),
        }
    }

    /// [`to_json`](Self::to_json) for a payload that is not needed any more:
    /// a JSON one is moved out, not copied.
    pub fn into_json(self) -> Option<serde_json::Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Bytes(b) => serde_json::from_slice(&b).ok(),
        }
    }
}

impl From<serde_json::Value> for Payload {
    fn from(v: serde_json::Value) -> Self {
        Payload::Json(v)
    }
}

impl From<bytes::Bytes> for Payload {
    fn from(b: bytes::Bytes) -> Self {
        Payload::Bytes(b)
    }
}

/// A message between processes.
#[derive(Debug, Clone)]
pub struct Message {
    /// The sending process; `None` when sent from outside any process.
    pub from: Option<Pid>,
    /// The topic.
    pub topic: Topic,
    /// The payload.
    pub payload: Payload,
}

/// Everything a process can receive.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message from another process (or from outside).
    Message(Message),
    /// A monitored process ended. Delivered exactly once per monitor.
    Exit {
        /// The process that ended.
        from: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
    /// A timer set with [`ProcessContext::interval`] or [`ProcessContext::after`] fired.
    Timer(TimerId),
}

/// The topic under which EXIT notices are described in logs and docs.
pub const EXIT_TOPIC: &str = "EXIT";

/// Why a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// It returned [`Flow::Stop`].
    Normal,
    /// It returned an error.
    Error(String),
    /// It panicked; the text is the panic message.
    Panic(String),
    /// It was killed (by [`ProcessContext::terminate`], [`Node::kill`] or
    /// after the shutdown grace period).
    Killed,
    /// It stopped because the runtime is shutting down.
    Shutdown,
    /// It did not exist when it was monitored.
    NoProcess,
}

impl ExitReason {
    /// A short, bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ExitReason::Normal => "normal",
            ExitReason::Error(_) => "error",
            ExitReason::Panic(_) => "panic",
            ExitReason::Killed => "killed",
            ExitReason::Shutdown => "shutdown",
            ExitReason::NoProcess => "noproc",
        }
    }

    /// Whether a supervisor should treat this exit as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            ExitReason::Error(_) | ExitReason::Panic(_) | ExitReason::Killed
        )
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Error(e) => write!(f, "error: {e}"),
            ExitReason::Panic(p) => write!(f, "panic: {p}"),
            other => f.write_str(other.label()),
        }
    }
}

/// What a process wants after handling an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// End normally.
    Stop,
}

/// An error a process returns from a hook: it ends the process with
/// [`ExitReason::Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessError(pub String);

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProcessError {}

impl From<String> for ProcessError {
    fn from(s: String) -> Self {
        ProcessError(s)
    }
}

impl From<&str> for ProcessError {
    fn from(s: &str) -> Self {
        ProcessError(s.to_owned())
    }
}

impl From<SpawnError> for ProcessError {
    fn from(e: SpawnError) -> Self {
        ProcessError(e.to_string())
    }
}

impl From<crate::security::Denied> for ProcessError {
    fn from(e: crate::security::Denied) -> Self {
        ProcessError(e.to_string())
    }
}

impl From<SendError> for ProcessError {
    fn from(e: SendError) -> Self {
        ProcessError(e.to_string())
    }
}

impl From<ModuleError> for ProcessError {
    fn from(e: ModuleError) -> Self {
        ProcessError(e.to_string())
    }
}

/// The result of a process hook.
pub type ProcessResult = Result<Flow, ProcessError>;

/// A process: the hooks the runtime calls, each on the process's own thread,
/// one at a time.
///
/// A panic inside any hook ends this process alone with
/// [`ExitReason::Panic`]; its monitors get `EXIT` as for any other end.
pub trait Process: Send + 'static {
    /// Called once, before any event is delivered.
    fn init(&mut self, _ctx: &mut ProcessContext<'_>) -> ProcessResult {
        Ok(Flow::Continue)
    }

    /// Called for every event, in arrival order.
    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult;

    /// The runtime is shutting down. The default ends the process at once
    /// with [`ExitReason::Shutdown`]; return `Continue` to finish work first
    /// (the process is killed after the grace period).
    fn on_shutdown(&mut self, _ctx: &mut ProcessContext<'_>) -> ProcessResult {
        Ok(Flow::Stop)
    }

    /// Called once when the process ends, however it ends (not after a panic
    /// in a previous hook: the process state may be broken then).
    fn on_exit(&mut self, _ctx: &mut ProcessContext<'_>, _reason: &ExitReason) {}
}
