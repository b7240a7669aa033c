//! Scale-out over real servers: three `rippy` processes running
//! `examples/cluster/_index.yaml` on one Redis (tokens, the feed) and one
//! PostgreSQL (API keys), with haproxy in front. Each test starts its own
//! servers on free loopback ports (`tests/support/servers.rs`) and skips,
//! saying so, where a server program is missing (a failure under CI).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::servers::{Haproxy, Postgres, Redis, free_port, wait_port};
use super::support::{TIMEOUT, repo, within};
use super::{Ws, token_for};

const TOKEN_KEY: &str = "cluster-test-token-key-0123456789abcdef";

struct Node {
    port: u16,
    child: Option<Child>,
}

struct Cluster {
    redis: Redis,
    pg: Postgres,
    nodes: Vec<Node>,
    key: String,
    _logs: tempfile::TempDir,
}

fn manifest() -> PathBuf {
    repo().join("examples/cluster/_index.yaml")
}

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

impl Cluster {
    fn env(&self, cmd: &mut Command) {
        cmd.env("RIPPY_REDIS_URL", self.redis.url())
            .env("RIPPY_DATABASE_URL", self.pg.url())
            .env("RIPPY_TOKEN_KEY", TOKEN_KEY)
            .env("RUST_LOG", "info");
    }

    /// Redis, PostgreSQL and `n` nodes, with one API key; `None` (skipped)
    /// where a server program is missing.
    async fn start(test: &str, n: usize) -> Option<Cluster> {
        let redis = Redis::start(test)?;
        let pg = Postgres::start(test)?;
        let mut cluster = Cluster {
            redis,
            pg,
            nodes: Vec::new(),
            key: String::new(),
            _logs: tempfile::tempdir().unwrap(),
        };
        for _ in 0..n {
            let port = free_port();
            cluster.nodes.push(Node { port, child: None });
            cluster.boot(cluster.nodes.len() - 1);
        }
        for node in &cluster.nodes {
            wait_port("a node", node.port);
        }
        let mut keys = Command::new(env!("CARGO_BIN_EXE_rippy"));
        cluster.env(&mut keys);
        let out = keys
            .arg("keys")
            .arg("--manifest")
            .arg(manifest())
            .args(["create", "--user", "alice"])
            .output()
            .expect("rippy keys create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        // Every node streams before the test begins.
        for i in 0..n {
            let token = token_for(&cluster.base(i), &cluster.key).await;
            cluster.ws(i, &token, None).await.next_of("ticker").await;
        }
        Some(cluster)
    }

    fn boot(&mut self, i: usize) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rippy"));
        self.env(&mut cmd);
        let log = std::fs::File::create(self._logs.path().join(format!("node{i}.log"))).unwrap();
        let child = cmd
            .arg("run")
            .arg(manifest())
            .env("RIPPY_ADDR", format!("127.0.0.1:{}", self.nodes[i].port))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.nodes[i].child = Some(child);
    }

    fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].port)
    }

    async fn ws(&self, i: usize, token: &str, since: Option<u64>) -> Ws {
        let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
        let url = format!(
            "ws://127.0.0.1:{}/ws/ticker?x-auth-token={token}{since}",
            self.nodes[i].port
        );
        Ws::try_connect(&url)
            .await
            .unwrap_or_else(|s| panic!("node {i} refused the upgrade: {s}"))
    }

    /// Whether node `i` holds the feed's lease (its `/metrics`).
    async fn is_leader(&self, i: usize) -> bool {
        let Ok(mut res) = awc::Client::new()
            .get(format!("{}/metrics", self.base(i)))
            .send()
            .await
        else {
            return false;
        };
        let body = res.body().await.unwrap_or_default();
        String::from_utf8_lossy(&body)
            .lines()
            .any(|l| l == "rippy_feed_leader 1")
    }

    /// The node holding the lease now.
    async fn leader(&self) -> usize {
        within("a leader", async {
            loop {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].child.is_some() && self.is_leader(i).await {
                        return i;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// SIGKILL: no shutdown, no lease given back.
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Reads ticks until one at or past `seq` (`reset`s are returned too).
async fn ticks_until(ws: &mut Ws, last: u64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let msg = ws.json().await;
        match msg["type"].as_str() {
            Some("ticker") => {
                let done = seq(&msg) >= last;
                out.push(msg);
                if done {
                    return out;
                }
            }
            Some("reset") => out.push(msg),
            _ => {}
        }
    }
}

/// Every tick follows its predecessor by one, unless a `reset` stands between.
fn assert_gap_free_or_reset(msgs: &[Value]) {
    let mut prev: Option<u64> = None;
    for m in msgs {
        if m["type"] == "reset" {
            prev = None;
            continue;
        }
        let s = seq(m);
        if let Some(p) = prev {
            assert_eq!(s, p + 1, "silent gap or duplicate after {p}: {m}");
        }
        prev = Some(s);
    }
}

#[actix_web::test]
async fn a_token_from_one_node_works_on_every_node_and_all_stream_the_same_ticks() {
    let name = "a_token_from_one_node_works_on_every_node_and_all_stream_the_same_ticks";
    let Some(cluster) = Cluster::start(name, 3).await else {
        return;
    };
    let token = token_for(&cluster.base(0), &cluster.key).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut ws = cluster.ws(i, &token, None).await;
        assert_eq!(ws.next_of("welcome").await["user_id"], "user:alice");
        clients.push(ws);
    }
    // Through haproxy too: the key exchange on one node, the socket on another.
    let proxy = Haproxy::start(
        name,
        &cluster.nodes.iter().map(|n| n.port).collect::<Vec<_>>(),
    )
    .expect("haproxy");
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let proxied_token = token_for(&via, &cluster.key).await;
    let mut proxied = Ws::try_connect(&format!(
        "ws://127.0.0.1:{}/ws/ticker?x-auth-token={proxied_token}",
        proxy.port
    ))
    .await
    .expect("upgrade through haproxy");
    // Every client sees the same bytes for the same seq (from a tick the
    // client that connected last has too).
    let start = seq(&proxied.next_of("ticker").await) + 5;
    let mut by_seq: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for ws in clients.iter_mut().chain(std::iter::once(&mut proxied)) {
        let ticks = ticks_until(ws, start + 20).await;
        assert_gap_free_or_reset(&ticks);
        assert!(
            ticks.iter().all(|t| t["type"] == "ticker"),
            "a reset: {ticks:?}"
        );
        for t in ticks.into_iter().filter(|t| seq(t) >= start) {
            by_seq.entry(seq(&t)).or_default().push(t);
        }
    }
    assert_eq!(by_seq.len(), 21);
    for (s, frames) in &by_seq {
        assert_eq!(
            frames.len(),
            4,
            "seq {s} reached {} of 4 clients",
            frames.len()
        );
        assert!(
            frames.iter().all(|f| f == &frames[0]),
            "seq {s} differs: {frames:?}"
        );
    }
}

#[actix_web::test]
async fn killing_the_leader_moves_the_lease_and_ticks_go_on_within_3s_with_seq_continuing() {
    let name = "killing_the_leader_moves_the_lease_and_ticks_go_on_within_3s_with_seq_continuing";
    let Some(mut cluster) = Cluster::start(name, 3).await else {
        return;
    };
    let leader = cluster.leader().await;
    let watch = (leader + 1) % 3;
    let token = token_for(&cluster.base(watch), &cluster.key).await;
    let mut ws = cluster.ws(watch, &token, None).await;
    let before = seq(&ws.next_of("ticker").await);
    cluster.kill(leader);
    let killed_at = Instant::now();
    // The longest pause between two ticks is the failover.
    let mut prev = (before, Instant::now());
    let mut longest = Duration::ZERO;
    let mut msgs = Vec::new();
    while prev.0 < before + 200 {
        let msg = ws.json().await;
        if msg["type"] != "ticker" {
            msgs.push(msg);
            continue;
        }
        let now = Instant::now();
        longest = longest.max(now - prev.1);
        assert_eq!(seq(&msg), prev.0 + 1, "seq must continue: {msg}");
        prev = (seq(&msg), now);
        msgs.push(msg);
    }
    assert!(msgs.iter().all(|m| m["type"] == "ticker"), "{msgs:?}");
    assert!(longest < Duration::from_secs(3), "ticks paused {longest:?}");
    let next = cluster.leader().await;
    assert_ne!(next, leader);
    eprintln!(
        "failover: longest pause {longest:?}, {:?} after the kill",
        killed_at.elapsed()
    );
}

#[actix_web::test]
async fn a_client_whose_node_dies_resumes_on_another_with_no_gap_and_no_duplicate() {
    let name = "a_client_whose_node_dies_resumes_on_another_with_no_gap_and_no_duplicate";
    let Some(mut cluster) = Cluster::start(name, 3).await else {
        return;
    };
    let leader = cluster.leader().await;
    let doomed = (leader + 1) % 3;
    let refuge = (leader + 2) % 3;
    let token = token_for(&cluster.base(doomed), &cluster.key).await;
    let mut ws = cluster.ws(doomed, &token, None).await;
    let mut last = seq(&ws.next_of("ticker").await);
    cluster.kill(doomed);
    // Whatever arrived before the socket died counts as seen.
    within("the socket to die", async {
        loop {
            match ws.try_json().await {
                Some(m) if m["type"] == "ticker" => last = seq(&m),
                Some(_) => {}
                None => return,
            }
        }
    })
    .await;
    let mut back = cluster.ws(refuge, &token, Some(last)).await;
    assert_eq!(back.json().await["type"], "welcome");
    for expect in last + 1..=last + 100 {
        let msg = back.json().await;
        assert_eq!(msg["type"], "ticker", "{msg}");
        assert_eq!(seq(&msg), expect, "{msg}");
    }
}

#[actix_web::test]
async fn after_a_redis_restart_clients_resume_or_get_a_reset_never_a_silent_gap() {
    let name = "after_a_redis_restart_clients_resume_or_get_a_reset_never_a_silent_gap";
    let Some(mut cluster) = Cluster::start(name, 2).await else {
        return;
    };
    let token = token_for(&cluster.base(0), &cluster.key).await;
    let mut a = cluster.ws(0, &token, None).await;
    let mut b = cluster.ws(1, &token, None).await;
    let at = seq(&a.next_of("ticker").await);
    cluster.redis.restart();
    // The nodes reconnect with backoff, a leader is elected again, and the
    // stream goes on; every client's sequence is whole or reset.
    let deadline = Instant::now() + TIMEOUT * 2;
    for ws in [&mut a, &mut b] {
        let mut msgs = Vec::new();
        while msgs
            .iter()
            .filter(|m: &&Value| m["type"] == "ticker" && seq(m) > at + 300)
            .count()
            == 0
        {
            assert!(
                Instant::now() < deadline,
                "the stream did not come back: {msgs:?}"
            );
            msgs.push(ws.json().await);
        }
        let msgs: Vec<Value> = msgs
            .into_iter()
            .filter(|m| m["type"] == "ticker" || m["type"] == "reset")
            .collect();
        assert_gap_free_or_reset(&msgs);
    }
    // Tokens lived in the old Redis: a new exchange works on the new one.
    let fresh = token_for(&cluster.base(1), &cluster.key).await;
    cluster.ws(0, &fresh, None).await.next_of("ticker").await;
}

#[actix_web::test]
async fn with_postgres_down_the_token_exchange_is_a_503_and_open_sockets_keep_streaming() {
    let name = "with_postgres_down_the_token_exchange_is_a_503_and_open_sockets_keep_streaming";
    let Some(mut cluster) = Cluster::start(name, 2).await else {
        return;
    };
    let token = token_for(&cluster.base(0), &cluster.key).await;
    let mut ws = cluster.ws(1, &token, None).await;
    let at = seq(&ws.next_of("ticker").await);
    cluster.pg.stop();
    let mut res = awc::Client::new()
        .post(format!("{}/auth/token", cluster.base(0)))
        .send_json(&json!({ "api_key": cluster.key }))
        .await
        .expect("POST /auth/token");
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({ "error": "service unavailable" })
    );
    let ticks = ticks_until(&mut ws, at + 100).await;
    assert_gap_free_or_reset(&ticks);
    assert!(ticks.iter().all(|t| t["type"] == "ticker"));
    // The node still serves what needs no database.
    let health = awc::Client::new()
        .get(format!("{}/healthz", cluster.base(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
