//! Authentication: bearer JWTs, identity mapping, identity headers.

use awc::http::header;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::{ALICE_ID, Gw, SECRET, Seen, b64url, error_code, jwt_for, jwt_with, now};

async fn get_with_auth(
    gw: &Gw,
    path: &str,
    auth: Option<&str>,
) -> (u16, Value, awc::http::header::HeaderMap) {
    let mut req = awc::Client::new().get(gw.url(path));
    if let Some(a) = auth {
        req = req.insert_header((header::AUTHORIZATION, a));
    }
    let mut res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .json::<Value>()
        .limit(1 << 20)
        .await
        .unwrap_or(Value::Null);
    (status, body, headers)
}

async fn expect_401(gw: &Gw, auth: Option<&str>, code: &str) {
    let (status, body, headers) = get_with_auth(gw, "/api/items/gmail/inbox", auth).await;
    assert_eq!(status, 401, "{auth:?}: {body}");
    let rid = headers.get("x-request-id").unwrap().to_str().unwrap();
    assert_eq!(error_code(&body, rid), code, "{auth:?}");
    assert_eq!(headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
}

#[actix_web::test]
async fn missing_malformed_and_doubled_authorization_is_invalid_token() {
    let gw = Gw::boot(1000).await;
    expect_401(&gw, None, "INVALID_TOKEN").await;
    for bad in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwdw==",
        "Bearer not.a.jwt",
        "Bearer a.b",
        "Token abc",
    ] {
        expect_401(&gw, Some(bad), "INVALID_TOKEN").await;
    }
    let token = jwt_for("alice");
    let res = awc::Client::new()
        .get(gw.url("/api/items/gmail/inbox"))
        .append_header((header::AUTHORIZATION, format!("Bearer {token}")))
        .append_header((header::AUTHORIZATION, format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "two Authorization headers");
}

#[actix_web::test]
async fn the_algorithm_is_fixed_by_the_gateway_not_the_token() {
    let gw = Gw::boot(1000).await;
    let claims = json!({ "username": "alice", "exp": now() + 600 });
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    expect_401(&gw, Some(&format!("Bearer {none}")), "INVALID_TOKEN").await;
    let hs384 = jwt_with(Algorithm::HS384, SECRET, claims.clone());
    expect_401(&gw, Some(&format!("Bearer {hs384}")), "INVALID_TOKEN").await;
    let wrong_secret = jwt_with(
        Algorithm::HS256,
        "another-secret-0123456789",
        claims.clone(),
    );
    expect_401(
        &gw,
        Some(&format!("Bearer {wrong_secret}")),
        "INVALID_TOKEN",
    )
    .await;
    // A tampered payload under the original signature.
    let good = jwt_for("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(br#"{"username":"bob","exp":9999999999}"#),
        parts[2]
    );
    expect_401(&gw, Some(&format!("Bearer {forged}")), "INVALID_TOKEN").await;
    let failures =
        gw.registry
            .node()
            .metrics()
            .counter_vec("gateway_auth_failures_total", "", &["reason"]);
    assert_eq!(failures.get(&["wrong_alg"]), 2, "none and HS384");
    assert_eq!(failures.get(&["bad_signature"]), 2);
}

#[actix_web::test]
async fn missing_claims_and_future_nbf_are_invalid_and_past_exp_is_expired() {
    let gw = Gw::boot(1000).await;
    let sign = |c: Value| format!("Bearer {}", jwt_with(Algorithm::HS256, SECRET, c));
    expect_401(
        &gw,
        Some(&sign(json!({ "username": "alice" }))),
        "INVALID_TOKEN",
    )
    .await;
    expect_401(
        &gw,
        Some(&sign(json!({ "exp": now() + 600 }))),
        "INVALID_TOKEN",
    )
    .await;
    expect_401(
        &gw,
        Some(&sign(json!({ "username": "", "exp": now() + 600 }))),
        "INVALID_TOKEN",
    )
    .await;
    expect_401(
        &gw,
        Some(&sign(
            json!({ "username": "alice", "exp": now() + 600, "nbf": now() + 60 }),
        )),
        "INVALID_TOKEN",
    )
    .await;
    expect_401(
        &gw,
        Some(&sign(json!({ "username": "alice", "exp": now() - 30 }))),
        "TOKEN_EXPIRED",
    )
    .await;
    // Within the 2 s leeway: still accepted.
    let (status, _, _) = get_with_auth(
        &gw,
        "/api/items/gmail/x",
        Some(&sign(json!({ "username": "alice", "exp": now() - 1 }))),
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn an_unknown_username_is_user_not_found_after_a_valid_signature() {
    let gw = Gw::boot(1000).await;
    let (status, body, headers) = get_with_auth(
        &gw,
        "/api/items/gmail/x",
        Some(&format!("Bearer {}", jwt_for("mallory"))),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        error_code(
            &body,
            headers.get("x-request-id").unwrap().to_str().unwrap()
        ),
        "USER_NOT_FOUND"
    );
    // A bad signature never reaches the database.
    let before = gw.identity().queries();
    let forged = jwt_with(
        Algorithm::HS256,
        "another-secret-0123456789",
        json!({ "username": "eve", "exp": now() + 60 }),
    );
    expect_401(&gw, Some(&format!("Bearer {forged}")), "INVALID_TOKEN").await;
    assert_eq!(gw.identity().queries(), before);
}

#[actix_web::test]
async fn authenticated_requests_carry_exactly_one_gateway_identity_and_spoofs_are_removed() {
    let gw = Gw::boot(1000).await;
    let token = jwt_for("alice");
    let mut res = awc::Client::new()
        .get(gw.url("/api/items/gmail/inbox"))
        .insert_header((header::AUTHORIZATION, format!("bEaReR {token}")))
        .append_header(("X-User-Id", "spoofed-id"))
        .append_header(("x-user-id", "spoofed-2"))
        .append_header(("X-Username", "root"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = Seen(res.json().limit(1 << 20).await.unwrap());
    assert_eq!(seen.headers("x-user-id"), vec![ALICE_ID.to_owned()]);
    assert_eq!(seen.headers("x-username"), vec!["alice".to_owned()]);
    assert_eq!(
        seen.headers("authorization"),
        vec![format!("bEaReR {token}")],
        "forwarded unchanged"
    );

    let mut res = awc::Client::new()
        .get(gw.url("/api/auth/login"))
        .append_header(("X-User-Id", "spoofed-id"))
        .append_header(("X-Username", "root"))
        .send()
        .await
        .unwrap();
    let seen = Seen(res.json().limit(1 << 20).await.unwrap());
    assert!(seen.headers("x-user-id").is_empty());
    assert!(seen.headers("x-username").is_empty());
}

#[actix_web::test]
async fn concurrent_requests_for_an_uncached_user_cost_one_query() {
    let gw = Gw::boot(1000).await;
    let token = jwt_for("bob");
    let requests = (0..10).map(|_| {
        awc::Client::new()
            .get(gw.url("/api/items/gmail/x"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .send()
    });
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.unwrap().status(), 200);
    }
    assert_eq!(gw.identity().queries(), 1);
}

#[actix_web::test]
async fn a_websocket_is_tunnelled_to_the_upstream_after_auth() {
    use futures_util::{SinkExt, StreamExt};
    let gw = Gw::boot(1000).await;
    let url = gw.url("/api/robeing/ws").replace("http://", "ws://");
    let refused = awc::Client::new().ws(&url).connect().await;
    assert!(
        matches!(refused, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s == 401)
    );
    let (res, mut framed) = awc::Client::new()
        .ws(&url)
        .bearer_auth(jwt_for("alice"))
        .connect()
        .await
        .expect("tunnel");
    assert_eq!(
        res.headers().get("sec-websocket-x-seen-user").unwrap(),
        ALICE_ID
    );
    framed
        .send(awc::ws::Message::Text("hello".into()))
        .await
        .unwrap();
    match super::support::within("echo", framed.next()).await {
        Some(Ok(awc::ws::Frame::Text(t))) => assert_eq!(&t[..], b"echo:hello"),
        other => panic!("{other:?}"),
    }
    framed
        .send(awc::ws::Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    match super::support::within("echo", framed.next()).await {
        Some(Ok(awc::ws::Frame::Binary(b))) => assert_eq!(&b[..], &[1, 2, 3]),
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn unreadable_or_out_of_range_time_claims_are_refused_as_bad_claims() {
    let gw = Gw::boot(1000).await;
    let exp = now() + 600;
    let bad = [
        json!({ "username": "alice", "exp": exp, "nbf": "99999999999" }),
        json!({ "username": "alice", "exp": exp, "nbf": 1e30 }),
        json!({ "username": "alice", "exp": exp, "nbf": -1 }),
        json!({ "username": "alice", "exp": exp, "iat": "yesterday" }),
        json!({ "username": "alice", "exp": exp, "iat": 1.5 }),
        json!({ "username": "alice", "exp": exp.to_string() }),
        json!({ "username": "alice", "exp": 1e30 }),
        json!({ "username": "alice", "exp": u64::MAX }),
    ];
    for claims in &bad {
        let token = jwt_with(Algorithm::HS256, SECRET, claims.clone());
        let mut res = awc::Client::new()
            .get(gw.url("/api/items/gmail/x"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{claims}");
        let rid = res
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = res.json().await.unwrap();
        assert_eq!(error_code(&body, &rid), "INVALID_TOKEN", "{claims}");
    }
    let failures =
        gw.registry
            .node()
            .metrics()
            .counter_vec("gateway_auth_failures_total", "", &["reason"]);
    assert_eq!(failures.get(&["bad_claim"]), bad.len() as u64);
    // Readable claims in range still pass, with or without nbf and iat.
    for claims in [
        json!({ "username": "alice", "exp": exp }),
        json!({ "username": "alice", "exp": exp, "nbf": now() - 10, "iat": now() - 10 }),
    ] {
        let token = jwt_with(Algorithm::HS256, SECRET, claims.clone());
        let res = awc::Client::new()
            .get(gw.url("/api/items/gmail/x"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{claims}");
    }
}

#[actix_web::test]
async fn an_open_route_forwards_the_identity_of_a_valid_token_and_ignores_a_bad_one() {
    let gw = Gw::boot(1000).await;
    let seen_with = |auth: Option<String>| {
        let url = gw.url("/api/auth/profile");
        async move {
            let mut req = awc::Client::new()
                .get(url)
                .append_header(("X-User-Id", "spoofed-id"))
                .append_header(("x_username", "root"));
            if let Some(a) = auth {
                req = req.insert_header((header::AUTHORIZATION, a));
            }
            let mut res = req.send().await.unwrap();
            assert_eq!(res.status(), 200, "open routes never refuse for a token");
            Seen(res.json().limit(1 << 20).await.unwrap())
        }
    };
    let seen = seen_with(Some(format!("Bearer {}", jwt_for("alice")))).await;
    assert_eq!(seen.headers("x-user-id"), vec![ALICE_ID.to_owned()]);
    assert_eq!(seen.headers("x-username"), vec!["alice".to_owned()]);

    let forged = jwt_with(
        Algorithm::HS256,
        "another-secret-entirely-0123456789",
        json!({ "username": "alice", "exp": now() + 600 }),
    );
    for auth in [
        Some(format!("Bearer {forged}")),
        Some("Bearer not.a.jwt".to_owned()),
        Some(format!("Bearer {}", jwt_for("nobody"))),
        None,
    ] {
        let seen = seen_with(auth.clone()).await;
        assert!(seen.headers("x-user-id").is_empty(), "{auth:?}");
        assert!(seen.headers("x-username").is_empty(), "{auth:?}");
    }
}
