//! `ticker`: the registered singleton that moves prices and broadcasts them.
//!
//! Every tick (10 ms by default, `args.interval`) each price takes a small
//! random step; the tick is encoded once into shared bytes and the same
//! buffer goes to every subscriber's client pid as `ws.send`. Subscriptions
//! map `handler_pid -> client_pid`; the ticker monitors each handler and
//! drops its subscription on EXIT, so a dead handler never leaks one.
//!
//! `seq` is a tick clock: it starts at `unix_ms / interval` and rises by one
//! per tick, so after a restart it continues past the ticks that were missed
//! instead of starting again at zero.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rippy::prelude::*;

/// The registered name.
pub const NAME: &str = "ticker";
pub const TOPIC_SUBSCRIBE: &str = "subscribe";
pub const TOPIC_UNSUBSCRIBE: &str = "unsubscribe";

const SYMBOLS: [(&str, f64); 3] = [
    ("BTC-USD", 43_000.0),
    ("ETH-USD", 2_300.0),
    ("SOL-USD", 100.0),
];

struct Subscription {
    client: ProcessRef,
}

pub struct Ticker {
    interval: Duration,
    prices: [f64; 3],
    seq: u64,
    rng: u64,
    subs: HashMap<Pid, Subscription>,
    gauge: Option<Arc<AtomicI64>>,
}

impl Ticker {
    pub fn new(args: Value) -> Self {
        let interval = args
            .get("interval")
            .and_then(Value::as_str)
            .and_then(|s| parse_duration(s).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(10));
        Ticker {
            interval,
            prices: SYMBOLS.map(|(_, p)| p),
            seq: 0,
            rng: unix_ms() | 1,
            subs: HashMap::new(),
            gauge: None,
        }
    }

    /// xorshift64*: a price walk needs no cryptographic randomness.
    fn next_unit(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn step(&mut self) {
        for i in 0..self.prices.len() {
            // +-0.05% per tick, never below a cent.
            let change = (self.next_unit() - 0.5) * 0.001;
            self.prices[i] = (self.prices[i] * (1.0 + change)).max(0.01);
        }
    }

    /// The tick message, encoded once.
    fn encode(&self, now_ms: u64) -> Bytes {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            r#"{{"type":"ticker","seq":{},"sent_at_ms":{now_ms},"data":["#,
            self.seq
        );
        for (i, ((symbol, _), price)) in SYMBOLS.iter().zip(self.prices).enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"symbol":"{symbol}","price":{price:.2},"timestamp":{}}}"#,
                now_ms / 1000
            );
        }
        s.push_str("]}");
        Bytes::from(s)
    }

    fn update_gauge(&self) {
        if let Some(g) = &self.gauge {
            g.store(self.subs.len() as i64, Ordering::Relaxed);
        }
    }

    fn subscribe(
        &mut self,
        ctx: &mut ProcessContext<'_>,
        handler: Pid,
        payload: &Payload,
    ) -> ProcessResult {
        let client = payload
            .as_json()
            .and_then(|v| v.get("client_pid"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Pid>().ok());
        let Some(client) = client else {
            log::warn!("subscribe without a valid client_pid from={handler}");
            return Ok(Flow::Continue);
        };
        let Some(client) = ctx.resolve(&client) else {
            return Ok(Flow::Continue);
        };
        let snapshot = self.encode(ctx.modules().now_ms()?);
        let _ = client.send(Some(ctx.pid()), TOPIC_SEND.into(), Payload::Bytes(snapshot));
        if self
            .subs
            .insert(handler.clone(), Subscription { client })
            .is_none()
        {
            ctx.monitor(&handler);
        }
        self.update_gauge();
        Ok(Flow::Continue)
    }

    fn unsubscribe(&mut self, ctx: &mut ProcessContext<'_>, handler: &Pid) {
        if self.subs.remove(handler).is_some() {
            ctx.demonitor(handler);
            self.update_gauge();
        }
    }

    fn tick(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        self.step();
        self.seq += 1;
        let frame = self.encode(ctx.modules().now_ms()?);
        let from = ctx.pid().clone();
        let before = self.subs.len();
        // A dead client is dropped now; a full one keeps its place (its
        // relay conflates). The handler's EXIT or unsubscribe follows anyway.
        self.subs.retain(|_, sub| {
            let sent = sub.client.send(
                Some(&from),
                TOPIC_SEND.into(),
                Payload::Bytes(frame.clone()),
            );
            !matches!(sent, Err(SendError::DeadPid(_)))
        });
        if self.subs.len() != before {
            self.update_gauge();
        }
        Ok(Flow::Continue)
    }
}

impl Process for Ticker {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        ctx.register(NAME)?;
        let tick_ms = self.interval.as_millis().max(1) as u64;
        self.seq = ctx.modules().now_ms()? / tick_ms;
        self.gauge = Some(ctx.metrics().gauge(
            "rippy_ticker_subscribers",
            "Clients subscribed to the ticker.",
        ));
        self.update_gauge();
        ctx.interval(self.interval);
        log::info!(
            "ticker started pid={} interval_ms={}",
            ctx.pid(),
            self.interval.as_millis()
        );
        Ok(Flow::Continue)
    }

    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        match event {
            Event::Timer(_) => self.tick(ctx),
            Event::Message(Message {
                from: Some(from),
                topic,
                payload,
            }) => match topic.as_ref() {
                TOPIC_SUBSCRIBE => self.subscribe(ctx, from, &payload),
                TOPIC_UNSUBSCRIBE => {
                    self.unsubscribe(ctx, &from);
                    Ok(Flow::Continue)
                }
                _ => Ok(Flow::Continue),
            },
            Event::Exit { from, .. } => {
                self.unsubscribe(ctx, &from);
                Ok(Flow::Continue)
            }
            Event::Message(_) => Ok(Flow::Continue),
        }
    }

    fn on_exit(&mut self, _ctx: &mut ProcessContext<'_>, _reason: &ExitReason) {
        self.subs.clear();
        self.update_gauge();
    }
}

/// The subscriber count, for tests.
pub fn subscribers(metrics: &Metrics) -> i64 {
    metrics
        .gauge(
            "rippy_ticker_subscribers",
            "Clients subscribed to the ticker.",
        )
        .load(Ordering::Relaxed)
}
