//! Security fixes, one class per group: the path the gateway routes on and
//! forwards, spoofed identity and forwarding headers, and response
//! streaming with backpressure. (Unreadable JWT time claims: `auth.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpResponse, web};
use awc::http::header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{TIMEOUT, within};
use super::{ALICE_ID, Gw, Seen, jwt_for, raw};

/// A raw GET for `target` with `headers` (each line ending in `\r\n`).
async fn raw_get(gw: &Gw, target: &str, headers: &str) -> (u16, String) {
    raw(
        gw.addr,
        &format!("GET {target} HTTP/1.1\r\nHost: gw\r\n{headers}Connection: close\r\n\r\n"),
    )
    .await
}

/// What the echo upstream saw, from a whole raw response.
fn seen(text: &str) -> Seen {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    Seen(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}")))
}

fn assert_invalid_path(target: &str, status: u16, text: &str) {
    assert_eq!(status, 400, "{target}: {text}");
    assert!(text.contains("\"INVALID_PATH\""), "{target}: {text}");
    assert!(
        !text.contains("\"upstream\""),
        "{target} reached an upstream"
    );
}

/// Asserts that each of `anonymous` is refused without a token (401), then
/// fetches `authed` with alice's: what the upstream saw.
async fn guarded(gw: &Gw, anonymous: &[&str], authed: &str) -> Seen {
    for target in anonymous {
        let (status, text) = raw_get(gw, target, "").await;
        assert_eq!(status, 401, "{target}: {text}");
        assert!(text.contains("\"INVALID_TOKEN\""), "{target}: {text}");
    }
    let token = jwt_for("alice");
    let (status, text) = raw_get(gw, authed, &format!("Authorization: Bearer {token}\r\n")).await;
    assert_eq!(status, 200, "{authed}: {text}");
    seen(&text)
}

// ---- 1. The path routed on is the path forwarded ----

#[actix_web::test]
async fn an_encoded_letter_cannot_reach_a_protected_route_through_an_open_one() {
    let gw = Gw::boot(1000).await;
    // /api/items is open, /api/items/gmail needs a token; %67 is `g`.
    let seen = guarded(
        &gw,
        &["/api/items/%67mail/inbox", "/api/items/%67%6D%61%69%6C"],
        "/api/items/%67mail/inbox",
    )
    .await;
    assert_eq!(seen.0["upstream"], "a", "the protected route's upstream");
    assert_eq!(seen.0["path"], "/api/items/gmail/inbox");
    assert_eq!(seen.headers("x-user-id"), vec![ALICE_ID.to_owned()]);
}

#[actix_web::test]
async fn the_upstream_sees_exactly_the_normalised_path_and_the_query_unchanged() {
    let gw = Gw::boot(1000).await;
    let (status, text) = raw_get(&gw, "/api/auth/%7Euser/%41%2d/a%3ab%20c?q=%61&r=%2F", "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        seen(&text).0["path"],
        "/api/auth/~user/A-/a%3Ab%20c?q=%61&r=%2F"
    );
}

#[actix_web::test]
async fn path_parameters_are_refused() {
    let gw = Gw::boot(1000).await;
    for target in [
        "/api/items;x/gmail/inbox",
        "/api/items/gmail;jsessionid=1/inbox",
        "/api/auth/a;b",
        "/api/auth;/x",
        "/api/auth/a%3bb",
    ] {
        let (status, text) = raw_get(&gw, target, "").await;
        assert_invalid_path(target, status, &text);
    }
}

#[actix_web::test]
async fn a_double_encoded_escape_is_refused_not_decoded_twice() {
    let gw = Gw::boot(1000).await;
    for target in [
        "/api/items/%2567mail/inbox",
        "/api/auth/%252e%252e/x",
        "/api/auth/%zz",
    ] {
        let (status, text) = raw_get(&gw, target, "").await;
        assert_invalid_path(target, status, &text);
    }
    // A `%25` that introduces nothing is an ordinary escape, kept encoded.
    let (status, text) = raw_get(&gw, "/api/auth/100%25", "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(seen(&text).0["path"], "/api/auth/100%25");
}

#[actix_web::test]
async fn a_case_variant_of_a_protected_route_is_refused() {
    let gw = Gw::boot(1000).await;
    // Case-sensitively this is the open /api/items; an upstream matching
    // case-insensitively would serve it as /api/items/gmail.
    for target in [
        "/api/items/GMAIL/inbox",
        "/api/items/Gmail",
        "/api/items/%47mail/x",
    ] {
        let (status, text) = raw_get(&gw, target, "").await;
        assert_invalid_path(target, status, &text);
    }
    let (status, text) = raw_get(&gw, "/api/items/Other", "").await;
    assert_eq!(
        status, 200,
        "an open lookalike of an open route passes: {text}"
    );
}

#[actix_web::test]
async fn raw_bytes_outside_the_path_alphabet_are_refused_and_an_encoded_route_guards_its_path() {
    // An open catch-all under a protected route spelled with an escape: were
    // the raw spelling passed on, an upstream that encodes or decodes it
    // would serve the protected path through the open route.
    let a = super::upstream("a");
    let routes = format!(
        "      - {{ path: /, upstream: \"http://{a}\", auth_required: false }}\n      - {{ path: /caf%C3%A9/admin, upstream: \"http://{a}\", auth_required: true }}\n"
    );
    let gw = Gw::boot_with(1000, "", &routes).await;
    for target in ["/caf\u{e9}/admin", "/a b/x", "/a\"b", "/a`b"] {
        let (status, text) = raw_get(&gw, target, "").await;
        // actix itself may refuse some of these before routing: a 400 either way.
        assert_eq!(status, 400, "{target}: {text}");
        assert!(
            !text.contains("\"upstream\""),
            "{target} reached an upstream"
        );
    }
    // These actix lets through: ours to refuse.
    for target in ["/a{b}", "/a|b", "/api/items/^"] {
        let (status, text) = raw_get(&gw, target, "").await;
        assert_invalid_path(target, status, &text);
    }
    let seen = guarded(
        &gw,
        &["/caf%C3%A9/admin", "/caf%c3%a9/admin/x"],
        "/caf%c3%a9/admin",
    )
    .await;
    assert_eq!(seen.0["path"], "/caf%C3%A9/admin");
    let (status, text) = raw_get(&gw, "/caf%C3%A9", "").await;
    assert_eq!(status, 200, "the open route's own path passes: {text}");
}

#[test]
fn a_route_path_no_request_could_match_is_a_load_error_naming_it() {
    for bad in [
        "/caf\u{e9}/admin",
        "/a b",
        "/api/",
        "/api;v1",
        "/%61pi",
        "/caf%c3%a9",
        "/api/../x",
        "/a%2Fb",
    ] {
        let err = super::proxy_load_error(&format!(
            "    routes:\n      - {{ path: /ok, upstream: \"http://127.0.0.1:9\" }}\n      - {{ path: {bad:?}, upstream: \"http://127.0.0.1:9\" }}\n"
        ));
        assert!(err.contains("app:api"), "{bad}: {err}");
        assert!(err.contains("routes[1].path"), "{bad}: {err}");
        assert!(err.contains("normal form"), "{bad}: {err}");
    }
    let err = super::proxy_load_error(
        r#"    routes:
      - { path: /api/Admin, upstream: "http://127.0.0.1:9" }
      - { path: /api/admin, upstream: "http://127.0.0.1:9", auth_required: true }
"#,
    );
    assert!(err.contains("routes[1].path"), "{err}");
    assert!(err.contains("ignoring case"), "{err}");
}

#[actix_web::test]
async fn connect_and_trace_are_refused_and_only_a_get_opens_a_websocket() {
    let gw = Gw::boot(1000).await;
    for method in ["TRACE", "CONNECT"] {
        let (status, text) = raw(
            gw.addr,
            &format!("{method} /api/auth/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 405, "{method}: {text}");
        assert!(text.contains("\"METHOD_NOT_ALLOWED\""), "{method}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("\r\nallow: get,"),
            "{method}: {text}"
        );
        assert!(
            !text.contains("\"upstream\""),
            "{method} reached an upstream"
        );
    }
    // A POST asking to upgrade: neither tunnelled as a GET nor forwarded
    // without the body its upgrade connection never reads.
    let (status, text) = raw(
        gw.addr,
        "POST /api/auth/x HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("only a GET can open a WebSocket"), "{text}");
    assert!(
        !text.contains("\"upstream\""),
        "reached an upstream: {text}"
    );
}

#[actix_web::test]
async fn of_two_proxies_on_one_server_the_longer_route_wins_whatever_their_order() {
    // An open catch-all proxy declared before the one guarding /api/robeing.
    let a = super::upstream("a");
    let open = format!(
        "  - name: open\n    kind: http.proxy\n    meta: {{ server: app:gateway }}\n    routes:\n      - {{ path: /, upstream: \"http://{a}\" }}\n"
    );
    let gw = Gw::boot_full(1000, &open, "", "").await;
    let (status, text) = raw_get(&gw, "/api/robeing/x", "").await;
    assert_eq!(status, 401, "{text}");
    assert!(
        !text.contains("\"upstream\""),
        "reached an upstream: {text}"
    );
    let (status, text) = raw_get(&gw, "/elsewhere", "").await;
    assert_eq!(status, 200, "the catch-all still serves the rest: {text}");
}

// ---- 2. Identity spoofing through header spellings ----

#[actix_web::test]
async fn underscore_spellings_of_protected_headers_never_reach_the_upstream() {
    let gw = Gw::boot(1000).await;
    let token = jwt_for("alice");
    let (status, text) = raw_get(
        &gw,
        "/api/items/gmail/x",
        &format!(
            "Authorization: Bearer {token}\r\nx_user_id: admin\r\nX_Username: root\r\nx-request_id: forged\r\nX_Forwarded_For: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nx_custom: 1\r\nX-Kept-Header: yes\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let seen = seen(&text);
    let names: Vec<&str> = seen.0["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains('_')),
        "no underscore header by default: {names:?}"
    );
    assert_eq!(seen.headers("x-user-id"), vec![ALICE_ID.to_owned()]);
    assert_eq!(seen.headers("x-username"), vec!["alice".to_owned()]);
    assert!(seen.headers("x-real-ip").is_empty());
    assert_eq!(
        seen.headers("x-forwarded-for"),
        vec!["127.0.0.1".to_owned()]
    );
    assert_eq!(seen.headers("x-kept-header"), vec!["yes".to_owned()]);
}

#[actix_web::test]
async fn allowed_underscore_headers_pass_but_protected_names_are_stripped_in_any_spelling() {
    let gw = Gw::boot_with(1000, "    underscores_in_headers: true\n", "").await;
    let (status, text) = raw_get(
        &gw,
        "/api/auth/x",
        "x_user_id: admin\r\nX_USERNAME: root\r\nx_forwarded_proto: https\r\nforwarded: for=1.2.3.4\r\nx_custom: 1\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let seen = seen(&text);
    assert_eq!(seen.headers("x_custom"), vec!["1".to_owned()]);
    for gone in [
        "x_user_id",
        "x_username",
        "x-user-id",
        "x-username",
        "forwarded",
    ] {
        assert!(seen.headers(gone).is_empty(), "{gone} was forwarded");
    }
    assert!(seen.headers("x_forwarded_proto").is_empty());
    assert_eq!(seen.headers("x-forwarded-proto"), vec!["http".to_owned()]);
}

// ---- 3. Forwarding headers come from the connection ----

const SPOOFED_FORWARDING: &str = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nForwarded: for=6.6.6.6;proto=https;host=evil.example\r\nX-Real-IP: 6.6.6.6\r\n";

#[actix_web::test]
async fn client_forwarding_headers_and_absolute_targets_are_ignored_by_default() {
    let gw = Gw::boot(1000).await;
    for target in ["/api/auth/x", "https://gw/api/auth/x"] {
        let (status, text) = raw_get(&gw, target, SPOOFED_FORWARDING).await;
        assert_eq!(status, 200, "{target}: {text}");
        let seen = seen(&text);
        assert_eq!(
            seen.headers("x-forwarded-for"),
            vec!["127.0.0.1".to_owned()]
        );
        assert_eq!(seen.headers("x-forwarded-proto"), vec!["http".to_owned()]);
        assert_eq!(seen.headers("x-forwarded-host"), vec!["gw".to_owned()]);
        assert!(seen.headers("forwarded").is_empty(), "{target}");
        assert!(seen.headers("x-real-ip").is_empty(), "{target}");
    }
    // Without any client header, an absolute https target is still http.
    let (_, text) = raw_get(&gw, "https://gw/api/auth/x", "").await;
    assert_eq!(
        seen(&text).headers("x-forwarded-proto"),
        vec!["http".to_owned()]
    );
}

const TRUST_LOOPBACK: &str =
    "    trusted_proxies: [\"10.0.0.0/8\", \"127.0.0.1/32\", \"::1/128\"]\n";

#[actix_web::test]
async fn a_trusted_peer_passes_on_its_forwarding_headers() {
    let gw = Gw::boot_with(1000, TRUST_LOOPBACK, "").await;
    let (status, text) = raw_get(&gw, "/api/auth/x", SPOOFED_FORWARDING).await;
    assert_eq!(status, 200, "{text}");
    let seen = seen(&text);
    assert_eq!(
        seen.headers("x-forwarded-for"),
        vec!["6.6.6.6, 127.0.0.1".to_owned()]
    );
    assert_eq!(seen.headers("x-forwarded-proto"), vec!["https".to_owned()]);
    assert_eq!(
        seen.headers("x-forwarded-host"),
        vec!["evil.example".to_owned()]
    );
    assert!(seen.headers("forwarded").is_empty(), "never passed on");
    assert!(seen.headers("x-real-ip").is_empty(), "never passed on");
}

#[actix_web::test]
async fn a_trusted_proxy_s_own_proto_and_host_win_over_what_its_client_sent() {
    let gw = Gw::boot_with(1000, TRUST_LOOPBACK, "").await;
    // The client's value first, the proxy's appended or on a line after it.
    for (headers, proto, host) in [
        (
            "X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Host: real.example\r\n",
            "https",
            "real.example",
        ),
        (
            "X-Forwarded-Proto: http, https\r\nX-Forwarded-Host: evil.example, real.example\r\n",
            "https",
            "real.example",
        ),
        // Not a scheme: the listener's own.
        ("X-Forwarded-Proto: javascript\r\n", "http", "gw"),
    ] {
        let (status, text) = raw_get(&gw, "/api/auth/x", headers).await;
        assert_eq!(status, 200, "{text}");
        let seen = seen(&text);
        assert_eq!(
            seen.headers("x-forwarded-proto"),
            vec![proto.to_owned()],
            "{headers}"
        );
        assert_eq!(
            seen.headers("x-forwarded-host"),
            vec![host.to_owned()],
            "{headers}"
        );
    }
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_rate_limit_counts_the_forwarded_client() {
    let gw = Gw::boot_with(2, TRUST_LOOPBACK, "").await;
    let from = |ip: &str| format!("X-Forwarded-For: {ip}, 10.1.1.1\r\n");
    for expected in [200, 200, 429] {
        let (status, text) = raw_get(&gw, "/api/auth/x", &from("198.51.100.1")).await;
        assert_eq!(status, expected, "{text}");
    }
    let (status, text) = raw_get(&gw, "/api/auth/x", &from("198.51.100.2")).await;
    assert_eq!(status, 200, "another client behind the same proxy: {text}");
}

#[actix_web::test]
async fn addresses_rotated_within_one_ipv6_64_share_its_quota() {
    let gw = Gw::boot_with(2, TRUST_LOOPBACK, "").await;
    let from = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    for (ip, expected) in [
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2:ffff::9", 200),
        ("2001:db8:1:2:abcd:ef01:2345:6789", 429),
    ] {
        let (status, text) = raw_get(&gw, "/api/auth/x", &from(ip)).await;
        assert_eq!(status, expected, "{ip}: {text}");
    }
    let (status, text) = raw_get(&gw, "/api/auth/x", &from("2001:db8:1:3::1")).await;
    assert_eq!(status, 200, "the next /64 is another client: {text}");
}

#[actix_web::test]
async fn an_untrusted_peer_cannot_pick_its_rate_limit_key() {
    let gw = Gw::boot(2).await;
    for (i, expected) in [200, 200, 429].into_iter().enumerate() {
        let (status, text) = raw_get(
            &gw,
            "/api/auth/x",
            &format!("X-Forwarded-For: 198.51.100.{i}\r\n"),
        )
        .await;
        assert_eq!(status, expected, "{text}");
    }
}

#[test]
fn a_malformed_trusted_network_is_a_load_error_naming_the_entry_and_field() {
    let err = super::proxy_load_error(
        r#"    trusted_proxies: ["127.0.0.1/32", "10.0.0.0/33"]
    routes:
      - { path: /api, upstream: "http://127.0.0.1:9" }
"#,
    );
    assert!(err.contains("app:api"), "{err}");
    assert!(err.contains("trusted_proxies[1]"), "{err}");
    assert!(err.contains("10.0.0.0/33"), "{err}");
}

// ---- 4. Responses are streamed with backpressure ----

const CHUNK: usize = 64 * 1024;

/// An upstream whose `/big/<n>` produces `n` bytes on demand (with a
/// Content-Length), counting what it has produced, and whose `/stall/<n>`
/// announces `n` bytes, sends one chunk and then nothing.
fn stream_upstream(produced: Arc<AtomicU64>) -> SocketAddr {
    serve_loopback!(move || {
        let produced = produced.clone();
        App::new()
            .route(
                "/api/stream/big/{n}",
                web::get().to(move |n: web::Path<u64>| {
                    let produced = produced.clone();
                    let total = n.into_inner();
                    let chunk = web::Bytes::from(vec![b'x'; CHUNK]);
                    let body = futures_util::stream::unfold(0u64, move |sent| {
                        let produced = produced.clone();
                        let chunk = chunk.clone();
                        async move {
                            if sent >= total {
                                return None;
                            }
                            let len = (total - sent).min(CHUNK as u64);
                            produced.fetch_add(len, Ordering::SeqCst);
                            let piece = chunk.slice(..len as usize);
                            Some((Ok::<_, std::io::Error>(piece), sent + len))
                        }
                    });
                    async move { HttpResponse::Ok().no_chunking(total).streaming(body) }
                }),
            )
            .route(
                "/api/stream/stall/{n}",
                web::get().to(|n: web::Path<u64>| async move {
                    use futures_util::StreamExt;
                    let first = futures_util::stream::once(async {
                        Ok::<_, std::io::Error>(web::Bytes::from(vec![b'y'; CHUNK]))
                    });
                    HttpResponse::Ok()
                        .no_chunking(n.into_inner())
                        .streaming(first.chain(futures_util::stream::pending()))
                }),
            )
    })
}

async fn stream_gateway(produced: Arc<AtomicU64>) -> Gw {
    let up = stream_upstream(produced);
    Gw::boot_with(
        1000,
        "",
        &format!(
            "      - {{ path: /api/stream, upstream: \"http://{up}\", auth_required: false, timeout: \"300ms\" }}\n"
        ),
    )
    .await
}

/// Reads from `s` until the response head has arrived; returns what was read.
async fn read_head(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before the head: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

#[actix_web::test]
async fn a_client_that_stops_reading_stops_the_upstream_instead_of_filling_memory() {
    const TOTAL: u64 = 256 * 1024 * 1024;
    let produced = Arc::new(AtomicU64::new(0));
    let gw = stream_gateway(produced.clone()).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("GET /api/stream/big/{TOTAL} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = within("the response head", read_head(&mut s)).await;
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {TOTAL}")), "{head}");
    // The client now reads nothing more. Production must stall at what the
    // socket buffers hold; the old gateway buffered up to 64 MiB and more.
    // Watching a counter settle is time passing, not synchronisation.
    within("the upstream to stall", async {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let now = produced.load(Ordering::SeqCst);
            if now == last {
                break;
            }
            last = now;
        }
    })
    .await;
    let stalled_at = produced.load(Ordering::SeqCst);
    assert!(
        stalled_at < 48 * 1024 * 1024,
        "the upstream produced {stalled_at} bytes for a client that read none"
    );
    // Reading again resumes the flow.
    let mut sink = vec![0u8; 1 << 20];
    within("more body", async {
        let mut read = 0usize;
        while read < 4 * (1 << 20) {
            let n = s.read(&mut sink).await.unwrap();
            assert!(n > 0);
            read += n;
        }
    })
    .await;
    super::support::eventually("production to resume", || {
        produced.load(Ordering::SeqCst) > stalled_at
    })
    .await;
}

#[actix_web::test]
async fn a_streamed_response_keeps_the_upstreams_content_length() {
    let gw = stream_gateway(Arc::new(AtomicU64::new(0))).await;
    let mut res = awc::Client::new()
        .get(gw.url("/api/stream/big/1000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get(header::CONTENT_LENGTH).unwrap(),
        "1000000"
    );
    let body = res.body().limit(2 << 20).await.unwrap();
    assert_eq!(body.len(), 1_000_000);
    // HEAD: the upstream's length, no body.
    let (status, text) = raw(
        gw.addr,
        "HEAD /api/auth/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.to_lowercase().contains("content-length: "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after the head: {text}");
}

#[actix_web::test]
async fn a_body_that_stalls_past_the_route_timeout_closes_the_client_connection() {
    let gw = stream_gateway(Arc::new(AtomicU64::new(0))).await;
    let started = std::time::Instant::now();
    let (status, text) = raw_get(&gw, "/api/stream/stall/10000000", "").await;
    assert_eq!(status, 200, "the head went out before the stall");
    assert!(
        text.len() < 10_000_000,
        "closed before the announced length"
    );
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
}

#[actix_web::test]
async fn headers_that_frameworks_route_on_instead_of_the_path_never_reach_the_upstream() {
    let gw = Gw::boot(1000).await;
    let (status, text) = raw_get(
        &gw,
        "/api/auth/public",
        "X-Original-URL: /api/items/gmail/admin\r\nX-Rewrite-URL: /api/items/gmail/admin\r\nX-HTTP-Method-Override: DELETE\r\nX-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let seen = seen(&text);
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-method-override",
        "x-http-method",
    ] {
        assert!(seen.headers(name).is_empty(), "{name} was forwarded");
    }
}
