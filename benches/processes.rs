//! Process-layer costs: spawn+exit throughput and message round-trip time,
//! for Rust processes and for Lua ones (`benches/lua/*.lua`): their idle
//! memory, spawn+exit rate and round trips Lua<->Lua and Rust<->Lua.
//!
//! `cargo bench --bench processes` (release profile). Prints one line of
//! key=value pairs per measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rippy::catalog::Catalog;
use rippy::manifest::Manifest;
use rippy::prelude::*;
use rippy::process::Caller;
use rippy::registry::Registry;
use tokio::sync::Notify;

const SPAWNS: usize = 200_000;
const ROUND_TRIPS: usize = 200_000;

struct Done {
    count: AtomicUsize,
    target: usize,
    notify: Notify,
}

impl Done {
    fn hit(&self) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.notify.notify_one();
        }
    }
}

/// Ends in `on_exit` right after `init`: one spawn+exit cycle.
struct Blink(Arc<Done>);

impl Process for Blink {
    fn init(&mut self, _ctx: &mut ProcessContext<'_>) -> ProcessResult {
        Ok(Flow::Stop)
    }
    fn handle(&mut self, _: &mut ProcessContext<'_>, _: Event) -> ProcessResult {
        Ok(Flow::Stop)
    }
    fn on_exit(&mut self, _: &mut ProcessContext<'_>, _: &ExitReason) {
        self.0.hit();
    }
}

/// Replies to every message.
struct Echo;

impl Process for Echo {
    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        if let Event::Message(Message {
            from: Some(from),
            payload,
            ..
        }) = event
        {
            let _ = ctx.send(&from, "pong", payload);
        }
        Ok(Flow::Continue)
    }
}

/// Pings the echo process `target` times, one at a time.
struct Pinger {
    echo: Option<Pid>,
    /// The echo entry to spawn.
    target: &'static str,
    left: usize,
    done: Arc<Done>,
}

impl Process for Pinger {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let echo = ctx.spawn(self.target, "b:host", Value::Null)?;
        let _ = ctx.send(&echo, "ping", Value::Null);
        self.echo = Some(echo);
        Ok(Flow::Continue)
    }
    fn handle(&mut self, ctx: &mut ProcessContext<'_>, _: Event) -> ProcessResult {
        self.left -= 1;
        if self.left == 0 {
            self.done.hit();
            return Ok(Flow::Stop);
        }
        if let Some(echo) = &self.echo {
            let _ = ctx.send(echo, "ping", Value::Null);
        }
        Ok(Flow::Continue)
    }
}

/// Counts what Lua processes report: "ready" (an idle process has run its
/// init) and "done" (the Lua pinger finished).
struct Sink {
    ready: Arc<Done>,
    done: Arc<Done>,
}

impl Process for Sink {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        ctx.register("sink")?;
        Ok(Flow::Continue)
    }
    fn handle(&mut self, _: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        if let Event::Message(m) = event {
            match m.topic.as_ref() {
                "ready" => self.ready.hit(),
                _ => self.done.hit(),
            }
        }
        Ok(Flow::Continue)
    }
}

const LUA_SPAWNS: usize = 20_000;
const LUA_IDLE: usize = 5_000;
const LUA_ROUND_TRIPS: usize = 50_000;

/// Resident memory of this process, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const MANIFEST: &str = r#"
version: "1.0"
namespace: b
entries:
  - { name: host, kind: process.host }
  - { name: blink, kind: process.rust, source: "file://bench.rs", method: blink }
  - { name: echo, kind: process.rust, source: "file://bench.rs", method: echo }
  - { name: pinger, kind: process.rust, source: "file://bench.rs", method: pinger }
  - { name: rpinger, kind: process.rust, source: "file://bench.rs", method: rpinger }
  - { name: sink, kind: process.rust, source: "file://bench.rs", method: sink }
  - { name: lblink, kind: process.lua, source: "file://benches/lua/blink.lua", method: run }
  - { name: lidle, kind: process.lua, source: "file://benches/lua/idle.lua", method: run }
  - { name: lecho, kind: process.lua, source: "file://benches/lua/echo.lua", method: run }
  - { name: lpinger, kind: process.lua, source: "file://benches/lua/pinger.lua", method: run }
"#;

fn main() {
    let spawned = Arc::new(Done {
        count: AtomicUsize::new(0),
        target: SPAWNS,
        notify: Notify::new(),
    });
    let pinged = Arc::new(Done {
        count: AtomicUsize::new(0),
        target: 1,
        notify: Notify::new(),
    });
    let rust_lua = Arc::new(Done {
        count: AtomicUsize::new(0),
        target: 1,
        notify: Notify::new(),
    });
    let lua_lua = Arc::new(Done {
        count: AtomicUsize::new(0),
        target: 1,
        notify: Notify::new(),
    });
    let (s, p) = (spawned.clone(), pinged.clone());
    let lua_ready = Arc::new(Done {
        count: AtomicUsize::new(0),
        target: LUA_IDLE,
        notify: Notify::new(),
    });
    let (rl, ll, lr) = (rust_lua.clone(), lua_lua.clone(), lua_ready.clone());
    let catalog = Catalog::new()
        .process("file://bench.rs", "blink", move |_| Blink(s.clone()))
        .process("file://bench.rs", "echo", |_| Echo)
        .process("file://bench.rs", "pinger", move |_| Pinger {
            echo: None,
            target: "b:echo",
            left: ROUND_TRIPS,
            done: p.clone(),
        })
        .process("file://bench.rs", "rpinger", move |_| Pinger {
            echo: None,
            target: "b:lecho",
            left: LUA_ROUND_TRIPS,
            done: rl.clone(),
        })
        .process("file://bench.rs", "sink", move |_| Sink {
            ready: lr.clone(),
            done: ll.clone(),
        });
    actix_web::rt::System::new().block_on(async move {
        let manifest = Manifest::parse("bench.yaml", std::path::Path::new("."), MANIFEST).expect("manifest");
        let registry = Registry::boot(manifest, &catalog).expect("boot");
        let node = registry.node().clone();
        let workers = registry.get::<rippy::process::ProcessHost>("b:host").unwrap().workers();

        let started = Instant::now();
        for _ in 0..SPAWNS {
            node.spawn(Caller::Trusted, "b:blink", "b:host", Value::Null).expect("spawn");
        }
        spawned.notify.notified().await;
        let took = started.elapsed();
        // The last `on_exit` runs just before its slot leaves the table.
        while node.stats().processes != 0 {
            tokio::task::yield_now().await;
        }
        println!(
            "bench=spawn_exit processes={SPAWNS} workers={workers} seconds={:.3} per_second={:.0} us_per_cycle={:.2}",
            took.as_secs_f64(),
            SPAWNS as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / SPAWNS as f64
        );

        let started = Instant::now();
        node.spawn(Caller::Trusted, "b:pinger", "b:host", Value::Null).expect("spawn");
        pinged.notify.notified().await;
        let took = started.elapsed();
        println!(
            "bench=round_trip messages={ROUND_TRIPS} workers={workers} seconds={:.3} us_per_round_trip={:.2} round_trips_per_second={:.0}",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / ROUND_TRIPS as f64,
            ROUND_TRIPS as f64 / took.as_secs_f64()
        );
        lua(&node, workers, &lua_ready, &rust_lua, &lua_lua).await;
        registry.shutdown(Duration::from_secs(1)).await;
    });
}

/// The Lua rows: spawn+exit, idle memory, round trips.
async fn lua(
    node: &Arc<rippy::process::Node>,
    workers: usize,
    ready: &Done,
    rust_lua: &Done,
    lua_lua: &Done,
) {
    node.spawn(Caller::Trusted, "b:sink", "b:host", Value::Null)
        .expect("sink");
    // What lives on between rows (the sink, the Rust echo of the round trip).
    let baseline = node.stats().processes;
    let settle = || async {
        while node.stats().processes > baseline {
            tokio::task::yield_now().await;
        }
    };

    let started = Instant::now();
    for _ in 0..LUA_SPAWNS {
        node.spawn(Caller::Trusted, "b:lblink", "b:host", Value::Null)
            .expect("spawn");
    }
    settle().await;
    let took = started.elapsed();
    println!(
        "bench=lua_spawn_exit processes={LUA_SPAWNS} workers={workers} seconds={:.3} per_second={:.0} us_per_cycle={:.2}",
        took.as_secs_f64(),
        LUA_SPAWNS as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / LUA_SPAWNS as f64
    );

    let before = rss_bytes();
    let mut idle = Vec::with_capacity(LUA_IDLE);
    for _ in 0..LUA_IDLE {
        idle.push(
            node.spawn(Caller::Trusted, "b:lidle", "b:host", Value::Null)
                .expect("spawn"),
        );
    }
    // Each says "ready" from its init: then all of them exist and wait.
    ready.notify.notified().await;
    let after = rss_bytes();
    for pid in &idle {
        let _ = node.send(None, pid, "stop", Value::Null);
    }
    settle().await;
    println!(
        "bench=lua_idle processes={LUA_IDLE} rss_bytes_per_process={}",
        after.saturating_sub(before) / LUA_IDLE as u64
    );

    let started = Instant::now();
    node.spawn(Caller::Trusted, "b:rpinger", "b:host", Value::Null)
        .expect("spawn");
    rust_lua.notify.notified().await;
    let took = started.elapsed();
    println!(
        "bench=round_trip_rust_lua messages={LUA_ROUND_TRIPS} workers={workers} seconds={:.3} us_per_round_trip={:.2}",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / LUA_ROUND_TRIPS as f64
    );

    let started = Instant::now();
    node.spawn(
        Caller::Trusted,
        "b:lpinger",
        "b:host",
        serde_json::json!({ "rounds": LUA_ROUND_TRIPS }),
    )
    .expect("spawn");
    lua_lua.notify.notified().await;
    let took = started.elapsed();
    println!(
        "bench=round_trip_lua_lua messages={LUA_ROUND_TRIPS} workers={workers} seconds={:.3} us_per_round_trip={:.2}",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / LUA_ROUND_TRIPS as f64
    );
}
