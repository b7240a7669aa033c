//! Routing, paths, bodies, headers, upstream failures, request ids, gzip.

use std::io::Read;

use awc::http::header;
use serde_json::Value;

use super::{Gw, Seen, error_code, raw};

async fn get(gw: &Gw, path: &str) -> (u16, Value, header::HeaderMap) {
    let mut res = awc::Client::new().get(gw.url(path)).send().await.unwrap();
    let headers = res.headers().clone();
    (
        res.status().as_u16(),
        res.json().limit(1 << 20).await.unwrap_or(Value::Null),
        headers,
    )
}

#[actix_web::test]
async fn routes_match_whole_segments_longest_prefix_first() {
    let gw = Gw::boot(1000).await;
    let (s, body, _) = get(&gw, "/api/auth").await;
    assert_eq!((s, body["upstream"].as_str()), (200, Some("a")));
    let (s, body, _) = get(&gw, "/api/auth/x/y").await;
    assert_eq!((s, body["path"].as_str()), (200, Some("/api/auth/x/y")));
    let (s, body, h) = get(&gw, "/api/authx").await;
    assert_eq!(s, 404);
    assert_eq!(
        error_code(&body, h.get("x-request-id").unwrap().to_str().unwrap()),
        "NOT_FOUND"
    );
    let (s, body, _) = get(&gw, "/api/items/other").await;
    assert_eq!((s, body["upstream"].as_str()), (200, Some("b")));
    // /api/items/gmail is longer than /api/items and needs auth.
    let (s, _, _) = get(&gw, "/api/items/gmail/x").await;
    assert_eq!(s, 401);
    let (s, _, _) = get(&gw, "/elsewhere").await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn path_and_query_are_forwarded_unchanged() {
    let gw = Gw::boot(1000).await;
    let (s, body, _) = get(&gw, "/api/auth/a%20b/c:d@e?x=1&y=%2F&z=&x=2;k").await;
    assert_eq!(s, 200);
    assert_eq!(body["path"], "/api/auth/a%20b/c:d@e?x=1&y=%2F&z=&x=2;k");
}

#[actix_web::test]
async fn dot_segments_double_slashes_and_encoded_separators_are_refused_not_normalised() {
    let gw = Gw::boot(1000).await;
    for path in [
        "/api/auth/../items/gmail/x",
        "/api/auth/./x",
        "/api/auth/%2e%2e/items",
        "/api/auth/%2E%2e/items",
        "/api/auth//x",
        "/api/auth/a%2fb",
        "/api/auth/%5c..",
        "/api/auth/%00",
        "/%2e%2e/api/auth",
    ] {
        let (status, text) = raw(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"INVALID_PATH\""), "{path}: {text}");
        assert!(!text.contains("\"upstream\""), "{path} reached an upstream");
    }
}

#[actix_web::test]
async fn bodies_arrive_byte_for_byte_with_slack_headers_untouched() {
    use sha2::Digest;
    let gw = Gw::boot(1000).await;
    let bodies: [(&str, &[u8]); 3] = [
        (
            "application/json",
            br#"{ "a" :  1 ,"b":[ 1,2 ]  ,"c" :"\u00e9"}   "#,
        ),
        (
            "application/x-www-form-urlencoded",
            b"token=abc&team_id=T1&text=hello+%20world&empty=",
        ),
        ("application/octet-stream", &[0u8, 255, 10, 13, 0, 42]),
    ];
    for (ctype, body) in bodies {
        let mut res = awc::Client::new()
            .post(gw.url("/gateway/slack/events"))
            .insert_header((header::CONTENT_TYPE, ctype))
            .insert_header(("X-Slack-Signature", "v0=abc123"))
            .insert_header(("X-Slack-Request-Timestamp", "1531420618"))
            .send_body(body.to_vec())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let seen = Seen(res.json().limit(1 << 20).await.unwrap());
        assert_eq!(
            seen.0["body_sha256"],
            rippy::util::hex(&sha2::Sha256::digest(body))
        );
        assert_eq!(seen.0["method"], "POST");
        assert_eq!(seen.headers("content-type"), vec![ctype.to_owned()]);
        assert_eq!(
            seen.headers("x-slack-signature"),
            vec!["v0=abc123".to_owned()]
        );
        assert_eq!(
            seen.headers("x-slack-request-timestamp"),
            vec!["1531420618".to_owned()]
        );
    }
}

#[actix_web::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let gw = Gw::boot(1000).await;
    // Written by hand: HTTP clients will not send a custom Connection header.
    let request = "GET /api/auth/hop HTTP/1.1\r\nHost: gw\r\nConnection: close, X-Custom-Hop\r\nX-Custom-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic abc\r\nX-Forwarded-For: 203.0.113.7\r\nX-End-To-End: kept\r\n\r\n";
    let (status, text) = raw(gw.addr, request).await;
    assert_eq!(status, 200, "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    let seen = Seen(serde_json::from_str(body).unwrap());
    for gone in ["x-custom-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(seen.headers(gone).is_empty(), "{gone} was forwarded");
    }
    assert_eq!(seen.headers("x-end-to-end"), vec!["kept".to_owned()]);
    // The peer is not a trusted proxy: its X-Forwarded-For is replaced.
    assert_eq!(
        seen.headers("x-forwarded-for"),
        vec!["127.0.0.1".to_owned()]
    );
    assert_eq!(seen.headers("x-forwarded-proto"), vec!["http".to_owned()]);
    assert_eq!(seen.headers("x-forwarded-host"), vec!["gw".to_owned()]);

    let res = awc::Client::new()
        .get(gw.url("/api/hop"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for gone in ["x-resp-hop", "keep-alive", "proxy-authenticate"] {
        assert!(res.headers().get(gone).is_none(), "{gone} came back");
    }
    assert_eq!(res.headers().get("x-kept").unwrap(), "yes");
}

#[actix_web::test]
async fn an_unreachable_upstream_is_503_and_a_slow_one_504() {
    let gw = Gw::boot(1000).await;
    let (s, body, h) = get(&gw, "/api/down/x").await;
    assert_eq!(s, 503);
    assert_eq!(
        error_code(&body, h.get("x-request-id").unwrap().to_str().unwrap()),
        "SERVICE_UNAVAILABLE"
    );
    let started = std::time::Instant::now();
    let (s, body, h) = get(&gw, "/api/slow/x").await;
    assert_eq!(s, 504);
    assert_eq!(
        error_code(&body, h.get("x-request-id").unwrap().to_str().unwrap()),
        "UPSTREAM_TIMEOUT"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let errors = gw.registry.node().metrics().counter_vec(
        "gateway_proxy_errors_total",
        "",
        &["route", "kind"],
    );
    assert_eq!(errors.get(&["/api/down", "connect"]), 1);
    assert_eq!(errors.get(&["/api/slow", "timeout"]), 1);
}

#[actix_web::test]
async fn a_well_formed_request_id_is_kept_and_forwarded_and_others_are_replaced() {
    let gw = Gw::boot(1000).await;
    let mut res = awc::Client::new()
        .get(gw.url("/api/auth/x"))
        .insert_header(("X-Request-Id", "abc-123_X.y"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "abc-123_X.y");
    let seen = Seen(res.json().limit(1 << 20).await.unwrap());
    assert_eq!(seen.headers("x-request-id"), vec!["abc-123_X.y".to_owned()]);
    for bad in [
        "has space".to_owned(),
        "x".repeat(129),
        "semi;colon".to_owned(),
    ] {
        let res = awc::Client::new()
            .get(gw.url("/api/authx"))
            .insert_header(("X-Request-Id", bad.as_str()))
            .send()
            .await
            .unwrap();
        let id = res.headers().get("x-request-id").unwrap().to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a UUID: {id}");
    }
}

#[actix_web::test]
async fn responses_are_gzipped_for_clients_that_accept_it_unless_already_encoded() {
    let gw = Gw::boot(1000).await;
    let mut res = awc::Client::new()
        .get(gw.url("/api/auth/big"))
        .insert_header((header::ACCEPT_ENCODING, "gzip"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get(header::CONTENT_ENCODING).unwrap(), "gzip");
    let compressed = res.body().limit(1 << 20).await.unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut plain)
        .unwrap();
    let body: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(body["path"], "/api/auth/big");
    assert!(compressed.len() < plain.len());

    let mut res = awc::Client::new()
        .get(gw.url("/api/auth/encoded"))
        .insert_header((header::ACCEPT_ENCODING, "gzip"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get(header::CONTENT_ENCODING).unwrap(), "br");
    assert_eq!(
        &res.body().await.unwrap()[..],
        &b"\x0b\x02\x80already-encoded\x03"[..]
    );
}

#[actix_web::test]
async fn cors_preflights_on_proxied_routes_follow_the_options() {
    let gw = Gw::boot(1000).await;
    let preflight = |origin: &'static str| {
        awc::Client::new()
            .request(awc::http::Method::OPTIONS, gw.url("/api/items/gmail/x"))
            .insert_header((header::ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "GET"))
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .unwrap(),
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
}

#[test]
fn the_example_gateway_manifest_validates() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rippy"))
        .args(["check", "examples/gateway.yaml"])
        .current_dir(super::support::repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
