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

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::Stream;

use super::GatewayError;
use super::trusted::TrustedProxies;

/// Stands in for a timeout too long to represent.
const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

pub const X_USER_ID: &str = "x-user-id";
pub const X_USERNAME: &str = "x-username";
pub const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

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

thread_local! {
    // One pooled client per worker thread: connections to upstreams are reused.
    static CLIENT: awc::Client = awc::Client::builder()
        .no_default_headers()
        .disable_redirects()
        .timeout(Duration::from_secs(3600))
        .finish();
}

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
fn is_hop_by_hop(name: &HeaderName, connection: Option<&HeaderMap>) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "connection" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "keep-alive"
    ) || n.starts_with("proxy-")
        || connection.is_some_and(|headers| {
            headers
                .get_all(header::CONNECTION)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|token| token.trim().eq_ignore_ascii_case(n))
        })
}

/// `headers` when it has a `Connection` header (see `is_hop_by_hop`).
fn with_connection(headers: &HeaderMap) -> Option<&HeaderMap> {
    Some(headers).filter(|h| h.contains_key(header::CONNECTION))
}

/// The headers to send upstream for `req`.
pub fn upstream_headers(
    req: &HttpRequest,
    fwd: &Forwarded<'_>,
    policy: &HeaderPolicy,
) -> Vec<(HeaderName, HeaderValue)> {
    let headers = req.headers();
    let connection = with_connection(headers);
    let mut out = Vec::with_capacity(headers.len() + 6);
    for (name, value) in headers.iter() {
        let n = name.as_str();
        let dropped = matches!(n, "host" | "content-length" | "expect")
            || (!policy.underscores && n.contains('_'))
            || is_protected(n)
            || is_hop_by_hop(name, connection);
        if !dropped {
            out.push((name.clone(), value.clone()));
        }
    }
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    let trusted = policy.trusted.trusts(peer);
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    let mut xff = String::new();
    if trusted {
        for prior in headers
            .get_all(X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok())
        {
            xff.push_str(prior);
            xff.push_str(", ");
        }
    }
    xff.push_str(&peer);
    // The listener's own scheme: never the request target's or a header's.
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let passed_on = |name: &str| {
        headers
            .get(name)
            .filter(|_| trusted)
            .and_then(|v| v.to_str().ok())
    };
    let proto = passed_on(X_FORWARDED_PROTO).unwrap_or(scheme);
    let host = passed_on(X_FORWARDED_HOST)
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    let mut push = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.push((HeaderName::from_static(name), v));
        }
    };
    push(X_FORWARDED_FOR, &xff);
    push(X_FORWARDED_PROTO, proto);
    if let Some(host) = host {
        push(X_FORWARDED_HOST, host);
    }
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

/// The client's body as a stream for awc, failing at the server's body
/// deadlines (`total` from now, `idle` between parts) and recording why, so
/// the answer can say whose fault it was.
pub struct UploadStream {
    payload: actix_web::web::Payload,
    idle: Duration,
    total: Pin<Box<tokio::time::Sleep>>,
    next: Pin<Box<tokio::time::Sleep>>,
    failed: std::rc::Rc<std::cell::Cell<Option<UploadError>>>,
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
            failed: Default::default(),
        }
    }

    fn fail(&self, e: UploadError) -> Poll<Option<Result<Bytes, UploadError>>> {
        self.failed.set(Some(e));
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

/// Sends the request upstream and streams the answer back.
pub async fn forward(
    req: &HttpRequest,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Upload,
    timeout: Duration,
    body_deadline: Duration,
) -> Result<HttpResponse, GatewayError> {
    let mut upstream = CLIENT.with(|c| c.request(req.method().clone(), url));
    for (name, value) in headers {
        upstream = upstream.append_header((name, value));
    }
    // awc's timeout covers connecting, sending and the response head only;
    // the body's pace is `IdleTimeout`'s business. A streamed upload takes
    // as long as the client sends (its own deadlines bound that), then the
    // route timeout bounds the wait for the head.
    let (sent, failed) = match body {
        Upload::Whole(body) => {
            let wait = timeout;
            let sent = upstream.timeout(wait).send_body(body);
            (tokio::time::timeout(wait, sent).await, None)
        }
        Upload::Stream(length, stream) => {
            let wait = timeout.saturating_add(body_deadline);
            let failed = stream.failed.clone();
            let sent = upstream
                .timeout(wait)
                .send_body(SizedStream::new(length, stream));
            (tokio::time::timeout(wait, sent).await, Some(failed))
        }
    };
    let res = sent
        .map_err(|_| GatewayError::UpstreamTimeout)?
        .map_err(|e| match (failed.and_then(|f| f.get()), e) {
            (Some(UploadError::TimedOut), _) => GatewayError::RequestTimeout,
            (Some(UploadError::Unreadable), _) => GatewayError::BadRequest,
            (None, awc::error::SendRequestError::Timeout) => GatewayError::UpstreamTimeout,
            (None, awc::error::SendRequestError::Connect(_)) => GatewayError::ServiceUnavailable,
            _ => GatewayError::BadGateway,
        })?;
    let status =
        StatusCode::from_u16(res.status().as_u16()).map_err(|_| GatewayError::BadGateway)?;
    let mut out = HttpResponse::build(status);
    let upstream_headers = res.headers();
    let connection = with_connection(upstream_headers);
    for (name, value) in upstream_headers.iter() {
        if name != header::CONTENT_LENGTH && !is_hop_by_hop(name, connection) {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let length = upstream_headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = IdleTimeout::new(res, timeout);
    Ok(match length {
        // Known length: actix writes Content-Length (Compress, when it
        // encodes, switches to chunked itself).
        Some(length) => out.body(SizedStream::new(length, body)),
        None => out.streaming(body),
    })
}

/// An upstream body that fails when no chunk arrives within `idle` of being
/// asked for. The clock runs only while the client is waiting for data, not
/// while the client is slow to take it.
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether `deadline` is set for the chunk being waited for.
    armed: bool,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration) -> Self {
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
