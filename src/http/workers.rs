//! A server's worker threads, each accepting on listeners of its own.
//!
//! actix-server accepts every connection on one thread and hands it to a
//! worker: a cross-thread wake-up per connection, and on two cores a
//! context switch on each side. Here every worker binds its own listening
//! socket to the address with `SO_REUSEPORT`; the kernel spreads incoming
//! connections over the workers' queues, and the worker that will serve a
//! connection is the one its readiness wakes (as nginx's `reuseport`).
//!
//! `SO_REUSEPORT` would also let a second server of the same user bind the
//! same port and take half its connections without an error, so a fixed
//! port is first probed with a socket that does not share: a port some
//! other listener holds fails with "address in use", as it would without
//! sharing.
//!
//! Intake is open, paused (connections wait in the kernel's queues) or
//! closed (listeners dropped). A graceful stop closes intake, signals the
//! HTTP layer to finish its in-flight requests, waits for the connections
//! to end up to the shutdown timeout, then stops the worker threads, which
//! drops whatever is left.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::Arbiter;
use actix_service::{Service, ServiceFactory};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

/// Whether workers take new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    Open,
    Paused,
    Closed,
}

/// Open connections across all workers, and a signal when none is left.
#[derive(Default)]
struct Open {
    count: AtomicUsize,
    drained: Notify,
}

impl Open {
    fn enter(self: &Arc<Self>) -> OpenGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        OpenGuard(self.clone())
    }
}

struct OpenGuard(Arc<Open>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// The running workers of one server; cheap to clone.
#[derive(Clone)]
pub(crate) struct Workers {
    intake: Arc<watch::Sender<Intake>>,
    open: Arc<Open>,
    arbiters: Arc<Vec<Arbiter>>,
    /// Tells the HTTP layer to close idle keep-alive connections.
    stopping: Arc<Notify>,
}

impl Workers {
    /// Binds `workers` listening sockets per address `addr` resolves to and
    /// starts one worker thread per socket set. `factory` builds a worker's
    /// connection service (called once on each worker thread), which is
    /// given each accepted stream with its peer's address. Must run
    /// inside an actix system. Returns the first bound address.
    pub(crate) fn start<F, Fac>(
        addr: &str,
        workers: usize,
        stopping: Arc<Notify>,
        factory: F,
    ) -> std::io::Result<(Self, SocketAddr)>
    where
        F: Fn() -> Fac + Send + Sync + 'static,
        Fac: ServiceFactory<(TcpStream, SocketAddr), Config = (), Response = ()> + 'static,
        Fac::Service: 'static,
        Fac::Error: std::fmt::Debug,
        Fac::InitError: std::fmt::Debug,
    {
        let sets = bind_shared(addr, workers)?;
        let first = sets[0][0].local_addr()?;
        let (intake, _) = watch::channel(Intake::Open);
        let intake = Arc::new(intake);
        let open = Arc::new(Open::default());
        let factory = Arc::new(factory);
        let mut arbiters = Vec::with_capacity(sets.len());
        for listeners in sets {
            let arbiter = Arbiter::new();
            crate::memory::register_thread(arbiter.handle());
            let (factory, intake, open) = (factory.clone(), intake.subscribe(), open.clone());
            // The service is built on its worker thread and never leaves it.
            arbiter.spawn_fn(move || {
                tokio::task::spawn_local(async move {
                    let service = match factory().new_service(()).await {
                        Ok(service) => Rc::new(service),
                        Err(e) => {
                            log::error!("http worker failed to start error={e:?}");
                            return;
                        }
                    };
                    for listener in listeners {
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => {
                                let (service, intake, open) =
                                    (service.clone(), intake.clone(), open.clone());
                                tokio::task::spawn_local(accept(listener, service, intake, open));
                            }
                            Err(e) => log::error!("http worker cannot poll its listener error={e}"),
                        }
                    }
                });
            });
            arbiters.push(arbiter);
        }
        let workers = Workers {
            intake,
            open,
            arbiters: Arc::new(arbiters),
            stopping,
        };
        Ok((workers, first))
    }

    /// Stops taking connections; they wait in the listen queues.
    pub(crate) fn pause(&self) {
        self.intake.send_if_modified(|i| {
            let paused = *i == Intake::Open;
            if paused {
                *i = Intake::Paused;
            }
            paused
        });
    }

    /// Closes intake and ends the workers: with `graceful`, in-flight
    /// connections get up to `timeout` to finish first.
    pub(crate) async fn stop(&self, graceful: bool, timeout: Duration) {
        self.intake.send_replace(Intake::Closed);
        if graceful {
            self.stopping.notify_waiters();
            let drained = async {
                loop {
                    let notified = self.open.drained.notified();
                    if self.open.count.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    notified.await;
                }
            };
            let _ = tokio::time::timeout(timeout, drained).await;
        }
        for arbiter in self.arbiters.iter() {
            arbiter.stop();
        }
    }
}

/// Accepts on `listener` while intake is open and serves each connection
/// on this worker.
async fn accept<S>(
    listener: tokio::net::TcpListener,
    service: Rc<S>,
    mut intake: watch::Receiver<Intake>,
    open: Arc<Open>,
) where
    S: Service<(TcpStream, SocketAddr), Response = ()> + 'static,
    S::Error: std::fmt::Debug,
{
    // Descriptor exhaustion is logged once per streak, not per attempt.
    let mut exhausted = false;
    loop {
        let state = *intake.borrow_and_update();
        match state {
            Intake::Closed => return,
            Intake::Paused => {
                if intake.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Intake::Open => {}
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    exhausted = false;
                    let guard = open.enter();
                    // Boxed: the connection's future is large, and a task
                    // holding it by value copies it whole on spawn and again
                    // on every change of stage (about 2,500 instructions
                    // of copying per connection before).
                    let served = Box::pin(service.call(accepted));
                    tokio::task::spawn_local(async move {
                        if let Err(e) = served.await {
                            log::debug!("connection ended with an error error={e:?}");
                        }
                        drop(guard);
                    });
                }
                Err(e) if is_resource_limit(&e) => {
                    if !std::mem::replace(&mut exhausted, true) {
                        log::warn!("accept failed, retrying in 100ms error={e}");
                    }
                    // The queue stays readable: without a pause this would spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // A connection that was reset before it was accepted.
                Err(e) => log::debug!("accept failed error={e}"),
            },
            changed = intake.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

fn is_resource_limit(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `workers` sets of listening sockets, each set one socket per address
/// `addr` resolves to, all sharing their port with `SO_REUSEPORT`, with a
/// backlog that absorbs bursts of thousands of connects. Port 0 picks one
/// free port per address, shared by the workers.
pub(crate) fn bind_shared(
    addr: &str,
    workers: usize,
) -> std::io::Result<Vec<Vec<std::net::TcpListener>>> {
    use std::net::ToSocketAddrs;
    let mut sets: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        match bind_one(addr, workers) {
            Ok(listeners) => {
                for (set, listener) in sets.iter_mut().zip(listeners) {
                    set.push(listener);
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    match (sets[0].is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(std::io::Error::other("the address resolves to nothing")),
        (false, _) => Ok(sets),
    }
}

fn socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// `workers` listeners on `addr` sharing one port.
fn bind_one(mut addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        // Fails if any listener holds the port, shared or not (see above).
        socket(addr)?.bind(&addr.into())?;
    }
    let mut listeners = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = socket(addr)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        // Nagle off: Linux hands it to every accepted connection, which then
        // needs no `setsockopt` of its own (`listener::admit`).
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        let listener = std::net::TcpListener::from(socket);
        addr.set_port(listener.local_addr()?.port());
        listeners.push(listener);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::bind_shared;

    #[test]
    fn workers_share_one_port_and_a_taken_port_is_refused() {
        let sets = bind_shared("127.0.0.1:0", 3).unwrap();
        assert_eq!(sets.len(), 3);
        let port = sets[0][0].local_addr().unwrap().port();
        assert!(
            sets.iter()
                .all(|s| s[0].local_addr().unwrap().port() == port)
        );
        // A second server on the same port gets "address in use", shared
        // sockets or not.
        let again = bind_shared(&format!("127.0.0.1:{port}"), 2).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        let plain = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_err();
        assert_eq!(plain.kind(), std::io::ErrorKind::AddrInUse);
    }

    #[test]
    fn an_accepted_connection_has_nagle_off_from_its_listener() {
        let sets = bind_shared("127.0.0.1:0", 1).unwrap();
        let listener = &sets[0][0];
        listener.set_nonblocking(false).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        assert!(served.nodelay().unwrap());
        drop(client);
    }
}
