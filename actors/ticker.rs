//! `ticker`: the registered singleton that moves prices and broadcasts them.
//!
//! Every tick (10 ms by default, `args.interval`) each price takes a small
//! random step; the tick is encoded once into shared bytes and the same
//! buffer goes to every subscriber's client pid as `ws.send`.
//!
//! Clients join the broadcast group of the ticker's name (`ctx.join`, done
//! by `ws_handler`): the ticker publishes each frame there, and the runtime
//! hands the last one to each client as it joins (the snapshot), so a
//! client arriving or leaving costs the ticker nothing. A `subscribe`
//! message (`{"client_pid"}`, or with `"since"` to resume) still works: such
//! subscriptions map `handler_pid -> client_pid`, the ticker monitors each
//! handler and drops its subscription on EXIT.
//!
//! `seq` is a tick clock: it starts at `unix_ms / interval` and rises by one
//! per tick, so after a restart it continues past the ticks that were missed
//! instead of starting again at zero.
//!
//! ## Resume
//! The last `history` frames (args, default 3000: 30 s at 10 ms) stay in a
//! ring. A subscriber that gives `since` (the last seq its client saw) gets
//! every frame after it in one batch, then live frames: no gap, no
//! duplicate. When the ring no longer reaches back to `since + 1` it gets
//! `{"type":"reset","reason":"beyond_window","since","seq"}` and a snapshot
//! instead, never a silent gap.
//!
//! ## Across nodes (`args.feed`: a `feed.redis` entry)
//! Every node's ticker runs; only the one whose feed holds the lease
//! produces. It steps the prices, encodes the frame and publishes it with
//! seq = (the highest seq it knows) + 1; it broadcasts nothing itself. Every
//! ticker, the producer included, broadcasts the frames its feed reads back
//! from the stream, in stream order, so all nodes send the same bytes for a
//! seq. A ticker that takes the lease over continues from the last frame it
//! has (prices and seq), so seq never repeats. A jump in the frames it reads
//! (Redis lost entries) is sent to clients as `{"type":"reset","reason":"gap"}`
//! before the frame, and the ring starts again after it.

use std::collections::{HashMap, VecDeque};
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
    /// Resuming after this seq, ahead of this ticker: frames up to it are
    /// skipped, and the first one after it must be its successor.
    after: Option<u64>,
}

pub struct Ticker {
    interval: Duration,
    prices: [f64; 3],
    /// The last seq broadcast (0: none yet).
    seq: u64,
    rng: u64,
    subs: HashMap<Pid, Subscription>,
    /// Members of the broadcast group the last publish reached.
    members: usize,
    gauge: Option<Arc<AtomicI64>>,
    /// The last frames broadcast, oldest first, seqs contiguous.
    ring: VecDeque<(u64, Bytes)>,
    history: usize,
    feed_id: Option<String>,
    feed: Option<Arc<RedisFeed>>,
    /// The feed epoch this ticker last produced in, and the last seq it
    /// published in it.
    epoch: u64,
    produced: u64,
}

impl Ticker {
    pub fn new(args: Value) -> Self {
        let interval = args
            .get("interval")
            .and_then(Value::as_str)
            .and_then(|s| parse_duration(s).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(10));
        let history = args
            .get("history")
            .and_then(Value::as_u64)
            .map_or(3000, |n| n.max(1) as usize);
        Ticker {
            interval,
            prices: SYMBOLS.map(|(_, p)| p),
            seq: 0,
            rng: unix_ms() | 1,
            subs: HashMap::new(),
            members: 0,
            gauge: None,
            ring: VecDeque::with_capacity(history.min(4096)),
            history,
            feed_id: args.get("feed").and_then(Value::as_str).map(str::to_owned),
            feed: None,
            epoch: 0,
            produced: 0,
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

    /// The tick message for `seq`, encoded once.
    fn encode(&self, seq: u64, now_ms: u64) -> Bytes {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            r#"{{"type":"ticker","seq":{seq},"sent_at_ms":{now_ms},"data":["#
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

    /// Group members (as of the last publish) plus subscriptions.
    fn update_gauge(&self) {
        if let Some(g) = &self.gauge {
            g.store((self.members + self.subs.len()) as i64, Ordering::Relaxed);
        }
    }

    fn subscribe(
        &mut self,
        ctx: &mut ProcessContext<'_>,
        handler: Pid,
        payload: &Payload,
    ) -> ProcessResult {
        let json = payload.as_json();
        let client = json
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
        let since = json.and_then(|v| v.get("since")).and_then(Value::as_u64);
        let after = match since {
            None => {
                self.send_snapshot(ctx, &client)?;
                None
            }
            Some(since) => self.resume(ctx, &client, since)?,
        };
        if self
            .subs
            .insert(handler.clone(), Subscription { client, after })
            .is_none()
        {
            ctx.monitor(&handler);
        }
        self.update_gauge();
        Ok(Flow::Continue)
    }

    /// The newest frame, or (before any) one made from the current prices.
    fn send_snapshot(
        &self,
        ctx: &mut ProcessContext<'_>,
        client: &ProcessRef,
    ) -> Result<(), ProcessError> {
        let frame = match self.ring.back() {
            Some((_, frame)) => frame.clone(),
            None if self.feed.is_some() => return Ok(()), // the feed's first frame follows
            None => self.encode(self.seq, ctx.modules().now_ms()?),
        };
        let _ = client.send(Some(ctx.pid()), TOPIC_SEND.into(), Payload::Bytes(frame));
        Ok(())
    }

    /// Serves a subscriber that saw every frame up to `since`: the frames
    /// after it from the ring, or a reset and a snapshot when the ring does
    /// not reach back that far. Returns the subscription's `after`.
    fn resume(
        &self,
        ctx: &mut ProcessContext<'_>,
        client: &ProcessRef,
        since: u64,
    ) -> Result<Option<u64>, ProcessError> {
        let oldest = self.ring.front().map_or(u64::MAX, |(seq, _)| *seq);
        if since >= self.seq {
            // Nothing missed, or the client is a little ahead of this node
            // (it came from a node whose reader was faster): skip what it has.
            // Far ahead is no seq this feed made: start it over.
            if self.seq != 0 && since > self.seq + self.history as u64 {
                self.reset(ctx, client, "beyond_window", since)?;
                self.send_snapshot(ctx, client)?;
                return Ok(None);
            }
            return Ok((since > self.seq || self.seq == 0).then_some(since));
        }
        if since + 1 < oldest {
            self.reset(ctx, client, "beyond_window", since)?;
            self.send_snapshot(ctx, client)?;
            return Ok(None);
        }
        let frames: Vec<Value> = self
            .ring
            .iter()
            .filter(|(seq, _)| *seq > since)
            .map(|(_, frame)| Value::String(String::from_utf8_lossy(frame).into_owned()))
            .collect();
        let _ = client.send(
            Some(ctx.pid()),
            TOPIC_SEND.into(),
            Payload::Json(json_object([
                ("type", "text".into()),
                ("frames", Value::Array(frames)),
            ])),
        );
        Ok(None)
    }

    fn reset(
        &self,
        ctx: &ProcessContext<'_>,
        client: &ProcessRef,
        reason: &str,
        since: u64,
    ) -> Result<(), ProcessError> {
        let _ = client.send(
            Some(ctx.pid()),
            TOPIC_SEND.into(),
            reset_message(reason, since, self.seq),
        );
        Ok(())
    }

    fn unsubscribe(&mut self, ctx: &mut ProcessContext<'_>, handler: &Pid) {
        if self.subs.remove(handler).is_some() {
            ctx.demonitor(handler);
            self.update_gauge();
            self.compact();
        }
    }

    /// Gives the subscription table's room back once a burst of clients has
    /// left it mostly empty (it never shrinks by itself).
    fn compact(&mut self) {
        if self.subs.capacity() > 64 && self.subs.len() * 4 < self.subs.capacity() {
            self.subs.shrink_to(self.subs.len() * 2);
        }
    }

    /// A timer tick: produce the next frame, or (on a feed) publish it if
    /// this node holds the lease.
    fn tick(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let Some(feed) = self.feed.clone() else {
            self.step();
            let seq = self.seq + 1;
            let frame = self.encode(seq, ctx.modules().now_ms()?);
            self.broadcast(ctx, seq, frame);
            return Ok(Flow::Continue);
        };
        if !feed.is_leader() {
            return Ok(Flow::Continue);
        }
        if feed.epoch() != self.epoch {
            // Just took the lease: continue from the last frame there is.
            self.epoch = feed.epoch();
            self.produced = feed.top();
            if self.produced == 0 && self.seq == 0 {
                // A new stream: start at the tick clock, as a single node does.
                let tick_ms = self.interval.as_millis().max(1) as u64;
                self.produced = ctx.modules().now_ms()? / tick_ms;
            }
            if let Some((_, frame)) = self.ring.back() {
                self.prices = prices_of(frame).unwrap_or(self.prices);
            }
        }
        self.step();
        let seq = self.produced.max(self.seq) + 1;
        let frame = self.encode(seq, ctx.modules().now_ms()?);
        feed.publish(seq, frame);
        self.produced = seq;
        Ok(Flow::Continue)
    }

    /// A frame the feed read back from the stream.
    fn on_feed_frame(&mut self, ctx: &mut ProcessContext<'_>, frame: Bytes) {
        let Some(seq) = seq_of(&frame) else {
            log::warn!("feed frame without a seq dropped");
            return;
        };
        if self.seq != 0 && seq <= self.seq {
            return; // already broadcast
        }
        if self.seq != 0 && seq > self.seq + 1 {
            log::warn!("feed gap last_seq={} seq={seq}", self.seq);
            self.ring.clear();
            let reset = reset_message("gap", self.seq, seq);
            // For the clients there are now; a joiner gets the next frame.
            let _ = ctx.broadcast(NAME, TOPIC_SEND, reset.clone());
            self.send_all(ctx, 0, reset);
        }
        self.broadcast(ctx, seq, frame);
    }

    /// Records frame `seq` in the ring and sends it to every subscriber.
    fn broadcast(&mut self, ctx: &mut ProcessContext<'_>, seq: u64, frame: Bytes) {
        self.seq = seq;
        if self.ring.len() >= self.history {
            self.ring.pop_front();
        }
        self.ring.push_back((seq, frame.clone()));
        let members = ctx
            .publish(NAME, TOPIC_SEND, Payload::Bytes(frame.clone()))
            .unwrap_or(0);
        self.send_all(ctx, seq, Payload::Bytes(frame));
        self.members = members;
        self.update_gauge();
    }

    /// Sends `frame` (of `seq`; 0: not a tick) to every subscription.
    fn send_all(&mut self, ctx: &mut ProcessContext<'_>, seq: u64, frame: Payload) {
        let from = ctx.pid().clone();
        let before = self.subs.len();
        // A dead client is dropped now; a full one keeps its place (its
        // relay conflates). The handler's EXIT or unsubscribe follows anyway.
        let history = self.history as u64;
        self.subs.retain(|_, sub| {
            if let Some(after) = sub.after {
                // A resuming subscriber ahead of this node: skip what it has
                // (unless "ahead" is further than any history: no seq of
                // this feed), and its first frame must follow `after`.
                if seq == 0 || (seq <= after && after - seq <= history) {
                    return true;
                }
                sub.after = None;
                if seq != after + 1 {
                    let reason = if seq > after { "gap" } else { "beyond_window" };
                    let _ = sub.client.send(
                        Some(&from),
                        TOPIC_SEND.into(),
                        reset_message(reason, after, seq),
                    );
                }
            }
            let sent = sub
                .client
                .send(Some(&from), TOPIC_SEND.into(), frame.clone());
            !matches!(sent, Err(SendError::DeadPid(_)))
        });
        if self.subs.len() != before {
            self.update_gauge();
            self.compact();
        }
    }
}

/// `{"type":"reset",...}` as a text frame of its own: never conflated with
/// ticks, so a slow client cannot miss that it missed something.
fn reset_message(reason: &str, since: u64, seq: u64) -> Payload {
    let text = json!({ "type": "reset", "reason": reason, "since": since, "seq": seq });
    Payload::Json(json_object([
        ("type", "text".into()),
        ("data", text.to_string().into()),
    ]))
}

/// The seq of a frame this module encoded (`{"type":"ticker","seq":N,...`).
pub fn seq_of(frame: &[u8]) -> Option<u64> {
    let at = frame.windows(6).position(|w| w == b"\"seq\":")? + 6;
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The prices of a frame, in [`SYMBOLS`] order.
fn prices_of(frame: &[u8]) -> Option<[f64; 3]> {
    let v: Value = serde_json::from_slice(frame).ok()?;
    let data = v.get("data")?.as_array()?;
    let mut prices = [0.0; 3];
    for (i, (symbol, _)) in SYMBOLS.iter().enumerate() {
        prices[i] = data
            .iter()
            .find(|d| d.get("symbol").and_then(Value::as_str) == Some(symbol))?
            .get("price")?
            .as_f64()?;
    }
    Some(prices)
}

impl Process for Ticker {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        ctx.register(NAME)?;
        if let Some(id) = &self.feed_id {
            let feed = ctx.modules().feed(id)?;
            // The stream gives seq and prices; its recent history comes first.
            feed.attach(
                ctx.resolve(ctx.pid())
                    .ok_or("the ticker cannot address itself")?,
            );
            self.feed = Some(feed);
        } else {
            let tick_ms = self.interval.as_millis().max(1) as u64;
            let now_ms = ctx.modules().now_ms()?;
            self.seq = now_ms / tick_ms;
            // The snapshot for clients that join before the first tick.
            let snapshot = self.encode(self.seq, now_ms);
            self.members = ctx.publish(NAME, TOPIC_SEND, Payload::Bytes(snapshot))?;
        }
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
            Event::Message(Message {
                from: None,
                topic,
                payload: Payload::Bytes(frame),
            }) if topic.as_ref() == TOPIC_FEED_TICK && self.feed.is_some() => {
                // Only the runtime sends without a sender pid: no process
                // (a user's handler) can inject a frame here.
                self.on_feed_frame(ctx, frame);
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
