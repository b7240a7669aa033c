//! DESIGN.md section 5, WebSocket: authentication before upgrade, the
//! stream, ping/pong, bad frames, limits, cleanup, and crashes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use awc::http::header;
use awc::ws::Message;
use rippy::prelude::{Actor, Pid};
use rippy::security::TokenStore;
use serde_json::Value;

use super::support::{App, Edition, actors, eventually, within};
use super::{Ws, token_for};

/// Live handlers: the processes on the host they are spawned on (whatever
/// the edition, only handlers run there).
pub(crate) fn handlers(app: &App) -> i64 {
    app.node().pids_on("app:ws_processes").len() as i64
}

/// The ticker's subscriber count, where the edition exposes it: the Rust
/// ticker keeps the `rippy_ticker_subscribers` gauge; Lua code has no
/// metrics module, so the Lua edition has no such count (`None`).
fn subscribers(app: &App) -> Option<i64> {
    match app.edition {
        Edition::Rust => Some(actors::ticker::subscribers(app.node().metrics())),
        Edition::Lua => None,
    }
}

/// Waits until the ticker has `n` subscribers (Rust edition; see [`subscribers`]).
async fn expect_subscribers(app: &App, n: i64, what: &str) {
    if subscribers(app).is_some() {
        eventually(what, || subscribers(app) == Some(n)).await;
    }
}

async fn expect_refused(url: String) {
    assert_eq!(Ws::try_connect(&url).await.err(), Some(401), "{url}");
}

crate::both_editions! {
    async fn the_socket_refuses_missing_malformed_tampered_revoked_and_expired_tokens_with_401(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let url = |t: &str| format!("{}/ws/ticker?x-auth-token={t}", app.ws_base);
        expect_refused(format!("{}/ws/ticker", app.ws_base)).await;
        expect_refused(url("not-a-token")).await;
        let good = token_for(&app.base, &app.demo_key()).await;
        let mut tampered = good.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        expect_refused(url(&String::from_utf8(tampered).unwrap())).await;
        expect_refused(url(&good[..good.len() - 2])).await;
        expect_refused(url(&format!("{good}00"))).await;

        let tokens = app.registry.get::<TokenStore>("app:tokens").unwrap();
        let revoked = token_for(&app.base, &app.demo_key()).await;
        assert!(tokens.revoke(&revoked));
        expect_refused(url(&revoked)).await;
        let expired = tokens
            .create(
                Actor::new("user:demo"),
                vec!["app:user_policy".into()],
                Some(Duration::ZERO),
                Value::Null,
            )
            .unwrap();
        expect_refused(url(&expired)).await;

        // The 401 body is the exact JSON error, before any upgrade.
        let mut res = awc::Client::new()
            .get(format!("{}/ws/ticker", app.base))
            .insert_header((header::UPGRADE, "websocket"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "error": "authentication required" })
        );
        assert_eq!(
            handlers(&app),
            0,
            "no handler is spawned for a refused socket"
        );
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_token_is_accepted_from_the_header_the_query_and_the_cookie(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let url = format!("{}/ws/ticker", app.ws_base);
        let client = awc::Client::new();
        for request in [
            client.ws(&url).bearer_auth(&token),
            client
                .ws(&url)
                .header(header::COOKIE, format!("x-auth-token={token}")),
            client.ws(format!("{url}?x-auth-token={token}")),
        ] {
            let (_, framed) = request.connect().await.expect("upgrade");
            let mut ws = Ws { framed };
            assert_eq!(ws.next_of("welcome").await["user_id"], "user:demo");
        }
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn the_stream_is_welcome_snapshot_then_ticks_with_consecutive_seq(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut ws = Ws::connect(&app, &token).await;
        assert_eq!(
            ws.json().await,
            serde_json::json!({ "type": "welcome", "user_id": "user:demo" })
        );
        let snapshot = ws.json().await;
        assert_eq!(snapshot["type"], "ticker");
        let mut seq = snapshot["seq"].as_u64().unwrap();
        let started = Instant::now();
        let mut ticks = 0;
        while started.elapsed() < Duration::from_secs(2) {
            let tick = ws.json().await;
            assert_eq!(tick["type"], "ticker");
            let next = tick["seq"].as_u64().unwrap();
            assert_eq!(next, seq + 1, "seq gap");
            seq = next;
            ticks += 1;
            let data = tick["data"].as_array().unwrap();
            let symbols: Vec<&str> = data.iter().map(|d| d["symbol"].as_str().unwrap()).collect();
            assert_eq!(symbols, ["BTC-USD", "ETH-USD", "SOL-USD"]);
            for d in data {
                assert!(d["price"].as_f64().unwrap() > 0.0);
                assert!(d["timestamp"].as_u64().unwrap() > 1_700_000_000);
            }
            assert!(tick["sent_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
        }
        assert!(ticks >= 100, "only {ticks} ticks in 2 s");
        ws.ping_pong().await;
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn garbage_frames_do_not_close_the_connection(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut ws = Ws::connect(&app, &token).await;
        ws.next_of("welcome").await;
        for text in [
            "",
            "{",
            "null",
            "[]",
            r#"{"type":"unknown"}"#,
            r#"{"type":42}"#,
            "\u{0}\u{1}",
            "🚀",
        ] {
            ws.text(text).await;
        }
        ws.send(Message::Binary(vec![0xff, 0x00, 0x13].into()))
            .await;
        ws.send(Message::Ping("are you there".into())).await;
        loop {
            if let awc::ws::Frame::Pong(p) = ws.frame().await {
                assert_eq!(&p[..], b"are you there");
                break;
            }
        }
        ws.ping_pong().await;
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn a_frame_over_the_limit_closes_with_1009(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut ws = Ws::connect(&app, &token).await;
        ws.next_of("welcome").await;
        ws.text(&"x".repeat(65 * 1024)).await;
        assert_eq!(ws.close_code().await, Some(1009));
        eventually("the handler to end", || handlers(&app) == 0).await;
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn two_hundred_clients_leave_no_handler_and_no_subscription_behind(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            let batch =
                futures_util::future::join_all((0..50).map(|_| Ws::connect(&app, &token))).await;
            clients.extend(batch);
        }
        for ws in clients.iter_mut() {
            ws.next_of("ticker").await;
        }
        assert_eq!(handlers(&app), 200);
        expect_subscribers(&app, 200, "200 subscribers").await;
        assert_eq!(app.node().metrics().ws_connections(), 200);
        // Half close cleanly, half just drop the TCP connection.
        for (i, mut ws) in clients.into_iter().enumerate() {
            if i % 2 == 0 {
                ws.send(Message::Close(None)).await;
            }
            drop(ws);
        }
        eventually("handlers to end", || handlers(&app) == 0).await;
        expect_subscribers(&app, 0, "subscriptions to go").await;
        eventually("connections to close", || {
            app.node().metrics().ws_connections() == 0
        })
        .await;
        let stats = app.node().stats();
        // Left: the ticker, its supervisor and the migrate supervisor's absence.
        assert_eq!(stats.processes, 2, "{stats:?}");
        app.shutdown().await;
    }
}

fn live_pids(app: &App) -> HashSet<Pid> {
    app.node().pids_on("app:ws_processes").into_iter().collect()
}

crate::both_editions! {
    async fn a_killed_handler_loses_its_subscription_and_its_socket_closes_with_1011(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let before = live_pids(&app);
        let mut ws = Ws::connect(&app, &token).await;
        ws.next_of("ticker").await;
        let handler: Vec<Pid> = live_pids(&app).difference(&before).cloned().collect();
        assert_eq!(handler.len(), 1);
        expect_subscribers(&app, 1, "the subscription").await;
        assert!(app.node().kill(&handler[0]));
        assert_eq!(ws.close_code().await, Some(1011));
        expect_subscribers(&app, 0, "the subscription to go").await;
        assert_eq!(handlers(&app), 0);
        app.shutdown().await;
    }
}

crate::both_editions! {
    async fn clients_keep_receiving_ticks_after_the_ticker_is_killed(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut a = Ws::connect(&app, &token).await;
        let mut b = Ws::connect(&app, &token).await;
        a.next_of("ticker").await;
        b.next_of("ticker").await;
        let old = app.node().whereis(actors::ticker::NAME).expect("ticker");
        let killed_at = rippy::util::unix_ms();
        let killed = Instant::now();
        assert!(app.node().kill(&old));
        for ws in [&mut a, &mut b] {
            // The service waits 100 ms before restarting; a tick sent later than that is the new ticker's.
            loop {
                let tick = ws.next_of("ticker").await;
                if tick["sent_at_ms"].as_u64().unwrap() > killed_at + 90 {
                    break;
                }
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "ticks resumed after {:?}",
            killed.elapsed()
        );
        let new = app
            .node()
            .whereis(actors::ticker::NAME)
            .expect("restarted ticker");
        assert_ne!(new, old);
        expect_subscribers(&app, 2, "both resubscribed").await;
        // Seq keeps rising by one per tick on the new ticker.
        let s1 = a.next_of("ticker").await["seq"].as_u64().unwrap();
        let s2 = a.next_of("ticker").await["seq"].as_u64().unwrap();
        assert_eq!(s2, s1 + 1);
        within("shutdown", app.shutdown()).await;
    }
}

crate::both_editions! {
    /// Bytes a client sends right behind its upgrade request, in the same
    /// packet, reach the relay: nothing is lost when the socket leaves the HTTP
    /// layer.
    async fn a_frame_sent_with_the_upgrade_request_is_answered(edition: Edition) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot(edition, dir.path()).await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let addr = app.base.trim_start_matches("http://").to_owned();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut bytes = format!(
            "GET /ws/ticker?x-auth-token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        // A masked ping carrying "early".
        let mask = [1u8, 2, 3, 4];
        bytes.extend_from_slice(&[0x89, 0x80 | 5]);
        bytes.extend_from_slice(&mask);
        bytes.extend(b"early".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        s.write_all(&bytes).await.unwrap();
        let pong = [0x8a, 5, b'e', b'a', b'r', b'l', b'y'];
        let mut got = Vec::new();
        within("the pong", async {
            while !got.windows(pong.len()).any(|w| w == pong) {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before the pong: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(got.starts_with(b"HTTP/1.1 101"), "{got:?}");
        app.shutdown().await;
    }
}

crate::both_editions! {
    /// A handler acting for a user whose scope may not reach `ticker` is refused
    /// the lookup: it ends with the denial (the socket closes with 1011), the
    /// refusal is counted, and it never subscribes.
    async fn a_handler_whose_user_may_not_reach_the_ticker_is_refused_and_counted(edition: Edition) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::boot_edition_edited(edition, dir.path(), |text| {
            text.replace(
                "actions: [process.spawn, process.host, process.send]",
                "actions: [process.spawn, process.host]",
            )
        })
        .await;
        let token = token_for(&app.base, &app.demo_key()).await;
        let mut ws = Ws::connect(&app, &token).await;
        ws.next_of("welcome").await;
        assert_eq!(ws.close_code().await, Some(1011));
        assert_eq!(
            app.node()
                .metrics()
                .denials_of("process.send", "app:ws_handler"),
            1
        );
        assert!(matches!(subscribers(&app), None | Some(0)));
        eventually("the handler to end", || handlers(&app) == 0).await;
        app.shutdown().await;
    }
}
