//! Broadcast groups: one publisher, many members, the last message kept.
//!
//! A group is named by a registered name. Only the process registered under
//! that name publishes to it ([`ProcessContext::publish`]); any process that
//! may send to the name enrols pids in it ([`ProcessContext::join`]). A
//! publish goes to every member and is kept: a pid that joins later gets the
//! kept message at once, from the joining thread, before anything published
//! after it. So a subscriber costs its publisher nothing when it arrives or
//! leaves: no message to wake it, no reply to send (a ticker with thousands
//! of clients connecting and leaving never hears of them).
//!
//! The kept message goes with its publisher: when the process registered
//! under the name exits, joiners get nothing until the next publish.
//!
//! A member leaves when it exits (the node removes it), when it asks
//! ([`ProcessContext::leave`]), or when a publish finds it dead. Membership
//! belongs to the name, not to the publisher's pid: a publisher that is
//! restarted and registers the name again reaches the same members.
//!
//! Ordering: the kept message and the member list change under one lock; a
//! joiner gets the kept message while holding it, so it can never receive a
//! newer publish first, and never misses one (a publish either sees the
//! joiner among its members or is the message the joiner gets).
//!
//! [`ProcessContext::publish`]: super::ProcessContext::publish
//! [`ProcessContext::join`]: super::ProcessContext::join
//! [`ProcessContext::leave`]: super::ProcessContext::leave

use std::sync::{Arc, Mutex};

use super::node::ProcessRef;
use super::pid::PidMap;
use super::{Payload, Pid, SendError, Topic};

/// What a group keeps and whom it reaches.
#[derive(Default)]
struct Inner {
    /// Shared with publishes in flight; a join or leave during one copies it.
    members: Arc<Vec<ProcessRef>>,
    /// Each member's place in `members`.
    index: PidMap<usize>,
    /// The last publish: sender, topic and payload.
    kept: Option<(Pid, Topic, Payload)>,
}

/// One group (see the module docs).
#[derive(Default)]
pub(crate) struct Group {
    inner: Mutex<Inner>,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `member` and hands it the kept message. Returns false if it was
    /// already a member or is dead.
    pub(crate) fn join(&self, member: ProcessRef) -> bool {
        let mut inner = self.lock();
        if inner.index.contains_key(member.pid()) {
            return false;
        }
        if let Some((from, topic, payload)) = &inner.kept {
            let sent = member.send(Some(from), topic.clone(), payload.clone());
            if matches!(sent, Err(SendError::DeadPid(_))) {
                return false;
            }
        }
        let at = inner.members.len();
        inner.index.insert(member.pid().clone(), at);
        Arc::make_mut(&mut inner.members).push(member);
        true
    }

    /// Removes `pid`; returns whether it was a member.
    pub(crate) fn leave(&self, pid: &Pid) -> bool {
        let mut inner = self.lock();
        remove(&mut inner, pid)
    }

    /// Sends the message to every member and, with `keep`, keeps it for
    /// later joiners; members found dead are dropped. Returns how many
    /// received it.
    pub(crate) fn publish(&self, from: &Pid, topic: Topic, payload: Payload, keep: bool) -> usize {
        let members = {
            let mut inner = self.lock();
            if keep {
                inner.kept = Some((from.clone(), topic.clone(), payload.clone()));
            }
            inner.members.clone()
        };
        let mut dead = Vec::new();
        let mut reached = 0;
        for member in members.iter() {
            match member.send_shared(from, &topic, &payload) {
                Err(SendError::DeadPid(pid)) => dead.push(pid),
                // A full mailbox keeps its place (a relay conflates).
                _ => reached += 1,
            }
        }
        drop(members);
        if !dead.is_empty() {
            let mut inner = self.lock();
            for pid in &dead {
                remove(&mut inner, pid);
            }
        }
        reached
    }

    /// Forgets the kept message (its publisher has exited).
    pub(crate) fn forget(&self) {
        self.lock().kept = None;
    }

    /// Members now.
    pub(crate) fn len(&self) -> usize {
        self.lock().members.len()
    }
}

fn remove(inner: &mut Inner, pid: &Pid) -> bool {
    let Some(at) = inner.index.remove(pid) else {
        return false;
    };
    let members = Arc::make_mut(&mut inner.members);
    members.swap_remove(at);
    if let Some(moved) = members.get(at) {
        inner.index.insert(moved.pid().clone(), at);
    }
    // Room back after a burst of members has left.
    if members.capacity() > 64 && members.len() * 4 < members.capacity() {
        members.shrink_to(members.len() * 2);
        inner.index.shrink_to(members.len() * 2);
    }
    true
}
