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

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::forward::UploadError;

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
    pub headers: HeaderMap,
    /// `Content-Length` when the body is framed by it (or `HEAD`/204/304
    /// carried one).
    pub length: Option<u64>,
    pub body: Body,
}

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
fn checkout(authority: &str) -> Option<TcpStream> {
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
fn checkin(authority: &Arc<str>, io: TcpStream, keepalive: usize, drained: bool) {
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
                        headers: head.headers,
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
    let mut body = Body {
        io: Some(io),
        buf,
        framing,
        pool,
    };
    body.settle(drained);
    Response {
        status: head.status,
        headers: head.headers,
        length: head.length,
        body,
    }
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

/// A parsed response head.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    length: Option<u64>,
    reusable: bool,
}

thread_local! {
    /// [`parse_head`]'s list of header positions, reused: at most
    /// [`MAX_HEADERS`] entries a thread.
    static FOUND: std::cell::Cell<Vec<(HeaderName, usize, usize)>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// The final response head at the start of `buf`, taken off it; `None`
/// until it is all there. Interim (1xx) heads are dropped on the way.
fn parse_head(buf: &mut BytesMut, to: &Target<'_>) -> Result<Option<(Head, Framing)>, Error> {
    loop {
        // Left uninitialised: httparse writes only the slots it fills (128
        // empty headers written first were some 600 instructions a head).
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Protocol("too many headers"));
            }
            Err(_) => return Err(Error::Protocol("malformed head")),
        };
        if len > MAX_HEAD {
            return Err(Error::Protocol("head too large"));
        }
        let code = res.code.unwrap_or(0);
        let version = res.version.unwrap_or(0);
        if code == 101 && !to.upgrade {
            return Err(Error::Protocol("unasked-for 101"));
        }
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
            if buf.is_empty() {
                return Ok(None);
            }
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| Error::Protocol("bad status"))?;
        // Where each header sits in the head, to share its bytes below;
        // the list is the thread's, kept from head to head (always put
        // back drained, so it is empty when taken).
        let base = buf.as_ptr() as usize;
        let mut found = FOUND.take();
        let (mut te, mut chunked, mut length, mut close) = (false, false, None::<u64>, false);
        for h in res.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| Error::Protocol("bad header name"))?;
            if name == actix_web::http::header::TRANSFER_ENCODING {
                te = true;
                // Only the last coding decides the framing.
                chunked = last_token(h.value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name == actix_web::http::header::CONTENT_LENGTH {
                for part in h.value.split(|&b| b == b',') {
                    let n =
                        parse_length(trim(part)).ok_or(Error::Protocol("bad content-length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Error::Protocol("conflicting content-length"));
                    }
                    length = Some(n);
                }
            } else if name == actix_web::http::header::CONNECTION {
                close |= h
                    .value
                    .split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
            }
            let start = (h.value.as_ptr() as usize).wrapping_sub(base);
            found.push((name, start, h.value.len()));
        }
        let head = buf.split_to(len).freeze();
        // Room for what the gateway adds (request id, rate-limit headers).
        let mut headers = HeaderMap::with_capacity(found.len() + 4);
        for (name, start, n) in found.drain(..) {
            let value = if n == 0 {
                HeaderValue::from_static("")
            } else {
                let bytes = start
                    .checked_add(n)
                    .and_then(|end| head.get(start..end))
                    .ok_or(Error::Protocol("bad header"))?;
                HeaderValue::from_maybe_shared(head.slice_ref(bytes))
                    .map_err(|_| Error::Protocol("bad header value"))?
            };
            headers.append(name, value);
        }
        FOUND.set(found);
        let no_body = to.head_request || code == 101 || code == 204 || code == 304;
        let framing = if no_body {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked(Chunk::Size)
        } else if te {
            Framing::Eof
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Eof
        };
        let reusable = to.keepalive > 0
            && code != 101
            && version == 1
            && !close
            && !(te && length.is_some())
            && !matches!(framing, Framing::Eof);
        let length = if te { None } else { length };
        return Ok(Some((
            Head {
                status,
                headers,
                length,
                reusable,
            },
            framing,
        )));
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn last_token(value: &[u8]) -> Option<&[u8]> {
    value
        .rsplit(|&b| b == b',')
        .map(trim)
        .find(|t| !t.is_empty())
}

/// Decimal digits only (no sign, no spaces), at most 19 of them.
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// How the rest of the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the upstream closes.
    Eof,
    /// The body has been read to its end.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of the chunk are still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines; this many bytes so far.
    Trailers(usize),
}

/// An upstream response body. Reads the socket only when the bytes already
/// read have been handed on; returns the connection to the pool at the end.
pub struct Body {
    io: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    /// Where the connection goes back to at the end, when it may.
    pool: Option<(Arc<str>, usize)>,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Body {
    /// The next piece of body from `buf`, or `None` when more must be read
    /// (or the body is done). With `data` false, only framing is consumed:
    /// it stops where body bytes begin.
    fn decode(&mut self, data: bool) -> io::Result<Option<Bytes>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(n) if n > 0 && !data => return Ok(None),
                Framing::Eof | Framing::Chunked(Chunk::Data(_)) if !data => return Ok(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(n) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (self.buf.len() as u64).min(n);
                    self.framing = Framing::Length(n - take);
                    return Ok(Some(self.buf.split_to(take as usize).freeze()));
                }
                Framing::Eof => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Data(n)) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (self.buf.len() as u64).min(n);
                    self.framing = Framing::Chunked(if take == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(n - take)
                    });
                    return Ok(Some(self.buf.split_to(take as usize).freeze()));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = find_crlf(&self.buf, MAX_LINE) else {
                        if self.buf.len() >= MAX_LINE {
                            return Err(invalid("chunk size line too long"));
                        }
                        return Ok(None);
                    };
                    let size = chunk_size(&self.buf[..end]).ok_or(invalid("bad chunk size"))?;
                    self.buf.advance(end + 2);
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let room = MAX_TRAILERS.saturating_sub(seen);
                    let Some(end) = find_crlf(&self.buf, room) else {
                        if self.buf.len() >= room {
                            return Err(invalid("trailers too long"));
                        }
                        return Ok(None);
                    };
                    self.buf.advance(end + 2);
                    self.framing = if end == 0 {
                        Framing::Done
                    } else {
                        Framing::Chunked(Chunk::Trailers(seen + end + 2))
                    };
                }
            }
        }
    }

    /// Decodes what needs no more bytes (a chunk's end, the last chunk,
    /// trailers already read) and, when that ends the body, lets the
    /// connection go: back to the pool if it may, closed otherwise.
    /// `drained`: this poll's last read found the socket empty.
    fn settle(&mut self, drained: bool) {
        if self.decode(false).is_err() {
            // Left where it failed: the next poll reports it.
            return;
        }
        // The rest of the body already in hand: the connection can carry
        // the next request while these bytes go to the client.
        if drained
            && let Framing::Length(n) = self.framing
            && self.buf.len() as u64 == n
            && let Some((authority, keepalive)) = self.pool.take()
            && let Some(io) = self.io.take()
        {
            checkin(&authority, io, keepalive, true);
        }
        if self.framing == Framing::Done
            && let Some(io) = self.io.take()
            && let Some((authority, keepalive)) = self.pool.take()
            && self.buf.is_empty()
        {
            checkin(&authority, io, keepalive, drained);
        }
    }

    /// The whole body when all of it is in hand, it is the `length` the
    /// answer declares (not so for a HEAD's), and the connection is no
    /// longer this body's (back in the pool): it can go out as one piece,
    /// with no stream to drive and no timer to keep.
    pub fn take_whole(&mut self, length: Option<u64>) -> Option<Bytes> {
        let in_hand = match self.framing {
            Framing::Done => 0,
            Framing::Length(n) if self.buf.len() as u64 == n => n,
            _ => return None,
        };
        if self.io.is_some() || length != Some(in_hand) {
            return None;
        }
        self.framing = Framing::Done;
        Some(if in_hand == 0 {
            Bytes::new()
        } else {
            self.buf.split().freeze()
        })
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.framing = Framing::Done;
        self.io = None;
        self.pool = None;
        Poll::Ready(Some(Err(e)))
    }
}

/// The index of the first CRLF within the first `limit` bytes of `buf`.
fn find_crlf(buf: &[u8], limit: usize) -> Option<usize> {
    let window = &buf[..buf.len().min(limit)];
    window.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line's size: 1 to 15 hex digits, then optional whitespace
/// and `;extensions`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = trim(&line[digits..]);
    if digits == 0 || digits > 15 || !(rest.is_empty() || rest[0] == b';') {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()
}

impl Stream for Body {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Whether a read in this poll found the socket empty (see `checkin`).
        let mut drained = false;
        loop {
            match this.decode(true) {
                Err(e) => return this.fail(e),
                Ok(Some(piece)) => {
                    this.settle(drained);
                    return Poll::Ready(Some(Ok(piece)));
                }
                Ok(None) if this.framing == Framing::Done => {
                    this.settle(drained);
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let Some(io) = &this.io else {
                return Poll::Ready(None);
            };
            match ready!(poll_fill(io, &mut this.buf, cx)) {
                Ok((0, _)) if this.framing == Framing::Eof => {
                    this.framing = Framing::Done;
                    this.io = None;
                    return Poll::Ready(None);
                }
                Ok((0, _)) => return this.fail(invalid("upstream closed mid-body")),
                Ok((_, all)) => drained = all,
                Err(e) => return this.fail(e),
            }
        }
    }
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

    #[test]
    fn chunk_sizes_are_short_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"FF ; name=value"), Some(255));
        assert_eq!(chunk_size(b"10;x"), Some(16));
        for bad in [
            &b""[..],
            b"x",
            b" 1",
            b"1 2",
            b"-1",
            b"1000000000000000",
            b"+5",
        ] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lengths_are_plain_decimal() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"12345"), Some(12345));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None);
        }
    }

    #[test]
    fn the_last_transfer_coding_decides() {
        assert_eq!(last_token(b"gzip, chunked"), Some(&b"chunked"[..]));
        assert_eq!(last_token(b"chunked, gzip"), Some(&b"gzip"[..]));
        assert_eq!(last_token(b"chunked ,"), Some(&b"chunked"[..]));
    }
}
