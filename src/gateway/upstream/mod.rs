//! The gateway's HTTP/1.1 client: one request out, its response head in,
//! the body read only as fast as the client takes it.
//!
//! Connections are pooled per worker thread and upstream (`host:port`), as
//! nginx's `keepalive` is per worker: after a response whose body was read
//! to its end, on HTTP/1.1 without `Connection: close`, the connection goes
//! back to the pool if the route's `keepalive` allows that many idle ones
//! (0: every request on its own connection, sent with `Connection: close`).
//! The most recently used idle connection is taken first; one idle for
//! longer than [`MAX_IDLE`] is closed, and one the upstream has closed (or
//! that holds bytes nobody asked for) is noticed before use. A request whose
//! reused connection turns out dead before any byte of the answer (the
//! upstream closed it while the request was on its way) is sent again on a
//! new connection when repeating it is safe: an idempotent method with a
//! body read whole. Streamed uploads always get a new connection. A request
//! with a body (read whole or streamed) is sent while the answer is watched
//! for: an upstream that answers before it has taken the whole body (a 413
//! or 401 on the head alone) is answered through at once, even if it never
//! reads the rest or closes on it; that connection is then not kept.
//!
//! Responses are framed as RFC 9112 says: no body for `HEAD`, 204 and 304;
//! `Transfer-Encoding` ending in `chunked` is decoded (chunk extensions and
//! trailers are read and dropped), any other `Transfer-Encoding` or neither
//! header means the body runs to the close; every `Content-Length` value
//! must agree. Interim answers (100, 102, 103) are skipped; a 101 nobody
//! asked for, a head over [`MAX_HEAD`] or [`MAX_HEADERS`] headers, a chunk
//! size line over [`MAX_LINE`] or trailers over [`MAX_TRAILERS`] are
//! protocol errors.
//!
//! Here: sending a request and reading its answer's head. The idle
//! connections are `pool.rs`, the head's parsing and framing `head.rs`, the
//! body's stream `body.rs`.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::forward::UploadError;

mod body;
mod head;
mod pool;

pub use body::Body;
use body::Framing;
pub use head::Fields;
use head::{Head, parse_head};
use pool::checkout;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most headers in a response head.
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (size and extensions).
pub const MAX_LINE: usize = 4 * 1024;
/// Most bytes of trailers after a chunked body.
pub const MAX_TRAILERS: usize = 16 * 1024;
/// An idle pooled connection older than this is closed, not reused: below
/// the 5 s keep-alive timeouts common upstreams use (Node, uvicorn), so the
/// gateway is rarely the one sending into a connection being closed.
pub const MAX_IDLE: Duration = Duration::from_secs(4);
/// Idle connections kept per upstream and worker unless a route says.
pub const DEFAULT_KEEPALIVE: usize = 64;
/// Most idle connections a route may ask to keep per worker.
pub const MAX_KEEPALIVE: usize = 1024;
/// Room asked of the buffer before each read of the socket.
const READ_SIZE: usize = 32 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Error {
    /// The upstream could not be reached.
    Connect(io::Error),
    /// The connection failed while sending or reading the head.
    Io(io::Error),
    /// The upstream's answer is not HTTP/1.x as we accept it.
    Protocol(&'static str),
    /// The client's streamed body failed (its fault, not the upstream's).
    Upload(UploadError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "connect: {e}"),
            Error::Io(e) => write!(f, "io: {e}"),
            Error::Protocol(what) => write!(f, "protocol: {what}"),
            Error::Upload(e) => write!(f, "upload: {e}"),
        }
    }
}

/// Where a request goes and how its connection may be kept.
pub struct Target<'a> {
    /// `host:port`, the pool's key.
    pub authority: &'a Arc<str>,
    /// Idle connections to keep (0: none).
    pub keepalive: usize,
    /// The request is `HEAD` (its answer has no body).
    pub head_request: bool,
    /// Sending the request twice is harmless (RFC 9110 idempotent methods).
    pub idempotent: bool,
    /// The request asks to switch protocols: a 101 is its answer.
    pub upgrade: bool,
    /// The request has a body (after its head, or streamed): it is sent
    /// while watching for an answer that comes before it is all taken.
    pub body: bool,
}

/// An upstream's response: its head, and its body as a stream.
pub struct Response {
    pub status: StatusCode,
    pub headers: Fields,
    /// `Content-Length` when the body is framed by it (or `HEAD`/204/304
    /// carried one).
    pub length: Option<u64>,
    pub body: Body,
}

/// A new connection to `authority`, Nagle off (the WebSocket tunnel's too).
pub async fn connect(authority: &str) -> io::Result<TcpStream> {
    let io = TcpStream::connect(authority).await?;
    io.set_nodelay(true)?;
    Ok(io)
}

/// TCP keep-alive probes on a long-lived connection: a peer that vanished
/// without a FIN or reset (a dropped mobile link, a crashed host) is found
/// after [`PROBE_IDLE`] of silence plus [`PROBE_RETRIES`] unanswered probes
/// [`PROBE_INTERVAL`] apart, about two minutes, and the connection fails
/// instead of holding its socket (and the other end's) forever. A quiet
/// peer that is still there answers the probes and is never cut off.
pub fn probe_when_idle(io: &TcpStream) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(PROBE_IDLE)
        .with_interval(PROBE_INTERVAL)
        .with_retries(PROBE_RETRIES);
    if let Err(e) = socket2::SockRef::from(io).set_tcp_keepalive(&probes) {
        log::debug!("gateway could not set TCP keep-alive error={e}");
    }
}

/// Silence before the first keep-alive probe ([`probe_when_idle`]).
pub const PROBE_IDLE: Duration = Duration::from_secs(60);
/// Time between unanswered keep-alive probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes after which the connection fails.
pub const PROBE_RETRIES: u32 = 6;

/// One read of the socket into `buf`, after making room: how many bytes
/// (0 at the end), and whether that was all the socket had (fewer than
/// there was room for).
fn poll_fill(
    io: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(usize, bool)>> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    let room = buf.capacity() - buf.len();
    loop {
        match io.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(io.poll_read_ready(cx))?,
            done => return Poll::Ready(done.map(|n| (n, n < room))),
        }
    }
}

/// A failed attempt, and whether it failed as a connection the upstream had
/// already closed does (before any byte of an answer).
struct Failure {
    error: Error,
    stale: bool,
}

/// Sends `request` (its head and any body read whole) and then `upload`
/// (a streamed body of the length the head declares) to `to`, and reads the
/// response head. Timeouts are the caller's.
pub async fn send<S>(
    to: Target<'_>,
    request: &[u8],
    mut upload: Option<S>,
) -> Result<Response, Error>
where
    S: Stream<Item = Result<Bytes, UploadError>> + Unpin,
{
    let mut pooled = if upload.is_none() {
        checkout(to.authority)
    } else {
        None
    };
    loop {
        let (io, reused) = match pooled.take() {
            Some(io) => (io, true),
            None => (connect(to.authority).await.map_err(Error::Connect)?, false),
        };
        match exchange(io, &to, request, upload.as_mut()).await {
            Ok(res) => return Ok(res),
            Err(f) if f.stale && reused && to.idempotent => {
                log::debug!(
                    "gateway upstream reused connection was closed, retrying error={}",
                    f.error
                );
            }
            Err(f) => return Err(f.error),
        }
    }
}

async fn exchange<S>(
    mut io: TcpStream,
    to: &Target<'_>,
    request: &[u8],
    upload: Option<&mut S>,
) -> Result<Response, Failure>
where
    S: Stream<Item = Result<Bytes, UploadError>> + Unpin,
{
    let stale = |e: io::Error| Failure {
        error: Error::Io(e),
        stale: true,
    };
    let fail = |error: Error| Failure {
        error,
        stale: false,
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    // Whether any byte of an answer (an interim one included) has come: a
    // connection that fails after that was not a stale one.
    let mut answered = false;
    // A write of the body that failed: the upstream may have answered
    // before it closed, and that answer is what the client gets if it is
    // there; otherwise this error is.
    let mut broken = None;
    if to.body || upload.is_some() {
        match send_watching(&io, request, upload, &mut buf, &mut answered, to).await {
            Ok(Sent::Whole) => {}
            // Answered before taking the whole body: the connection is not
            // reusable, the rest of the body is still owed on it.
            Ok(Sent::Answered(head, framing)) => {
                return Ok(respond(io, buf, head, framing, None, false));
            }
            Ok(Sent::Broken(e)) => broken = Some(e),
            Err(Error::Io(e)) if !answered => return Err(stale(e)),
            Err(e) => return Err(fail(e)),
        }
    } else {
        io.write_all(request).await.map_err(stale)?;
    }
    let mut drained = false;
    loop {
        if !buf.is_empty() {
            match parse_head(&mut buf, to).map_err(fail)? {
                Some((head, framing)) => {
                    let pool = (head.reusable && broken.is_none())
                        .then(|| (to.authority.clone(), to.keepalive));
                    return Ok(respond(io, buf, head, framing, pool, drained));
                }
                None if buf.len() > MAX_HEAD => {
                    return Err(fail(Error::Protocol("head too large")));
                }
                None => {}
            }
        }
        let started = !answered;
        // The parse after a read runs in the poll that read: `drained` holds
        // for `settle` (see `checkin`).
        let read = std::future::poll_fn(|cx| poll_fill(&io, &mut buf, cx)).await;
        if matches!(read, Ok((0, _)) | Err(_))
            && let Some(e) = broken.take()
        {
            return Err(Failure {
                error: Error::Io(e),
                stale: started,
            });
        }
        match read {
            Ok((0, _)) if started => return Err(stale(io::ErrorKind::UnexpectedEof.into())),
            Ok((0, _)) => return Err(fail(Error::Protocol("closed within the head"))),
            Ok((_, all)) => {
                drained = all;
                answered = true;
            }
            Err(e) if started => return Err(stale(e)),
            Err(e) => return Err(fail(Error::Io(e))),
        }
    }
}

/// How an upstream answered a request to switch protocols.
pub enum Upgrade {
    /// It switched (101): its headers, the connection, and whatever it
    /// already sent in the new protocol.
    Switched {
        headers: HeaderMap,
        io: TcpStream,
        early: BytesMut,
    },
    /// It answered as HTTP (a 401, a 404, a 426 ...): that answer, to pass on.
    Refused(Response),
}

/// Sends `request` (a whole head asking to switch protocols, no body) to
/// `to` on a connection of its own and reads the answer's head.
pub async fn upgrade(to: Target<'_>, request: &[u8]) -> Result<Upgrade, Error> {
    let to = Target {
        keepalive: 0,
        upgrade: true,
        body: false,
        ..to
    };
    let mut io = connect(to.authority).await.map_err(Error::Connect)?;
    // A tunnel may stay quiet for hours; a vanished upstream must not hold it.
    probe_when_idle(&io);
    io.write_all(request).await.map_err(Error::Io)?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if !buf.is_empty() {
            if let Some((head, framing)) = parse_head(&mut buf, &to)? {
                return Ok(if head.status == StatusCode::SWITCHING_PROTOCOLS {
                    Upgrade::Switched {
                        headers: head.headers.into_map(0),
                        io,
                        early: buf,
                    }
                } else {
                    Upgrade::Refused(respond(io, buf, head, framing, None, false))
                });
            }
            if buf.len() > MAX_HEAD {
                return Err(Error::Protocol("head too large"));
            }
        }
        let (n, _) = std::future::poll_fn(|cx| poll_fill(&io, &mut buf, cx))
            .await
            .map_err(Error::Io)?;
        if n == 0 {
            return Err(Error::Protocol("closed within the head"));
        }
    }
}

/// The response for a parsed head, its body read from `io` after what
/// `buf` already holds; `pool`: where the connection goes after the body.
fn respond(
    io: TcpStream,
    buf: BytesMut,
    head: Head,
    framing: Framing,
    pool: Option<(Arc<str>, usize)>,
    drained: bool,
) -> Response {
    Response {
        status: head.status,
        headers: head.headers,
        length: head.length,
        body: Body::new(io, buf, framing, pool, drained),
    }
}

/// `s` without the optional whitespace (spaces, tabs) at either end.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// How sending a request with a body ended.
enum Sent {
    /// All of it went.
    Whole,
    /// The upstream gave its final answer before taking all of it.
    Answered(Head, Framing),
    /// A write failed (the upstream closed); its answer may still be there
    /// to read.
    Broken(io::Error),
}

/// Sends `request` (a head, and any body read whole) and then `upload` to
/// `io` while watching for the answer: an upstream that refuses a body
/// (413, 401, 403) answers without reading it, and may then never read it
/// or close, so the answer is taken as soon as its head is whole instead of
/// waiting on a write that would not finish. Interim answers (`100
/// Continue`) are passed over and the body goes on; `answered` is set once
/// any byte of an answer has come.
async fn send_watching<S>(
    io: &TcpStream,
    request: &[u8],
    mut upload: Option<&mut S>,
    buf: &mut BytesMut,
    answered: &mut bool,
    to: &Target<'_>,
) -> Result<Sent, Error>
where
    S: Stream<Item = Result<Bytes, UploadError>> + Unpin,
{
    let mut sent = 0;
    let mut pending = Bytes::new();
    std::future::poll_fn(|cx| {
        loop {
            // Anything from the upstream yet? (Pending registers for it.)
            while let Poll::Ready(read) = poll_fill(io, buf, cx) {
                match read.map_err(Error::Io)? {
                    (0, _) => {
                        return Poll::Ready(Err(Error::Io(io::ErrorKind::UnexpectedEof.into())));
                    }
                    _ => {
                        *answered = true;
                        if let Some((head, framing)) = parse_head(buf, to)? {
                            return Poll::Ready(Ok(Sent::Answered(head, framing)));
                        }
                        if buf.len() > MAX_HEAD {
                            return Poll::Ready(Err(Error::Protocol("head too large")));
                        }
                    }
                }
            }
            let out = if sent < request.len() {
                &request[sent..]
            } else if !pending.is_empty() {
                &pending[..]
            } else {
                let Some(upload) = upload.as_mut() else {
                    return Poll::Ready(Ok(Sent::Whole));
                };
                match ready!(upload.poll_next_unpin(cx)) {
                    Some(Ok(chunk)) => pending = chunk,
                    Some(Err(e)) => return Poll::Ready(Err(Error::Upload(e))),
                    None => return Poll::Ready(Ok(Sent::Whole)),
                }
                continue;
            };
            match io.try_write(out) {
                Ok(n) if sent < request.len() => sent += n,
                Ok(n) => pending.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(io.poll_write_ready(cx)).map_err(Error::Io)?;
                }
                Err(e) => return Poll::Ready(Ok(Sent::Broken(e))),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_connections_are_probed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let io = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let sock = socket2::SockRef::from(&io);
            assert!(!sock.keepalive().unwrap());
            probe_when_idle(&io);
            assert!(sock.keepalive().unwrap());
            assert_eq!(sock.tcp_keepalive_time().unwrap(), PROBE_IDLE);
            assert_eq!(sock.tcp_keepalive_interval().unwrap(), PROBE_INTERVAL);
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), PROBE_RETRIES);
        });
    }
}
