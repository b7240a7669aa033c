//! How connections reach a server: the listening sockets for an `addr`
//! (Go's `:port` included) and the admission layer in front of the HTTP
//! layer (see `admission`), which takes a slot per client address before a
//! connection is read.

use std::sync::Arc;

use actix_service::ServiceFactory;

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

/// Wraps a server's TCP service: each connection first takes a slot for its
/// peer address (see `admission`), held until the HTTP layer lets go of the
/// connection; one over the cap gets the fixed 429 and is closed.
pub(crate) fn admit<F>(
    admission: Arc<Admission>,
    http: F,
) -> impl ServiceFactory<
    actix_web::rt::net::TcpStream,
    Config = (),
    Response = (),
    Error = F::Error,
    InitError = F::InitError,
>
where
    F: ServiceFactory<actix_web::rt::net::TcpStream, Config = (), Response = ()>,
    F::Service: 'static,
{
    actix_service::apply_fn_factory(http, move |stream: actix_web::rt::net::TcpStream, http| {
        let slot = match stream.peer_addr() {
            Ok(peer) => admission.admit(peer.ip()),
            Err(_) => None, // already gone
        };
        let served = match slot {
            Some(_) => Some(actix_service::Service::call(http, stream)),
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
            let _slot = slot;
            match served {
                Some(served) => served.await,
                None => Ok(()),
            }
        }
    })
}

/// Listening sockets for every address `addr` (`host:port`) resolves to, as
/// actix-web's `HttpServer::bind` does, with a backlog that absorbs bursts of
/// thousands of connects. Port 0 on a name that resolves twice gets one port
/// per address.
pub(crate) fn listen(addr: &str) -> std::io::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;
    let mut listeners = Vec::new();
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(4096)) {
            Ok(listener) => listeners.push(listener.into_std()?),
            Err(e) => last_error = Some(e),
        }
    }
    match (listeners.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(std::io::Error::other("the address resolves to nothing")),
        (false, _) => Ok(listeners),
    }
}
