//! `rippy-load proxy`: a bare reverse proxy, the gateway's peer that does
//! only the per-request work of its JWT route, on tokio and `httparse` with
//! nothing in between, as `broadcast` is the ticker's.
//!
//! Each of `--workers` threads runs a current-thread runtime and accepts on
//! a listening socket of its own (`SO_REUSEPORT`, as rippy's workers). Per
//! request, on a keep-alive client connection:
//!
//! - the head is parsed in place (at most 64 headers and 16 KiB; a
//!   malformed one closes the connection);
//! - a bad `content-length` gets 400, one over 1 MiB 413, any
//!   `transfer-encoding` 501 and an `expect` 417, each closing the
//!   connection; a path outside `--prefix` gets 404 and a request without
//!   a bearer token 401 (closing too if it has a body, which is not read);
//! - the token is looked up by its bytes in the worker's map of tokens seen,
//!   standing in for the gateway's cache of verified tokens: one not seen
//!   before is taken after a shape check (three dot-separated parts), with
//!   no signature check, for a fixed caller;
//! - the caller's request count goes up by one (the rate limit's counter);
//! - a random request id is drawn;
//! - the upstream head is written into one buffer: the request line, `host`,
//!   the client's headers less `host`, `content-length`, `expect`, the
//!   fixed hop-by-hop ones (not those a `Connection` value names), every
//!   `proxy-*` and `x-forwarded-*`, the gateway's own names and any name
//!   holding `_`, then `x-forwarded-for`/`-proto`/`-host`, `x-request-id`,
//!   `x-user-id`, `x-username` and the body's length;
//! - head and body go upstream on an idle keep-alive connection of the
//!   worker's (or a new one; one the upstream closed meanwhile gives a 502,
//!   with no retry);
//! - the answer's head is parsed in place and rewritten less its hop-by-hop
//!   headers, plus `x-request-id` and the three `x-ratelimit-*`; with its
//!   body (none for HEAD, 204 and 304; else `content-length` framing up to
//!   1 MiB only: an interim 1xx, a `transfer-encoding` or a larger body is
//!   a 502 that closes the connection) it goes back in one write. The
//!   upstream connection is kept for the next request unless the answer
//!   said `connection: close` or was HTTP/1.0.
//!
//! Not done, and done by the gateway: JWT signatures, identity lookups,
//! path normal forms, CORS, metrics, access lines, streaming, timeouts,
//! upgrades. The row says what a proxy costs on this machine when its
//! stack adds nothing; it is a reference, not a product.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEADERS: usize = 64;
/// A head that does not fit is refused (closed), as a server's header limit.
const MAX_HEAD: usize = 16 * 1024;
/// The gateway's default `max_body`; a larger body gets 413 (or, from the
/// upstream, a 502).
const MAX_BODY: usize = 1024 * 1024;
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
const UNAUTHORIZED: &[u8] = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const EXPECTATION_FAILED: &[u8] =
    b"HTTP/1.1 417 Expectation Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const USER_ID: &str = "0b1c0000-0000-4000-8000-000000000001";
const USERNAME: &str = "bench";
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Names only a gateway may send upstream (and every `x-forwarded-*`).
const OWNED: &[&str] = &[
    "x-user-id",
    "x-username",
    "x-request-id",
    "forwarded",
    "x-real-ip",
];

/// Runs the proxy until killed.
pub(crate) fn run(listen: SocketAddr, upstream: SocketAddr, workers: usize, prefix: String) {
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let listener = bind(listen).expect("bind --listen");
            let prefix = prefix.clone();
            std::thread::spawn(move || serve_on(listener, upstream, prefix))
        })
        .collect();
    eprintln!("proxy: listening on {listen}, forwarding to {upstream}");
    for t in threads {
        let _ = t.join();
    }
}

/// One worker: a current-thread runtime serving `listener`'s connections.
fn serve_on(listener: std::net::TcpListener, upstream: SocketAddr, prefix: String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve_listener(listener, upstream, prefix));
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// One worker's state: nothing is shared between workers.
struct Worker {
    upstream: SocketAddr,
    authority: String,
    prefix: String,
    idle: RefCell<Vec<TcpStream>>,
    tokens: RefCell<HashMap<Box<[u8]>, Rc<str>>>,
    counts: RefCell<HashMap<Rc<str>, u64>>,
    rng: Cell<u64>,
}

async fn serve_listener(listener: std::net::TcpListener, upstream: SocketAddr, prefix: String) {
    let listener = TcpListener::from_std(listener).expect("listener");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let worker = Rc::new(Worker::new(upstream, prefix, seed));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let worker = worker.clone();
                tokio::task::spawn_local(async move {
                    let _ = Connection::new(stream, peer).serve(&worker).await;
                });
            }
            Err(e) => {
                eprintln!("proxy: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the request's head decided.
enum Verdict {
    /// Forward: the upstream request is in `upstream`; the head was
    /// `head` bytes with a body of `body` bytes after it.
    Forward { head: usize, body: usize },
    /// Answer with this fixed response; `close` after it.
    Answer {
        head: usize,
        response: &'static [u8],
        close: bool,
    },
}

struct Connection {
    client: TcpStream,
    peer: String,
    /// Bytes read from the client, not yet consumed.
    input: Vec<u8>,
    /// The upstream request being built.
    upstream: Vec<u8>,
    /// The upstream's answer as read.
    answer: Vec<u8>,
    /// The client's response being built.
    output: Vec<u8>,
    request_id: [u8; 36],
    /// Whether the request being answered is a HEAD (its answer has no body).
    head_request: bool,
}

impl Connection {
    fn new(client: TcpStream, peer: SocketAddr) -> Self {
        Connection {
            client,
            peer: peer.ip().to_string(),
            input: Vec::with_capacity(8192),
            upstream: Vec::with_capacity(2048),
            answer: Vec::with_capacity(8192),
            output: Vec::with_capacity(2048),
            request_id: [0; 36],
            head_request: false,
        }
    }

    async fn serve(mut self, worker: &Worker) -> io::Result<()> {
        loop {
            let verdict = loop {
                if let Some(verdict) = self.decide(worker)? {
                    break verdict;
                }
                if self.input.len() > MAX_HEAD || self.client.read_buf(&mut self.input).await? == 0
                {
                    return Ok(());
                }
            };
            match verdict {
                Verdict::Answer {
                    head,
                    response,
                    close,
                } => {
                    self.client.write_all(response).await?;
                    if close {
                        return Ok(());
                    }
                    self.input.drain(..head);
                }
                Verdict::Forward { head, body } => {
                    while self.input.len() < head + body {
                        if self.client.read_buf(&mut self.input).await? == 0 {
                            return Ok(());
                        }
                    }
                    self.upstream
                        .extend_from_slice(&self.input[head..head + body]);
                    self.input.drain(..head + body);
                    if !self.exchange(worker).await? {
                        self.client
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await?;
                        return Ok(());
                    }
                    self.client.write_all(&self.output).await?;
                }
            }
        }
    }

    /// Parses the head in `input` if it is all there, and on a request to
    /// forward writes the upstream head into `upstream`.
    fn decide(&mut self, worker: &Worker) -> io::Result<Option<Verdict>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head = match req.parse(&self.input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let answer = |response: &'static [u8], close: bool| -> io::Result<Option<Verdict>> {
            Ok(Some(Verdict::Answer {
                head,
                response,
                close,
            }))
        };
        let (mut token, mut host, mut length) = (None, None, 0usize);
        for h in req.headers.iter() {
            let is = |name: &str| h.name.eq_ignore_ascii_case(name);
            if is("authorization") {
                token = h.value.strip_prefix(b"Bearer ");
            } else if is("host") {
                host = Some(h.value);
            } else if is("content-length") {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                {
                    Some(n) if n <= MAX_BODY => length = n,
                    Some(_) => return answer(TOO_LARGE, true),
                    None => return answer(BAD_REQUEST, true),
                }
            } else if is("transfer-encoding") {
                return answer(NOT_IMPLEMENTED, true);
            } else if is("expect") {
                return answer(EXPECTATION_FAILED, true);
            }
        }
        // A refused request's body is never read: the connection closes
        // after the answer rather than parse that body as the next head.
        let path = req.path.unwrap_or("");
        if !path.starts_with(worker.prefix.as_str()) {
            return answer(NOT_FOUND, length > 0);
        }
        let Some(user_id) = token.and_then(|t| worker.caller(t)) else {
            return answer(UNAUTHORIZED, length > 0);
        };
        *worker.counts.borrow_mut().entry(user_id).or_insert(0) += 1;
        self.head_request = req.method == Some("HEAD");
        worker.request_id(&mut self.request_id);
        let out = &mut self.upstream;
        out.clear();
        out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        put(out, "host", worker.authority.as_bytes());
        for h in req.headers.iter() {
            if forwarded(h.name) {
                put(out, h.name, h.value);
            }
        }
        put(out, "x-forwarded-for", self.peer.as_bytes());
        put(out, "x-forwarded-proto", b"http");
        if let Some(host) = host {
            put(out, "x-forwarded-host", host);
        }
        put(out, "x-request-id", &self.request_id);
        put(out, "x-user-id", USER_ID.as_bytes());
        put(out, "x-username", USERNAME.as_bytes());
        if length > 0 {
            put(out, "content-length", length.to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Ok(Some(Verdict::Forward { head, body: length }))
    }

    /// Sends `upstream` and reads the answer into `output`; false if the
    /// upstream failed (a pooled connection it closed included: there is
    /// no retry) or answered in a way this proxy does not relay.
    async fn exchange(&mut self, worker: &Worker) -> io::Result<bool> {
        let pooled = worker.idle.borrow_mut().pop();
        let mut upstream = match pooled {
            Some(conn) => conn,
            None => match TcpStream::connect(worker.upstream).await {
                Ok(conn) => {
                    conn.set_nodelay(true)?;
                    conn
                }
                Err(_) => return Ok(false),
            },
        };
        if upstream.write_all(&self.upstream).await.is_err() {
            return Ok(false);
        }
        self.answer.clear();
        let answer = loop {
            match upstream.read_buf(&mut self.answer).await {
                Ok(0) | Err(_) => return Ok(false),
                Ok(_) => {}
            }
            match self.rewrite_answer() {
                Some(Some(answer)) => break answer,
                Some(None) => return Ok(false),
                None if self.answer.len() > MAX_HEAD => return Ok(false),
                None => {}
            }
        };
        // Both bounded (MAX_HEAD plus a read, MAX_BODY): no overflow.
        let end = answer.head + answer.body;
        while self.answer.len() < end {
            match upstream.read_buf(&mut self.answer).await {
                Ok(0) | Err(_) => return Ok(false),
                Ok(_) => {}
            }
        }
        self.output
            .extend_from_slice(&self.answer[answer.head..end]);
        // Pooled only when nothing beyond the answer was read and the
        // upstream keeps the connection open.
        if answer.reusable && self.answer.len() == end {
            worker.idle.borrow_mut().push(upstream);
        }
        Ok(true)
    }

    /// The answer's head rewritten into `output`: `None` while incomplete,
    /// `Some(None)` if it is not one this proxy relays (an interim 1xx, a
    /// body framed other than by `content-length`, or one over `MAX_BODY`).
    fn rewrite_answer(&mut self) -> Option<Option<Answer>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let head = match res.parse(&self.answer) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => return Some(None),
        };
        let code = res.code.unwrap_or(502);
        if code < 200 {
            return Some(None);
        }
        let out = &mut self.output;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(code.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(res.reason.unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        let (mut length, mut reusable) = (None, res.version == Some(1));
        for h in res.headers.iter() {
            let is = |name: &str| h.name.eq_ignore_ascii_case(name);
            if is("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            } else if is("transfer-encoding") {
                return Some(None);
            } else if is("connection") && h.value.eq_ignore_ascii_case(b"close") {
                reusable = false;
            }
            if !HOP_BY_HOP.iter().any(|n| is(n)) {
                put(out, h.name, h.value);
            }
        }
        put(out, "x-request-id", &self.request_id);
        put(out, "x-ratelimit-limit", b"1000000000");
        put(out, "x-ratelimit-remaining", b"999999999");
        put(out, "x-ratelimit-reset", b"60");
        out.extend_from_slice(b"\r\n");
        let body = match length {
            _ if code == 204 || code == 304 || self.head_request => 0,
            Some(n) if n <= MAX_BODY => n,
            _ => return Some(None),
        };
        Some(Some(Answer {
            head,
            body,
            reusable,
        }))
    }
}

/// An upstream answer's framing.
struct Answer {
    /// The head's length in bytes.
    head: usize,
    /// The body's.
    body: usize,
    /// Whether the upstream keeps the connection open after it.
    reusable: bool,
}

impl Worker {
    /// A worker forwarding to `upstream`, its request ids drawn from `seed`
    /// (odd: xorshift stays at 0 from 0).
    fn new(upstream: SocketAddr, prefix: String, seed: u64) -> Self {
        Worker {
            upstream,
            authority: upstream.to_string(),
            prefix,
            idle: RefCell::default(),
            tokens: RefCell::default(),
            counts: RefCell::default(),
            rng: Cell::new(seed),
        }
    }

    /// The caller a token stands for, if its shape passes.
    fn caller(&self, token: &[u8]) -> Option<Rc<str>> {
        if let Some(id) = self.tokens.borrow().get(token) {
            return Some(id.clone());
        }
        let parts = token.split(|&b| b == b'.');
        let shaped = parts.clone().count() == 3 && parts.clone().all(|p| !p.is_empty());
        shaped.then(|| {
            let id: Rc<str> = USER_ID.into();
            self.tokens.borrow_mut().insert(token.into(), id.clone());
            id
        })
    }

    /// A random request id, UUID-shaped (xorshift: a comparison instrument
    /// needs no better).
    fn request_id(&self, out: &mut [u8; 36]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut x = self.rng.get();
        let mut bytes = [0u8; 16];
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        self.rng.set(x);
        let mut j = 0;
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[j] = b'-';
                j += 1;
            }
            out[j] = HEX[usize::from(b >> 4)];
            out[j + 1] = HEX[usize::from(b & 15)];
            j += 2;
        }
    }
}

/// Whether a client's header goes upstream as it is.
fn forwarded(name: &str) -> bool {
    let prefixed = |p: &str| name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p);
    !(name.eq_ignore_ascii_case("host")
        || name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("expect")
        || name.contains('_')
        || HOP_BY_HOP.iter().any(|n| name.eq_ignore_ascii_case(n))
        || OWNED.iter().any(|n| name.eq_ignore_ascii_case(n))
        || prefixed("x-forwarded-")
        || prefixed("proxy-"))
}

fn put(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_hop_by_hop_and_underscored_names_stay_behind() {
        for name in [
            "Host",
            "content-length",
            "Connection",
            "X-User-Id",
            "x-forwarded-for",
            "X-Forwarded-Anything",
            "Proxy-Authorization",
            "x_user_id",
        ] {
            assert!(!forwarded(name), "{name}");
        }
        for name in ["Authorization", "Accept", "X-Custom", "x-forwarded"] {
            assert!(forwarded(name), "{name}");
        }
    }

    /// Reads from `s` until `done` says the bytes so far are whole; a read
    /// that waits 10 s fails the test instead of hanging it.
    fn read_until(s: &mut std::net::TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        use std::io::Read;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let mut chunk = [0; 4096];
        while !done(&got) {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        got
    }

    fn ends_head(b: &[u8]) -> bool {
        b.windows(4).any(|w| w == b"\r\n\r\n")
    }

    /// The value of `name` in a head (the first line that starts with it).
    fn value<'h>(head: &'h str, name: &str) -> Option<&'h str> {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    #[test]
    fn requests_go_upstream_rewritten_on_one_kept_connection_and_come_back() {
        use std::io::Write;
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        // One connection, two requests: the second proves the first
        // connection went back to the pool.
        let seen = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let get = read_until(&mut s, ends_head);
            s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok",
            )
            .unwrap();
            let head = read_until(&mut s, ends_head);
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                .unwrap();
            (
                String::from_utf8(get).unwrap(),
                String::from_utf8(head).unwrap(),
            )
        });
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve_on(listener, upstream_addr, "/api/".into()));
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .write_all(b"GET /other HTTP/1.1\r\nhost: a\r\n\r\n")
            .unwrap();
        assert!(read_until(&mut client, ends_head).starts_with(b"HTTP/1.1 404 "));
        client
            .write_all(b"GET /api/x HTTP/1.1\r\nhost: a\r\nAuthorization: Bearer a.b\r\n\r\n")
            .unwrap();
        assert!(read_until(&mut client, ends_head).starts_with(b"HTTP/1.1 401 "));
        client
            .write_all(b"GET /api/x?q=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a.b.c\r\nX-User-Id: evil\r\nx_user_id: evil\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n")
            .unwrap();
        let answer = read_until(&mut client, |b| b.ends_with(b"\r\n\r\nok"));
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(value(&answer, "x-ratelimit-limit").is_some(), "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection:"),
            "{answer}"
        );
        // A HEAD's answer has no body, whatever its content-length says.
        client
            .write_all(b"HEAD /api/y HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a.b.c\r\n\r\n")
            .unwrap();
        let headed = String::from_utf8(read_until(&mut client, ends_head)).unwrap();
        assert!(headed.starts_with("HTTP/1.1 200 OK\r\n") && headed.ends_with("\r\n\r\n"));
        let (get, head) = seen.join().unwrap();
        assert!(get.starts_with("GET /api/x?q=1 HTTP/1.1\r\n"), "{get}");
        assert_eq!(
            value(&get, "host"),
            Some(upstream_addr.to_string().as_str())
        );
        assert_eq!(value(&get, "x-user-id"), Some(USER_ID), "{get}");
        assert_eq!(value(&get, "x-username"), Some(USERNAME), "{get}");
        assert_eq!(value(&get, "x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(value(&get, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&get, "x-forwarded-host"), Some("a"));
        assert_eq!(value(&get, "Authorization"), Some("Bearer a.b.c"));
        assert_eq!(value(&get, "Accept"), Some("*/*"));
        assert!(!get.contains("evil") && !get.contains("Host: a") && !get.contains("Connection"));
        assert_eq!(value(&get, "x-request-id"), value(&answer, "x-request-id"));
        assert!(head.starts_with("HEAD /api/y HTTP/1.1\r\n"), "{head}");
        assert_ne!(value(&head, "x-request-id"), value(&get, "x-request-id"));
    }

    #[test]
    fn request_ids_are_uuid_shaped_and_differ() {
        let worker = Worker::new("127.0.0.1:1".parse().unwrap(), String::new(), 7);
        let (mut a, mut b) = ([0; 36], [0; 36]);
        worker.request_id(&mut a);
        worker.request_id(&mut b);
        assert_ne!(a, b);
        let text = std::str::from_utf8(&a).unwrap();
        let groups: Vec<usize> = text.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn a_token_passes_only_in_three_nonempty_parts() {
        let worker = Worker::new("127.0.0.1:1".parse().unwrap(), String::new(), 7);
        assert!(worker.caller(b"a.b.c").is_some());
        assert!(
            worker.caller(b"a.b.c").is_some(),
            "a second sight, from the map"
        );
        assert!(worker.caller(b"a..c").is_none());
        assert!(worker.caller(b"a.b").is_none());
    }
}
