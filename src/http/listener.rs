//! How connections reach a server: the `addr` forms (Go's `:port`
//! included) and the admission layer in front of the HTTP layer (see
//! `admission`), which takes a slot per client address before a connection
//! is read. The listening sockets are the workers' (see `workers`).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_http::Protocol;
use actix_service::ServiceFactory;
use tokio::net::TcpStream;

use super::admission::{self, Admission};

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
/// too (no `getpeername`), and Nagle is off on every served stream.
pub(crate) fn admit<F>(
    admission: Arc<Admission>,
    http: F,
) -> impl ServiceFactory<
    (TcpStream, SocketAddr),
    Config = (),
    Response = (),
    Error = F::Error,
    InitError = F::InitError,
>
where
    F: ServiceFactory<(TcpStream, Protocol, Option<SocketAddr>), Config = (), Response = ()>,
    F::Service: 'static,
{
    actix_service::apply_fn_factory(
        http,
        move |(stream, peer): (TcpStream, SocketAddr), http| {
            let served = match admission.admit(peer.ip()) {
                Some(slot) => {
                    // Nagle off, as actix-http's own TCP service does. On
                    // Linux the stream has it from its listener
                    // (`workers::bind_one`). A socket that is already gone
                    // fails on its first read instead.
                    #[cfg(not(target_os = "linux"))]
                    let _ = stream.set_nodelay(true);
                    Some((
                        slot,
                        actix_service::Service::call(http, (stream, Protocol::Http1, Some(peer))),
                    ))
                }
                None => {
                    admission.refused();
                    // Best effort, without waiting: the socket's buffer is empty.
                    // A direct write (tokio's try_write would wait for a
                    // readiness event that a new socket has not had yet).
                    if let Ok(mut stream) = stream.into_std() {
                        let _ = std::io::Write::write(&mut stream, admission::REFUSAL);
                    }
                    None
                }
            };
            async move {
                match served {
                    Some((_slot, served)) => served.await,
                    None => Ok(()),
                }
            }
        },
    )
}
