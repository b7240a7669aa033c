//! DESIGN.md section 5, HTTP: /auth/token, CORS, limits, static files, health.

use awc::http::header;
use serde_json::{Value, json};

use super::support::{App, Edition};
use super::token_for;

async fn post_token(app: &App, body: &'static str) -> (u16, Value) {
    let mut res = awc::Client::new()
        .post(format!("{}/auth/token", app.base))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .send_body(body)
        .await
        .expect("POST");
    let status = res.status().as_u16();
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    (status, res.json().await.expect("JSON error body"))
}

crate::both_editions! {
    async fn token_exchange_errors_have_exact_status_and_body(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let cases = [
            ("{not json", 400, "invalid JSON"),
            ("", 400, "invalid JSON"),
            ("{}", 400, "api_key required"),
            (r#"{"api_key": ""}"#, 400, "api_key required"),
            (r#"{"api_key": 42}"#, 400, "api_key required"),
            (r#"{"api_key": "rk_nope"}"#, 401, "invalid API key"),
            (r#"{"api_key": "' OR '1'='1"}"#, 401, "invalid API key"),
        ];
        for (body, status, error) in cases {
            assert_eq!(
                post_token(&app, body).await,
                (status, json!({ "error": error })),
                "body {body:?}"
            );
        }
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_valid_key_gets_a_token_for_one_hour(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let mut res = awc::Client::new()
            .post(format!("{}/auth/token", app.base))
            .send_json(&json!({ "api_key": app.demo_key() }))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user_id"], "demo");
        assert_eq!(body["role"], "user");
        assert_eq!(body["expires_in"], 3600);
        let token = body["token"].as_str().unwrap();
        assert_eq!(token.len(), 128);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_body_over_the_limit_gets_413_json(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let big = format!(r#"{{"api_key": "{}"}}"#, "x".repeat(70 * 1024));
        let mut res = awc::Client::new()
            .post(format!("{}/auth/token", app.base))
            .send_body(big)
            .await
            .unwrap();
        assert_eq!(res.status(), 413);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({ "error": "request body too large (limit 65536 bytes)" })
        );
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_cors_preflight_is_answered_and_responses_carry_the_origin(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let client = awc::Client::new();
        let res = client
            .request(
                awc::http::Method::OPTIONS,
                format!("{}/auth/token", app.base),
            )
            .insert_header((header::ORIGIN, "https://example.test"))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
            .insert_header((header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let h = res.headers();
        assert_eq!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(), "*");
        assert!(
            h.get(header::ACCESS_CONTROL_ALLOW_METHODS)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(
            h.get(header::ACCESS_CONTROL_ALLOW_HEADERS)
                .unwrap()
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("content-type")
        );
        let res = client
            .post(format!("{}/auth/token", app.base))
            .insert_header((header::ORIGIN, "https://example.test"))
            .send_body("{}")
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .unwrap(),
            "*"
        );
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_method_an_endpoint_does_not_take_gets_405_with_allow(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let client = awc::Client::new();
        for (method, path, allow) in [
            (awc::http::Method::POST, "/ws/ticker", "GET, OPTIONS"),
            (awc::http::Method::GET, "/auth/token", "POST, OPTIONS"),
            (awc::http::Method::DELETE, "/auth/token", "POST, OPTIONS"),
        ] {
            let mut res = client
                .request(method.clone(), format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 405, "{method} {path}");
            assert_eq!(res.headers().get(header::ALLOW).unwrap(), allow);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body, json!({ "error": "method not allowed" }));
        }
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn the_page_is_served_with_content_types_and_spa_fallback(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let client = awc::Client::new();
        let get = |path: &str| client.get(format!("{}{path}", app.base)).send();
        let mut index = get("/").await.unwrap();
        assert_eq!(index.status(), 200);
        assert_eq!(
            index.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/html; charset=utf-8"
        );
        let html = index.body().await.unwrap();
        assert!(String::from_utf8_lossy(&html).contains("rippy"));
        let js = get("/app.js").await.unwrap();
        assert_eq!(
            js.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/javascript; charset=utf-8"
        );
        let css = get("/style.css").await.unwrap();
        assert_eq!(
            css.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/css; charset=utf-8"
        );
        let mut spa = get("/markets/btc").await.unwrap();
        assert_eq!(spa.status(), 200);
        assert_eq!(spa.body().await.unwrap(), html);
        assert_eq!(get("/missing.js").await.unwrap().status(), 404);
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn static_paths_never_escape_the_directory(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let addr = app.base.trim_start_matches("http://").to_owned();
        for path in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/..%2fCargo.toml",
            "/%2e%2e%2f_index.yaml",
            "/a/../../Cargo.toml",
        ] {
            let status = raw_get_status(&addr, path).await;
            assert!(status == 404 || status == 400, "{path} -> {status}");
        }
        app.shutdown().await;
    }
}

/// Sends a request line as written (clients normalise `..` away).
async fn raw_get_status(addr: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("[package]"), "{path} leaked Cargo.toml");
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

crate::both_editions! {
    async fn health_and_metrics_answer(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let client = awc::Client::new();
        let mut health = client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(
            health.json::<Value>().await.unwrap(),
            json!({ "status": "ok" })
        );
        let _ = token_for(&app.base, &app.demo_key()).await;
        let mut metrics = client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 200);
        let text = String::from_utf8(metrics.body().await.unwrap().to_vec()).unwrap();
        assert!(
            text.contains("rippy_processes{entry=\"app:ticker\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rippy_http_requests_total{router=\"app:public_router\",status=\"200\"} 1"),
            "{text}"
        );
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_key_still_works_after_a_restart_on_the_same_data_dir(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let key = app.demo_key();
        token_for(&app.base, &key).await;
        app.shutdown().await;
        let app = App::boot(edition, dir.path()).await;
        assert_eq!(app.demo_key(), key, "the demo key is created once");
        token_for(&app.base, &key).await;
        app.shutdown().await;
    }
}
