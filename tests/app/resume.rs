//! Resume on one node: `?since=<seq>` gets every tick after it, then live
//! ones, with no gap and no duplicate; beyond the ticker's history it gets an
//! explicit `reset` first. Both editions, but for a client ahead of the
//! ticker (a cluster case; the Lua edition resets it).

use serde_json::Value;

use super::support::{App, Edition};
use super::{Ws, token_for};

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

async fn resume(app: &App, token: &str, since: &str) -> Ws {
    Ws::try_connect(&format!(
        "{}/ws/ticker?x-auth-token={token}&since={since}",
        app.ws_base
    ))
    .await
    .unwrap_or_else(|s| panic!("upgrade refused: {s}"))
}

/// Reads until a tick at or past `seq` has gone by.
async fn until(ws: &mut Ws, seq_at_least: u64) -> u64 {
    loop {
        let s = seq(&ws.next_of("ticker").await);
        if s >= seq_at_least {
            return s;
        }
    }
}

crate::both_editions! {
    async fn a_client_back_with_since_gets_every_tick_it_missed_then_live_ones(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut first = Ws::connect(&app, &token).await;
        first.next_of("welcome").await;
        let seen = seq(&first.next_of("ticker").await);
        drop(first);
        // The ticker moves on while the client is away.
        let mut watcher = Ws::connect(&app, &token).await;
        until(&mut watcher, seen + 30).await;
        let mut back = resume(&app, &token, &seen.to_string()).await;
        assert_eq!(back.json().await["type"], "welcome");
        // The replay, then live ticks, one message per seq, in order.
        for expect in seen + 1..=seen + 60 {
            let msg = back.json().await;
            assert_eq!(msg["type"], "ticker", "{msg}");
            assert_eq!(seq(&msg), expect, "{msg}");
        }
        app.shutdown().await;
    }
}

#[actix_web::test]
async fn a_client_a_little_ahead_of_this_node_gets_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::boot_in(dir.path()).await;
    let token = token_for(&app.base, &app.demo_key()).await;
    let mut watcher = Ws::connect(&app, &token).await;
    let now = seq(&watcher.next_of("ticker").await);
    // As if it came from a node whose reader was three ticks ahead.
    let mut ws = resume(&app, &token, &(now + 3).to_string()).await;
    assert_eq!(ws.json().await["type"], "welcome");
    let next = ws.json().await;
    assert_eq!(next["type"], "ticker", "{next}");
    assert_eq!(seq(&next), now + 4);
    assert_eq!(seq(&ws.json().await), now + 5);
    app.shutdown().await;
}

crate::both_editions! {
    async fn a_since_beyond_the_history_gets_a_reset_then_a_snapshot_and_live_ticks(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut ws = resume(&app, &token, "1").await;
        assert_eq!(ws.json().await["type"], "welcome");
        let reset = ws.json().await;
        assert_eq!(reset["type"], "reset", "{reset}");
        assert_eq!(reset["reason"], "beyond_window");
        assert_eq!(reset["since"], 1);
        let snapshot = seq(&ws.json().await);
        assert!(snapshot >= seq(&reset));
        assert_eq!(seq(&ws.json().await), snapshot + 1);
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_since_that_is_no_sequence_number_is_a_400_before_any_upgrade(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        for bad in ["", "-1", "12abc", "1e3", "99999999999999999999999"] {
            let url = format!("{}/ws/ticker?x-auth-token={token}&since={bad}", app.ws_base);
            assert_eq!(Ws::try_connect(&url).await.err(), Some(400), "since={bad}");
        }
        let mut res = awc::Client::new()
            .get(format!(
                "{}/ws/ticker?x-auth-token={token}&since=x",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            serde_json::json!({ "error": "since must be a sequence number" })
        );
        app.shutdown().await;
    }
}
