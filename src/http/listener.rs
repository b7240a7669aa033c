//! How connections reach a server: the `addr` forms (Go's `:port`
//! included) and the admission layer in front of the HTTP layer (see
//! `admission`), which takes a slot per client address before a connection
//! is read. The listening sockets are the workers' (see `workers`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix_http::Protocol;
use actix_service::{Service, ServiceFactory};
use tokio::net::TcpStream;

use super::admission::{self, Admission};
use super::front::{Conn, Front};

/// Splits `host:port` (`[v6]:port`, or Go's `:port`), checking the port.
pub(crate) fn split_addr(addr: &str) -> Result<(&str, u16), String> {
    let expected = || {
        format!(
            "expected host:port (127.0.0.1:8081, [::1]:8081, localhost:8081) or :port for every interface, found {addr:?}"
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if host.contains(':') && !bracketed || host.contains(char::is_whitespace) {
        return Err(expected());
    }
    Ok((host, port))
}

/// Wraps a server's HTTP service: each connection first takes a slot for
/// its peer address (see `admission`), held until the HTTP layer lets go of
/// the connection; one over the cap gets the fixed 429 and is closed. The
/// peer's address is the one `accept` returned, handed on to the HTTP layer
/// too (no `getpeername`), and Nagle is off on every served stream. With a
/// `front`, the connection goes there first, and to the HTTP layer only if
/// the front hands it on (see `front`).
pub(crate) fn admit<F>(
    admission: Arc<Admission>,
    front: Option<Arc<Front>>,
    http: F,
) -> impl ServiceFactory<
    (TcpStream, SocketAddr),
    Config = (),
    Response = (),
    Error = F::Error,
    InitError = F::InitError,
>
where
    F: ServiceFactory<(Conn, Protocol, Option<SocketAddr>), Config = (), Response = ()>,
    F::Service: 'static,
{
    actix_service::apply_fn_factory(
        Shared(http),
        move |(stream, peer): (TcpStream, SocketAddr), http: &Rc<F::Service>| {
            let admitted = match admission.admit(peer.ip()) {
                Some(slot) => Some((slot, stream)),
                None => {
                    admission.refused();
                    // Best effort, without waiting: the socket's buffer is
                    // empty. A direct write (tokio's try_write would wait for
                    // a readiness event that a new socket has not had yet).
                    if let Ok(mut stream) = stream.into_std() {
                        let _ = std::io::Write::write(&mut stream, admission::REFUSAL);
                    }
                    None
                }
            };
            let (http, front) = (http.clone(), front.clone());
            async move {
                let Some((_slot, stream)) = admitted else {
                    return Ok(());
                };
                // Nagle off, as actix-http's own TCP service does. On
                // Linux the stream has it from its listener
                // (`workers::bind_one`). A socket that is already gone
                // fails on its first read instead.
                #[cfg(not(target_os = "linux"))]
                let _ = stream.set_nodelay(true);
                let conn = match front {
                    // Boxed: a server without a front does not carry the
                    // front's state in every connection's future.
                    Some(front) => match Box::pin(front.serve(stream, peer)).await {
                        Some(conn) => conn,
                        None => return Ok(()),
                    },
                    None => Conn::new(stream),
                };
                http.call((conn, Protocol::Http1, Some(peer))).await
            }
        },
    )
}

/// A service factory whose services are shared (`Rc`), so that a
/// connection can be handed to one after an await.
struct Shared<F>(F);

impl<F, Req> ServiceFactory<Req> for Shared<F>
where
    F: ServiceFactory<Req>,
{
    type Response = F::Response;
    type Error = F::Error;
    type Config = F::Config;
    type Service = Rc<F::Service>;
    type InitError = F::InitError;
    type Future = futures_util::future::MapOk<F::Future, fn(F::Service) -> Rc<F::Service>>;

    fn new_service(&self, cfg: F::Config) -> Self::Future {
        use futures_util::TryFutureExt;
        self.0
            .new_service(cfg)
            .map_ok(Rc::new as fn(F::Service) -> Rc<F::Service>)
    }
}
