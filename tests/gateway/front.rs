//! The server's own HTTP/1 path (`http::front`): the requests it takes are
//! answered as actix-http would answer them, and a connection goes on to
//! actix-http, unread, at the first request it does not take.

use std::collections::BTreeSet;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn handoffs(gw: &Gw) -> u64 {
    gw.registry
        .node()
        .metrics()
        .counter_vec("rippy_http_front_handoffs_total", "", &["server"])
        .get(&["app:gateway"])
}

/// Reads one answer off `s` (its head, and a body framed by its
/// `content-length`), keeping what follows in `buf`.
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> (String, Vec<u8>) {
    support::within("an answer", async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .map_or(0, |v| v.trim().parse().unwrap());
                let length = if head_request { 0 } else { length };
                if buf.len() >= end + 4 + length {
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    buf.drain(..end + 4 + length);
                    return (head, body);
                }
            }
            let mut chunk = [0; 8192];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed mid-answer: {:?}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn get(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
        jwt_for("alice")
    )
}

#[actix_web::test]
async fn kept_requests_are_answered_until_one_goes_on_with_the_connection() {
    let gw = Gw::boot(1000).await;
    let before = handoffs(&gw);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    // Two at once (pipelined), answered in order.
    let two = format!(
        "{}{}",
        get("/api/items/gmail/one", ""),
        get("/api/items/two", "")
    );
    s.write_all(two.as_bytes()).await.unwrap();
    for (path, upstream) in [("/api/items/gmail/one", "a"), ("/api/items/two", "b")] {
        let (head, body) = answer(&mut s, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(header(&head, "date").is_some() && header(&head, "x-request-id").is_some());
        assert_eq!(header(&head, "x-ratelimit-limit"), Some("1000"), "{head}");
        let seen: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (seen["path"].as_str(), seen["upstream"].as_str()),
            (Some(path), Some(upstream))
        );
        assert_eq!(Seen(seen).headers("x-user-id"), [ALICE_ID]);
    }
    assert_eq!(handoffs(&gw), before, "both on the front's path");
    // A CORS request is not the front's: actix-http answers it, and the
    // connection stays with it.
    s.write_all(get("/api/items/three", "Origin: https://app.example\r\n").as_bytes())
        .await
        .unwrap();
    let (head, _) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(handoffs(&gw), before + 1);
    s.write_all(get("/api/items/four", "").as_bytes())
        .await
        .unwrap();
    let (head, _) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(handoffs(&gw), before + 1, "handed on once, for good");
}

#[actix_web::test]
async fn the_front_answers_as_actix_http_does() {
    let gw = Gw::boot(1000).await;
    // The same request twice on fresh connections: as it is (the front's),
    // and with more headers than the front takes (actix-http's).
    let padding: String = (0..70).map(|i| format!("X-Pad-{i}: 1\r\n")).collect();
    let mut heads = Vec::new();
    for extra in [String::new(), padding] {
        let before = handoffs(&gw);
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let request = get(
            "/api/items/gmail/same",
            &format!("X-Request-Id: same-id\r\n{extra}"),
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = answer(&mut s, &mut Vec::new(), false).await;
        let seen: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["path"], "/api/items/gmail/same");
        heads.push((head, handoffs(&gw) - before));
        // And a HEAD: the length of the answer it stands for, no body.
        let head_request = request.replacen("GET", "HEAD", 1);
        s.write_all(head_request.as_bytes()).await.unwrap();
        let (head, _) = answer(&mut s, &mut Vec::new(), true).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let length = header(&head, "content-length").map(|n| n.parse::<usize>().unwrap());
        // The echo's body names the method: one letter more.
        assert_eq!(length, Some(body.len() + 1), "{head}");
    }
    let names = |head: &str| -> BTreeSet<String> {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(": "))
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    };
    let ((front, 0), (actix, 1)) = (&heads[0], &heads[1]) else {
        panic!("one answer from each path: {heads:?}");
    };
    assert_eq!(front.lines().next(), actix.lines().next());
    assert_eq!(names(front), names(actix), "{front}\n{actix}");
    for name in ["x-request-id", "content-type", "x-ratelimit-limit"] {
        assert_eq!(header(front, name), header(actix, name), "{name}");
    }
}

#[actix_web::test]
async fn connection_close_and_refusals_on_the_front() {
    let gw = Gw::boot(1000).await;
    let before = handoffs(&gw);
    // A refusal is the gateway's JSON error, with the connection kept.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /api/items/gmail/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r-1\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert_eq!(header(&head, "www-authenticate"), Some("Bearer"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_code(&body, "r-1"), "INVALID_TOKEN");
    // `Connection: close`: answered, said, and closed.
    s.write_all(get("/api/items/y", "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let (head, _) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    let mut rest = Vec::new();
    support::within("the close", s.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty() && buf.is_empty());
    assert_eq!(handoffs(&gw), before, "all on the front's path");
}

#[actix_web::test]
async fn a_head_split_over_two_writes_is_taken_and_one_behind_a_taken_one_goes_on_whole() {
    let gw = Gw::boot(1000).await;
    let before = handoffs(&gw);
    // Half a head, then the rest: the front reads on until it is whole.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let request = get("/api/items/split", "");
    let (first, second) = request.split_at(20);
    s.write_all(first.as_bytes()).await.unwrap();
    // Not a wait for an outcome: a pause so that the halves are likely
    // two reads. The answer is the same either way.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    s.write_all(second.as_bytes()).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["path"], "/api/items/split");
    assert_eq!(handoffs(&gw), before, "the front's");
    // A taken request and, in the same write, one that is not: the second
    // goes on with the bytes read after the first.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let both = format!(
        "{}{}",
        get("/api/items/taken", ""),
        get("/api/items/not", "Origin: https://app.example\r\n")
    );
    s.write_all(both.as_bytes()).await.unwrap();
    for path in ["/api/items/taken", "/api/items/not"] {
        let (head, body) = answer(&mut s, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let seen: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["path"], path);
    }
    assert_eq!(handoffs(&gw), before + 1);
}

#[actix_web::test]
async fn large_heads_on_a_kept_connection_stay_on_the_front() {
    let gw = Gw::boot(1000).await;
    let before = handoffs(&gw);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    // About 3 KiB a head: the read buffer must grow back after each.
    let cookie = format!("Cookie: c={}\r\n", "x".repeat(3000));
    for i in 0..4 {
        let path = format!("/api/items/big/{i}");
        s.write_all(get(&path, &cookie).as_bytes()).await.unwrap();
        let (head, body) = answer(&mut s, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let seen: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["path"], path);
    }
    assert_eq!(handoffs(&gw), before, "all four on the front's path");
}

#[actix_web::test]
async fn unusual_targets_and_hosts_go_to_actix_http() {
    let gw = Gw::boot(1000).await;
    let bearer = format!("Authorization: Bearer {}\r\n", jwt_for("alice"));
    let cases = [
        // A fragment, angle brackets and raw UTF-8 in the target.
        (
            "GET /api/items/a#frag HTTP/1.1\r\nHost: gw\r\n\r\n".to_owned(),
            "/api/items/a",
        ),
        (
            "GET /api/items/q?x=<b> HTTP/1.1\r\nHost: gw\r\n\r\n".to_owned(),
            "",
        ),
        (
            "GET /api/items/\u{e9} HTTP/1.1\r\nHost: gw\r\n\r\n".to_owned(),
            "",
        ),
        // Quotes, braces and a backslash.
        (
            "GET /api/items/\"q\"{b}\\ HTTP/1.1\r\nHost: gw\r\n\r\n".to_owned(),
            "",
        ),
        // A head over the server's header limit (16 KiB).
        (
            format!(
                "GET /api/items/big HTTP/1.1\r\nHost: gw\r\nX-Big: {}\r\n\r\n",
                "b".repeat(40_000)
            ),
            "",
        ),
        // No Host, and two.
        ("GET /api/items/h HTTP/1.1\r\n\r\n".to_owned(), ""),
        (
            format!("GET /api/items/gmail/h HTTP/1.1\r\nHost: a\r\nHost: b\r\n{bearer}\r\n"),
            "",
        ),
        // Two lengths.
        (
            "GET /api/items/l HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
                .to_owned(),
            "",
        ),
    ];
    for (request, seen_path) in cases {
        let before = handoffs(&gw);
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = answer(&mut s, &mut Vec::new(), false).await;
        assert_eq!(handoffs(&gw), before + 1, "{request:?}: handed on");
        // Whatever actix-http makes of it, as before the front.
        let status = &head[9..12];
        assert!(
            ["200", "400", "431"].contains(&status),
            "{request:?}: {head}"
        );
        if !seen_path.is_empty() {
            assert_eq!(status, "200", "{request:?}: {head}");
            let seen: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(seen["path"], seen_path, "{request:?}");
        }
    }
}

/// An upstream that answers every request with a chunked body.
fn chunked_upstream() -> std::net::SocketAddr {
    raw_upstream(|mut s| async move {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
        let _ = s.write_all(head).await;
        // Two chunks, apart, so the gateway streams them.
        let _ = s.write_all(b"5\r\nhello\r\n").await;
        let _ = s.flush().await;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let _ = s.write_all(b"6\r\n world\r\n0\r\n\r\n").await;
        let _ = s.shutdown().await;
    })
}

/// Reads a chunked body off `s` after `buf` (which holds what was read
/// past the head).
async fn chunked_body(s: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    support::within("a chunked body", async {
        let mut body = Vec::new();
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let size =
                    usize::from_str_radix(std::str::from_utf8(&buf[..end]).unwrap(), 16).unwrap();
                if buf.len() >= end + 2 + size + 2 {
                    body.extend_from_slice(&buf[end + 2..end + 2 + size]);
                    assert_eq!(&buf[end + 2 + size..end + 4 + size], b"\r\n");
                    buf.drain(..end + 4 + size);
                    if size == 0 {
                        return body;
                    }
                    continue;
                }
            }
            let mut chunk = [0; 8192];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

#[actix_web::test]
async fn a_chunked_answer_and_a_head_of_it_on_the_front() {
    let up = chunked_upstream();
    let gw = Gw::boot_with(
        1000,
        "",
        &format!(
            "      - {{ path: /api/chunked, upstream: \"http://{up}\", auth_required: false }}\n"
        ),
    )
    .await;
    let before = handoffs(&gw);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /api/chunked/x HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = answer(&mut s, &mut buf, true).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let body = match header(&head, "content-length") {
        Some(n) => {
            let n: usize = n.parse().unwrap();
            while buf.len() < n {
                let mut chunk = [0; 1024];
                let read = s.read(&mut chunk).await.unwrap();
                assert!(read > 0);
                buf.extend_from_slice(&chunk[..read]);
            }
            buf.drain(..n).collect()
        }
        None => {
            assert_eq!(
                header(&head, "transfer-encoding"),
                Some("chunked"),
                "{head}"
            );
            chunked_body(&mut s, &mut buf).await
        }
    };
    assert_eq!(body, b"hello world");
    // The connection is kept for the next: a HEAD, with no body at all.
    s.write_all(b"HEAD /api/chunked/y HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = answer(&mut s, &mut buf, true).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // Then a GET whose answer must come straight after the HEAD's head.
    s.write_all(get("/api/items/after", "").as_bytes())
        .await
        .unwrap();
    let (head, body) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["path"], "/api/items/after");
    assert_eq!(handoffs(&gw), before, "all on the front's path");
}

#[actix_web::test]
async fn the_rate_limit_refuses_on_the_front() {
    let gw = Gw::boot(2).await;
    let before = handoffs(&gw);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..3 {
        s.write_all(get(&format!("/api/items/gmail/{i}"), "X-Request-Id: rl\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = answer(&mut s, &mut buf, false).await;
        if i < 2 {
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            continue;
        }
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        let wait: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{head}");
        assert_eq!(header(&head, "x-ratelimit-remaining"), Some("0"), "{head}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error_code(&body, "rl"), "RATE_LIMIT_EXCEEDED");
    }
    assert_eq!(handoffs(&gw), before);
}

#[actix_web::test]
async fn a_stopping_server_closes_kept_connections_and_a_silent_one_gets_408() {
    let gw = Gw::boot_full(1000, "    request_timeout: \"1s\"\n", "", "").await;
    let before = handoffs(&gw);
    // Connected and silent, or half a head that never ends: actix-http's
    // 408 at the request timeout (not at the keep-alive time, 5 s, or
    // twice the timeout), then the close.
    for sent in [&b""[..], b"GET /api/items/slow HTTP/1.1\r\nHost: gw\r\n"] {
        let started = std::time::Instant::now();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(sent).await.unwrap();
        let mut text = Vec::new();
        support::within("the 408", s.read_to_end(&mut text))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(1900));
    }
    // A kept connection idle past the request timeout (but within the
    // keep-alive time) is still open; between requests it closes when the
    // server stops.
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    kept.write_all(get("/api/items/kept", "").as_bytes())
        .await
        .unwrap();
    let (head, _) = answer(&mut kept, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // The idle time is what is tested here, not a wait for an event.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    kept.write_all(get("/api/items/kept-on", "").as_bytes())
        .await
        .unwrap();
    let (head, _) = answer(&mut kept, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(handoffs(&gw), before, "all on the front's path");
    // Closed at the stop, well before the keep-alive time (5 s) would.
    let mut rest = Vec::new();
    let Gw { registry, _dir, .. } = gw;
    let started = std::time::Instant::now();
    let (_, read) = tokio::join!(
        registry.shutdown(std::time::Duration::from_secs(10)),
        support::within("the close", kept.read_to_end(&mut rest))
    );
    read.unwrap();
    assert!(rest.is_empty());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn the_upstreams_hop_by_hop_and_labelled_headers_give_way_on_the_front() {
    // An upstream that sends its own request id and rate-limit figures,
    // with a mixed-case header name and an empty value.
    let up = raw_upstream(|mut s| async move {
        // And a Date its Connection names: the gateway's own goes out.
        let answer = b"HTTP/1.1 200 OK\r\nX-Request-Id: upstream-id\r\nX-RateLimit-Remaining: 999\r\nX-Mixed-Case: Kept\r\nX-Empty:\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\nConnection: close, Date\r\n\r\nok";
        let _ = s.write_all(answer).await;
        let _ = s.shutdown().await;
    });
    let gw = Gw::boot_with(
        1000,
        "",
        &format!(
            "      - {{ path: /api/labels, upstream: \"http://{up}\", auth_required: false }}\n"
        ),
    )
    .await;
    let before = handoffs(&gw);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /api/hop/x HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hop-ok");
    // What the upstream's `Connection` named, and the fixed hop-by-hop set.
    for gone in [
        "x-resp-hop",
        "keep-alive",
        "proxy-authenticate",
        "connection",
    ] {
        assert_eq!(header(&head, gone), None, "{gone}: {head}");
    }
    assert_eq!(header(&head, "x-kept"), Some("yes"), "{head}");
    assert_eq!(head.matches("content-length").count(), 1, "{head}");
    s.write_all(b"GET /api/labels/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: client-id\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"ok");
    assert_eq!(head.matches("x-request-id").count(), 1, "{head}");
    assert_eq!(header(&head, "x-request-id"), Some("client-id"), "{head}");
    assert_eq!(head.matches("x-ratelimit-remaining").count(), 1, "{head}");
    assert_ne!(
        header(&head, "x-ratelimit-remaining"),
        Some("999"),
        "{head}"
    );
    // Names as a map has them; values as sent.
    assert!(head.contains("\r\nx-mixed-case: Kept\r\n"), "{head}");
    assert!(head.contains("\r\nx-empty: \r\n"), "{head}");
    assert_eq!(head.matches("content-length").count(), 1, "{head}");
    assert_eq!(head.matches("\r\ndate: ").count(), 1, "{head}");
    assert!(!head.contains("2024"), "{head}");
    assert_eq!(handoffs(&gw), before, "both on the front's path");
}

/// One connection's requests share a timer for the wait upstream: a route
/// with a shorter timeout after a longer one still times out at its own
/// deadline, and a request after the timer went off gets a whole wait.
#[actix_web::test]
async fn each_request_on_a_kept_connection_waits_upstream_as_long_as_its_route_says() {
    let gw = Gw::boot(1000).await;
    let before = handoffs(&gw);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    let mut ask = async |path: &str| {
        s.write_all(get(path, "").as_bytes()).await.unwrap();
        answer(&mut s, &mut buf, false).await.0
    };
    // The 5 s route first: the timer is set for its deadline.
    assert!(
        ask("/api/items/one")
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
    );
    // 300 ms on `/api/slow`, whose upstream takes 3 s: a timer left at the
    // first request's deadline would see its answer through.
    let started = std::time::Instant::now();
    let head = ask("/api/slow/x").await;
    assert!(head.starts_with("HTTP/1.1 504 "), "{head}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The timer went off; the next request's wait is its own.
    for path in ["/api/items/two", "/api/items/three"] {
        let head = ask(path).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    }
    let head = ask("/api/slow/y").await;
    assert!(head.starts_with("HTTP/1.1 504 "), "{head}");
    assert_eq!(handoffs(&gw), before, "all on the front's path");
}
