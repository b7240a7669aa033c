//! Process-layer costs: spawn+exit throughput and message round-trip time.
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
    left: usize,
    done: Arc<Done>,
}

impl Process for Pinger {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let echo = ctx.spawn("b:echo", "b:host", Value::Null)?;
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

const MANIFEST: &str = r#"
version: "1.0"
namespace: b
entries:
  - { name: host, kind: process.host }
  - { name: blink, kind: process.rust, source: "file://bench.rs", method: blink }
  - { name: echo, kind: process.rust, source: "file://bench.rs", method: echo }
  - { name: pinger, kind: process.rust, source: "file://bench.rs", method: pinger }
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
    let (s, p) = (spawned.clone(), pinged.clone());
    let catalog = Catalog::new()
        .process("file://bench.rs", "blink", move |_| Blink(s.clone()))
        .process("file://bench.rs", "echo", |_| Echo)
        .process("file://bench.rs", "pinger", move |_| Pinger {
            echo: None,
            left: ROUND_TRIPS,
            done: p.clone(),
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
        registry.shutdown(Duration::from_secs(1)).await;
    });
}
