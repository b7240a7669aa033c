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
        assert!(header(&head, "content-length").is_some(), "{head}");
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
async fn a_head_split_over_two_writes_or_behind_a_taken_one_goes_on_whole() {
    let gw = Gw::boot(1000).await;
    let before = handoffs(&gw);
    // Half a head, then the rest: the front hands on what it read, and
    // actix-http reads the rest after it.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    let request = get("/api/items/split", "");
    let (first, second) = request.split_at(20);
    s.write_all(first.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    tokio::task::yield_now().await;
    s.write_all(second.as_bytes()).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["path"], "/api/items/split");
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
    assert!(handoffs(&gw) > before, "handed on at least once");
}
