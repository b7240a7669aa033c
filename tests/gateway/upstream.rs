//! The gateway's own upstream client against scripted HTTP/1.1 servers:
//! pooled keep-alive connections (per route `keepalive`), chunked and
//! close-delimited bodies, interim answers, a reused connection the upstream
//! closed, and answers that are not HTTP as we accept it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Gw, raw};

/// What a scripted upstream does with the `n`th request (from 0) on a
/// connection: answer these bytes and keep reading, answer and close, or
/// close without answering.
enum Reply {
    Keep(Vec<u8>),
    Close(Vec<u8>),
    Hangup,
}

/// A request as the scripted upstream read it.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// A raw TCP upstream run by `script`; counts the connections it accepted.
fn scripted(
    script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let (addr, accepted, _) = scripted_counting(script);
    (addr, accepted)
}

/// As [`scripted`], also counting the connections it has closed.
fn scripted_counting(
    script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let count = accepted.clone();
    let ended = closed.clone();
    actix_web::rt::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            let ended = ended.clone();
            actix_web::rt::spawn(async move {
                // Counted once the socket is closed (dropped), however the
                // script ends.
                struct Ended(Arc<AtomicUsize>, Option<tokio::net::TcpStream>);
                impl Drop for Ended {
                    fn drop(&mut self) {
                        drop(self.1.take());
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let mut guard = Ended(ended, Some(s));
                let s = guard.1.as_mut().unwrap();
                let mut buf = Vec::new();
                for n in 0.. {
                    let Some(request) = read_request(s, &mut buf).await else {
                        return;
                    };
                    match script(n, &request) {
                        Reply::Keep(bytes) => {
                            if s.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Reply::Close(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            let _ = s.shutdown().await;
                            return;
                        }
                        Reply::Hangup => return,
                    }
                }
            });
        }
    });
    (addr, accepted, closed)
}

/// Reads one request (head, and a body by its Content-Length) off `s`,
/// keeping what follows it in `buf`.
async fn read_request(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().unwrap());
    while buf.len() < end + length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[end..end + length].to_vec();
    buf.drain(..end + length);
    Some(Request { head, body })
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A gateway with one worker (pools are per worker) whose `/up` route
/// goes to `up` with the given route fields.
async fn gateway(up: SocketAddr, fields: &str) -> Gw {
    Gw::boot_full(
        1000,
        "    workers: 1\n",
        "",
        &format!(
            "      - {{ path: /up, upstream: \"http://{up}\", auth_required: false, timeout: \"2s\"{fields} }}\n"
        ),
    )
    .await
}

async fn get(gw: &Gw, path: &str) -> (u16, String) {
    let mut res = awc::Client::new().get(gw.url(path)).send().await.unwrap();
    let body = res.body().limit(1 << 20).await.unwrap();
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn keep_alive_connections_are_reused_unless_the_route_keeps_none() {
    let (up, accepted) = scripted(|n, r| Reply::Keep(ok(&format!("{n} {}", r.body.len()))));
    let gw = gateway(up, "").await;
    for i in 0..5 {
        let (status, body) = get(&gw, "/up/x").await;
        assert_eq!((status, body.as_str()), (200, format!("{i} 0").as_str()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection");

    let (up, accepted) = scripted(|n, _| Reply::Keep(ok(&n.to_string())));
    let gw = gateway(up, ", keepalive: 0").await;
    let mut seen = String::new();
    for _ in 0..3 {
        let mut res = awc::Client::new()
            .get(gw.url("/up/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        seen.push_str(&String::from_utf8_lossy(&res.body().await.unwrap()));
    }
    assert_eq!(seen, "000", "every request the first on its connection");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[actix_web::test]
async fn the_request_head_carries_the_route_host_and_the_body_length() {
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = heads.clone();
    let (up, _) = scripted(move |_, r| {
        log.lock().unwrap().push((r.head.clone(), r.body.clone()));
        Reply::Keep(ok("seen"))
    });
    let gw = gateway(up, "").await;
    let res = awc::Client::new()
        .post(gw.url("/up/post?q=1"))
        .send_body("hello")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(get(&gw, "/up/get").await, (200, "seen".into()));
    let heads = heads.lock().unwrap();
    let (post, body) = &heads[0];
    assert!(post.starts_with("POST /up/post?q=1 HTTP/1.1\r\n"), "{post}");
    assert!(post.contains(&format!("host: {up}\r\n")), "{post}");
    assert!(post.contains("content-length: 5\r\n"), "{post}");
    assert_eq!(body, b"hello");
    let (get_head, _) = &heads[1];
    assert!(
        get_head.starts_with("GET /up/get HTTP/1.1\r\n"),
        "{get_head}"
    );
    assert!(
        !get_head.to_lowercase().contains("content-length"),
        "{get_head}"
    );
}

#[actix_web::test]
async fn chunked_bodies_are_decoded_and_the_connection_kept() {
    let (up, accepted) = scripted(|n, _| {
        Reply::Keep(
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nB \r\n, chunked {n}\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
            .into_bytes(),
        )
    });
    let gw = gateway(up, "").await;
    for n in 0..3 {
        assert_eq!(
            get(&gw, "/up/c").await,
            (200, format!("hello, chunked {n}"))
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_body_delimited_by_the_close_arrives_whole() {
    let (up, accepted) = scripted(|_, _| {
        Reply::Close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec())
    });
    let gw = gateway(up, "").await;
    assert_eq!(get(&gw, "/up/a").await, (200, "until the end".into()));
    assert_eq!(get(&gw, "/up/b").await, (200, "until the end".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn interim_answers_are_skipped() {
    let (up, _) = scripted(|_, _| {
        let mut out =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                .to_vec();
        out.extend(ok("final"));
        Reply::Keep(out)
    });
    let gw = gateway(up, "").await;
    assert_eq!(get(&gw, "/up/x").await, (200, "final".into()));
}

#[actix_web::test]
async fn a_reused_connection_the_upstream_dropped_is_retried_only_when_safe() {
    // Keeps each connection for exactly one answer, then drops it when the
    // next request arrives: the gateway finds that out after sending.
    let (up, accepted) = scripted(|n, _| {
        if n == 0 {
            Reply::Keep(ok("first"))
        } else {
            Reply::Hangup
        }
    });
    let gw = gateway(up, "").await;
    assert_eq!(get(&gw, "/up/x").await, (200, "first".into()));
    // The pooled connection is dead: a GET is sent again on a new one.
    assert_eq!(get(&gw, "/up/x").await, (200, "first".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A POST is not repeated: the upstream may have acted on it.
    let res = awc::Client::new()
        .post(gw.url("/up/x"))
        .send_body("once")
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn answers_that_are_not_http_as_we_accept_it_are_502() {
    let (up, _) = scripted(|_, r| {
        let path = r.head.split_whitespace().nth(1).unwrap_or("").to_owned();
        Reply::Close(
            match path.as_str() {
                "/up/two-lengths" => {
                    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".into()
                }
                "/up/bad-length" => "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc".into(),
                "/up/switch" => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n".into(),
                "/up/garbage" => "SSH-2.0-OpenSSH\r\n\r\n".into(),
                "/up/headers" => format!(
                    "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
                    "X-A: 1\r\n".repeat(200)
                ),
                "/up/huge" => format!(
                    "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
                    "b".repeat(70 * 1024)
                ),
                _ => String::new(),
            }
            .into_bytes(),
        )
    });
    let gw = gateway(up, "").await;
    for path in [
        "/up/two-lengths",
        "/up/bad-length",
        "/up/switch",
        "/up/garbage",
        "/up/headers",
        "/up/huge",
        "/up/nothing",
    ] {
        let (status, body) = get(&gw, path).await;
        assert_eq!(status, 502, "{path}: {body}");
        assert!(body.contains("BAD_GATEWAY"), "{path}: {body}");
    }
}

#[actix_web::test]
async fn a_broken_chunked_body_closes_the_client_connection_short() {
    let (up, _) = scripted(|_, _| {
        Reply::Close(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n".to_vec(),
        )
    });
    let gw = gateway(up, "").await;
    let (status, text) = raw(
        gw.addr,
        "GET /up/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    .await;
    // The head may or may not have gone out before the bad chunk; a
    // complete body must not.
    assert!(matches!(status, 0 | 200), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n") && !text.contains("zz"),
        "the client must not see a complete body: {text:?}"
    );
}

#[test]
fn a_keepalive_over_the_limit_is_a_load_error_naming_the_route() {
    let err = super::proxy_load_error(
        r#"    routes:
      - { path: /api, upstream: "http://127.0.0.1:9", keepalive: 8 }
      - { path: /b, upstream: "http://127.0.0.1:9", keepalive: 100000 }
"#,
    );
    assert!(err.contains("app:api"), "{err}");
    assert!(err.contains("routes[1].keepalive"), "{err}");
    assert!(err.contains("100000"), "{err}");
}

#[actix_web::test]
async fn an_idle_connection_the_upstream_closed_is_not_used_even_for_a_post() {
    // Answers as if keeping the connection (no `Connection: close`), then
    // closes it: the gateway must notice before sending on it again.
    let (up, accepted, closed) =
        scripted_counting(|_, r| Reply::Close(ok(&String::from_utf8_lossy(&r.body))));
    let gw = gateway(up, "").await;
    for (i, body) in ["one", "two", "three"].into_iter().enumerate() {
        let mut res = awc::Client::new()
            .post(gw.url("/up/x"))
            .send_body(body)
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(res.body().await.unwrap(), body.as_bytes());
        super::support::eventually("the upstream to close its end", || {
            closed.load(Ordering::SeqCst) == i + 1
        })
        .await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[actix_web::test]
async fn a_connection_with_bytes_nobody_asked_for_is_not_reused() {
    // The first answer comes with a second, unasked-for one behind it: a
    // reused connection would hand that to the next request.
    let answered = Arc::new(AtomicUsize::new(0));
    let (up, accepted) = scripted(move |_, _| {
        if answered.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut out = ok("first");
            out.extend(ok("smuggled"));
            Reply::Keep(out)
        } else {
            Reply::Keep(ok("clean"))
        }
    });
    let gw = gateway(up, "").await;
    assert_eq!(get(&gw, "/up/x").await, (200, "first".into()));
    assert_eq!(get(&gw, "/up/x").await, (200, "clean".into()));
    assert_eq!(get(&gw, "/up/x").await, (200, "clean".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn idle_connections_are_closed_after_their_time_without_traffic() {
    let (up, accepted, closed) = scripted_counting(|_, _| Reply::Keep(ok("kept")));
    let gw = gateway(up, "").await;
    assert_eq!(get(&gw, "/up/x").await, (200, "kept".into()));
    assert_eq!(closed.load(Ordering::SeqCst), 0, "pooled, not closed");
    // No more requests: the gateway's sweeper closes it (4 s idle, swept
    // every 2 s), and the upstream sees its end close.
    super::support::eventually("the idle connection to be closed", || {
        closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// A raw TCP upstream that reads each connection's request head and hands
/// the socket, with any body bytes read past the head, to `serve`.
fn after_head<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream, Vec<u8>) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let serve = std::rc::Rc::new(serve);
    actix_web::rt::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let serve = serve.clone();
            actix_web::rt::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                serve(s, buf.split_off(end)).await;
            });
        }
    });
    addr
}

/// As [`gateway`], with bodies up to 16 MiB (declared ones over 64 KiB are
/// streamed, chunked ones read whole).
async fn upload_gateway(up: SocketAddr) -> Gw {
    Gw::boot_full(
        1000,
        "    workers: 1\n",
        "    max_body: \"16MiB\"\n",
        &format!("      - {{ path: /up, upstream: \"http://{up}\", auth_required: false, timeout: \"2s\" }}\n"),
    )
    .await
}

/// Sends the head of a `POST` declaring `length` body bytes and the first
/// `sent` of them, then reads one response (by its `Content-Length`)
/// without sending more: status and body.
async fn upload_part(gw: &Gw, length: usize, sent: usize) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!("POST /up/files HTTP/1.1\r\nHost: gw\r\nContent-Length: {length}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'x'; sent]).await.unwrap();
    read_response(&mut s).await
}

/// Reads one response off `s` (its body by `Content-Length`, never to the
/// close): status and body.
async fn read_response(s: &mut tokio::net::TcpStream) -> (u16, String) {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim().parse::<usize>().unwrap());
                if length.is_some_and(|n| body.len() >= n) {
                    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                    return (status, body.to_owned());
                }
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole response: {text}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    super::support::within("a whole response", read).await
}

const REFUSED: &[u8] =
    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 14\r\nConnection: close\r\n\r\ntoo big for us";

#[actix_web::test]
async fn an_upstream_refusing_a_streamed_upload_early_is_answered_through() {
    // Answers on the head alone and never reads the body, keeping the
    // connection open: the gateway must not wait on the rest of the body
    // (the client is waiting for this answer before it sends more).
    let up = after_head(|mut s, _| async move {
        s.write_all(REFUSED).await.unwrap();
        std::future::pending::<()>().await;
    });
    let gw = upload_gateway(up).await;
    assert_eq!(
        upload_part(&gw, 512 * 1024, 200 * 1024).await,
        (413, "too big for us".into())
    );

    // Answers and closes with the body unread (its kernel resets the
    // connection as the gateway's writes arrive): the answer still gets
    // through, not a 502.
    let up = after_head(|mut s, _| async move {
        s.write_all(REFUSED).await.unwrap();
    });
    let gw = upload_gateway(up).await;
    assert_eq!(
        upload_part(&gw, 512 * 1024, 200 * 1024).await,
        (413, "too big for us".into())
    );
}

#[actix_web::test]
async fn an_upstream_refusing_a_body_read_whole_is_answered_through() {
    // A chunked body is read whole, then sent with the head: 8 MiB that the
    // upstream never reads fill the socket's buffers, and its early answer
    // must still come through (not a 504 once the write times out, nor a
    // 502 when it closes).
    let body = 8 << 20;
    let chunked = |gw: &Gw| {
        let addr = gw.addr;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /up/files HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n{body:x}\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(&vec![b'x'; body]).await.unwrap();
            s.write_all(b"\r\n0\r\n\r\n").await.unwrap();
            read_response(&mut s).await
        }
    };
    let up = after_head(|mut s, _| async move {
        s.write_all(REFUSED).await.unwrap();
        std::future::pending::<()>().await;
    });
    let gw = upload_gateway(up).await;
    assert_eq!(chunked(&gw).await, (413, "too big for us".into()));

    let up = after_head(|mut s, _| async move {
        s.write_all(REFUSED).await.unwrap();
    });
    let gw = upload_gateway(up).await;
    assert_eq!(chunked(&gw).await, (413, "too big for us".into()));
}

#[actix_web::test]
async fn a_streamed_upload_goes_on_after_an_interim_answer() {
    let up = after_head(|mut s, mut body| async move {
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        let mut chunk = vec![0u8; 64 * 1024];
        while body.len() < 300 * 1024 {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the upload stopped at {}", body.len());
            body.extend_from_slice(&chunk[..n]);
        }
        let text = format!("got {}", body.len());
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        std::future::pending::<()>().await;
    });
    let gw = upload_gateway(up).await;
    assert_eq!(
        upload_part(&gw, 300 * 1024, 300 * 1024).await,
        (200, "got 307200".into())
    );
}

const UPGRADE: &str = "GET /up/ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

#[actix_web::test]
async fn an_upgrade_the_upstream_refuses_gets_the_upstreams_answer() {
    let (up, _) = scripted(|_, r| {
        assert!(r.head.contains("upgrade: websocket\r\n"), "{}", r.head);
        Reply::Keep(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\nX-Why: policy\r\n\r\nnot for you!"
                .to_vec(),
        )
    });
    let gw = gateway(up, "").await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(UPGRADE.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await, (403, "not for you!".into()));
}

#[actix_web::test]
async fn an_upgrade_keeps_what_the_upstream_sent_right_after_its_101() {
    let (up, _) = scripted(|_, _| {
        Reply::Keep(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi".to_vec(),
        )
    });
    let gw = gateway(up, "").await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(UPGRADE.as_bytes()).await.unwrap();
    let text = read_through(&mut s, b"\r\n\r\n\x81\x02hi", "the 101 and the first frame").await;
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(
        text.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{text}"
    );
}

/// Sends `first` and then a `GET /up/next` on one keep-alive connection
/// (pipelined) and returns everything read up to the end of the second
/// answer, which is `ok("next")`.
async fn then_next(gw: &Gw, first: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let requests = format!("{first}GET /up/next HTTP/1.1\r\nHost: gw\r\n\r\n");
    s.write_all(requests.as_bytes()).await.unwrap();
    read_through(&mut s, b"\r\n\r\nnext", "two answers on one connection").await
}

/// Reads `s` until what came ends with `end` (never to the close): all of
/// it, lower-cased.
async fn read_through(s: &mut tokio::net::TcpStream, end: &[u8], what: &str) -> String {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(end) {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).to_lowercase()
    };
    super::support::within(what, read).await
}

#[actix_web::test]
async fn answers_without_a_body_have_nothing_after_their_head() {
    let (up, _) = scripted(|_, r| {
        let path = r.head.split_whitespace().nth(1).unwrap_or_default();
        Reply::Keep(match path {
            "/up/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec(),
            "/up/304-length" => {
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 11\r\n\r\n".to_vec()
            }
            "/up/204" => b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            _ => ok("next"),
        })
    });
    let gw = gateway(up, "").await;
    for (path, status) in [
        ("/up/304", "304"),
        ("/up/304-length", "304"),
        ("/up/204", "204"),
    ] {
        let text = then_next(&gw, &format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n")).await;
        let (first, rest) = text.split_once("\r\n\r\n").unwrap();
        assert!(first.starts_with(&format!("http/1.1 {status}")), "{text}");
        assert!(
            rest.starts_with("http/1.1 200"),
            "bytes after a {status}'s head: {text}"
        );
        assert!(!first.contains("transfer-encoding"), "{text}");
        assert!(!first.contains("content-type"), "{text}");
        let length = first.contains("content-length: 11\r\n");
        assert_eq!(length, path == "/up/304-length", "{text}");
    }
}

#[actix_web::test]
async fn a_chunked_answer_gets_no_content_type_it_did_not_have() {
    let (up, _) = scripted(|_, _| {
        Reply::Keep(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".to_vec(),
        )
    });
    let gw = gateway(up, "").await;
    let mut res = awc::Client::new()
        .get(gw.url("/up/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("content-type"), None);
    assert_eq!(&res.body().await.unwrap()[..], b"hi");
}

#[actix_web::test]
async fn a_refused_upgrade_has_its_body_framed_as_its_head_says() {
    // A body of unknown length on a connection that asked to upgrade goes
    // to the close: the head must not claim chunked.
    let (up, _) = scripted(|_, _| {
        Reply::Keep(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let gw = gateway(up, "").await;
    let text = raw(gw.addr, UPGRADE).await.1.to_lowercase();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("http/1.1 403"), "{text}");
    assert!(!head.contains("transfer-encoding"), "{text}");
    assert!(head.contains("connection: close"), "{text}");
    assert_eq!(body, "hello");

    // With a length, an answer cut short ends short of it at the close.
    let (up, _) = scripted(|_, _| {
        Reply::Close(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nhello".to_vec())
    });
    let gw = gateway(up, "").await;
    let text = raw(gw.addr, UPGRADE).await.1.to_lowercase();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-length: 10\r\n"), "{text}");
    assert_eq!(body, "hello");
}
