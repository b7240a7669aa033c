//! `feed.redis`: one logical producer for a stream of frames across nodes,
//! on a Redis lease and a Redis Stream.
//!
//! ## Protocol
//! - **Lease.** The key `<prefix>feed:<stream>:lease` holds the id of the
//!   node that may produce. A node takes it with `SET key id NX PX ttl` and
//!   renews it every `ttl / 3` with a script that extends it only if it still
//!   holds its own id. A node that fails to renew (or cannot reach Redis)
//!   stops producing at once; another takes the key when it expires.
//! - **Stream.** Each frame is one entry of `<prefix>feed:<stream>` with the
//!   explicit id `<seq>-0` (field `f`: the frame's bytes), written by a
//!   script that first checks the lease holds this node's id and then runs
//!   `XADD ... MAXLEN ~ max_len`. Redis refuses an id that is not above the
//!   stream's top, so a stale leader (paused past its lease, or behind) can
//!   never write a duplicate or an out-of-order frame: sequence numbers are
//!   unique and rising in the stream by construction.
//! - **Readers.** Every node runs one reader (`XREAD BLOCK`) from the last id
//!   it has seen and hands each frame, in stream order, to the process that
//!   attached to the feed (the ticker), which fans it out locally. A process
//!   that attaches first gets the last `history` frames (`XREVRANGE`), so a
//!   node that just started can serve resumes at once.
//!
//! What this file does not decide: what a frame is, and what a gap means to
//! clients (the attached process sees every sequence number and tells a jump
//! from a continuation). Connections are the `store.redis` entry's; each loop
//! reconnects with backoff (100 ms doubling to 2 s) after any error, so a
//! Redis restart costs a pause, never a thread.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use crate::manifest::{FieldError, Lifecycle, ManifestDuration};
use crate::metrics::{CounterVec, Metrics};
use crate::process::{Payload, ProcessRef};
use crate::store::RedisStore;

/// The topic of a frame delivered to the attached process (payload: the
/// frame's bytes).
pub const TOPIC_FEED_TICK: &str = "feed.tick";

/// The `feed.redis` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The `store.redis` entry.
    pub store: String,
    /// The stream's name (keys `<prefix>feed:<stream>` and `...:lease`;
    /// default `ticker`).
    #[serde(default)]
    pub stream: Option<String>,
    /// How long a lease lasts without renewal (default 1s): the longest a
    /// dead leader holds production up.
    #[serde(default)]
    pub lease_ttl: Option<ManifestDuration>,
    /// Entries the stream keeps (approximately; default 6000, a minute of
    /// 10 ms ticks).
    #[serde(default)]
    pub max_len: Option<u64>,
    /// Frames handed to a process that attaches (default 3000).
    #[serde(default)]
    pub history: Option<usize>,
    /// This node's id in the lease (default: pid and random hex).
    #[serde(default)]
    pub node: Option<String>,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

impl FeedConfig {
    /// Load-time checks.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(ttl) = self.lease_ttl
            && ttl.get() < Duration::from_millis(100)
        {
            errors.push(FieldError::at("lease_ttl", "expected at least 100ms"));
        }
        if self.max_len == Some(0) {
            errors.push(FieldError::at("max_len", "expected at least 1"));
        }
        if let Some(s) = &self.stream
            && (s.is_empty() || s.contains(char::is_whitespace))
        {
            errors.push(FieldError::at("stream", "expected a name without spaces"));
        }
        errors
    }
}

/// Renews the lease only while it holds this node's id.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Gives the lease up only if it holds this node's id.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";
/// Appends a frame only while this node holds the lease.
const APPEND: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then \
    return redis.error_reply('NOTLEADER') end \
    return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[3], 'f', ARGV[4])";

struct Consumer {
    process: Option<ProcessRef>,
    /// Bumped by every attach: the reader sends the history again.
    generation: u64,
}

/// A booted `feed.redis`.
pub struct RedisFeed {
    id: String,
    node: String,
    store: Arc<RedisStore>,
    stream_key: String,
    lease_key: String,
    lease_ttl: Duration,
    max_len: u64,
    history: usize,
    leader: AtomicBool,
    /// Bumped each time this node takes the lease.
    epoch: AtomicU64,
    /// The stream's top sequence number when the lease was taken.
    top: AtomicU64,
    stopped: AtomicBool,
    consumer: Mutex<Consumer>,
    attached: Condvar,
    publish: Mutex<Option<SyncSender<(u64, Bytes)>>>,
    leader_gauge: Arc<AtomicI64>,
    reconnects: Arc<CounterVec>,
}

/// Backoff between reconnects: 100 ms doubling to 2 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(5)).min(2_000))
}

impl RedisFeed {
    /// The feed, with its reader and its writer (lease and appends) running.
    pub fn start(
        id: &str,
        config: &FeedConfig,
        store: Arc<RedisStore>,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let stream = config.stream.clone().unwrap_or_else(|| "ticker".to_owned());
        let node = config.node.clone().unwrap_or_else(|| {
            use rand::RngCore;
            format!(
                "{}-{:08x}",
                std::process::id(),
                rand::rngs::OsRng.next_u32()
            )
        });
        let (tx, rx) = mpsc::sync_channel(1024);
        let feed = Arc::new(RedisFeed {
            id: id.to_owned(),
            node,
            stream_key: store.key(&format!("feed:{stream}")),
            lease_key: store.key(&format!("feed:{stream}:lease")),
            store,
            lease_ttl: config.lease_ttl.map_or(Duration::from_secs(1), |d| d.get()),
            max_len: config.max_len.unwrap_or(6000),
            history: config.history.unwrap_or(3000),
            leader: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            top: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            consumer: Mutex::new(Consumer {
                process: None,
                generation: 0,
            }),
            attached: Condvar::new(),
            publish: Mutex::new(Some(tx)),
            leader_gauge: metrics
                .gauge("rippy_feed_leader", "1 while this node produces the feed."),
            reconnects: metrics.counter_vec(
                "rippy_feed_reconnects_total",
                "Feed connections to Redis lost, by loop.",
                &["loop"],
            ),
        });
        let reader = feed.clone();
        let _ = std::thread::Builder::new()
            .name("feed-reader".into())
            .spawn(move || reader.read_loop());
        let writer = feed.clone();
        let _ = std::thread::Builder::new()
            .name("feed-writer".into())
            .spawn(move || writer.write_loop(rx));
        feed
    }

    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This node's id in the lease.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this node holds the lease now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Bumped each time this node takes the lease: a producer that sees it
    /// change starts again from [`RedisFeed::top`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The stream's top sequence number when this node last took the lease.
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Acquire)
    }

    /// Frames handed to a process when it attaches.
    pub fn history(&self) -> usize {
        self.history
    }

    /// Makes `process` the receiver of every frame (`feed.tick`), starting
    /// with the last [`RedisFeed::history`] ones; replaces any earlier one.
    pub fn attach(&self, process: ProcessRef) {
        let mut c = self.consumer.lock().unwrap_or_else(|e| e.into_inner());
        c.process = Some(process);
        c.generation += 1;
        self.attached.notify_all();
    }

    /// Queues frame `seq` for the stream; it is written only while this
    /// node holds the lease and only if `seq` is above the stream's top.
    /// Returns false when the writer is too far behind (the frame is dropped).
    pub fn publish(&self, seq: u64, frame: Bytes) -> bool {
        let tx = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|tx| tx.try_send((seq, frame))) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) => {
                log::warn!(
                    "feed writer behind, frame dropped feed={} seq={seq}",
                    self.id
                );
                false
            }
            _ => false,
        }
    }

    /// Stops both loops and gives the lease up (so another node takes over
    /// at once instead of after `lease_ttl`).
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.publish
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.attached.notify_all();
        if self.leader.swap(false, Ordering::AcqRel) {
            self.leader_gauge.store(0, Ordering::Relaxed);
            let _ = self.store.with(|c| {
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(&self.lease_key)
                    .arg(&self.node)
                    .query::<i64>(c)
            });
            log::info!("feed lease released feed={} node={}", self.id, self.node);
        }
    }

    fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::AcqRel) != leader {
            self.leader_gauge.store(leader as i64, Ordering::Relaxed);
            if leader {
                log::info!(
                    "feed lease taken feed={} node={} top={}",
                    self.id,
                    self.node,
                    self.top()
                );
            } else {
                log::warn!("feed lease lost feed={} node={}", self.id, self.node);
            }
        }
    }

    /// One lease step: renew it if held, else try to take it.
    fn lease_step(&self, conn: &mut redis::Connection) -> redis::RedisResult<()> {
        let ttl = self.lease_ttl.as_millis() as u64;
        if self.is_leader() {
            let renewed: i64 = redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(&self.lease_key)
                .arg(&self.node)
                .arg(ttl)
                .query(conn)?;
            if renewed != 1 {
                self.set_leader(false);
            }
            return Ok(());
        }
        let taken: Option<String> = redis::cmd("SET")
            .arg(&self.lease_key)
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query(conn)?;
        if taken.is_some() {
            let newest: Vec<redis::Value> = redis::cmd("XREVRANGE")
                .arg(&self.stream_key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(conn)?;
            let top = newest
                .into_iter()
                .filter_map(entry)
                .next()
                .and_then(|(id, _)| seq_of(&id))
                .unwrap_or(0);
            self.top.store(top, Ordering::Release);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.set_leader(true);
        }
        Ok(())
    }

    fn append(
        &self,
        conn: &mut redis::Connection,
        seq: u64,
        frame: &[u8],
    ) -> redis::RedisResult<()> {
        let done: redis::RedisResult<String> = redis::cmd("EVAL")
            .arg(APPEND)
            .arg(2)
            .arg(&self.lease_key)
            .arg(&self.stream_key)
            .arg(&self.node)
            .arg(self.max_len)
            .arg(format!("{seq}-0"))
            .arg(frame)
            .query(conn);
        match done {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NOTLEADER") => {
                self.set_leader(false);
                Ok(())
            }
            // At or below the stream's top: another leader wrote it first.
            Err(e) if e.kind() == redis::ErrorKind::ResponseError || e.code().is_some() => {
                log::debug!("feed append refused feed={} seq={seq} error={e}", self.id);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn write_loop(self: Arc<Self>, rx: mpsc::Receiver<(u64, Bytes)>) {
        let renew_every = self.lease_ttl / 3;
        let mut failures = 0u32;
        let mut conn: Option<redis::Connection> = None;
        let mut next_lease = Instant::now();
        while !self.stopped.load(Ordering::Acquire) {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.store.connect(None) {
                    Ok(c) => {
                        failures = 0;
                        conn.insert(c)
                    }
                    Err(e) => {
                        self.set_leader(false);
                        log::warn!("feed writer cannot reach redis feed={} error={e}", self.id);
                        std::thread::sleep(backoff(failures));
                        failures += 1;
                        continue;
                    }
                },
            };
            let wait = next_lease.saturating_duration_since(Instant::now());
            let step = match rx.recv_timeout(wait) {
                Ok((seq, frame)) if self.is_leader() => self.append(c, seq, &frame),
                Ok(_) => Ok(()),
                Err(RecvTimeoutError::Timeout) => Ok(()),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let step = step.and_then(|_| {
                if Instant::now() >= next_lease {
                    next_lease = Instant::now() + renew_every;
                    self.lease_step(c)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = step {
                log::warn!("feed writer lost redis feed={} error={e}", self.id);
                self.set_leader(false);
                conn = None;
                self.reconnects.inc(&["writer"]);
                std::thread::sleep(backoff(0));
            }
        }
    }

    /// The attached process and its generation, waiting for one; `None`
    /// once stopped.
    fn consumer(&self) -> Option<(ProcessRef, u64)> {
        let mut c = self.consumer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return None;
            }
            if let Some(p) = &c.process {
                return Some((p.clone(), c.generation));
            }
            c = self.attached.wait(c).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn read_loop(self: Arc<Self>) {
        let block = Duration::from_millis(500);
        let mut failures = 0u32;
        let mut conn: Option<redis::Connection> = None;
        let mut last_id: Option<String> = None;
        let mut generation = 0u64;
        while let Some((process, g)) = self.consumer() {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.store.connect(Some(block + Duration::from_secs(2))) {
                    Ok(c) => {
                        failures = 0;
                        conn.insert(c)
                    }
                    Err(e) => {
                        log::warn!("feed reader cannot reach redis feed={} error={e}", self.id);
                        std::thread::sleep(backoff(failures));
                        failures += 1;
                        continue;
                    }
                },
            };
            let step = if g != generation {
                // A new process attached: hand it the recent history first.
                generation = g;
                self.backfill(c, &process).map(|top| {
                    if top.is_some() {
                        last_id = top;
                    }
                })
            } else {
                self.read_some(c, &process, &mut last_id, block)
            };
            if let Err(e) = step {
                log::warn!("feed reader lost redis feed={} error={e}", self.id);
                conn = None;
                self.reconnects.inc(&["reader"]);
                std::thread::sleep(backoff(failures));
                failures += 1;
            }
        }
    }

    fn deliver(&self, process: &ProcessRef, frame: Bytes) {
        let _ = process.send(None, TOPIC_FEED_TICK.into(), Payload::Bytes(frame));
    }

    /// Sends the last `history` frames, oldest first; returns the newest id.
    fn backfill(
        &self,
        c: &mut redis::Connection,
        process: &ProcessRef,
    ) -> redis::RedisResult<Option<String>> {
        let entries: Vec<redis::Value> = redis::cmd("XREVRANGE")
            .arg(&self.stream_key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(self.history.max(1))
            .query(c)?;
        let entries: Vec<(String, Bytes)> = entries.into_iter().filter_map(entry).collect();
        let newest = entries.first().map(|(id, _)| id.clone());
        for (_, frame) in entries.into_iter().rev() {
            self.deliver(process, frame);
        }
        Ok(newest)
    }

    fn read_some(
        &self,
        c: &mut redis::Connection,
        process: &ProcessRef,
        last_id: &mut Option<String>,
        block: Duration,
    ) -> redis::RedisResult<()> {
        // Never "$": an entry written between the history and this read
        // would be skipped. From the start of an empty stream is the same.
        let from = last_id.clone().unwrap_or_else(|| "0-0".to_owned());
        let reply: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream_key)
            .arg(&from)
            .query(c)?;
        // [[stream, [entry, ...]]], or nil after the block timed out. RESP2
        // gives an array of pairs, RESP3 a map.
        let streams: Vec<redis::Value> = match reply {
            redis::Value::Array(v) => v,
            redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => return Ok(()),
        };
        for s in streams {
            let redis::Value::Array(pair) = s else {
                continue;
            };
            let Some(redis::Value::Array(entries)) = pair.into_iter().nth(1) else {
                continue;
            };
            for (id, frame) in entries.into_iter().filter_map(entry) {
                self.deliver(process, frame);
                *last_id = Some(id);
            }
        }
        Ok(())
    }
}

/// One stream entry `[id, [field, value, ...]]` as its id and field `f`.
fn entry(v: redis::Value) -> Option<(String, Bytes)> {
    let redis::Value::Array(parts) = v else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = match parts.next()? {
        redis::Value::BulkString(b) => String::from_utf8(b).ok()?,
        redis::Value::SimpleString(s) => s,
        _ => return None,
    };
    let redis::Value::Array(fields) = parts.next()? else {
        return None;
    };
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if matches!(&k, redis::Value::BulkString(b) if b == b"f")
            && let redis::Value::BulkString(b) = v
        {
            return Some((id, Bytes::from(b)));
        }
    }
    None
}

/// The sequence number of a stream id `<seq>-0`.
fn seq_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}
