//! Forwarding one request upstream and its answer back.
//!
//! Bodies travel as the exact bytes received, never parsed or re-encoded.
//! Hop-by-hop headers (Connection and every header it names, Keep-Alive, TE,
//! Trailer, Transfer-Encoding, Upgrade, Proxy-*) are dropped both ways.
//!
//! Request headers the gateway owns are always removed from what the client
//! sent, in any spelling that normalises to them (lower case, `_` -> `-`):
//! `X-User-Id`, `X-Username` (set by the gateway for a caller whose JWT
//! validated: always on authenticated routes, when given on open ones),
//! `X-Request-Id` (set to the request's id), `X-Real-IP`, `Forwarded` (never
//! sent: the gateway speaks `X-Forwarded-*` only) and every `X-Forwarded-*`.
//! Any other header whose name holds `_` is dropped unless the proxy sets
//! `underscores_in_headers: true` (CGI-style upstreams read `X_User_Id` and
//! `X-User-Id` as the same `HTTP_X_USER_ID`). `X-Forwarded-For` is the real
//! peer, `X-Forwarded-Proto` the listener's real scheme, `X-Forwarded-Host`
//! the `Host` header; only a peer in `trusted_proxies` may pass on its own
//! `X-Forwarded-For` (the peer is appended), `-Proto` and `-Host`.
//!
//! A request body declared (`Content-Length`) over [`STREAM_FROM`] bytes is
//! streamed upstream as it arrives, under the server's body deadlines, with
//! the same `Content-Length`: a 1 GiB upload costs no more memory than a
//! small one. Smaller bodies and chunked ones (no declared size) are read
//! whole first, within `max_body`, so an error can still be a clean 4xx.
//!
//! The response is streamed, never held whole: the upstream is read only as
//! fast as the client takes the body. The route timeout bounds the wait for
//! the response head; after it, the same duration bounds the wait for each
//! body chunk. A body that fails or stalls mid-way closes the client's
//! connection (the status has already gone out; it cannot become a 502).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;

use super::trusted::TrustedProxies;
use super::{GatewayError, upstream};
use crate::http::front::{DAY, Headers, Incoming, KeptTimer, header_value, text};

pub const X_USER_ID: &str = "x-user-id";
pub const X_USERNAME: &str = "x-username";
pub const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// The names above as looked up in a header map: a `&str` key would be
/// parsed into a freshly allocated name on every lookup.
pub(super) const X_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(X_REQUEST_ID);
pub(super) const X_FORWARDED_FOR_NAME: HeaderName = HeaderName::from_static(X_FORWARDED_FOR);
const X_FORWARDED_PROTO_NAME: HeaderName = HeaderName::from_static(X_FORWARDED_PROTO);
const X_FORWARDED_HOST_NAME: HeaderName = HeaderName::from_static(X_FORWARDED_HOST);

/// Names only the gateway may send upstream (plus every `x-forwarded-*`).
const PROTECTED: &[&str] = &[
    X_USER_ID,
    X_USERNAME,
    X_REQUEST_ID,
    "forwarded",
    "x-real-ip",
    // Headers some frameworks route on instead of the request line (IIS URL
    // Rewrite, Symfony, Laminas): the upstream must see what was matched.
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Who the request is for, when its JWT validated.
#[derive(Debug, Clone)]
pub struct Forwarded<'a> {
    pub user_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub request_id: &'a str,
}

/// How one proxy treats incoming headers, fixed at boot.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// `underscores_in_headers`: forward names holding `_` (protected names
    /// are still removed in any spelling).
    pub underscores: bool,
    pub trusted: TrustedProxies,
}

/// `a` equals `b` once `_` in `a` is read as `-` (both lower case).
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-'))
}

/// Whether `name` (lower case) normalises to a header the gateway owns.
pub fn is_protected(name: &str) -> bool {
    const PREFIX: &str = "x-forwarded-";
    PROTECTED.iter().any(|p| same_name(name, p))
        || (name.len() > PREFIX.len()
            && name.is_char_boundary(PREFIX.len())
            && same_name(&name[..PREFIX.len()], PREFIX))
}

/// Whether `name` describes one connection, not the message: a fixed list
/// plus what `Connection` names (`connection`: the message's headers when it
/// has a `Connection` header, which is rare). Allocation-free.
fn is_hop_by_hop(n: &str, connection: Option<Headers<'_>>) -> bool {
    always_hop_by_hop(n)
        || connection.is_some_and(|headers| names(headers.get_all(&header::CONNECTION), n))
}

/// Whether `name` (lower case) is always hop-by-hop, whatever `Connection`
/// names.
pub(crate) fn always_hop_by_hop(n: &str) -> bool {
    matches!(
        n,
        "connection" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "keep-alive"
    ) || n.starts_with("proxy-")
}

/// Whether a `Connection` header's `values` name `n`.
/// Token by token, as bytes: a value with a byte that is not visible
/// ASCII still names what its other tokens name.
pub(crate) fn names<'v>(values: impl Iterator<Item = &'v [u8]>, n: &str) -> bool {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(n.as_bytes()))
}

/// Whether a `Connection` header's `values` name a header, not just
/// `keep-alive` or `close` (as most upstreams send).
pub(crate) fn names_others<'v>(values: impl Iterator<Item = &'v [u8]>) -> bool {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .any(|t| !t.eq_ignore_ascii_case(b"keep-alive") && !t.eq_ignore_ascii_case(b"close"))
}

/// `headers` when it has a `Connection` header (see `is_hop_by_hop`).
fn with_connection(headers: Headers<'_>) -> Option<Headers<'_>> {
    Some(headers).filter(|h| h.contains(&header::CONNECTION))
}

/// Appends `name: value` CRLF.
pub(crate) fn put_header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The start of the request for `req` upstream, written straight into one
/// buffer: the request line (`method`, `path`, `?query` when there is one),
/// `Host: authority`, the client's end-to-end headers minus those the
/// gateway owns, then the gateway's `X-Forwarded-*`, `X-Request-Id` and
/// identity headers. The caller adds its framing headers and the blank line.
pub(crate) fn request_head(
    req: &Incoming<'_>,
    path: &str,
    authority: &str,
    fwd: &Forwarded<'_>,
    policy: &HeaderPolicy,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(1024);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path.as_bytes());
    if let Some(query) = req.query {
        out.extend_from_slice(b"?");
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(&mut out, "host", authority.as_bytes());
    let headers = req.headers;
    let connection = with_connection(headers);
    for (n, value) in headers.iter() {
        let dropped = matches!(n, "host" | "content-length" | "expect")
            || (!policy.underscores && n.contains('_'))
            || is_protected(n)
            || is_hop_by_hop(n, connection);
        if !dropped {
            put_header(&mut out, n, value);
        }
    }
    let peer = req.peer;
    let trusted = policy.trusted.trusts(peer);
    // Values below are ASCII from parsed headers (`to_str`), an address, or
    // checked with `header_value`: none can end the line early.
    out.extend_from_slice(X_FORWARDED_FOR.as_bytes());
    out.extend_from_slice(b": ");
    if trusted {
        for prior in headers.get_all(&X_FORWARDED_FOR_NAME).filter_map(text) {
            out.extend_from_slice(prior.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    if let Some(peer) = peer {
        crate::util::put_ip(&mut out, peer);
    }
    out.extend_from_slice(b"\r\n");
    // The listener's own scheme: never the request target's or a header's.
    let scheme = if req.secure { "https" } else { "http" };
    // The value the nearest trusted proxy added: the last element of the
    // last line, as with `X-Forwarded-For` (a client's own value comes
    // first, where a proxy that appends leaves it).
    let passed_on = |name: &HeaderName| {
        if !trusted {
            return None;
        }
        headers
            .get_all(name)
            .last()
            .and_then(text)
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = passed_on(&X_FORWARDED_PROTO_NAME)
        .filter(|p| p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https"))
        .unwrap_or(scheme);
    put_header(&mut out, X_FORWARDED_PROTO, proto.as_bytes());
    let host =
        passed_on(&X_FORWARDED_HOST_NAME).or_else(|| headers.get(&header::HOST).and_then(text));
    if let Some(host) = host {
        put_header(&mut out, X_FORWARDED_HOST, host.as_bytes());
    }
    let mut push = |name: &str, value: &str| {
        if header_value(value.as_bytes()) {
            put_header(&mut out, name, value.as_bytes());
        }
    };
    push(X_REQUEST_ID, fwd.request_id);
    if let (Some(id), Some(name)) = (fwd.user_id, fwd.username) {
        push(X_USER_ID, id);
        push(X_USERNAME, name);
    }
    out
}

/// Declared request bodies larger than this are streamed, not read whole.
pub const STREAM_FROM: u64 = 64 * 1024;

/// A request body on its way upstream.
pub enum Upload {
    /// Read whole (small, or chunked).
    Whole(Bytes),
    /// Streamed as it arrives: its declared length and the stream.
    Stream(u64, UploadStream),
}

/// Why a streamed upload stopped (the client's fault either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadError {
    /// The body did not arrive within the server's body deadlines.
    TimedOut,
    /// The client's connection failed mid-body.
    Unreadable,
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UploadError::TimedOut => "request body timed out",
            UploadError::Unreadable => "request body unreadable",
        })
    }
}

impl std::error::Error for UploadError {}

/// The client's body as a stream for the upstream, failing at the server's
/// body deadlines (`total` from now, `idle` between parts) with why, so the
/// answer can say whose fault it was.
pub struct UploadStream {
    payload: actix_web::web::Payload,
    idle: Duration,
    total: Pin<Box<tokio::time::Sleep>>,
    next: Pin<Box<tokio::time::Sleep>>,
}

impl UploadStream {
    /// Wraps `payload` with the deadlines.
    pub fn new(payload: actix_web::web::Payload, total: Duration, idle: Duration) -> Self {
        let at = |d: Duration| {
            let now = tokio::time::Instant::now();
            now.checked_add(d)
                .unwrap_or(now + Duration::from_secs(86_400 * 365))
        };
        UploadStream {
            payload,
            idle,
            total: Box::pin(tokio::time::sleep_until(at(total))),
            next: Box::pin(tokio::time::sleep_until(at(idle))),
        }
    }

    fn fail(&self, e: UploadError) -> Poll<Option<Result<Bytes, UploadError>>> {
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for UploadStream {
    type Item = Result<Bytes, UploadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.total.as_mut().poll(cx).is_ready() {
            return self.fail(UploadError::TimedOut);
        }
        match Pin::new(&mut self.payload).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let idle = self.idle;
                if let Some(at) = tokio::time::Instant::now().checked_add(idle) {
                    self.next.as_mut().reset(at);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(_))) => self.fail(UploadError::Unreadable),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if self.next.as_mut().poll(cx).is_ready() => {
                self.fail(UploadError::TimedOut)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Where one request goes, as its route says.
pub struct Destination<'a> {
    /// `host:port`.
    pub authority: &'a Arc<str>,
    /// Idle connections to keep per worker.
    pub keepalive: usize,
    /// Bounds connecting, sending and the response head; then each wait
    /// for a body chunk.
    pub timeout: Duration,
}

/// Ends `head` (from [`request_head`]) with the body's framing, sends it
/// and the body upstream, and streams the answer back. `body_deadline`
/// extends the wait for the head by the time a streamed upload may take.
pub async fn forward(
    method: &Method,
    head: BytesMut,
    body: Upload,
    to: Destination<'_>,
    body_deadline: Duration,
) -> Result<HttpResponse, GatewayError> {
    let idle = to.timeout;
    let res = exchange(method, head, body, to, body_deadline, None).await?;
    Ok(relay(res, idle))
}

/// What [`forward`] does up to the upstream's answer, which it returns
/// unrelayed: its head read, its body still to come.
pub async fn exchange(
    method: &Method,
    mut head: BytesMut,
    body: Upload,
    to: Destination<'_>,
    body_deadline: Duration,
    timer: Option<&KeptTimer>,
) -> Result<upstream::Response, GatewayError> {
    let bodiless = matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    let length = match &body {
        Upload::Whole(bytes) => bytes.len() as u64,
        Upload::Stream(length, _) => *length,
    };
    if length > 0 || !bodiless {
        let _ = write!(head, "content-length: {length}\r\n");
    }
    if to.keepalive == 0 {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let target = upstream::Target {
        authority: to.authority,
        keepalive: to.keepalive,
        head_request: *method == Method::HEAD,
        idempotent: bodiless || *method == Method::PUT,
        upgrade: false,
        body: length > 0,
    };
    // A streamed upload takes as long as the client sends (its own
    // deadlines bound that), then the route timeout bounds the wait for the
    // head; the body's pace is `IdleTimeout`'s business.
    let (sent, wait) = match body {
        Upload::Whole(bytes) => {
            head.extend_from_slice(&bytes);
            let sent = upstream::send(target, &head, None::<UploadStream>);
            // The connection's timer when it lends one.
            let sent = match timer {
                Some(timer) => timer.within(to.timeout, sent).await.ok_or(()),
                None => tokio::time::timeout(to.timeout, sent).await.map_err(drop),
            };
            (sent, to.timeout)
        }
        Upload::Stream(_, stream) => {
            let wait = to.timeout.saturating_add(body_deadline);
            let sent = upstream::send(target, &head, Some(stream));
            (tokio::time::timeout(wait, sent).await.map_err(drop), wait)
        }
    };
    sent.map_err(|()| {
        log::debug!("gateway upstream timed out wait_ms={}", wait.as_millis());
        GatewayError::UpstreamTimeout
    })?
    .map_err(failed)
}

/// The client's error for an exchange with the upstream that failed.
pub fn failed(e: upstream::Error) -> GatewayError {
    log::debug!("gateway upstream failed error={e}");
    match e {
        upstream::Error::Upload(UploadError::TimedOut) => GatewayError::RequestTimeout,
        upstream::Error::Upload(UploadError::Unreadable) => GatewayError::BadRequest,
        upstream::Error::Connect(_) => GatewayError::ServiceUnavailable,
        upstream::Error::Io(_) | upstream::Error::Protocol(_) => GatewayError::BadGateway,
    }
}

/// The client's response for the upstream's: its status, its headers less
/// the hop-by-hop ones, its body streamed with `idle` as the longest wait
/// for each chunk.
pub fn relay(res: upstream::Response, idle: Duration) -> HttpResponse {
    // 204 and 304 have no body whatever their headers say (RFC 9110 6.4.1):
    // nothing is written after the head, not even a chunked body's end. A
    // 304 keeps the upstream's Content-Length, the length of the answer it
    // stands for.
    let not_modified = res.status == StatusCode::NOT_MODIFIED;
    let mut body = res.body;
    let mut out = if not_modified || res.status == StatusCode::NO_CONTENT {
        HttpResponse::build(res.status).body(actix_web::body::None::new())
    } else if let Some(whole) = body.take_whole(res.length) {
        // All of it already read (most small answers): sent as bytes.
        HttpResponse::build(res.status).body(whole)
    } else {
        let body = IdleTimeout::new(body, idle);
        match res.length {
            // Known length: actix writes Content-Length (Compress, when it
            // encodes, switches to chunked itself).
            Some(length) => HttpResponse::build(res.status).body(SizedStream::new(length, body)),
            // `streaming` would add a Content-Type the upstream did not send.
            None => HttpResponse::build(res.status).body(BodyStream::new(body)),
        }
    };
    // The upstream's map, filtered in place, becomes the response's (with
    // anything the builder set kept).
    // Room for the labels the proxy adds (request id, rate-limit figures).
    let mut headers = res.headers.into_map(4);
    end_to_end(&mut headers, not_modified);
    let set = std::mem::replace(out.headers_mut(), headers);
    for (name, value) in set {
        out.headers_mut().append(name, value);
    }
    out
}

/// Drops from an upstream answer's headers the hop-by-hop ones and, but
/// on a 304 (`not_modified`), `Content-Length` (the client's framing is
/// the gateway's). What its `Connection` names is hop-by-hop too:
/// `is_hop_by_hop` reads those values from a copy, as the map cannot lend
/// them while it is being filtered.
pub(crate) fn end_to_end(headers: &mut HeaderMap, not_modified: bool) {
    // `Connection: keep-alive` or `close`, as most upstreams send, names no
    // other header: no copy then.
    let values = || headers.get_all(header::CONNECTION).map(|v| v.as_bytes());
    let connection: Vec<HeaderValue> = if names_others(values()) {
        headers.get_all(header::CONNECTION).cloned().collect()
    } else {
        Vec::new()
    };
    let connection: Vec<&[u8]> = connection.iter().map(HeaderValue::as_bytes).collect();
    headers.retain(|name, _| kept_end_to_end(name.as_str(), not_modified, &connection));
}

/// Whether an upstream answer's header `name` (lower case) goes on to the
/// client: not hop-by-hop (the fixed set, or named by `connection`, the
/// answer's `Connection` values when they name more than `keep-alive` or
/// `close`), and not `Content-Length` but on a 304 (`not_modified`).
pub(crate) fn kept_end_to_end(name: &str, not_modified: bool, connection: &[&[u8]]) -> bool {
    (name != "content-length" || not_modified)
        && !always_hop_by_hop(name)
        && !names(connection.iter().copied(), name)
}

/// An upstream body that fails when no chunk arrives within `idle` of being
/// asked for. The clock runs only while the client is waiting for data, not
/// while the client is slow to take it.
pub(crate) struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether `deadline` is set for the chunk being waited for.
    armed: bool,
}

impl<S> IdleTimeout<S> {
    pub(crate) fn new(inner: S, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            armed: false,
        }
    }
}

impl<S, E> Stream for IdleTimeout<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.armed = false;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                log::warn!("gateway upstream body failed mid-way error={e}");
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !this.armed {
                    let now = tokio::time::Instant::now();
                    let at = now.checked_add(this.idle).unwrap_or(now + DAY);
                    this.deadline.as_mut().reset(at);
                    this.armed = true;
                }
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        log::warn!(
                            "gateway upstream body stalled idle_ms={}",
                            this.idle.as_millis()
                        );
                        Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "upstream body stalled",
                        ))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
