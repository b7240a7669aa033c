//! Bad input, abuse and faults: limits, tokens, attempts, origins, floods,
//! slow consumers, database errors, metrics format, secrets in logs.

use std::time::Duration;

use awc::http::header;
use rippy::prelude::Actor;
use rippy::security::TokenStore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{App, Edition, actors, eventually, within};
use super::websocket::handlers;
use super::{Ws, token_for};

async fn raw_http(addr: &str, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = within("a response", s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

pub(crate) fn addr(app: &App) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

pub(crate) fn metric(app: &App, line_prefix: &str) -> f64 {
    let text = app.node().metrics().render();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn oversized_header_fields_get_431_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let mut res = awc::Client::new()
        .get(format!("{}/healthz", app.base))
        .insert_header(("X-Big", "a".repeat(20 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": "request header fields too large (limit 16384 bytes)" })
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        t.replace(
            "    max_body: \"64KiB\"\n",
            "    max_body: \"64KiB\"\n    request_timeout: \"300ms\"\n",
        )
    })
    .await;
    let started = std::time::Instant::now();
    let text = raw_http(
        &addr(&app),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn ambiguous_framing_is_refused_before_any_endpoint_runs() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    for request in [
        &b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}"[..],
        &b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"[..],
    ] {
        let text = raw_http(&addr(&app), request).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    }
    assert_eq!(
        metric(
            &app,
            "rippy_http_requests_total{router=\"app:public_router\""
        ),
        0.0
    );
    app.shutdown().await;
}

crate::both_editions! {
    async fn invalid_utf8_and_nul_in_json_get_clear_errors(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let post = |body: &'static [u8]| {
            awc::Client::new()
                .post(format!("{}/auth/token", app.base))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .send_body(body)
        };
        let mut res = post(b"{\"api_key\": \"\xff\xfe\"}").await.unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "error": "invalid JSON" })
        );
        let mut res = post(b"{\"api_key\": \"rk_\\u0000abc\"}").await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "error": "invalid API key" })
        );
        let mut res = post(b"{\"api_key\": \"x\"}\x00").await.unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "error": "invalid JSON" })
        );
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn forged_expired_and_orphaned_tokens_are_refused_and_counted(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let url = |t: &str| format!("{}/ws/ticker?x-auth-token={t}", app.ws_base);
        // The right tag under another key.
        let other_dir = tempfile::tempdir().unwrap();
        let store = rippy::store::MemoryStore::start(&Default::default());
        let config: rippy::security::TokenStoreConfig = serde_yaml::from_str(&format!(
            "store: x:s\ntoken_key_file: {}\n",
            other_dir.path().join("other.key").display()
        ))
        .unwrap();
        let foreign =
            TokenStore::new("x:t", &config, other_dir.path(), store, Default::default()).unwrap();
        let forged = foreign
            .create(
                Actor::new("user:demo"),
                vec!["app:user_policy".into()],
                None,
                Value::Null,
            )
            .unwrap();
        assert_eq!(Ws::try_connect(&url(&forged)).await.err(), Some(401));
        // Expired by one second.
        let tokens = app.registry.get::<TokenStore>("app:tokens").unwrap();
        let expired = tokens
            .create_until(
                Actor::new("user:demo"),
                vec!["app:user_policy".into()],
                rippy::util::unix_secs() - 1,
                Value::Null,
            )
            .unwrap();
        assert_eq!(Ws::try_connect(&url(&expired)).await.err(), Some(401));
        // A token whose API key has been revoked since.
        let token = token_for(&app.base, &app.demo_key()).await;
        Ws::connect(&app, &token).await.next_of("welcome").await;
        let db = app.registry.get::<rippy::sql::Db>("app:db").unwrap();
        db.call(|c| actors::api_keys::revoke(c, 1)).unwrap();
        assert_eq!(Ws::try_connect(&url(&token)).await.err(), Some(401));
        let m = app.node().metrics();
        assert_eq!(m.auth_failures("bad_tag"), 1);
        assert_eq!(m.auth_failures("expired"), 1);
        // Counted by the Rust ws_ticker; Lua code has no metrics module.
        if edition == Edition::Rust {
            assert_eq!(m.auth_failures("key_revoked"), 1);
        }
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn failed_key_exchanges_are_limited_per_address_and_successes_are_free(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot_edition_edited(edition, dir.path(), |t| {
            t.replace("max_failures: 20", "max_failures: 5")
        })
        .await;
        let key = app.demo_key();
        for _ in 0..10 {
            token_for(&app.base, &key).await;
        }
        let post = |body: Value| {
            awc::Client::new()
                .post(format!("{}/auth/token", app.base))
                .send_json(&body)
        };
        for injection in [
            "' OR '1'='1",
            "x'; DROP TABLE api_keys; --",
            "\" OR 1=1 --",
            "rk_%",
            "*",
        ] {
            assert_eq!(
                post(json!({ "api_key": injection }))
                    .await
                    .unwrap()
                    .status(),
                401
            );
        }
        let mut res = post(json!({ "api_key": key })).await.unwrap();
        assert_eq!(res.status(), 429);
        let retry: u64 = res
            .headers()
            .get(header::RETRY_AFTER)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "error": "too many failed attempts" })
        );
        // The table survived the injection strings.
        let db = app.registry.get::<rippy::sql::Db>("app:db").unwrap();
        assert_eq!(db.call(|c| actors::api_keys::list(c)).unwrap().len(), 1);
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_page_on_another_origin_cannot_open_the_socket_when_origins_are_restricted(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot_edition_edited(edition, dir.path(), |t| {
            t.replace(
                "wsrelay.allowed.origins: \"*\"",
                "wsrelay.allowed.origins: \"https://ticker.example\"",
            )
        })
        .await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let url = format!("{}/ws/ticker?x-auth-token={token}", app.ws_base);
        let evil = awc::Client::new()
            .ws(&url)
            .origin("https://evil.example")
            .connect()
            .await;
        assert!(
            matches!(evil, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s == 403),
            "the evil origin was not refused with 403"
        );
        if edition == Edition::Rust {
            let spec = app
                .registry
                .get::<rippy::process::ProcessSpec>("app:ws_handler")
                .unwrap();
            assert_eq!(spec.spawns(), 0, "no handler for a refused origin");
        }
        // A handler spawned for the refused upgrade would wait for its join.
        assert_eq!(handlers(&app), 0, "no handler for a refused origin");
        let (_, framed) = awc::Client::new()
            .ws(&url)
            .origin("https://ticker.example")
            .connect()
            .await
            .expect("allowed origin");
        Ws { framed }.next_of("welcome").await;
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_client_that_floods_messages_is_closed_with_1008(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut ws = Ws::connect(&app, &token).await;
        ws.next_of("welcome").await;
        for _ in 0..150 {
            // The server may close, and reset, the socket before the last.
            if !ws.try_text(r#"{"type":"ping"}"#).await {
                break;
            }
        }
        assert_eq!(ws.close_code().await, Some(1008));
        app.shutdown().await;
    }
}

/// A WebSocket client on a raw socket with a tiny receive buffer, so the
/// test decides when (and whether) it reads.
struct RawWs {
    stream: tokio::net::TcpStream,
}

impl RawWs {
    async fn connect(app: &App, token: &str) -> RawWs {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        let mut stream = socket.connect(addr(app).parse().unwrap()).await.unwrap();
        let request = format!(
            "GET /ws/ticker?x-auth-token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            within("the 101", stream.read_exact(&mut byte))
                .await
                .unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        RawWs { stream }
    }

    /// Reads until the server closes the connection; returns (opcode, payload) per frame.
    async fn read_all_frames(mut self) -> Vec<(u8, Vec<u8>)> {
        let mut buf = Vec::new();
        within("the server to close", self.stream.read_to_end(&mut buf))
            .await
            .unwrap();
        let mut frames = Vec::new();
        let mut i = 0;
        while i + 2 <= buf.len() {
            let opcode = buf[i] & 0x0f;
            let mut len = (buf[i + 1] & 0x7f) as usize;
            i += 2;
            if len == 126 {
                len = u16::from_be_bytes([buf[i], buf[i + 1]]) as usize;
                i += 2;
            } else if len == 127 {
                len = u64::from_be_bytes(buf[i..i + 8].try_into().unwrap()) as usize;
                i += 8;
            }
            if i + len > buf.len() {
                break;
            }
            frames.push((opcode, buf[i..i + len].to_vec()));
            i += len;
        }
        frames
    }
}

crate::both_editions! {
    async fn a_slow_consumer_is_conflated_then_closed_while_others_keep_every_tick(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot_edition_edited(edition, dir.path(), |t| {
            t.replace("interval: \"10ms\"", "interval: \"1ms\"").replace(
                "      wsrelay.max_message_size: 65536\n",
                "      wsrelay.max_message_size: 65536\n      wsrelay.queue_size: 1024\n      wsrelay.max_lag: 200\n",
            )
        })
        .await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut fast = Ws::connect(&app, &token).await;
        fast.next_of("welcome").await;
        let mut seq = fast.next_of("ticker").await["seq"].as_u64().unwrap();
        let slow = RawWs::connect(&app, &token).await;
        let mut ticks = 0u64;
        // Read the fast client until the slow one has been dropped by the server.
        loop {
            let tick = fast.next_of("ticker").await;
            let next = tick["seq"].as_u64().unwrap();
            assert_eq!(next, seq + 1, "the fast client lost a tick");
            seq = next;
            ticks += 1;
            if handlers(&app) == 1 {
                break;
            }
            // 20 s of 1 ms ticks: the slow client should be long gone.
            assert!(ticks < 20_000, "the slow client was never closed");
        }
        let conflated = app
            .node()
            .dropped()
            .iter()
            .find(|(r, _)| *r == "conflated")
            .unwrap()
            .1;
        assert!(conflated > 200, "only {conflated} frames conflated");
        assert!(ticks > 200);
        eventually("the slow client's pid to go", || {
            app.node().metrics().ws_connections() == 1
        })
        .await;
        // When the slow client reads again it finds old ticks, then a 1008 close.
        let frames = slow.read_all_frames().await;
        let (opcode, payload) = frames.last().expect("frames");
        assert_eq!(*opcode, 8, "the last frame is a close");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
        for _ in 0..100 {
            let next = fast.next_of("ticker").await["seq"].as_u64().unwrap();
            assert_eq!(next, seq + 1);
            seq = next;
        }
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_database_error_mid_request_is_a_500_and_the_server_keeps_serving(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let key = app.demo_key();
        let db = app.registry.get::<rippy::sql::Db>("app:db").unwrap();
        db.call(|c| c.execute("ALTER TABLE api_keys RENAME TO api_keys_gone", &[]))
            .unwrap();
        let mut res = awc::Client::new()
            .post(format!("{}/auth/token", app.base))
            .send_json(&json!({ "api_key": key }))
            .await
            .unwrap();
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "error": "internal error" })
        );
        db.call(|c| c.execute("ALTER TABLE api_keys_gone RENAME TO api_keys", &[]))
            .unwrap();
        token_for(&app.base, &key).await;
        app.shutdown().await;
    }
}

#[actix_web::test]
async fn the_metrics_page_parses_with_the_prometheus_parser() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let token = token_for(&app.base, &app.demo_key()).await;
    let mut ws = Ws::connect(&app, &token).await;
    ws.next_of("ticker").await;
    let _ = Ws::try_connect(&format!("{}/ws/ticker?x-auth-token=bad", app.ws_base)).await;
    let mut res = awc::Client::new()
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
names = set()
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        names.add(s.name)
print("\n".join(sorted(names)))
"#;
    let python = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output();
    if !python.is_ok_and(|o| o.status.success()) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("prometheus_client is not installed (pip install prometheus-client)");
        }
        eprintln!(
            "SKIPPED the prometheus parser check: pip install prometheus-client to enable it"
        );
        return;
    }
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all_sync(text.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parser refused:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8(out.stdout).unwrap();
    for required in [
        "rippy_processes",
        "rippy_process_spawns_total",
        "rippy_process_exits_total",
        "rippy_service_restarts_total",
        "rippy_messages_dropped_total",
        "rippy_ws_connections",
        "rippy_ws_frames_sent_total",
        "rippy_http_requests_total",
        "rippy_auth_failures_total",
        "rippy_ticker_subscribers",
    ] {
        assert!(
            names.lines().any(|n| n == required),
            "{required} missing from:\n{names}"
        );
    }
    app.shutdown().await;
}

trait WriteAllSync {
    fn write_all_sync(self, data: &[u8]);
}

impl WriteAllSync for std::process::ChildStdin {
    fn write_all_sync(mut self, data: &[u8]) {
        std::io::Write::write_all(&mut self, data).unwrap();
    }
}

#[actix_web::test]
async fn one_actor_cannot_hold_more_than_its_token_quota() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let tokens = app.registry.get::<TokenStore>("app:tokens").unwrap();
    let issue = || {
        tokens
            .create(Actor::new("user:quota"), vec![], None, Value::Null)
            .unwrap()
    };
    let first = issue();
    let rest: Vec<String> = (0..100).map(|_| issue()).collect();
    assert_eq!(
        tokens.validate(&first).err(),
        Some(rippy::security::TokenError::Unknown)
    );
    assert!(tokens.validate(&rest[0]).is_ok());
    assert!(tokens.validate(rest.last().unwrap()).is_ok());
    app.shutdown().await;
}
