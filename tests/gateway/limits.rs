//! Rate limits, body limits, metrics and the access log.

use awc::http::header;
use serde_json::Value;

use super::support::binary::Rippy;
use super::{Gw, error_code, jwt_for, logs, raw};

#[actix_web::test]
async fn the_61st_request_in_a_minute_is_429_while_another_user_still_passes() {
    let gw = Gw::boot(60).await;
    let alice = jwt_for("alice");
    let send = |token: String| {
        awc::Client::new()
            .get(gw.url("/api/items/gmail/x"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .send()
    };
    for i in 0..60 {
        let res = send(alice.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "request {}", i + 1);
        assert_eq!(res.headers().get("x-ratelimit-limit").unwrap(), "60");
        assert_eq!(
            res.headers()
                .get("x-ratelimit-remaining")
                .unwrap()
                .to_str()
                .unwrap(),
            (59 - i).to_string()
        );
    }
    let mut res = send(alice.clone()).await.unwrap();
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
    assert_eq!(res.headers().get("x-ratelimit-remaining").unwrap(), "0");
    assert_eq!(
        res.headers()
            .get("x-ratelimit-reset")
            .unwrap()
            .to_str()
            .unwrap(),
        retry.to_string()
    );
    let rid = res
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body, &rid), "RATE_LIMIT_EXCEEDED");
    assert_eq!(send(jwt_for("bob")).await.unwrap().status(), 200);
}

#[actix_web::test]
async fn unauthenticated_routes_are_limited_per_client_address_not_forwarded_for() {
    let gw = Gw::boot(5).await;
    for i in 0..6 {
        let res = awc::Client::new()
            .get(gw.url("/api/auth/x"))
            .insert_header(("X-Forwarded-For", format!("198.51.100.{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), if i < 5 { 200 } else { 429 }, "request {i}");
    }
}

#[actix_web::test]
async fn a_body_over_max_body_is_413_payload_too_large() {
    let gw = Gw::boot(1000).await;
    let mut res = awc::Client::new()
        .post(gw.url("/api/auth/upload"))
        .send_body(vec![b'x'; 65 * 1024])
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let rid = res
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body, &rid), "PAYLOAD_TOO_LARGE");
}

/// Parses Prometheus text: every sample line as (name with labels, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                k.to_owned(),
                v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

#[actix_web::test]
async fn metrics_count_requests_by_route_method_and_status_exactly() {
    let gw = Gw::boot(1000).await;
    let client = awc::Client::new();
    for _ in 0..3 {
        assert_eq!(
            client
                .get(gw.url("/api/auth/x"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        client
            .post(gw.url("/api/auth/x"))
            .send_body("{}")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(gw.url("/nowhere/secret-123"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .get(gw.url("/api/items/gmail/x"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let token = jwt_for("alice");
    let ok = client
        .get(gw.url("/api/items/gmail/x"))
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut res = client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let s = samples(&text);
    let value = |key: &str| s.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    assert_eq!(
        value(r#"gateway_requests_total{route="/api/auth",method="GET",status="200"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(r#"gateway_requests_total{route="/api/auth",method="POST",status="200"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"gateway_requests_total{route="unmatched",method="GET",status="404"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"gateway_requests_total{route="/api/items/gmail",method="GET",status="401"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"gateway_requests_total{route="/api/items/gmail",method="GET",status="200"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"gateway_auth_failures_total{reason="missing"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"gateway_request_duration_seconds_count{route="/api/auth"}"#),
        Some(4.0)
    );
    assert_eq!(
        value(r#"gateway_request_duration_seconds_bucket{route="/api/auth",le="+Inf"}"#),
        Some(4.0)
    );
    assert!(!text.contains("secret-123"), "a raw path became a label");
    let types: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# TYPE gateway_"))
        .collect();
    assert_eq!(types.len(), 4, "each family declared once: {types:?}");
}

#[actix_web::test]
async fn each_proxied_request_writes_one_json_access_line_without_secrets() {
    let gw = Gw::boot(1000).await;
    let token = jwt_for("alice");
    let rid = "access-log-test-1";
    let res = awc::Client::new()
        .get(gw.url("/api/items/gmail/inbox?q=1"))
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
        .insert_header(("X-Request-Id", rid))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let lines: Vec<Value> = logs()
        .lock()
        .unwrap()
        .iter()
        .filter(|(target, line)| target == "access" && line.contains(rid))
        .map(|(_, line)| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/items/gmail/inbox");
    assert_eq!(line["username"], "alice");
    assert_eq!(line["user_id"], super::ALICE_ID);
    assert_eq!(line["status_code"], 200);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["service"], "app:api");
    assert!(
        line["backend_service"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(line["response_time_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    let signature = token.rsplit('.').next().unwrap();
    for (_, l) in logs().lock().unwrap().iter() {
        assert!(
            !l.contains(&token) && !l.contains(signature),
            "a token was logged: {l}"
        );
        assert!(!l.contains(super::SECRET), "the secret was logged: {l}");
    }
}

#[actix_web::test]
async fn a_body_that_stalls_is_408_request_timeout_and_the_connection_closes() {
    let gw = Gw::boot_full(1000, "    body_idle_timeout: \"200ms\"\n", "", "").await;
    let (status, text) = raw(
        gw.addr,
        "POST /api/auth/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-a-part",
    )
    .await;
    assert_eq!(status, 408, "{text}");
    let rid = text
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap()
        .trim()
        .to_owned();
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(error_code(&body, &rid), "REQUEST_TIMEOUT");
}

/// The binary's own log (stderr not a terminal: rippy's gathering output),
/// from its start to its exit, with one request proxied on the way, from a
/// gateway run with `RUST_LOG` set to `filter`; and the lines of it that
/// carry the request's id.
async fn binary_log(filter: &str) -> (Vec<String>, Vec<String>) {
    let a = super::upstream("a");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("gateway.yaml");
    std::fs::write(
        &manifest,
        super::proxy_manifest(&format!(
            "    routes:\n      - {{ path: /api/auth, upstream: \"http://{a}\", auth_required: false }}\n"
        )),
    )
    .unwrap();
    let mut command = Rippy::command();
    command.arg("run").arg(&manifest).env("RUST_LOG", filter);
    let mut rippy = Rippy::spawn(command);
    let listening = rippy.wait_for("http server listening");
    let base = listening.split("addr=").nth(1).expect("addr in log");
    let res = awc::Client::new()
        .get(format!("{base}/api/auth/x"))
        .insert_header(("X-Request-Id", REQUEST_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(res);
    let (code, _, log) = rippy.terminate();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    let access = log
        .iter()
        .filter(|l| l.contains(REQUEST_ID))
        .cloned()
        .collect();
    (access, log)
}

const REQUEST_ID: &str = "binary-access-line-1";

#[actix_web::test]
async fn the_binary_logs_one_access_line_per_request_in_env_loggers_format() {
    let (access, log) = binary_log("info").await;
    assert_eq!(access.len(), 1, "{}", log.join("\n"));
    let (prefix, json) = access[0].split_once("] ").unwrap();
    assert!(
        prefix.starts_with("[20") && prefix.ends_with("Z INFO  access"),
        "{prefix}"
    );
    let line: Value = serde_json::from_str(json).unwrap();
    assert_eq!(line["request_id"], REQUEST_ID);
    assert_eq!(line["path"], "/api/auth/x");
    assert_eq!(line["status_code"], 200);
    assert_eq!(line["username"], Value::Null);
}

#[actix_web::test]
async fn the_binary_logs_no_access_line_when_its_filter_turns_them_off() {
    let (access, log) = binary_log("info,access=off").await;
    assert!(access.is_empty(), "{access:?}");
    assert!(
        log.iter().any(|l| l.contains("shutdown complete")),
        "{}",
        log.join("\n")
    );
}

#[actix_web::test]
async fn the_binary_filters_access_lines_by_message_as_it_filters_others() {
    // A pattern that leaves the access line out, then one that lets it in.
    let (access, log) = binary_log("info/listening|shutdown complete").await;
    assert!(access.is_empty(), "{access:?}");
    assert!(
        log.iter().any(|l| l.contains("shutdown complete")),
        "{}",
        log.join("\n")
    );
    let (access, log) = binary_log(&format!("info/listening|{REQUEST_ID}")).await;
    assert_eq!(access.len(), 1, "{}", log.join("\n"));
    assert!(!log.iter().any(|l| l.contains("shutdown complete")));
}
