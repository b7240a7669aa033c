//! The ticker through `rippy::testing`: a test spawns its processes and
//! plays the client side with a mailbox, no socket needed.

use rippy::prelude::*;
use rippy::testing::TestApp;

use super::support::{actors, repo};

async fn boot() -> TestApp {
    let app = TestApp::builder(actors::catalog())
        .manifest_file(repo().join("_index.yaml"))
        .data_in_temp_dir()
        .boot()
        .await
        .unwrap_or_else(|e| panic!("boot: {e}"));
    app.wait_registered(actors::ticker::NAME)
        .await
        .expect("ticker");
    app
}

#[actix_web::test]
async fn a_ws_handler_spawned_by_a_test_greets_its_client_pid_and_relays_ticks() {
    let app = boot().await;
    let handler = app
        .spawn("app:ws_handler", "app:processes", Value::Null)
        .expect("spawn");
    let mut client = app.mailbox();
    client
        .send(
            &handler,
            TOPIC_JOIN,
            json!({ "client_pid": client.pid().to_string(), "metadata": { "user_id": "user:t" } }),
        )
        .unwrap();
    // The greeting is a string payload: one text frame of it.
    let welcome = client.recv_topic(TOPIC_SEND).await.unwrap();
    let frame = welcome.payload.to_json().unwrap();
    let welcome: Value = serde_json::from_str(frame.as_str().expect("a string")).unwrap();
    assert_eq!(welcome, json!({ "type": "welcome", "user_id": "user:t" }));
    // Ticks come from the ticker itself, encoded once, as shared bytes.
    let tick = client.recv_topic(TOPIC_SEND).await.unwrap();
    assert_eq!(tick.from, app.whereis(actors::ticker::NAME));
    assert!(matches!(tick.payload, Payload::Bytes(_)));
    assert_eq!(tick.payload.to_json().unwrap()["type"], "ticker");
    assert_eq!(
        app.metric(r#"rippy_processes{entry="app:ws_handler"}"#),
        Some(1.0)
    );
    let exit = app.wait_exit(&handler);
    client.send(&handler, TOPIC_LEAVE, json!({})).unwrap();
    assert_eq!(exit.await, Ok(ExitReason::Normal));
    app.shutdown().await;
}

#[actix_web::test]
async fn the_app_serves_on_an_ephemeral_port_with_its_data_in_a_temp_dir() {
    let app = boot().await;
    assert_ne!(app.http_addr("app:gateway").port(), 8081);
    let res = awc::Client::new()
        .get(app.url("app:gateway", "/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(res.status(), 200);
    let data = app.data_dir().expect("a temp data dir").join("data");
    assert!(data.join("auth.db").exists());
    assert!(!data.starts_with(repo()));
    app.shutdown().await;
}
