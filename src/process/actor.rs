//! The actix actor that drives one [`Process`].
//!
//! Every hook runs inside `catch_unwind`, so a panic ends this process alone
//! (the worker thread and its other processes go on). The actor removes its
//! pid from the node in `stopped`, which actix runs exactly once however the
//! actor ended; that removal is what sends `EXIT` to monitors.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Actor, ActorContext, Addr, Context, Handler, SpawnHandle};

use super::node::{Mailbox, Refused};
use super::{
    Event, ExitReason, Flow, Node, Pid, Process, ProcessContext, ProcessResult, ProcessSpec,
};
use crate::security::Identity;

/// Events a process may have queued before further sends are dropped, unless
/// its host sets `host.queue_size`.
pub(crate) const MAILBOX_CAPACITY: usize = 100_000;

/// What the actor is told through its actix mailbox.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(crate) enum Command {
    Event(Event),
    Shutdown,
    Kill,
}

/// Everything about a running process except the process value itself, so a
/// hook can borrow both at once.
pub(crate) struct ActorState {
    pub pid: Pid,
    pub node: Arc<Node>,
    pub spec: Arc<ProcessSpec>,
    pub identity: Option<Arc<Identity>>,
    pub timers: HashMap<u64, SpawnHandle>,
    pub next_timer: u64,
    pub exit: Option<ExitReason>,
    queued: Arc<AtomicUsize>,
}

pub(crate) struct ProcessActor {
    state: ActorState,
    /// `None` once a hook panicked: its state may be broken.
    process: Option<Box<dyn Process>>,
}

impl ProcessActor {
    pub(crate) fn new(
        pid: Pid,
        node: Arc<Node>,
        spec: Arc<ProcessSpec>,
        identity: Option<Arc<Identity>>,
        process: Box<dyn Process>,
        queued: Arc<AtomicUsize>,
    ) -> Self {
        ProcessActor {
            state: ActorState {
                pid,
                node,
                spec,
                identity,
                timers: HashMap::new(),
                next_timer: 0,
                exit: None,
                queued,
            },
            process: Some(process),
        }
    }

    /// Runs one hook and applies its outcome.
    fn run(
        &mut self,
        ctx: &mut Context<Self>,
        hook: impl FnOnce(&mut dyn Process, &mut ProcessContext<'_>) -> ProcessResult,
    ) {
        if self.state.exit.is_some() {
            return;
        }
        let Some(process) = self.process.as_mut() else {
            return;
        };
        let mut pctx = ProcessContext::new(&mut self.state, ctx);
        let outcome = super::wake::batched(|| {
            catch_unwind(AssertUnwindSafe(|| hook(process.as_mut(), &mut pctx)))
        });
        let reason = match outcome {
            Ok(Ok(Flow::Continue)) => return,
            Ok(Ok(Flow::Stop)) => ExitReason::Normal,
            Ok(Err(e)) => ExitReason::Error(e.0),
            Err(panic) => {
                self.process = None;
                ExitReason::Panic(panic_message(&panic))
            }
        };
        self.finish(ctx, reason);
    }

    /// Ends the process with `reason` unless it is already ending.
    pub(crate) fn finish(&mut self, ctx: &mut Context<Self>, reason: ExitReason) {
        if self.state.exit.is_none() {
            self.state.exit = Some(reason);
        }
        ctx.stop();
    }

    /// Delivers a timer event (called from timer closures).
    pub(crate) fn fire_timer(&mut self, ctx: &mut Context<Self>, id: u64, repeating: bool) {
        if !repeating {
            self.state.timers.remove(&id);
        }
        self.run(ctx, |p, c| p.handle(c, Event::Timer(super::TimerId(id))));
    }
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Actor for ProcessActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(usize::MAX >> 8);
        self.run(ctx, |p, c| p.init(c));
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        // An actor stopped by its arbiter (the host going away) has no reason yet.
        let reason = self.state.exit.take().unwrap_or(ExitReason::Killed);
        if let Some(process) = self.process.as_mut() {
            let mut pctx = ProcessContext::new(&mut self.state, ctx);
            if let Err(panic) =
                catch_unwind(AssertUnwindSafe(|| process.on_exit(&mut pctx, &reason)))
            {
                log::warn!(
                    "on_exit panicked pid={} entry={} panic={:?}",
                    self.state.pid,
                    self.state.spec.id,
                    panic_message(&panic)
                );
            }
        }
        match &reason {
            ExitReason::Normal | ExitReason::Shutdown => log::debug!(
                "process exited pid={} entry={} reason={}",
                self.state.pid,
                self.state.spec.id,
                reason
            ),
            _ => log::warn!(
                "process failed pid={} entry={} reason={:?}",
                self.state.pid,
                self.state.spec.id,
                reason.to_string()
            ),
        }
        self.state.spec.count_exit(&reason);
        self.state.node.exit(&self.state.pid, &reason);
    }
}

impl Handler<Command> for ProcessActor {
    type Result = ();

    fn handle(&mut self, cmd: Command, ctx: &mut Context<Self>) {
        match cmd {
            Command::Event(event) => {
                self.state.queued.fetch_sub(1, Ordering::Relaxed);
                self.run(ctx, |p, c| p.handle(c, event));
            }
            Command::Shutdown => {
                self.run(ctx, |p, c| {
                    p.on_shutdown(c).map(|flow| {
                        if flow == Flow::Stop {
                            c.state_mut().exit = Some(ExitReason::Shutdown);
                        }
                        flow
                    })
                });
            }
            Command::Kill => self.finish(ctx, ExitReason::Killed),
        }
    }
}

/// The mailbox of a process actor: a bounded count over actix's channel.
pub(crate) struct ActorMailbox {
    pub addr: Addr<ProcessActor>,
    pub queued: Arc<AtomicUsize>,
    /// The most events queued at once.
    pub capacity: usize,
}

impl Mailbox for ActorMailbox {
    fn deliver(&self, event: Event) -> Result<(), Refused> {
        if !self.addr.connected() {
            return Err(Refused::Dead);
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        // do_send ignores actix's own bound; ours is the count above.
        self.addr.do_send(Command::Event(event));
        Ok(())
    }

    fn shutdown(&self) {
        self.addr.do_send(Command::Shutdown);
    }

    fn kill(&self) {
        self.addr.do_send(Command::Kill);
    }
}
