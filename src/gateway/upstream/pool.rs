//! Idle upstream connections, pooled per worker thread and upstream
//! (`host:port`): the most recently used is taken first, one idle for
//! [`MAX_IDLE`] or longer is closed, and one the upstream has closed (or
//! that holds bytes nobody asked for) is noticed before use.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::net::TcpStream;

use super::MAX_IDLE;

/// A pooled connection and when it went idle.
struct Idle {
    io: TcpStream,
    since: Instant,
}

thread_local! {
    // Idle connections by upstream, oldest first. The upstreams are the
    // routes' few authorities: found by a scan, with no hash of the name.
    static POOL: RefCell<Vec<(Arc<str>, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
    // Whether this thread's pool has its sweeper.
    static SWEPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Starts, once per worker thread, a task that closes this thread's idle
/// connections past [`MAX_IDLE`] every half of it, so none outlives its
/// time by more than that when traffic stops. A thread without an actix
/// arbiter (none serves the gateway) prunes only on use.
fn sweep_this_thread() {
    if SWEPT.replace(true) {
        return;
    }
    let Some(arbiter) = actix::Arbiter::try_current() else {
        return;
    };
    arbiter.spawn(async {
        let mut every = tokio::time::interval(MAX_IDLE / 2);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            POOL.with_borrow_mut(|pool| {
                let now = Instant::now();
                for (_, idle) in pool.iter_mut() {
                    prune(idle, now);
                }
                pool.retain(|(_, idle)| !idle.is_empty());
            });
        }
    });
}

/// The most recently used live idle connection to `authority`, if any.
pub(super) fn checkout(authority: &str) -> Option<TcpStream> {
    POOL.with_borrow_mut(|pool| {
        let idle = idle_to(pool, authority)?;
        prune(idle, Instant::now());
        while let Some(c) = idle.pop() {
            if alive(&c.io) {
                return Some(c.io);
            }
        }
        None
    })
}

/// Whether an idle connection can carry a request: nothing to read (no FIN,
/// no reset, no stray bytes). Without a syscall when the reactor has seen
/// no event on it since it was pooled with its readiness cleared.
fn alive(io: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match io.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            matches!(io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

/// Returns `io` to the pool, or closes it when `keepalive` are idle already.
/// `drained`: the read that ended the answer, in this same poll, found the
/// socket empty, so its read readiness can be cleared without a syscall:
/// the reactor has processed no event for it since (it runs between polls),
/// and anything arriving later (bytes, a FIN, a reset; closed states are
/// never cleared) sets it again for [`alive`] to see.
pub(super) fn checkin(authority: &Arc<str>, io: TcpStream, keepalive: usize, drained: bool) {
    if drained {
        let _ = io.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
    POOL.with_borrow_mut(|pool| {
        let idle = match idle_to(pool, authority) {
            Some(idle) => idle,
            None => {
                // A first connection pooled on this thread (or the first
                // since the sweeper emptied the entry); the sweeper task is
                // only queued here, it runs later.
                sweep_this_thread();
                let at = pool.len();
                pool.push((authority.clone(), Vec::new()));
                &mut pool[at].1
            }
        };
        let now = Instant::now();
        // Pruned here too, so connections idle past their time are closed
        // while traffic goes on to the upstream, not only when one is taken.
        prune(idle, now);
        if idle.len() < keepalive {
            idle.push(Idle { io, since: now });
        }
    });
}

/// The idle connections to `authority` in a thread's pool.
fn idle_to<'p>(
    pool: &'p mut [(Arc<str>, Vec<Idle>)],
    authority: &str,
) -> Option<&'p mut Vec<Idle>> {
    pool.iter_mut()
        .find(|(a, _)| **a == *authority)
        .map(|(_, idle)| idle)
}

/// Closes the connections idle for [`MAX_IDLE`] or more (the oldest come
/// first).
fn prune(idle: &mut Vec<Idle>, now: Instant) {
    let stale = idle
        .iter()
        .position(|c| now.duration_since(c.since) < MAX_IDLE)
        .unwrap_or(idle.len());
    idle.drain(..stale);
}
