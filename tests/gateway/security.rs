//! Security fixes, one class per group: the path the gateway routes on and
//! forwards, and spoofed identity and forwarding headers. (Unreadable JWT
//! time claims: `auth.rs`.)

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

// ---- 1. The path routed on is the path forwarded ----

#[actix_web::test]
async fn an_encoded_letter_cannot_reach_a_protected_route_through_an_open_one() {
    let gw = Gw::boot(1000).await;
    // /api/items is open, /api/items/gmail needs a token; %67 is `g`.
    for target in ["/api/items/%67mail/inbox", "/api/items/%67%6D%61%69%6C"] {
        let (status, text) = raw_get(&gw, target, "").await;
        assert_eq!(status, 401, "{target}: {text}");
        assert!(text.contains("\"INVALID_TOKEN\""), "{target}: {text}");
    }
    let token = jwt_for("alice");
    let (status, text) = raw_get(
        &gw,
        "/api/items/%67mail/inbox",
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let seen = seen(&text);
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
    let text = r#"version: "1.0"
namespace: app
entries:
  - name: gateway
    kind: http.service
    addr: "127.0.0.1:0"
  - name: api
    kind: http.proxy
    meta: { server: app:gateway }
    trusted_proxies: ["127.0.0.1/32", "10.0.0.0/33"]
    routes:
      - { path: /api, upstream: "http://127.0.0.1:9" }
"#;
    let manifest = super::support::parse(text);
    let err = match rippy::registry::Registry::boot(manifest, &rippy::catalog::Catalog::new()) {
        Ok(_) => panic!("booted with a /33 network"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("app:api"), "{err}");
    assert!(err.contains("trusted_proxies[1]"), "{err}");
    assert!(err.contains("10.0.0.0/33"), "{err}");
}
