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
//!   `Content-Length` but 0, and one at most; no `Transfer-Encoding`), one
//!   `Host`, no `Expect`, no `Upgrade`, no `Origin` (CORS), no
//!   `Accept-Encoding` but `identity` (compression) and no `Connection`
//!   but `keep-alive` or `close`;
//! - a head within the server's header limit and 64 headers, with names
//!   and values a header map takes, and a target of the plainest bytes
//!   (see `TARGET`);
//! - a path a proxy serves (not `/healthz` or `/metrics`, the server's
//!   own).
//!
//! A request this path does not take goes to actix-http with the
//! connection, for good, the bytes already read in front of the socket's
//! (`Conn`). So every other case (bodies, upgrades, malformed heads, CORS,
//! compression) is served as before, by the same code. A head must arrive
//! whole within the request timeout (the first) or the keep-alive time (a
//! later one), else the connection gets actix-http's 408 and closes; a
//! connection idle between requests for the keep-alive time, or when the
//! server stops, is closed. (actix-http sets no deadline on a later head
//! once its first byte is in: here it has one, the keep-alive time.)

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web::{Bytes, BytesMut};
use bytes::Buf;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How much of a connection is read at once for request heads.
const READ: usize = 8 * 1024;
/// At most this many headers in a head the front takes.
const MAX_HEADERS: usize = 64;
/// How long a kept-alive connection may sit idle (actix-http's default,
/// which the servers keep).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The most of a head the front reads: actix-http's own bound on a
/// request head (its codec answers 431 past it).
const MAX_HEAD: usize = 128 * 1024;
/// The longest request target the front takes: what `http::Uri` takes
/// (actix-http answers 400 past it).
const MAX_TARGET: usize = 65_534;
/// Stands in for a wait too long to represent.
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// What a proxy reads of a request, wherever its head was parsed (here, or
/// by actix-http).
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    /// The path as received.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: Headers<'a>,
    /// The peer's address, canonical.
    pub peer: Option<IpAddr>,
    /// Whether the listener is TLS.
    pub secure: bool,
    /// Whether the client asked for the connection to end after the
    /// answer (`Connection: close`; on the front's path only: actix-http
    /// keeps that itself).
    pub close: bool,
    /// The connection's timer for the wait upstream (on the front's path
    /// only).
    pub timer: Option<&'a KeptTimer>,
}

/// A timer a connection keeps and lends to one wait at a time (for a
/// request's head, or for the upstream's answer to it): set again only
/// when it goes off before the wait in hand ends or is due after it, so
/// that a request on a kept connection costs no timer of its own (each
/// wait ends later than the last of its kind, and the timer is left where
/// it is until it goes off).
#[derive(Default)]
pub(crate) struct KeptTimer(std::cell::Cell<Option<Pin<Box<tokio::time::Sleep>>>>);

impl KeptTimer {
    /// `fut`'s output, or `None` if `wait` passed first.
    pub(crate) async fn within<F: Future>(&self, wait: Duration, fut: F) -> Option<F::Output> {
        let now = tokio::time::Instant::now();
        self.until(now.checked_add(wait).unwrap_or(now + DAY), fut)
            .await
    }

    /// `fut`'s output, or `None` if `at` came first; `fut` is polled
    /// first, as `tokio::time::timeout` does.
    pub(crate) async fn until<F: Future>(
        &self,
        at: tokio::time::Instant,
        fut: F,
    ) -> Option<F::Output> {
        let sleep = match self.0.take() {
            Some(sleep) if sleep.deadline() <= at => sleep,
            Some(mut sleep) => {
                sleep.as_mut().reset(at);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(at)),
        };
        // Given back however the wait ends (the request's future dropped
        // halfway included).
        struct Lent<'t>(&'t KeptTimer, Option<Pin<Box<tokio::time::Sleep>>>);
        impl Lent<'_> {
            fn sleep(&mut self) -> Pin<&mut tokio::time::Sleep> {
                // Taken only when it is dropped.
                self.1.as_mut().expect("lent until dropped").as_mut()
            }
        }
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                self.0.0.set(self.1.take());
            }
        }
        let mut lent = Lent(self, Some(sleep));
        let mut fut = pin!(fut);
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            loop {
                std::task::ready!(lent.sleep().poll(cx));
                if lent.sleep().deadline() >= at {
                    return Poll::Ready(None);
                }
                // Went off for an earlier wait: on to this one's end.
                lent.sleep().reset(at);
            }
        })
        .await
    }
}

impl<'a> Incoming<'a> {
    /// The parts of a request actix-http parsed.
    pub(crate) fn of(req: &'a actix_web::HttpRequest) -> Self {
        Incoming {
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: Headers::Map(req.headers()),
            peer: req.peer_addr().map(|a| a.ip().to_canonical()),
            secure: req.app_config().secure(),
            close: false,
            timer: None,
        }
    }
}

/// A request's headers, wherever its head was parsed.
#[derive(Clone, Copy)]
pub(crate) enum Headers<'a> {
    /// actix-http's map.
    Map(&'a HeaderMap),
    /// As they stand in a head the front took (`Raw::head`), in order:
    /// names lower-cased in place (as a map's are), values checked as a map
    /// checks them.
    Raw(Raw<'a>),
}

/// The headers of a head the front took: the head, and where each header's
/// name and value are in it. `places` are the ones the `take` that found
/// this head gave (see [`header_at`]).
#[derive(Clone, Copy)]
pub(crate) struct Raw<'a> {
    head: &'a [u8],
    places: &'a [Place],
}

impl<'a> Raw<'a> {
    fn at(self, place: &Place) -> (&'a str, &'a [u8]) {
        // SAFETY: `places` came with `head` (the type's rule).
        unsafe { header_at(self.head, place) }
    }
}

/// One header of a head httparse parsed, by its place there: its name and
/// value.
///
/// # Safety
/// `place` must be one httparse gave for this very `head` (whose names may
/// since have been lower-cased where they stand): the name is taken as a
/// `str` unchecked.
pub(crate) unsafe fn header_at<'a>(
    head: &'a [u8],
    &(name, name_end, value, value_end): &Place,
) -> (&'a str, &'a [u8]) {
    let name = &head[name as usize..name_end as usize];
    debug_assert!(name.is_ascii());
    // SAFETY: httparse gave the name out as a `str` (a token, ASCII), and
    // lower-casing ASCII keeps a `str` one.
    let name = unsafe { std::str::from_utf8_unchecked(name) };
    (name, &head[value as usize..value_end as usize])
}

impl<'a> Headers<'a> {
    /// Every value of `name`, in order.
    pub(crate) fn get_all<'n>(self, name: &'n HeaderName) -> GetAll<'a, 'n> {
        match self {
            Headers::Map(map) => GetAll::Map(map.get_all(name)),
            Headers::Raw(raw) => GetAll::Raw(raw, raw.places.iter(), name.as_str()),
        }
    }

    /// The first value of `name`.
    pub(crate) fn get(self, name: &HeaderName) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    pub(crate) fn contains(self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// The map's value of `name`, when these are a map's: to share it
    /// rather than copy it.
    pub(crate) fn value(self, name: &HeaderName) -> Option<&'a HeaderValue> {
        match self {
            Headers::Map(map) => map.get(name),
            Headers::Raw(_) => None,
        }
    }

    /// Every header (lower-case name, value), in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let (map, raw) = match self {
            Headers::Map(map) => (Some(map.iter()), None),
            Headers::Raw(raw) => (None, Some(raw)),
        };
        let map = map
            .into_iter()
            .flatten()
            .map(|(n, v)| (n.as_str(), v.as_bytes()));
        let raw = raw
            .into_iter()
            .flat_map(|raw| raw.places.iter().map(move |place| raw.at(place)));
        map.chain(raw)
    }
}

/// What `HeaderValue::to_str` gives (visible ASCII and tabs only), checked
/// without an early exit so that the loop runs over whole vectors: a
/// bearer token is some 200 bytes, looked at on every request.
pub(crate) fn text(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((0x20..0x7f).contains(&b) || b == b'\t')
    });
    visible.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

/// The values of one header (`Headers::get_all`).
pub(crate) enum GetAll<'a, 'n> {
    Map(std::slice::Iter<'a, HeaderValue>),
    Raw(Raw<'a>, std::slice::Iter<'a, Place>, &'n str),
}

impl<'a> Iterator for GetAll<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            GetAll::Map(values) => values.next().map(HeaderValue::as_bytes),
            GetAll::Raw(raw, places, name) => places
                .map(|place| raw.at(place))
                .find(|(n, _)| n == name)
                .map(|(_, v)| v),
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

/// A request head the front takes, checked: where its parts are.
struct Taken {
    /// The head's length in bytes.
    len: usize,
    /// Where the request target is in it.
    target: std::ops::Range<usize>,
    method: Method,
    /// How many headers it has (their places are in the caller's array).
    count: usize,
    mount: usize,
    /// The client's `Connection: close`.
    close: bool,
}

/// Where a header's name and value are in a head: start and end of each.
pub(crate) type Place = (u32, u32, u32, u32);

/// What the bytes in hand hold.
enum Head {
    /// A whole head the front takes.
    Taken(Taken),
    /// The start of one, maybe.
    Partial,
    /// A request the front does not take.
    Not,
}

/// The bytes a request target may have on the front's path: RFC 3986's
/// unreserved, sub-delims, `:`, `@`, `/`, `?` and `%`. Anything else
/// (`#`, quotes, angle brackets, braces, non-ASCII) goes to actix-http,
/// whose URI parser decides.
const TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let allowed =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?%";
    let mut i = 0;
    while i < allowed.len() {
        table[allowed[i] as usize] = true;
        i += 1;
    }
    table
};

impl Front {
    /// Serves `io`'s requests while the front takes each; returns the
    /// connection, with the request it did not take in hand, when one is
    /// not, and `None` once the connection is done.
    pub(crate) async fn serve(&self, mut io: TcpStream, peer: SocketAddr) -> Option<Conn> {
        let mut input = BytesMut::new();
        let stopping = self.stopping.notified();
        let mut stopping = pin!(stopping);
        stopping.as_mut().enable();
        let peer_ip = peer.ip().to_canonical();
        let mut first = true;
        // Two timers a connection, for the heads and for the waits
        // upstream: a wheel entry every few seconds, not one a request.
        let (head_timer, upstream_timer) = (KeptTimer::default(), KeptTimer::default());
        // Each request's header places (the first `Taken::count`), filled
        // again for each.
        let mut places = [(0, 0, 0, 0); MAX_HEADERS];
        loop {
            // The first head has the request timeout, a later one the
            // keep-alive time, to arrive whole (a pipelined one may be in
            // hand already).
            let wait = if first {
                self.request_timeout
            } else {
                KEEP_ALIVE
            };
            let deadline = tokio::time::Instant::now() + wait;
            // How much of `input` is known not to end a head.
            let mut scanned = 0;
            let taken = loop {
                // What one read brought is parsed at once (mostly a whole
                // head); a head that did not end there, only once it may.
                let head = if scanned == 0 || ends_head(&input, scanned) {
                    self.take(&input, &mut places)
                } else {
                    Head::Partial
                };
                match head {
                    Head::Taken(taken) => break taken,
                    Head::Partial if input.len() <= self.header_limit.min(MAX_HEAD) + READ => {}
                    // actix-http answers a head over the limit.
                    Head::Partial | Head::Not => {
                        self.handoffs.inc(&[&self.server]);
                        return Some(Conn { io, read: input });
                    }
                }
                scanned = input.len();
                input.reserve(READ);
                tokio::select! {
                    biased;
                    read = head_timer.until(deadline, io.read_buf(&mut input)) => match read {
                        Some(Ok(n)) if n > 0 => {}
                        // Closed or failed.
                        Some(_) => return None,
                        // A kept-alive connection idle for too long closes;
                        // a request too slow to arrive gets a 408 first, as
                        // from actix-http.
                        None => {
                            if first || !input.is_empty() {
                                let _ = io.write_all(&timed_out()).await;
                                let _ = io.shutdown().await;
                            }
                            return None;
                        }
                    },
                    // Between requests, a stopping server closes.
                    () = &mut stopping, if input.is_empty() => return None,
                }
            };
            first = false;
            // A stopping server answers what it has read and closes, as
            // actix-http does (its answer says `connection: close`).
            let stopped = stopping.as_mut().now_or_never().is_some();
            // Names lower-cased where they stand, as a map has them.
            for &(name, name_end, _, _) in &places[..taken.count] {
                input[name as usize..name_end as usize].make_ascii_lowercase();
            }
            // Read where it stands, and dropped from the buffer once
            // answered (a split would allocate the buffer's shared state).
            let head = &input[..taken.len];
            // SAFETY: httparse gave the target out as a `str`, of `TARGET`'s
            // ASCII.
            let target = unsafe { std::str::from_utf8_unchecked(&head[taken.target.clone()]) };
            let (path, query) = match target.bytes().position(|b| b == b'?') {
                Some(at) => (&target[..at], Some(&target[at + 1..])),
                None => (target, None),
            };
            let req = Incoming {
                method: &taken.method,
                path,
                query,
                headers: Headers::Raw(Raw {
                    head,
                    places: &places[..taken.count],
                }),
                peer: Some(peer_ip),
                secure: false,
                close: taken.close || stopped,
                timer: Some(&upstream_timer),
            };
            let answer = self.mounts[taken.mount].answer(&req).await;
            input.advance(taken.len);
            match write(&mut io, answer).await {
                Ok(false) => {}
                Ok(true) => {
                    let _ = io.shutdown().await;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// What the start of `bytes` holds: a whole head the front takes (the
    /// places of its headers' names and values put in `places`), or not,
    /// or part of one.
    fn take(&self, bytes: &[u8], places: &mut [Place; MAX_HEADERS]) -> Head {
        if bytes.is_empty() {
            return Head::Partial;
        }
        // Left uninitialised: httparse writes only the slots it fills.
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, bytes, &mut slots);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Head::Partial,
            Err(_) => return Head::Not,
        };
        match self.check(bytes, len, &req, places) {
            Some(taken) => Head::Taken(taken),
            None => Head::Not,
        }
    }

    /// Whether the front takes `req`, a whole head of `len` bytes at the
    /// start of `bytes`, and where its parts are.
    fn check(
        &self,
        bytes: &[u8],
        len: usize,
        req: &httparse::Request<'_, '_>,
        places: &mut [Place; MAX_HEADERS],
    ) -> Option<Taken> {
        if req.version != Some(1) || len > MAX_HEAD {
            return None;
        }
        let method = match req.method? {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "DELETE" => Method::DELETE,
            _ => return None,
        };
        // Parts borrow from `bytes`: their places there.
        let at = |part: &[u8]| part.as_ptr() as usize - bytes.as_ptr() as usize;
        let raw = req.path?;
        if raw.len() > MAX_TARGET || !raw.bytes().fold(true, |ok, b| ok & TARGET[b as usize]) {
            return None;
        }
        let start = at(raw.as_bytes());
        let target = start..start + raw.len();
        let path = raw
            .bytes()
            .position(|b| b == b'?')
            .map_or(raw, |at| &raw[..at]);
        if !path.starts_with('/') || path == "/healthz" || path == "/metrics" {
            return None;
        }
        let (mut size, mut close, mut hosts, mut lengths) = (0, false, 0, 0);
        for (h, place) in req.headers.iter().zip(places.iter_mut()) {
            let (name, value) = (h.name, h.value);
            // httparse (as configured by default: no folded lines) lets
            // through only bytes a header value may hold
            // (`httparse_values_are_header_values`).
            debug_assert!(header_value(value));
            size += name.len() + value.len() + 4;
            let is = |token: &[u8]| value.trim_ascii().eq_ignore_ascii_case(token);
            let named = |n: &str| name.eq_ignore_ascii_case(n);
            let taken = if named("host") {
                hosts += 1;
                true
            } else if named("content-length") {
                lengths += 1;
                value == b"0"
            } else if named("connection") {
                close |= is(b"close");
                is(b"close") || is(b"keep-alive")
            } else if named("accept-encoding") {
                // Only what compression leaves as it is (`Compress`
                // negotiates the identity coding, and adds nothing).
                is(b"identity")
            } else {
                !(named("transfer-encoding")
                    || named("expect")
                    || named("upgrade")
                    || named("origin"))
            };
            if !taken {
                return None;
            }
            let (n, v) = (at(name.as_bytes()), at(value));
            *place = (
                n as u32,
                (n + name.len()) as u32,
                v as u32,
                (v + value.len()) as u32,
            );
        }
        // One host, at most one length: anything else is actix-http's to
        // refuse.
        if size > self.header_limit || hosts != 1 || lengths > 1 {
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
            count: req.headers.len(),
            mount,
            close,
        })
    }
}

/// Whether a head may end in `bytes` past `scanned`, where the last look
/// stopped: at a blank line as httparse reads one (`\n\r\n` or `\n\n`).
/// So a head that trickles in is parsed again only once it may be whole,
/// not at every read.
fn ends_head(bytes: &[u8], scanned: usize) -> bool {
    let tail = &bytes[scanned.saturating_sub(2)..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Whether every byte of `value` is one a header value may hold (visible
/// ASCII, space, tab or above ASCII, as `HeaderValue` checks), without a
/// branch a byte so that it runs vectorised.
pub(crate) fn header_value(value: &[u8]) -> bool {
    value.iter().fold(true, |ok, &b| {
        ok & ((b >= 0x20 && b != 0x7f) | (b == b'\t'))
    })
}

/// actix-http's answer to a request that did not arrive in time.
fn timed_out() -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    out.extend_from_slice(
        b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n",
    );
    put_date(&mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// `date: <IMF-fixdate>`, formatted once a second per thread.
pub(crate) fn put_date(out: &mut BytesMut) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
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
        buf.put_slice(&this.read[..n]);
        if n == this.read.len() {
            // Drained: the buffer goes, not just its bytes.
            this.read = BytesMut::new();
        } else {
            let _ = this.read.split_to(n);
        }
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
                frame.extend_from_slice(hex(chunk.len(), &mut [0; 16]));
                frame.extend_from_slice(b"\r\n");
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

/// `n` in lower-case hexadecimal, in `digits`.
fn hex(mut n: usize, digits: &mut [u8; 16]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &digits[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_checked_as_header_value_checks_them() {
        for b in 0..=255u8 {
            let value = [b'a', b, b'z'];
            assert_eq!(
                header_value(&value),
                HeaderValue::from_bytes(&value).is_ok(),
                "byte {b:#x}"
            );
        }
    }

    /// The front and the upstream's heads take httparse's header values
    /// without checking them again: every value it gives must pass
    /// `header_value`, and a value that passes must come through whole, in
    /// requests and responses alike, with each byte at every place of a
    /// value long enough for its vector paths (32 bytes at a time) and more
    /// of the head after it. (A bare LF ends a line, as RFC 9112 lets it,
    /// and the blanks around a value are no part of it.)
    #[test]
    fn httparse_values_are_header_values() {
        // Whether the head parsed, every value it gave passes, and the
        // first is `value`.
        fn parsed(head: &[u8], response: bool, value: &[u8]) -> (bool, bool, bool) {
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let (done, found) = if response {
                let mut res = httparse::Response::new(&mut headers);
                let done = matches!(res.parse(head), Ok(httparse::Status::Complete(_)));
                (
                    done,
                    res.headers.iter().map(|h| h.value).collect::<Vec<_>>(),
                )
            } else {
                let mut req = httparse::Request::new(&mut headers);
                let done = matches!(req.parse(head), Ok(httparse::Status::Complete(_)));
                (
                    done,
                    req.headers.iter().map(|h| h.value).collect::<Vec<_>>(),
                )
            };
            let all = found.iter().all(|v| header_value(v));
            (done, all, found.first() == Some(&value))
        }
        for b in 0..=255u8 {
            for at in 0..64 {
                let mut value = [b'a'; 64];
                value[at] = b;
                for (response, start) in [
                    (false, &b"GET / HTTP/1.1\r\nx: "[..]),
                    (true, b"HTTP/1.1 200 OK\r\nx: "),
                ] {
                    let mut head = start.to_vec();
                    head.extend_from_slice(&value);
                    head.extend_from_slice(b"\r\ny: ");
                    head.extend_from_slice(&[b'b'; 64]);
                    head.extend_from_slice(b"\r\n\r\n");
                    // Less the whitespace around it, which is no part of it.
                    let blank = |c: &u8| *c == b' ' || *c == b'\t';
                    let from = value.iter().position(|c| !blank(c)).unwrap_or(0);
                    let to = value.iter().rposition(|c| !blank(c)).map_or(0, |i| i + 1);
                    let (done, all, whole) = parsed(&head, response, &value[from..to]);
                    let what = format!("response {response}, byte {b:#x} at {at}");
                    assert!(!done || all, "{what}: a value header_value refuses");
                    if header_value(&value) {
                        assert!(done && whole, "{what}: refused or cut");
                    }
                }
            }
        }
    }

    #[test]
    fn text_is_what_to_str_gives() {
        for bytes in [
            &b"Bearer abc.def"[..],
            b"tab\there",
            b"",
            b"caf\xc3\xa9",
            b"\xff",
        ] {
            let value = HeaderValue::from_bytes(bytes).unwrap();
            assert_eq!(text(bytes), value.to_str().ok(), "{bytes:?}");
        }
    }

    #[test]
    fn a_head_may_end_only_at_a_blank_line() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..head.len() {
            // Looked at up to `cut`, then the rest arrived.
            assert!(ends_head(head, cut), "{cut}");
            assert!(
                !ends_head(&head[..head.len() - 1], cut.min(head.len() - 1)),
                "{cut}"
            );
        }
        assert!(ends_head(b"GET / HTTP/1.1\nHost: a\n\n", 20));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    }

    #[test]
    fn chunk_sizes_are_written_in_hex() {
        for n in [0usize, 9, 10, 255, 4096, usize::MAX] {
            assert_eq!(hex(n, &mut [0; 16]), format!("{n:x}").as_bytes());
        }
    }
}
