//! Gateway tests: a real gateway in front of real upstream servers on
//! loopback that echo method, path, headers and body bytes, with a real
//! SQLite users table.

#[path = "../support/mod.rs"]
mod support;

/// Serves the app `factory` builds on a free loopback port, one worker, in
/// this test's actix system; evaluates to the bound address.
macro_rules! serve_loopback {
    ($factory:expr) => {{
        let server = actix_web::HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        addr
    }};
}

mod auth;
mod forwarding;
mod front;
mod limits;
mod security;
mod streaming;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rippy::catalog::Catalog;
use rippy::registry::Registry;
use serde_json::{Value, json};
use sha2::Digest;

pub const SECRET: &str = "gateway-test-secret-0123456789";
pub const ALICE_ID: &str = "6f1c2a4e-0000-4000-8000-00000000a11c";
pub const BOB_ID: &str = "6f1c2a4e-0000-4000-8000-000000000b0b";

/// Echoes what it received as JSON; `/slow` waits, `/encoded` answers with a
/// body already encoded, `/hop` answers with hop-by-hop headers, `/ws` echoes
/// WebSocket messages.
async fn echo(req: HttpRequest, body: web::Bytes, name: web::Data<String>) -> HttpResponse {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if path.contains("/slow") {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    if path.contains("/encoded") {
        return HttpResponse::Ok()
            .insert_header(("Content-Encoding", "br"))
            .insert_header(("Content-Type", "text/plain"))
            .body(&b"\x0b\x02\x80already-encoded\x03"[..]);
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut res = HttpResponse::Ok();
    if path.contains("/hop") {
        res.insert_header(("Connection", "X-Resp-Hop"))
            .insert_header(("X-Resp-Hop", "1"))
            .insert_header(("Keep-Alive", "timeout=5"))
            .insert_header(("X-Kept", "yes"));
    }
    res.json(json!({
        "upstream": name.get_ref(),
        "method": req.method().as_str(),
        "path": path,
        "headers": headers,
        "body_sha256": rippy::util::hex(&sha2::Sha256::digest(&body)),
        "body_len": body.len(),
        "filler": "x".repeat(2000),
    }))
}

struct WsEcho;
impl actix::Actor for WsEcho {
    type Context = actix_web_actors::ws::WebsocketContext<Self>;
}
impl
    actix::StreamHandler<Result<actix_web_actors::ws::Message, actix_web_actors::ws::ProtocolError>>
    for WsEcho
{
    fn handle(
        &mut self,
        msg: Result<actix_web_actors::ws::Message, actix_web_actors::ws::ProtocolError>,
        ctx: &mut Self::Context,
    ) {
        use actix_web_actors::ws::Message;
        match msg {
            Ok(Message::Text(t)) => ctx.text(format!("echo:{t}")),
            Ok(Message::Binary(b)) => ctx.binary(b),
            Ok(Message::Close(r)) => {
                ctx.close(r);
                actix::ActorContext::stop(ctx);
            }
            _ => {}
        }
    }
}

async fn ws_echo(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let xuser = req
        .headers()
        .get("x-user-id")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let mut res = actix_web_actors::ws::start(WsEcho, &req, stream)?;
    if let Some(u) = xuser.and_then(|u| actix_web::http::header::HeaderValue::from_str(&u).ok()) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("sec-websocket-x-seen-user"),
            u,
        );
    }
    Ok(res)
}

/// Starts an echo upstream named `name`; returns its address.
pub fn upstream(name: &str) -> SocketAddr {
    let name = name.to_owned();
    serve_loopback!(move || {
        App::new()
            .app_data(web::Data::new(name.clone()))
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/api/robeing/ws", web::get().to(ws_echo))
            .default_service(web::to(echo))
    })
}

/// A bare TCP upstream: each connection's first request head is read, then
/// `answer` has the socket.
pub fn raw_upstream<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    use tokio::io::AsyncReadExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let answer = std::rc::Rc::new(answer);
    actix_web::rt::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            actix_web::rt::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                answer(s).await;
            });
        }
    });
    addr
}

/// A bare TCP upstream answering every request with hop-by-hop headers in
/// its response (an actix server would not let us set `Connection`).
pub fn hop_upstream() -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    raw_upstream(|mut s| async move {
        let body = b"hop-ok";
        let head = format!(
            "HTTP/1.1 200 OK\r\nConnection: close, X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body).await;
        let _ = s.shutdown().await;
    })
}

/// A manifest with one `http.proxy` (`app:api`, on an `http.service`
/// `app:gateway` on a free port) whose fields after `meta` are `fields`
/// (YAML lines at the entry's level).
pub fn proxy_manifest(fields: &str) -> String {
    format!(
        r#"version: "1.0"
namespace: app
entries:
  - name: gateway
    kind: http.service
    addr: "127.0.0.1:0"
  - name: api
    kind: http.proxy
    meta: {{ server: app:gateway }}
{fields}"#
    )
}

/// The load error of [`proxy_manifest`]`(fields)`.
pub fn proxy_load_error(fields: &str) -> String {
    let text = proxy_manifest(fields);
    match Registry::boot(support::parse(&text), &Catalog::new()) {
        Ok(_) => panic!("booted:\n{fields}"),
        Err(e) => e.to_string(),
    }
}

/// An address nothing listens on.
pub fn dead_address() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A booted gateway with its upstreams.
pub struct Gw {
    pub registry: Registry,
    pub base: String,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Gw {
    pub async fn boot(requests_per_minute: u32) -> Gw {
        Gw::boot_with(requests_per_minute, "", "").await
    }

    /// Boots with `proxy_fields` (YAML lines at the proxy entry's level,
    /// e.g. `    trusted_proxies: [...]\n`) and `routes` (more route lines).
    pub async fn boot_with(requests_per_minute: u32, proxy_fields: &str, routes: &str) -> Gw {
        Gw::boot_full(requests_per_minute, "", proxy_fields, routes).await
    }

    /// As [`Gw::boot_with`], plus `server_fields` on the `http.service`.
    pub async fn boot_full(
        requests_per_minute: u32,
        server_fields: &str,
        proxy_fields: &str,
        routes: &str,
    ) -> Gw {
        capture_logs();
        let a = upstream("a");
        let b = upstream("b");
        let down = dead_address();
        let hop = hop_upstream();
        let dir = tempfile::tempdir().unwrap();
        // 64 KiB unless the caller's fields say.
        let max_body = if proxy_fields.contains("max_body:") {
            ""
        } else {
            "    max_body: \"64KiB\"\n"
        };
        let text = format!(
            r#"version: "1.0"
namespace: app
entries:
  - name: db
    kind: db.sql.sqlite
    file: {db}
    init:
      - "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE)"
      - "INSERT OR IGNORE INTO users VALUES ('{ALICE_ID}', 'alice'), ('{BOB_ID}', 'bob')"
  - name: jwt
    kind: security.jwt
    algorithm: HS256
    secret: "{SECRET}"
    leeway: "2s"
  - name: identities
    kind: security.identity
    db: app:db
    query: "SELECT id FROM users WHERE username = ?"
    cache_ttl: "300s"
  - name: gateway
    kind: http.service
    addr: "127.0.0.1:0"
{server_fields}  - name: api
    kind: http.proxy
    meta: {{ server: app:gateway }}
    jwt: app:jwt
    identity: app:identities
    rate_limit: {{ requests: {requests_per_minute}, window: "1m" }}
    timeout: "5s"
{max_body}    middleware: [cors]
    options:
      cors.allow.origins: "https://app.example"
{proxy_fields}    routes:
      - {{ path: /api/auth, upstream: "http://{a}", auth_required: false }}
      - {{ path: /api/items, upstream: "http://{b}", auth_required: false }}
      - {{ path: /api/items/gmail, upstream: "http://{a}", auth_required: true }}
      - {{ path: /api/robeing, upstream: "http://{a}", auth_required: true }}
      - {{ path: /api/down, upstream: "http://{down}", auth_required: false }}
      - {{ path: /api/slow, upstream: "http://{a}", auth_required: false, timeout: "300ms" }}
      - {{ path: /gateway/slack, upstream: "http://{a}", auth_required: false }}
      - {{ path: /api/hop, upstream: "http://{hop}", auth_required: false }}
{routes}"#,
            db = dir.path().join("gw.db").display()
        );
        let manifest = support::parse(&text);
        let registry =
            Registry::boot(manifest, &Catalog::new()).unwrap_or_else(|e| panic!("boot: {e}"));
        let addr = registry.http_addr("app:gateway").unwrap();
        Gw {
            registry,
            base: format!("http://{addr}"),
            addr,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn identity(&self) -> Arc<rippy::security::IdentityResolver> {
        self.registry.get("app:identities").unwrap()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token with `claims`, signed with `secret`.
pub fn jwt_with(alg: Algorithm, secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid token for `username`.
pub fn jwt_for(username: &str) -> String {
    jwt_with(
        Algorithm::HS256,
        SECRET,
        json!({ "username": username, "exp": now() + 600 }),
    )
}

/// Base64url without padding.
pub fn b64url(data: &[u8]) -> String {
    rippy::util::base64_encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// What an echo upstream saw.
pub struct Seen(pub Value);

impl Seen {
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|p| p[1].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Sends a request as written (clients normalise paths); returns status and the whole response.
pub async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    support::within("a raw response", s.read_to_end(&mut buf))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Checks the error envelope and returns the code.
pub fn error_code(body: &Value, request_id: &str) -> String {
    let e = &body["error"];
    assert_eq!(e["request_id"], request_id, "{body}");
    let ts = e["timestamp"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == 24 && &ts[10..11] == "T",
        "{ts}"
    );
    assert!(!e["message"].as_str().unwrap().is_empty());
    e["code"].as_str().unwrap().to_owned()
}

/// Log lines captured in this test binary, for the access-log and secrets tests.
pub fn logs() -> &'static Mutex<Vec<(String, String)>> {
    static LOGS: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    LOGS.get_or_init(Mutex::default)
}

struct Capture;
impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            logs()
                .lock()
                .unwrap()
                .push((r.target().to_owned(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = log::set_boxed_logger(Box::new(Capture));
        log::set_max_level(log::LevelFilter::Info);
    });
}
