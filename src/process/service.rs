//! `process.service`: a process the registry starts at boot and restarts when
//! it fails.
//!
//! A supervisor process (trusted, on the service's host) spawns and monitors
//! the child. On a failure exit (error, panic, killed) it waits the policy's
//! backoff (spread by `jitter`) and spawns again; past the restart limit
//! (`max_restarts`, or Wippy's `max_attempts` where 0 is unlimited) within
//! `window` it gives up. A child that ran `stable_threshold` or longer before
//! failing clears the window's history first. A normal exit is final. On
//! shutdown it forwards the request to the child, waits for its EXIT, then
//! ends; the registry kills it past `stop_timeout`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{
    Event, ExitReason, Flow, Node, Pid, Process, ProcessContext, ProcessResult, SpawnError,
};
use crate::manifest::FieldError;
use crate::manifest::Lifecycle;
pub use crate::manifest::RestartPolicy;

/// The `process.service` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The `process.rust` entry to run.
    pub process: String,
    /// The `process.host` to run it on.
    pub host: String,
    /// Start, restart and dependency settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// Arguments for the process (Wippy's `input`: a list is passed as the
    /// argument list, a mapping as the argument object).
    #[serde(default, alias = "input")]
    pub args: Option<serde_yaml::Value>,
}

impl ServiceConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        self.lifecycle
            .as_ref()
            .map(Lifecycle::check)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct ServiceState {
    child: Option<Pid>,
    child_started: Option<Instant>,
    supervisor: Option<Pid>,
    restarts: u64,
    recent: VecDeque<Instant>,
    given_up: bool,
}

struct Shared {
    id: String,
    process: String,
    host: String,
    args: serde_json::Value,
    policy: RestartPolicy,
    stable_threshold: Option<Duration>,
    stop_timeout: Option<Duration>,
    state: Mutex<ServiceState>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, ServiceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A booted `process.service`.
#[derive(Clone)]
pub struct ServiceHandle {
    shared: Arc<Shared>,
}

impl ServiceHandle {
    /// A handle for a service not yet started.
    pub fn new(id: &str, config: &ServiceConfig, args: serde_json::Value) -> Self {
        let lifecycle = config.lifecycle.clone().unwrap_or_default();
        let policy = lifecycle.restart.clone().unwrap_or_default();
        ServiceHandle {
            shared: Arc::new(Shared {
                id: id.to_owned(),
                process: config.process.clone(),
                host: config.host.clone(),
                args,
                policy,
                stable_threshold: lifecycle.stable_threshold.map(|d| d.get()),
                stop_timeout: lifecycle.stop_timeout.map(|d| d.get()),
                state: Mutex::default(),
            }),
        }
    }

    /// The service's entry id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Starts the supervisor, which spawns the child at once.
    pub fn start(&self, node: &Arc<Node>) -> Result<Pid, SpawnError> {
        let host = node.host(&self.shared.host).map_err(SpawnError::Lookup)?;
        let spec = Arc::new(super::ProcessSpec::new(
            &format!("{}#supervisor", self.shared.id),
            super::modules::Capabilities::none(&format!("{}#supervisor", self.shared.id)),
            {
                let shared = self.shared.clone();
                Arc::new(move |_| {
                    Box::new(Supervisor {
                        shared: shared.clone(),
                        stopping: false,
                    }) as Box<dyn Process>
                })
            },
            serde_json::Value::Null,
        ));
        let pid = host.spawn(node, spec, serde_json::Value::Null, None, None, None)?;
        self.shared.state().supervisor = Some(pid.clone());
        Ok(pid)
    }

    /// The current child's pid, if one is running.
    pub fn pid(&self) -> Option<Pid> {
        self.shared.state().child.clone()
    }

    /// The supervisor's pid.
    pub fn supervisor(&self) -> Option<Pid> {
        self.shared.state().supervisor.clone()
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.shared.state().restarts
    }

    /// How long shutdown waits for this service before killing it.
    pub fn stop_timeout(&self) -> Option<Duration> {
        self.shared.stop_timeout
    }

    /// Whether the service stopped restarting after too many failures.
    pub fn given_up(&self) -> bool {
        self.shared.state().given_up
    }
}

struct Supervisor {
    shared: Arc<Shared>,
    stopping: bool,
}

impl Supervisor {
    fn start_child(&self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let s = &self.shared;
        let pid = ctx
            .spawn_monitored(&s.process, &s.host, s.args.clone())
            .map_err(|e| format!("service {} cannot start: {e}", s.id))?;
        let mut st = s.state();
        st.child = Some(pid);
        st.child_started = Some(Instant::now());
        Ok(Flow::Continue)
    }
}

impl Process for Supervisor {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        self.start_child(ctx)
    }

    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        match event {
            Event::Exit { from, reason } => {
                let s = &self.shared;
                if s.state().child.as_ref() != Some(&from) {
                    return Ok(Flow::Continue);
                }
                s.state().child = None;
                if self.stopping {
                    return Ok(Flow::Stop);
                }
                if !reason.is_failure() {
                    log::info!("service exited service={} reason={}", s.id, reason);
                    return Ok(Flow::Stop);
                }
                let now = Instant::now();
                let mut st = s.state();
                let ran = st.child_started.map(|t| now.duration_since(t));
                if let (Some(ran), Some(stable)) = (ran, s.stable_threshold)
                    && ran >= stable
                {
                    st.recent.clear();
                }
                while st
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > s.policy.window.get())
                {
                    st.recent.pop_front();
                }
                if s.policy
                    .limit()
                    .is_some_and(|limit| st.recent.len() as u32 >= limit)
                {
                    st.given_up = true;
                    log::error!(
                        "service gave up service={} restarts_in_window={} window={} last_reason={:?}",
                        s.id,
                        st.recent.len(),
                        s.policy.window,
                        reason.to_string()
                    );
                    return Ok(Flow::Stop);
                }
                st.recent.push_back(now);
                let delay = s
                    .policy
                    .jittered_delay(st.recent.len() as u32, rand::random::<f64>());
                drop(st);
                log::warn!(
                    "service failed, restarting service={} reason={:?} delay_ms={}",
                    s.id,
                    reason.to_string(),
                    delay.as_millis()
                );
                ctx.after(delay);
                Ok(Flow::Continue)
            }
            Event::Timer(_) if !self.stopping => {
                self.start_child(ctx)?;
                let mut st = self.shared.state();
                st.restarts += 1;
                log::info!(
                    "service restarted service={} pid={} restarts={}",
                    self.shared.id,
                    st.child.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                    st.restarts
                );
                Ok(Flow::Continue)
            }
            _ => Ok(Flow::Continue),
        }
    }

    fn on_shutdown(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        self.stopping = true;
        let child = self.shared.state().child.clone();
        match child {
            Some(pid) => {
                ctx.node().shutdown_process(&pid);
                Ok(Flow::Continue)
            }
            None => Ok(Flow::Stop),
        }
    }

    fn on_exit(&mut self, _ctx: &mut ProcessContext<'_>, _reason: &ExitReason) {
        self.shared.state().supervisor = None;
    }
}
