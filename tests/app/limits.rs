//! Holes an outside attack pass found in what had shipped, one test per
//! class: request bodies that never finish, one address holding every
//! connection, a full descriptor table, HEAD lengths, cacheable tokens and
//! secrets half-written by a crash.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::cli::Server;
use super::support::{App, within};
use super::token_for;

/// A connection to `addr` from the loopback address `from` (127.0.0.x).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

fn socket_addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// Everything the server sends until it closes.
async fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = within("the server to close", s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// One `GET /healthz` on a kept-alive connection; the status line.
async fn healthz(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    loop {
        let n = within("a response", s.read(&mut buf[got..])).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf[..got]));
        got += n;
        let text = String::from_utf8_lossy(&buf[..got]);
        if text.contains("\r\n\r\n") && text.ends_with('}') {
            return text.lines().next().unwrap_or("").to_owned();
        }
    }
}

/// The JSON body of a raw response.
fn body_json(text: &str) -> Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

const SLOW_POST: &[u8] = b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

fn with_server_options(text: String, options: &str) -> String {
    text.replace(
        "    max_body: \"64KiB\"\n",
        &format!("    max_body: \"64KiB\"\n{options}"),
    )
}

#[actix_web::test]
async fn a_body_that_stalls_gets_408_json_and_the_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        with_server_options(t, "    body_idle_timeout: \"200ms\"\n")
    })
    .await;
    let mut s = TcpStream::connect(socket_addr(&app.base)).await.unwrap();
    s.write_all(SLOW_POST).await.unwrap();
    let text = read_all(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(
        body_json(&text),
        json!({ "error": "request body not received in time" })
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn a_body_that_trickles_forever_is_cut_at_the_total_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        with_server_options(
            t,
            "    body_timeout: \"500ms\"\n    body_idle_timeout: \"5s\"\n",
        )
    })
    .await;
    let s = TcpStream::connect(socket_addr(&app.base)).await.unwrap();
    let (mut rx, mut tx) = s.into_split();
    tx.write_all(SLOW_POST).await.unwrap();
    // One byte every 50 ms, far inside the idle limit, until the server hangs up.
    let trickle = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..999 {
            interval.tick().await;
            if tx.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = within("the server to close", rx.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    trickle.abort();
    app.shutdown().await;
}

#[actix_web::test]
async fn one_address_cannot_hold_more_connections_than_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        with_server_options(t, "    max_connections_per_address: 4\n")
    })
    .await;
    let addr = socket_addr(&app.base);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.1", addr).await;
        // Answered, so the server has admitted it; kept alive, it holds its slot.
        assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");
        held.push(s);
    }
    let mut fifth = connect_from("127.0.0.1", addr).await;
    let text = read_all(&mut fifth).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert_eq!(
        body_json(&text),
        json!({ "error": "too many connections from this address" })
    );
    // Another address is not affected.
    let mut other = connect_from("127.0.0.2", addr).await;
    assert_eq!(healthz(&mut other).await, "HTTP/1.1 200 OK");
    let refused = app
        .node()
        .metrics()
        .render()
        .lines()
        .any(|l| l.starts_with("rippy_http_connections_refused_total{server=\"app:gateway\",reason=\"per_address_cap\"} 1"));
    assert!(refused, "the refusal is counted");
    // A slot comes back when its connection closes.
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..1000 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        if read_all(&mut s).await.starts_with("HTTP/1.1 200") {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "the freed slot was never given back");
    app.shutdown().await;
}

#[actix_web::test]
async fn a_descriptor_table_full_of_stalled_bodies_frees_itself_for_new_clients() {
    let dir = tempfile::tempdir().unwrap();
    // 96 descriptors, no per-address cap: only the body deadlines can help.
    let server = Server::start_with(
        dir.path(),
        |t| {
            with_server_options(
                t,
                "    max_connections_per_address: 0\n    body_timeout: \"1s\"\n    body_idle_timeout: \"300ms\"\n",
            )
        },
        Some(96),
    );
    let addr = socket_addr(&server.base);
    let mut attackers = Vec::new();
    for _ in 0..150 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The kernel completes connects the server has not accepted yet;
        // the head and first byte wait in the socket for it.
        s.write_all(SLOW_POST).await.unwrap();
        attackers.push(s);
    }
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(&mut client).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(attackers);
    let (code, _, _) = server.terminate();
    assert_eq!(code, Some(0));
}

#[actix_web::test]
async fn head_on_a_static_file_declares_the_length_get_sends() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let addr = socket_addr(&app.base);
    let response = |method: &'static str| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("{method} /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        read_all(&mut s).await
    };
    let length = |text: &str| -> usize {
        text.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no Content-Length: {text}"))
    };
    let get = response("GET").await;
    let head = response("HEAD").await;
    let get_body = get.split_once("\r\n\r\n").unwrap().1;
    assert!(get_body.len() > 100);
    assert_eq!(length(&get), get_body.len());
    assert_eq!(length(&head), get_body.len());
    assert!(head.ends_with("\r\n\r\n"), "HEAD sent a body: {head}");
    app.shutdown().await;
}

#[actix_web::test]
async fn the_token_response_is_never_stored_by_caches() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let res = awc::Client::new()
        .post(format!("{}/auth/token", app.base))
        .send_json(&json!({ "api_key": app.demo_key() }))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(res.headers().get("pragma").unwrap(), "no-cache");
    app.shutdown().await;
}

#[actix_web::test]
async fn an_empty_token_key_file_left_by_a_crash_is_replaced_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.key"), "").unwrap();
    let app = App::boot_in(dir.path()).await;
    let key = std::fs::read_to_string(dir.path().join("token.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "a new hex key: {key:?}");
    token_for(&app.base, &app.demo_key()).await;
    app.shutdown().await;
}

#[actix_web::test]
async fn a_pending_demo_key_whose_row_was_never_committed_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash between writing the key and the commit leaves.
    let key = "rk_00112233445566778899aabbccddeeff00112233";
    std::fs::write(dir.path().join("demo.key.pending"), format!("{key}\n")).unwrap();
    let app = App::boot_in(dir.path()).await;
    assert_eq!(app.demo_key(), key);
    assert!(!dir.path().join("demo.key.pending").exists());
    token_for(&app.base, key).await;
    app.shutdown().await;
}

#[actix_web::test]
async fn a_committed_demo_key_that_was_never_published_is_published_at_the_next_boot() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let key = app.demo_key();
    app.shutdown().await;
    // A crash between the commit and the rename leaves this.
    std::fs::rename(
        dir.path().join("demo.key"),
        dir.path().join("demo.key.pending"),
    )
    .unwrap();
    let app = App::boot_in(dir.path()).await;
    assert_eq!(app.demo_key(), key);
    assert!(!dir.path().join("demo.key.pending").exists());
    token_for(&app.base, &key).await;
    app.shutdown().await;
}

#[actix_web::test]
async fn a_pending_demo_key_that_was_revoked_is_dropped_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let old = app.demo_key();
    app.shutdown().await;
    {
        let config: rippy::sql::SqliteConfig =
            serde_yaml::from_str(&format!("file: {}", dir.path().join("auth.db").display()))
                .unwrap();
        let db = rippy::sql::SqliteDb::open("t:db", &dir.path().join("auth.db"), &config).unwrap();
        let revoked = db
            .call(|c| c.execute("UPDATE api_keys SET revoked_at = 1", []))
            .unwrap();
        assert_eq!(revoked, 1);
    }
    // As if a crash had left the revoked key pending.
    std::fs::write(dir.path().join("demo.key.pending"), format!("{old}\n")).unwrap();
    let app = App::boot_in(dir.path()).await;
    let new = app.demo_key();
    assert_ne!(new, old);
    token_for(&app.base, &new).await;
    let res = awc::Client::new()
        .post(format!("{}/auth/token", app.base))
        .send_json(&json!({ "api_key": old }))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.shutdown().await;
}

#[test]
fn secret_files_are_written_whole_once_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/secret.key");
    rippy::prelude::write_private(&path, b"one").unwrap();
    let err = rippy::prelude::write_private(&path, b"two").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"one");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("secret.key")],
        "no temp files left"
    );
}

#[actix_web::test]
async fn open_websockets_do_not_hold_their_address_slots() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        with_server_options(t, "    max_connections_per_address: 2\n")
    })
    .await;
    let token = token_for(&app.base, &app.demo_key()).await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = super::Ws::connect(&app, &token).await;
        ws.next_of("welcome").await;
        sockets.push(ws);
    }
    // Two slots, four open sockets: plain requests still get in.
    let mut s = connect_from("127.0.0.1", socket_addr(&app.base)).await;
    assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");
    app.shutdown().await;
}

#[actix_web::test]
async fn a_body_nobody_reads_cannot_hold_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_edited(dir.path(), |t| {
        with_server_options(t, "    body_idle_timeout: \"200ms\"\n")
    })
    .await;
    // Paths that answer without reading the body: health, 404, 405.
    for request in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "PUT /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
    ] {
        let mut s = TcpStream::connect(socket_addr(&app.base)).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        // The answer comes, then the server hangs up instead of waiting for
        // the rest of a body no handler will read.
        let text = read_all(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 "), "{request}: {text}");
    }
    app.shutdown().await;
}

#[actix_web::test]
async fn an_unreadable_pending_demo_key_is_replaced_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.key.pending"), [0xff, 0xfe, 0x00]).unwrap();
    let app = App::boot_in(dir.path()).await;
    token_for(&app.base, &app.demo_key()).await;
    assert!(!dir.path().join("demo.key.pending").exists());
    app.shutdown().await;
}
