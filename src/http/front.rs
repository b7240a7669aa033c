//! The HTTP/1 path of a server whose routes are all `http.proxy` mounts,
//! in front of actix-http's dispatcher.
//!
//! actix-http parses a request into its own maps, actix-web routes it
//! through the app's services and middleware, and the answer is built as
//! a response for actix-http to encode: on a proxied request that is more
//! than half of the gateway's instructions (benches/README.md, nineteenth
//! session). Here a connection's requests are read as they stand in the
//! socket and answered by the proxy directly, while each is one this path
//! takes:
//!
//! - HTTP/1.1, `GET`, `HEAD` or `DELETE`, with no body (no
//!   `Content-Length` but 0, no `Transfer-Encoding`), no `Expect`, no
//!   `Upgrade`, no `Origin` (CORS), no `Accept-Encoding` but `identity`
//!   (compression) and no `Connection` but `keep-alive` or `close`;
//! - its whole head in one read, within the server's
//!   header limit and 64 headers, with names and values a header map
//!   takes;
//! - a path a proxy serves (not `/healthz` or `/metrics`, the server's
//!   own).
//!
//! A request this path does not take goes to actix-http with the
//! connection, for good, the bytes already read in front of the socket's
//! (`Conn`). So every other case (bodies, upgrades, slow or malformed
//! heads, CORS, compression) is served as before, by the same code. A connection idle for the keep-alive time,
//! or when the server stops, is closed between requests.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How much of a connection is read at once for request heads.
const READ: usize = 8 * 1024;
/// At most this many headers in a head the front takes.
const MAX_HEADERS: usize = 64;
/// How long a kept-alive connection may sit idle (actix-http's default).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// What a proxy reads of a request, wherever its head was parsed (here, or
/// by actix-http).
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    /// The path as received.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The peer's address, canonical.
    pub peer: Option<IpAddr>,
    /// Whether the listener is TLS.
    pub secure: bool,
    /// Whether the client asked for the connection to end after the
    /// answer (`Connection: close`; on the front's path only: actix-http
    /// keeps that itself).
    pub close: bool,
}

impl<'a> Incoming<'a> {
    /// The parts of a request actix-http parsed.
    pub(crate) fn of(req: &'a actix_web::HttpRequest) -> Self {
        Incoming {
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
            peer: req.peer_addr().map(|a| a.ip().to_canonical()),
            secure: req.app_config().secure(),
            close: false,
        }
    }
}

/// A response body still to come.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>>>>;

/// A proxy's answer to a request the front took.
pub(crate) struct Answer {
    /// The head, with the whole body when it is in hand.
    pub head: BytesMut,
    /// The rest of the body, and whether to frame it as chunked (else the
    /// head gave its length).
    pub body: Option<(BodyStream, bool)>,
    /// Whether the connection ends after this answer.
    pub close: bool,
}

/// A mount that answers requests the front took.
pub(crate) trait FastMount {
    /// As [`super::Mount::matches`].
    fn matches(&self, path: &str) -> Option<usize>;
    /// Answers `req`.
    fn answer<'a>(&'a self, req: &'a Incoming<'a>) -> Pin<Box<dyn Future<Output = Answer> + 'a>>;
}

/// One server's front: its proxies and limits.
pub(crate) struct Front {
    pub mounts: Vec<Arc<dyn FastMount + Send + Sync>>,
    /// The server's header limit (`max_header_size`).
    pub header_limit: usize,
    /// How long the first request may take to arrive.
    pub request_timeout: Duration,
    /// Notified when the server stops.
    pub stopping: Arc<Notify>,
    /// The server's id, and its count of connections handed on.
    pub server: Arc<str>,
    pub handoffs: Arc<crate::metrics::CounterVec>,
}

/// A request head the front takes, parsed.
struct Taken {
    /// The head's length in bytes.
    len: usize,
    /// Where the request target is in it.
    target: std::ops::Range<usize>,
    method: Method,
    headers: HeaderMap,
    mount: usize,
    /// The client's `Connection: close`.
    close: bool,
}

impl Front {
    /// Serves `io`'s requests while the front takes each; returns the
    /// connection, with the request it did not take in hand, when one is
    /// not, and `None` once the connection is done.
    pub(crate) async fn serve(&self, mut io: TcpStream, peer: SocketAddr) -> Option<Conn> {
        let mut input = BytesMut::with_capacity(READ);
        let stopping = self.stopping.notified();
        let mut stopping = pin!(stopping);
        stopping.as_mut().enable();
        let peer_ip = peer.ip().to_canonical();
        let mut first = true;
        loop {
            // A pipelined request may be in hand already.
            if input.is_empty() {
                let wait = if first {
                    self.request_timeout
                } else {
                    KEEP_ALIVE
                };
                tokio::select! {
                    read = tokio::time::timeout(wait, io.read_buf(&mut input)) => match read {
                        Ok(Ok(n)) if n > 0 => {}
                        // Closed, failed, or silent for too long.
                        _ => return None,
                    },
                    () = &mut stopping, if !first => return None,
                }
            }
            first = false;
            let Some(taken) = self.take(&input) else {
                self.handoffs.inc(&[&self.server]);
                return Some(Conn { io, read: input });
            };
            let head = input.split_to(taken.len);
            // httparse checked the target is text.
            let target = std::str::from_utf8(&head[taken.target.clone()]).ok()?;
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (target, None),
            };
            let req = Incoming {
                method: &taken.method,
                path,
                query,
                headers: &taken.headers,
                peer: Some(peer_ip),
                secure: false,
                close: taken.close,
            };
            let answer = self.mounts[taken.mount].answer(&req).await;
            if !matches!(write(&mut io, answer).await, Ok(false)) {
                return None;
            }
            if input.capacity() < 1024 {
                input.reserve(READ);
            }
        }
    }

    /// The head at the start of `bytes`, if it is whole and one the front
    /// takes.
    fn take(&self, bytes: &[u8]) -> Option<Taken> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(bytes) {
            Ok(httparse::Status::Complete(len)) => len,
            _ => return None,
        };
        if req.version != Some(1) {
            return None;
        }
        let method = match req.method? {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "DELETE" => Method::DELETE,
            _ => return None,
        };
        let raw = req.path?;
        // The target borrows from `bytes`: its place there.
        let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
        let target = start..start + raw.len();
        let path = raw.split_once('?').map_or(raw, |(p, _)| p);
        if !path.starts_with('/') || path == "/healthz" || path == "/metrics" {
            return None;
        }
        let (mut size, mut close) = (0, false);
        let mut map = HeaderMap::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            let value = HeaderValue::from_bytes(h.value).ok()?;
            size += name.as_str().len() + value.len() + 4;
            let is = |token: &[u8]| value.as_bytes().trim_ascii().eq_ignore_ascii_case(token);
            let taken = match name.as_str() {
                "content-length" => value == "0",
                "connection" if is(b"close") => {
                    close = true;
                    true
                }
                "connection" => is(b"keep-alive"),
                // Only what compression leaves as it is (`Compress`
                // negotiates the identity coding, and adds nothing).
                "accept-encoding" => is(b"identity"),
                "transfer-encoding" | "expect" | "upgrade" | "origin" => false,
                _ => true,
            };
            if !taken {
                return None;
            }
            map.append(name, value);
        }
        if size > self.header_limit {
            return None;
        }
        let mount = self
            .mounts
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.matches(path).map(|n| (n, i)))
            .max_by_key(|&(n, i)| (n, std::cmp::Reverse(i)))?
            .1;
        Some(Taken {
            len,
            target,
            method,
            headers: map,
            mount,
            close,
        })
    }
}

/// A connection as the HTTP layer gets it: the socket, and what the front
/// read from it and did not take (none when there is no front).
pub(crate) struct Conn {
    io: TcpStream,
    read: BytesMut,
}

impl Conn {
    /// A connection nothing was read from.
    pub(crate) fn new(io: TcpStream) -> Self {
        Conn {
            io,
            read: BytesMut::new(),
        }
    }

    /// The socket, and the bytes read from it that nobody has taken yet.
    pub(crate) fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.io, self.read)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = buf.remaining().min(this.read.len());
        buf.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Writes `answer`; whether the connection ends after it.
async fn write(io: &mut TcpStream, answer: Answer) -> std::io::Result<bool> {
    io.write_all(&answer.head).await?;
    if let Some((mut body, chunked)) = answer.body {
        let mut frame = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if chunked {
                if chunk.is_empty() {
                    continue;
                }
                frame.clear();
                frame.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                frame.extend_from_slice(&chunk);
                frame.extend_from_slice(b"\r\n");
                io.write_all(&frame).await?;
            } else {
                io.write_all(&chunk).await?;
            }
        }
        if chunked {
            io.write_all(b"0\r\n\r\n").await?;
        }
    }
    Ok(answer.close)
}
