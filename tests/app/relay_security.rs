//! The relay against a hostile client: frames declaring more than the limit
//! (closed at their header, before the payload is buffered), cookie tokens
//! from foreign origins (cross-site WebSocket hijacking), ping and fragment
//! floods, close codes a client chooses, and text that is not UTF-8.
//!
//! Most tests speak WebSocket on a raw socket, so they decide exactly which
//! bytes go out and can stop sending half-way through a frame.

use awc::http::header;
use awc::ws::{CloseCode, CloseReason, Message};
use rippy::process::ProcessSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::hardening::{addr, metric};
use super::support::{App, eventually, within};
use super::{Ws, token_for};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const FIN: u8 = 0x80;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The default `wsrelay.max_message_size`.
const LIMIT: usize = 64 * 1024;

/// The header of a masked client frame declaring `len` payload bytes.
fn header(first: u8, len: u64) -> Vec<u8> {
    let mut out = vec![first];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out
}

/// A whole masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A WebSocket client on a raw socket.
struct RawClient {
    stream: TcpStream,
    /// Bytes read and not yet parsed into frames.
    read: Vec<u8>,
}

impl RawClient {
    /// Upgrades `/ws/ticker` with the token in the query string.
    async fn open(app: &App, token: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr(app)).await.unwrap();
        let request = format!(
            "GET /ws/ticker?x-auth-token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut read = Vec::new();
        let end = within("the 101", async {
            loop {
                if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                    return i + 4;
                }
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before the 101");
                read.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(
            read.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&read)
        );
        read.drain(..end);
        RawClient { stream, read }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next server frame as (opcode, payload); None once the server is gone.
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((op, payload, used)) = parse_server_frame(&self.read) {
                self.read.drain(..used);
                return Some((op, payload));
            }
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.read.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads until the server's close frame; its code, or None if the
    /// connection ended without one.
    async fn close_code(&mut self) -> Option<u16> {
        within("a close frame", async {
            while let Some((op, payload)) = self.next_frame().await {
                if op == OP_CLOSE {
                    return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                }
            }
            None
        })
        .await
    }

    /// Reads until a text frame containing `needle`.
    async fn text_containing(&mut self, needle: &str) {
        within(needle, async {
            loop {
                let (op, payload) = self.next_frame().await.expect("socket open");
                assert_ne!(op, OP_CLOSE, "closed: {payload:?}");
                if op == OP_TEXT && String::from_utf8_lossy(&payload).contains(needle) {
                    return;
                }
            }
        })
        .await
    }
}

/// One unmasked server frame at the start of `buf`: (opcode, payload, bytes used).
fn parse_server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let op = buf.first()? & 0x0f;
    let (len, at) = match buf.get(1)? & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    Some((op, payload, at + len))
}

async fn boot() -> (tempfile::TempDir, App, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let token = token_for(&app.base, &app.demo_key()).await;
    (dir, app, token)
}

fn handlers(app: &App) -> std::sync::Arc<ProcessSpec> {
    app.registry.get::<ProcessSpec>("app:ws_handler").unwrap()
}

// 1. Frames are judged at their header, before their payload is buffered.

#[actix_web::test]
async fn a_frame_declaring_more_than_the_limit_closes_1009_before_its_payload_is_sent() {
    let (_dir, app, token) = boot().await;
    for declared in [1u64 << 62, LIMIT as u64 + 1] {
        let mut ws = RawClient::open(&app, &token).await;
        ws.text_containing("welcome").await;
        // The header and a few KiB; the rest never comes.
        let mut bytes = header(FIN | OP_BINARY, declared);
        bytes.extend(std::iter::repeat_n(0x5a, 2048));
        ws.send(&bytes).await;
        assert_eq!(ws.close_code().await, Some(1009), "declared {declared}");
    }
    eventually("the handlers to end", || handlers(&app).live() == 0).await;
    app.shutdown().await;
}

#[actix_web::test]
async fn a_fragment_taking_the_running_total_over_the_limit_closes_1009_at_its_header() {
    let (_dir, app, token) = boot().await;
    let mut ws = RawClient::open(&app, &token).await;
    ws.text_containing("welcome").await;
    let mut bytes = frame(OP_BINARY, &vec![1u8; 40 * 1024]);
    // 40 KiB + 30 KiB > 64 KiB: refused before the 30 KiB arrive.
    bytes.extend(header(FIN | OP_CONTINUATION, 30 * 1024));
    bytes.extend(std::iter::repeat_n(0x5a, 1024));
    ws.send(&bytes).await;
    assert_eq!(ws.close_code().await, Some(1009));
    app.shutdown().await;
}

#[actix_web::test]
async fn a_fragmented_message_within_the_limits_still_reaches_the_handler() {
    let (_dir, app, token) = boot().await;
    let mut ws = RawClient::open(&app, &token).await;
    ws.text_containing("welcome").await;
    let mut bytes = frame(OP_TEXT, br#"{"type":"#);
    bytes.extend(frame(OP_CONTINUATION, br#""pi"#));
    bytes.extend(frame(FIN | OP_CONTINUATION, br#"ng"}"#));
    ws.send(&bytes).await;
    ws.text_containing("pong").await;
    app.shutdown().await;
}

// 2. A cookie is no credential for a socket opened from another origin.

async fn upgrade_status(request: awc::ws::WebsocketsRequest) -> Result<Ws, u16> {
    match request.connect().await {
        Ok((_, framed)) => Ok(Ws { framed }),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("ws connect: {e}"),
    }
}

#[actix_web::test]
async fn a_cookie_token_cannot_open_the_socket_from_another_origin() {
    let (_dir, app, token) = boot().await;
    let request = awc::Client::new()
        .ws(format!("{}/ws/ticker", app.ws_base))
        .origin("https://evil.example")
        .header(header::COOKIE, format!("x-auth-token={token}"));
    assert_eq!(upgrade_status(request).await.err(), Some(401));
    assert_eq!(
        handlers(&app).spawns(),
        0,
        "no handler for a hijacked cookie"
    );
    assert_eq!(app.node().metrics().auth_failures("cross_origin_cookie"), 1);
    app.shutdown().await;
}

#[actix_web::test]
async fn a_cookie_token_opens_the_socket_from_the_servers_own_origin() {
    let (_dir, app, token) = boot().await;
    let request = awc::Client::new()
        .ws(format!("{}/ws/ticker", app.ws_base))
        .origin(app.base.as_str())
        .header(header::COOKIE, format!("x-auth-token={token}"));
    let mut ws = upgrade_status(request).await.expect("same origin");
    assert_eq!(ws.next_of("welcome").await["user_id"], "user:demo");
    app.shutdown().await;
}

#[actix_web::test]
async fn a_query_token_opens_the_socket_from_any_origin_when_no_origins_are_listed() {
    let (_dir, app, token) = boot().await;
    let request = awc::Client::new()
        .ws(format!("{}/ws/ticker?x-auth-token={token}", app.ws_base))
        .origin("https://elsewhere.example");
    let mut ws = upgrade_status(request).await.expect("query token");
    ws.next_of("welcome").await;
    app.shutdown().await;
}

#[actix_web::test]
async fn a_cookie_token_without_an_origin_is_refused_unless_missing_origins_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        t.replace(
            "      wsrelay.max_message_size: 65536\n",
            "      wsrelay.max_message_size: 65536\n      wsrelay.allow_missing_origin: false\n",
        )
    })
    .await;
    let token = token_for(&app.base, &app.demo_key()).await;
    let url = format!("{}/ws/ticker", app.ws_base);
    let cookie = awc::Client::new()
        .ws(&url)
        .header(header::COOKIE, format!("x-auth-token={token}"));
    assert_eq!(upgrade_status(cookie).await.err(), Some(401));
    let bearer = awc::Client::new().ws(&url).bearer_auth(&token);
    upgrade_status(bearer)
        .await
        .expect("a header token needs no origin")
        .next_of("welcome")
        .await;
    app.shutdown().await;
}

// 3. Every frame counts toward a rate, control frames and fragments too.

#[actix_web::test]
async fn a_ping_flood_is_closed_with_1008() {
    let (_dir, app, token) = boot().await;
    let mut ws = RawClient::open(&app, &token).await;
    ws.text_containing("welcome").await;
    let ping = frame(FIN | OP_PING, b"p");
    ws.send(&ping.repeat(3000)).await;
    assert_eq!(ws.close_code().await, Some(1008));
    app.shutdown().await;
}

#[actix_web::test]
async fn a_flood_of_fragments_is_closed_with_1008() {
    let (_dir, app, token) = boot().await;
    let mut ws = RawClient::open(&app, &token).await;
    ws.text_containing("welcome").await;
    // One message that never ends, in tiny fragments far below the size limit.
    let mut bytes = frame(OP_TEXT, b"x");
    bytes.extend(frame(OP_CONTINUATION, b"x").repeat(3000));
    ws.send(&bytes).await;
    assert_eq!(ws.close_code().await, Some(1008));
    app.shutdown().await;
}

// 4. Close codes in the metrics come from a fixed set, labelled by side.

fn closed(app: &App, by: &str, code: &str) -> f64 {
    metric(
        app,
        &format!("rippy_ws_closed_total{{by=\"{by}\",code=\"{code}\"}} "),
    )
}

#[actix_web::test]
async fn close_codes_are_counted_by_side_under_a_bounded_set_of_labels() {
    let (_dir, app, token) = boot().await;
    for code in [4321u16, 1011] {
        let mut ws = Ws::connect(&app, &token).await;
        ws.next_of("welcome").await;
        ws.send(Message::Close(Some(CloseReason {
            code: CloseCode::from(code),
            description: None,
        })))
        .await;
        assert_eq!(ws.close_code().await, Some(code), "the close is echoed");
    }
    let mut ws = Ws::connect(&app, &token).await;
    ws.next_of("welcome").await;
    ws.text(&"x".repeat(LIMIT + 1)).await;
    assert_eq!(ws.close_code().await, Some(1009));
    eventually("the three closes to be counted", || {
        closed(&app, "client", "application") == 1.0
            && closed(&app, "client", "1011") == 1.0
            && closed(&app, "server", "1009") == 1.0
    })
    .await;
    let text = app.node().metrics().render();
    assert!(
        !text.contains("4321"),
        "a client's code became a label:\n{text}"
    );
    assert_eq!(closed(&app, "server", "1011"), 0.0, "{text}");
    app.shutdown().await;
}

// 5. Text must be UTF-8.

#[actix_web::test]
async fn a_text_message_that_is_not_utf8_closes_1007_whole_or_in_fragments() {
    let (_dir, app, token) = boot().await;
    let whole = frame(FIN | OP_TEXT, &[b'{', 0xff, 0xfe, b'}']);
    // "€" is e2 82 ac; its first two bytes, then an 'A', are no UTF-8.
    let mut fragmented = frame(OP_TEXT, &[0xe2, 0x82]);
    fragmented.extend(frame(FIN | OP_CONTINUATION, b"A"));
    for bytes in [whole, fragmented] {
        let mut ws = RawClient::open(&app, &token).await;
        ws.text_containing("welcome").await;
        ws.send(&bytes).await;
        assert_eq!(ws.close_code().await, Some(1007));
    }
    app.shutdown().await;
}

#[actix_web::test]
async fn a_character_split_across_fragments_is_valid_text() {
    let (_dir, app, token) = boot().await;
    let mut ws = RawClient::open(&app, &token).await;
    ws.text_containing("welcome").await;
    let mut bytes = frame(OP_TEXT, &[b'"', 0xe2, 0x82]);
    bytes.extend(frame(FIN | OP_CONTINUATION, &[0xac, b'"']));
    bytes.extend(frame(FIN | OP_TEXT, br#"{"type":"ping"}"#));
    ws.send(&bytes).await;
    ws.text_containing("pong").await;
    app.shutdown().await;
}

// 6. What a handler asks for goes out as a valid close frame.

#[actix_web::test]
async fn a_handler_close_with_an_unsendable_code_or_a_long_reason_is_still_a_valid_frame() {
    let (_dir, app, token) = boot().await;
    // (code asked for, code sent): 1005-1006 and out-of-range codes may not
    // be sent; an application code is kept.
    for (asked, sent) in [(1006u64, 1011u16), (70_000, 1011), (4001, 4001)] {
        let before = app.node().pids_on("app:gateway");
        let mut ws = RawClient::open(&app, &token).await;
        ws.text_containing("welcome").await;
        let client = app
            .node()
            .pids_on("app:gateway")
            .into_iter()
            .find(|p| !before.contains(p))
            .expect("the connection's pid");
        // 200 bytes of two-byte characters: more than a close frame holds.
        let reason = "é".repeat(100);
        app.node()
            .send(
                None,
                &client,
                "ws.close",
                serde_json::json!({ "code": asked, "reason": reason }),
            )
            .unwrap();
        let (op, payload) = within("the close frame", async {
            loop {
                let (op, payload) = ws.next_frame().await.expect("a close frame");
                if op == OP_CLOSE {
                    return (op, payload);
                }
            }
        })
        .await;
        assert_eq!(op, OP_CLOSE);
        assert!(payload.len() <= 125, "{} bytes", payload.len());
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), sent);
        let text = std::str::from_utf8(&payload[2..]).expect("the reason cut at a character");
        assert_eq!(text, "é".repeat(61));
    }
    app.shutdown().await;
}
