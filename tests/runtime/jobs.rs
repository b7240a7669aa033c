//! The second app, `examples/jobs`: a job queue with a worker pool, tested
//! through `rippy::testing` the way an app's own tests would be.

#[path = "../../examples/jobs/actors/mod.rs"]
mod actors;

use rippy::prelude::*;
use rippy::testing::{TestApp, TestMailbox};

use super::support::repo;

async fn boot() -> TestApp {
    let app = TestApp::builder(actors::catalog())
        .manifest_file(repo().join("examples/jobs/_index.yaml"))
        .boot()
        .await
        .unwrap_or_else(|e| panic!("boot: {e}"));
    app.wait_registered(actors::queue::NAME)
        .await
        .expect("queue");
    app
}

async fn stats(mailbox: &mut TestMailbox) -> Value {
    mailbox
        .send(actors::queue::NAME, actors::queue::TOPIC_STATS, Value::Null)
        .expect("send stats");
    let reply = mailbox
        .recv_topic(actors::queue::TOPIC_STATS)
        .await
        .expect("stats");
    reply.payload.to_json().expect("stats JSON")
}

#[actix_web::test]
async fn a_worker_answers_whoever_sent_it_work() {
    let app = boot().await;
    let worker = app
        .spawn("jobs:worker", "jobs:processes", Value::Null)
        .expect("spawn");
    let mut mailbox = app.mailbox();
    mailbox
        .send(&worker, "work", json!({ "id": "w1", "n": 100 }))
        .unwrap();
    let done = mailbox.recv_topic("done").await.unwrap();
    assert_eq!(done.from.as_ref(), Some(&worker));
    assert_eq!(
        done.payload.to_json(),
        Some(json!({ "id": "w1", "result": 25 }))
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn a_job_submitted_by_a_process_is_accepted_then_answered_with_its_result() {
    let app = boot().await;
    let mut mailbox = app.mailbox();
    mailbox
        .send("queue", "submit", json!({ "n": 1000 }))
        .unwrap();
    let accepted = mailbox.recv_topic("accepted").await.unwrap();
    let id = accepted.payload.to_json().unwrap()["id"].clone();
    let done = mailbox.recv_topic("done").await.unwrap();
    assert_eq!(
        done.payload.to_json(),
        Some(json!({ "id": id, "result": 168 }))
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn a_failing_job_is_reported_and_its_worker_replaced() {
    let app = boot().await;
    let mut mailbox = app.mailbox();
    let too_big = actors::worker::MAX_N + 1;
    mailbox
        .send("queue", "submit", json!({ "id": "big", "n": too_big }))
        .unwrap();
    let failed = mailbox.recv_topic("failed").await.unwrap();
    let failed = failed.payload.to_json().unwrap();
    assert_eq!(failed["id"], "big");
    assert!(
        failed["error"].as_str().unwrap().contains("over the limit"),
        "{failed}"
    );
    assert_eq!(
        app.metric(r#"rippy_process_exits_total{entry="jobs:worker",reason="error"}"#),
        Some(1.0)
    );
    let stats = stats(&mut mailbox).await;
    assert_eq!(stats["workers"], 3, "{stats}");
    assert_eq!(stats["failed"], 1, "{stats}");
    // The pool still works.
    mailbox
        .send("queue", "submit", json!({ "id": "small", "n": 10 }))
        .unwrap();
    let done = mailbox.recv_topic("done").await.unwrap();
    assert_eq!(
        done.payload.to_json(),
        Some(json!({ "id": "small", "result": 4 }))
    );
    app.shutdown().await;
}

#[actix_web::test]
async fn jobs_beyond_the_pool_wait_their_turn_and_all_finish() {
    let app = boot().await;
    let mut mailbox = app.mailbox();
    for i in 0..20 {
        mailbox
            .send(
                "queue",
                "submit",
                json!({ "id": format!("j{i}"), "n": 2000 }),
            )
            .unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        let done = mailbox.recv_topic("done").await.unwrap();
        let done = done.payload.to_json().unwrap();
        assert_eq!(done["result"], 303);
        ids.push(done["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let stats = stats(&mut mailbox).await;
    assert_eq!(stats["done"], 20, "{stats}");
    assert_eq!(stats["waiting"], 0, "{stats}");
    app.shutdown().await;
}

#[actix_web::test]
async fn a_job_submitted_over_http_can_be_polled_until_done() {
    let app = boot().await;
    let client = awc::Client::new();
    let mut res = client
        .post(app.url("jobs:http", "/jobs"))
        .send_json(&json!({ "n": 100000 }))
        .await
        .expect("POST /jobs");
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().unwrap().to_owned();
    let status_url = app.url("jobs:http", &format!("/jobs/status?id={id}"));
    // HTTP callers have no pid to be told on: they poll, as a client would.
    let state = app
        .within("the job to finish", async {
            loop {
                let mut res = client.get(&status_url).send().await.expect("GET status");
                assert_eq!(res.status(), 200);
                let state: Value = res.json().await.unwrap();
                if state["status"] == "done" {
                    return state;
                }
                actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    assert_eq!(state["result"], 9592);
    let unknown = client
        .get(app.url("jobs:http", "/jobs/status?id=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let mut bad = client
        .post(app.url("jobs:http", "/jobs"))
        .send_body("not json")
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let _ = bad.body().await;
    app.shutdown().await;
}

#[actix_web::test]
async fn shutdown_stops_the_queue_and_its_workers_without_replacing_them() {
    let app = boot().await;
    let queue = app.whereis("queue").unwrap();
    let mut mailbox = app.mailbox();
    mailbox.monitor(&queue);
    let node = app.node().clone();
    app.shutdown().await;
    assert_eq!(mailbox.recv_exit(&queue).await, Ok(ExitReason::Shutdown));
    assert!(node.pids_on("jobs:processes").is_empty());
    let metrics = node.metrics().render();
    assert!(
        metrics.contains("rippy_process_spawns_total{entry=\"jobs:worker\"} 3\n"),
        "{metrics}"
    );
}
