//! rippy-load: a load generator for the ticker, measured against the server.
//!
//! ```text
//! rippy-load ws        --url http://127.0.0.1:8081 --key rk_... --clients 1000 --duration 10
//! rippy-load token     --url ... --key rk_... --connections 64 --duration 10 [--path /healthz]
//! rippy-load handshake --url ... --key rk_... --concurrency 32 --duration 10
//! rippy-load watch     --url ... --key rk_... --duration 10   # longest pause, gaps, resets
//! rippy-load broadcast --listen 127.0.0.1:18090 --clients 1000 --tick-ms 10 --senders 2
//! rippy-load ws        --url http://127.0.0.1:18090 --raw --clients 1000 ...
//! rippy-load proxy     --listen 127.0.0.1:19003 --upstream 127.0.0.1:19000 --workers 2
//! ```
//!
//! `broadcast` is a bare fan-out server for comparison: it accepts plain TCP
//! connections and, every tick, writes one ticker-shaped WebSocket frame to
//! each from `--senders` threads, doing nothing else. `ws --raw` reads it
//! as it reads rippy (no token, no upgrade), so the two give the same
//! columns from the same kind of process pair. `proxy` is the same for the
//! gateway: a bare reverse proxy doing its JWT route's per-request work and
//! nothing else (see `proxy.rs`).
//!
//! Clients are plain tokio sockets with a minimal WebSocket reader (server
//! frames are unmasked), spread over `--threads` current-thread runtimes and
//! source addresses 127.0.0.2..; the generator must cost less than the server
//! it measures. With `--server-pid` it samples the server's CPU time and RSS
//! from /proc over the measured window. Every mode ends with one line of
//! key=value pairs.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod proxy;

#[derive(Parser)]
#[command(name = "rippy-load", about = "Load generator for the rippy ticker")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// An API key (see data/demo.key).
    #[arg(long)]
    key: String,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// The server's pid, to sample its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Mode {
    /// N WebSocket clients on /ws/ticker: ticks, gaps, latency, server cost.
    Ws {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Connections opened at once while connecting.
        #[arg(long, default_value_t = 200)]
        connect_concurrency: usize,
        /// Seconds to wait after connecting before measuring.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Plain TCP to a `broadcast` server: no token, no upgrade.
        #[arg(long)]
        raw: bool,
    },
    /// A bare fan-out server (see the module docs); runs until killed.
    Broadcast {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:18090")]
        listen: SocketAddr,
        /// Connections to accept before the first tick.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Milliseconds between ticks.
        #[arg(long, default_value_t = 10)]
        tick_ms: u64,
        /// Writing threads, each with its share of the connections.
        #[arg(long, default_value_t = 2)]
        senders: usize,
    },
    /// A bare reverse proxy for the gateway's rows (see `proxy.rs`); runs
    /// until killed.
    Proxy {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:19003")]
        listen: SocketAddr,
        /// Where to forward.
        #[arg(long, default_value = "127.0.0.1:19000")]
        upstream: SocketAddr,
        /// Worker threads, each accepting on a socket of its own.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Paths forwarded; any other gets 404.
        #[arg(long, default_value = "/api/")]
        prefix: String,
    },
    /// Keep-alive HTTP clients posting the key to /auth/token (or GET --path).
    Token {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// GET this path instead (e.g. /healthz, for comparison).
        #[arg(long)]
        path: Option<String>,
    },
    /// Authenticated WebSocket handshakes, one after another per worker.
    Handshake {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// One client reading the stream for --duration seconds: the longest
    /// pause between two ticks, seq gaps and resets (failover timing).
    Watch {
        #[command(flatten)]
        common: Common,
    },
    /// Connect, wait for a tick, disconnect (half with a close frame, half by
    /// cutting TCP), `--cycles` times; reports server RSS before and after.
    Churn {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        cycles: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

fn server_addr(url: &str) -> SocketAddr {
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .unwrap_or_else(|_| panic!("--url must be http://IP:PORT, found {url}"))
}

/// CPU seconds (user + system) and RSS (KiB) of a process.
fn proc_sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((ticks / hz, rss))
}

/// Latency histogram with 0.1 ms buckets up to 60 s.
#[derive(Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_ms: f64,
}

impl Histogram {
    const RES: f64 = 0.1;
    fn new() -> Self {
        Histogram {
            buckets: vec![0; 600_001],
            count: 0,
            max_ms: 0.0,
        }
    }
    fn record(&mut self, ms: f64) {
        let i = ((ms.max(0.0) / Self::RES) as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max_ms = self.max_ms.max(ms);
    }
    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    fn quantile(&self, q: f64) -> f64 {
        let target = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return i as f64 * Self::RES;
            }
        }
        self.max_ms
    }
}

/// Shared counters for one run.
#[derive(Default)]
struct Totals {
    connected: AtomicU64,
    refused: AtomicU64,
    ticks: AtomicU64,
    gaps: AtomicU64,
    measuring: AtomicBool,
}

async fn post_token(addr: SocketAddr, key: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect for token");
    let body = format!("{{\"api_key\":\"{key}\"}}");
    let req = format!(
        "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .expect("send token request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read token");
    let text = String::from_utf8_lossy(&buf);
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|_| panic!("token exchange failed: {text}"));
    v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_owned()
}

async fn open_ws(
    addr: SocketAddr,
    source: Ipv4Addr,
    token: &str,
) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let (mut s, _) = open_raw(addr, source).await?;
    let req = format!(
        "GET /ws/ticker?x-auth-token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed during handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                return Err(std::io::Error::other(
                    String::from_utf8_lossy(&buf[..end]).into_owned(),
                ));
            }
            let rest = buf.split_off(end + 4);
            return Ok((s, rest));
        }
    }
}

/// A plain TCP connection from `source`, nothing read yet: what a
/// `broadcast` server streams on at once, and what `open_ws` upgrades.
async fn open_raw(addr: SocketAddr, source: Ipv4Addr) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let s = socket.connect(addr).await?;
    let _ = s.set_nodelay(true);
    Ok((s, Vec::new()))
}

/// The number after `"key":` in a JSON text, without parsing the rest.
fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The next whole server frame at the start of `buf`: its opcode, header
/// length and payload length (server frames are unmasked).
fn next_frame(buf: &[u8]) -> Option<(u8, usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, h) = match (buf[1] & 0x7f) as usize {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap_or([0; 8])) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n, 2),
    };
    (buf.len() >= h + len).then_some((opcode, h, len))
}

/// How a tick frame says what it is, wherever its keys stand.
const TICKER_TYPE: &[u8] = b"\"type\":\"ticker\"";

/// Whether a text frame is a tick. Key order is not part of JSON: the Lua
/// edition's encoder sorts keys.
fn is_tick(payload: &[u8]) -> bool {
    payload.starts_with(b"{\"type\":\"ticker\"")
        || payload.windows(TICKER_TYPE.len()).any(|w| w == TICKER_TYPE)
}

/// Reads ticks until its task is dropped; records seq gaps and latency into
/// its thread's histogram (no lock, no timer per read).
async fn ws_client(
    mut s: TcpStream,
    mut buf: Vec<u8>,
    totals: Arc<Totals>,
    hist: Rc<RefCell<Histogram>>,
) {
    let mut last_seq: Option<u64> = None;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut i = 0;
        while let Some((opcode, h, len)) = next_frame(&buf[i..]) {
            let payload = &buf[i + h..i + h + len];
            if opcode == 1 && is_tick(payload) {
                if let (Some(seq), Some(sent)) = (
                    number_after(payload, b"\"seq\":"),
                    number_after(payload, b"\"sent_at_ms\":"),
                ) {
                    let measuring = totals.measuring.load(Ordering::Relaxed);
                    if let Some(prev) = last_seq
                        && seq > prev + 1
                        && measuring
                    {
                        totals.gaps.fetch_add(seq - prev - 1, Ordering::Relaxed);
                    }
                    last_seq = Some(seq);
                    if measuring {
                        totals.ticks.fetch_add(1, Ordering::Relaxed);
                        hist.borrow_mut()
                            .record(now_ms().saturating_sub(sent) as f64);
                    }
                }
            } else if opcode == 8 {
                return;
            }
            i += h + len;
        }
        buf.drain(..i);
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn run_ws(c: Common, clients: usize, concurrency: usize, warmup: u64, raw: bool) {
    let fd_limit = raise_fd_limit();
    let addr = server_addr(&c.url);
    let token = if raw {
        String::new()
    } else {
        runtime().block_on(post_token(addr, &c.key))
    };
    let baseline = c.server_pid.and_then(proc_sample);
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = c.threads.max(1);
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..threads {
        let (token, totals, stop) = (token.clone(), totals.clone(), stop.clone());
        let mine: Vec<usize> = (0..clients).filter(|i| i % threads == t).collect();
        let per_thread_concurrency = (concurrency / threads).max(1);
        handles.push(std::thread::spawn(move || {
            let hist = Rc::new(RefCell::new(Histogram::new()));
            let local = tokio::task::LocalSet::new();
            let h = hist.clone();
            runtime().block_on(local.run_until(async move {
                let sem = Arc::new(tokio::sync::Semaphore::new(per_thread_concurrency));
                let mut tasks = Vec::new();
                for i in mine {
                    let permit = sem.clone().acquire_owned().await.expect("semaphore");
                    let source = Ipv4Addr::new(127, 0, (i / 250 % 250) as u8, (i % 250 + 2) as u8);
                    let (token, totals, h) = (token.clone(), totals.clone(), h.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let opened = if raw {
                            open_raw(addr, source).await
                        } else {
                            open_ws(addr, source, &token).await
                        };
                        match opened {
                            Ok((s, rest)) => {
                                totals.connected.fetch_add(1, Ordering::Relaxed);
                                drop(permit);
                                ws_client(s, rest, totals, h).await;
                            }
                            Err(e) => {
                                if totals.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                                    eprintln!(
                                        "connection refused: {e} (descriptor limit here: {fd_limit})"
                                    );
                                }
                            }
                        }
                    }));
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                for t in tasks {
                    t.abort();
                }
            }));
            drop(local);
            Rc::try_unwrap(hist)
                .map(RefCell::into_inner)
                .unwrap_or_else(|h| h.borrow().clone())
        }));
    }
    while totals.connected.load(Ordering::Relaxed) + totals.refused.load(Ordering::Relaxed)
        < clients as u64
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let connect_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(warmup));
    let before = c.server_pid.and_then(proc_sample);
    totals.measuring.store(true, Ordering::Relaxed);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(c.duration));
    totals.measuring.store(false, Ordering::Relaxed);
    let secs = window.elapsed().as_secs_f64();
    let after = c.server_pid.and_then(proc_sample);
    stop.store(true, Ordering::Relaxed);
    let mut h = Histogram::new();
    for handle in handles {
        if let Ok(part) = handle.join() {
            h.merge(&part);
        }
    }
    let ticks = totals.ticks.load(Ordering::Relaxed);
    let connected = totals.connected.load(Ordering::Relaxed);
    let mut line = format!(
        "mode=ws clients={clients} connected={connected} refused={} connect_s={connect_s:.2} duration_s={secs:.2} deliveries={ticks} ticks_per_s_per_client={:.1} gaps={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} p999_ms={:.1} max_ms={:.1}",
        totals.refused.load(Ordering::Relaxed),
        ticks as f64 / secs / connected.max(1) as f64,
        totals.gaps.load(Ordering::Relaxed),
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.quantile(0.999),
        h.max_ms,
    );
    if let (Some((cpu0, _)), Some((cpu1, rss))) = (before, after) {
        let cpu = (cpu1 - cpu0).max(1e-9);
        line.push_str(&format!(
            " server_cpu_s={cpu:.2} deliveries_per_cpu_s={:.0} server_rss_kib={rss}",
            ticks as f64 / cpu
        ));
        if let Some((_, rss0)) = baseline {
            line.push_str(&format!(
                " rss_per_conn_kib={:.2}",
                rss.saturating_sub(rss0) as f64 / connected.max(1) as f64
            ));
        }
    }
    println!("{line}");
}

async fn http_worker(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&request).await.is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // One response: head, then Content-Length bytes.
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    if !head.starts_with("http/1.1 200") {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    buf.drain(..end + 4 + len);
                    break;
                }
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

fn run_token(c: Common, connections: usize, path: Option<String>) {
    raise_fd_limit();
    let addr = server_addr(&c.url);
    let request = match &path {
        Some(p) => format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"),
        None => {
            let body = format!("{{\"api_key\":\"{}\"}}", c.key);
            format!(
                "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
    };
    let request = Arc::new(request.into_bytes());
    let run = timed_run(&c, connections, move |_, k| {
        http_worker(addr, request.clone(), k.done, k.errors, k.stop)
    });
    let n = run.done;
    let secs = run.seconds;
    let mut line = format!(
        "mode=token path={} connections={connections} duration_s={secs:.2} requests={n} requests_per_s={:.0} errors={}",
        path.as_deref().unwrap_or("/auth/token"),
        n as f64 / secs,
        run.errors
    );
    line.push_str(&run.per_server_cpu("requests"));
    println!("{line}");
}

/// Repeats authenticated handshakes (then a close frame) until `stop`.
async fn handshake_worker(
    w: usize,
    addr: SocketAddr,
    token: String,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let source = Ipv4Addr::new(
            127,
            1,
            ((w + k) / 250 % 250) as u8,
            ((w + k) % 250 + 2) as u8,
        );
        match open_ws(addr, source, &token).await {
            Ok((mut s, _)) => {
                // A close frame (masked, empty), then drop.
                let _ = s.write_all(&[0x88, 0x80, 1, 2, 3, 4]).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The counters a timed worker updates.
#[derive(Clone)]
struct Counters {
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// What a timed run measured.
struct Run {
    done: u64,
    errors: u64,
    seconds: f64,
    /// Server CPU seconds at the start and the end, with `--server-pid`.
    server_cpu: Option<(f64, f64)>,
}

impl Run {
    /// ` server_cpu_s=.. <what>_per_cpu_s=..` with `--server-pid`, else empty.
    fn per_server_cpu(&self, what: &str) -> String {
        self.server_cpu.map_or_else(String::new, |(a, b)| {
            format!(
                " server_cpu_s={:.2} {what}_per_cpu_s={:.0}",
                b - a,
                self.done as f64 / (b - a).max(1e-9)
            )
        })
    }
}

/// Runs `n` workers made by `make(i, counters)` for `c.duration` seconds.
fn timed_run<F, Fut>(c: &Common, n: usize, make: F) -> Run
where
    F: Fn(usize, Counters) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let counters = Counters {
        done: Arc::default(),
        errors: Arc::default(),
        stop: Arc::default(),
    };
    let before = c.server_pid.and_then(proc_sample);
    let started = Instant::now();
    let k = counters.clone();
    let handles = spawn_workers(c.threads.max(1), n, move |i| make(i, k.clone()));
    std::thread::sleep(Duration::from_secs(c.duration));
    counters.stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let after = c.server_pid.and_then(proc_sample);
    for h in handles {
        let _ = h.join();
    }
    Run {
        done: counters.done.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        seconds,
        server_cpu: before.zip(after).map(|((a, _), (b, _))| (a, b)),
    }
}

/// Runs `n` tasks made by `make(i)`, spread over `threads` current-thread
/// runtimes; each thread ends when its tasks have.
fn spawn_workers<F, Fut>(threads: usize, n: usize, make: F) -> Vec<std::thread::JoinHandle<()>>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    (0..threads)
        .map(|t| {
            let make = make.clone();
            std::thread::spawn(move || {
                let local = tokio::task::LocalSet::new();
                runtime().block_on(local.run_until(async move {
                    let tasks: Vec<_> = (0..n)
                        .filter(|i| i % threads == t)
                        .map(|i| tokio::task::spawn_local(make(i)))
                        .collect();
                    for task in tasks {
                        let _ = task.await;
                    }
                }));
            })
        })
        .collect()
}

fn run_handshake(c: Common, concurrency: usize) {
    raise_fd_limit();
    let addr = server_addr(&c.url);
    let token = runtime().block_on(post_token(addr, &c.key));
    let run = timed_run(&c, concurrency, move |w, k| {
        handshake_worker(w, addr, token.clone(), k.done, k.errors, k.stop)
    });
    let (n, secs) = (run.done, run.seconds);
    let mut line = format!(
        "mode=handshake concurrency={concurrency} duration_s={secs:.2} handshakes={n} handshakes_per_s={:.0} errors={}",
        n as f64 / secs,
        run.errors
    );
    line.push_str(&run.per_server_cpu("handshakes"));
    println!("{line}");
}

fn run_churn(c: Common, cycles: usize, concurrency: usize) {
    raise_fd_limit();
    let addr = server_addr(&c.url);
    let token = runtime().block_on(post_token(addr, &c.key));
    let before = c.server_pid.and_then(proc_sample);
    let started = Instant::now();
    let failed = runtime().block_on(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let failed = Arc::new(AtomicU64::new(0));
                let next = Arc::new(AtomicU64::new(0));
                let workers: Vec<_> = (0..concurrency)
                    .map(|w| {
                        let (token, failed, next) = (token.clone(), failed.clone(), next.clone());
                        tokio::task::spawn_local(async move {
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                                if i >= cycles {
                                    return;
                                }
                                let source = Ipv4Addr::new(
                                    127,
                                    2,
                                    ((w + i) / 250 % 250) as u8,
                                    ((w + i) % 250 + 2) as u8,
                                );
                                match open_ws(addr, source, &token).await {
                                    Ok((mut s, mut buf)) => {
                                        // Wait for the snapshot (welcome + ticker), then leave.
                                        let mut chunk = [0u8; 4096];
                                        while !buf.windows(8).any(|w| w == b"\"ticker\"") {
                                            match s.read(&mut chunk).await {
                                                Ok(0) | Err(_) => break,
                                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                            }
                                        }
                                        if i.is_multiple_of(2) {
                                            let _ = s.write_all(&[0x88, 0x80, 1, 2, 3, 4]).await;
                                        }
                                    }
                                    Err(_) => {
                                        failed.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    let _ = w.await;
                }
                failed.load(Ordering::Relaxed)
            })
            .await
    });
    let secs = started.elapsed().as_secs_f64();
    // Let the server finish its cleanup before sampling.
    std::thread::sleep(Duration::from_secs(2));
    let after = c.server_pid.and_then(proc_sample);
    let mut line = format!(
        "mode=churn cycles={cycles} failed={failed} seconds={secs:.2} cycles_per_s={:.0}",
        cycles as f64 / secs
    );
    if let (Some((_, rss0)), Some((_, rss1))) = (before, after) {
        line.push_str(&format!(" rss_before_kib={rss0} rss_after_kib={rss1}"));
    }
    println!("{line}");
}

fn run_watch(c: Common) {
    let addr = server_addr(&c.url);
    let line = runtime().block_on(async {
        let token = post_token(addr, &c.key).await;
        let (mut s, mut buf) = open_ws(addr, Ipv4Addr::LOCALHOST, &token)
            .await
            .expect("connect");
        let until = Instant::now() + Duration::from_secs(c.duration);
        let (mut ticks, mut gaps, mut resets) = (0u64, 0u64, 0u64);
        let mut last: Option<(u64, Instant)> = None;
        let (mut longest, mut longest_after) = (Duration::ZERO, 0u64);
        let mut chunk = vec![0u8; 16 * 1024];
        while Instant::now() < until {
            let mut i = 0;
            while let Some((opcode, h, len)) = next_frame(&buf[i..]) {
                let payload = &buf[i + h..i + h + len];
                if opcode == 1 && payload.windows(16).any(|w| w == b"\"type\":\"reset\"") {
                    resets += 1;
                } else if opcode == 1
                    && is_tick(payload)
                    && let Some(seq) = number_after(payload, b"\"seq\":")
                {
                    let now = Instant::now();
                    if let Some((prev, at)) = last {
                        gaps += seq.saturating_sub(prev + 1);
                        if now - at > longest {
                            (longest, longest_after) = (now - at, prev);
                        }
                    }
                    last = Some((seq, now));
                    ticks += 1;
                }
                i += h + len;
            }
            buf.drain(..i);
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                Ok(_) => break,
                Err(_) => {}
            }
        }
        format!(
            "mode=watch ticks={ticks} gaps={gaps} resets={resets} longest_pause_ms={} pause_after_seq={longest_after} last_seq={}",
            longest.as_millis(),
            last.map_or(0, |(s, _)| s)
        )
    });
    println!("{line}");
}

/// A ticker frame as rippy sends it: a text frame of 240 bytes in all.
fn tick_frame(seq: u64, sent_at_ms: u64) -> Vec<u8> {
    const SIZE: usize = 240;
    let mut json = format!(r#"{{"type":"ticker","seq":{seq},"sent_at_ms":{sent_at_ms},"data":""#);
    let pad = (SIZE - 4).saturating_sub(json.len() + 2);
    json.extend(std::iter::repeat_n('x', pad));
    json.push_str("\"}");
    let mut frame = vec![0x81, 126];
    frame.extend_from_slice(&(json.len() as u16).to_be_bytes());
    frame.extend_from_slice(json.as_bytes());
    frame
}

/// The bare fan-out server: accepts `clients` connections, then every
/// `tick` each of `senders` threads writes the tick's frame to its share of
/// them, one write each. A full socket's frame is dropped (the client sees
/// a gap); one that is closed, or takes only part of a frame, is dropped
/// from its thread's list (and so closed).
fn run_broadcast(listen: SocketAddr, clients: usize, tick: Duration, senders: usize) {
    raise_fd_limit();
    let listener = std::net::TcpListener::bind(listen).expect("bind --listen");
    eprintln!("broadcast: listening on {listen}");
    // std listens with a backlog of 128; thousands connect at once.
    // SAFETY: listen on a descriptor this listener owns.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::listen(listener.as_raw_fd(), 4096);
    }
    let senders = senders.max(1);
    let mut shares: Vec<Vec<std::net::TcpStream>> = (0..senders).map(|_| Vec::new()).collect();
    for i in 0..clients {
        let (s, _) = listener.accept().expect("accept");
        let _ = s.set_nodelay(true);
        s.set_nonblocking(true).expect("nonblocking");
        shares[i % senders].push(s);
    }
    eprintln!("broadcast: {clients} connected, ticking every {tick:?}");
    let start = Instant::now();
    let first_seq = now_ms() / tick.as_millis().max(1) as u64;
    let threads: Vec<_> = shares
        .into_iter()
        .map(|mut share| {
            std::thread::spawn(move || {
                use std::io::Write;
                for k in 1u64.. {
                    let at = start + tick * k as u32;
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let frame = tick_frame(first_seq + k, now_ms());
                    share.retain_mut(|s| match s.write(&frame) {
                        Ok(n) => n == frame.len(),
                        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                    });
                    if share.is_empty() {
                        return;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn main() {
    match Cli::parse().mode {
        Mode::Watch { common } => run_watch(common),
        Mode::Churn {
            common,
            cycles,
            concurrency,
        } => run_churn(common, cycles, concurrency),
        Mode::Ws {
            common,
            clients,
            connect_concurrency,
            warmup,
            raw,
        } => run_ws(common, clients, connect_concurrency, warmup, raw),
        Mode::Broadcast {
            listen,
            clients,
            tick_ms,
            senders,
        } => run_broadcast(
            listen,
            clients,
            Duration::from_millis(tick_ms.max(1)),
            senders,
        ),
        Mode::Proxy {
            listen,
            upstream,
            workers,
            prefix,
        } => proxy::run(listen, upstream, workers, prefix),
        Mode::Token {
            common,
            connections,
            path,
        } => run_token(common, connections, path),
        Mode::Handshake {
            common,
            concurrency,
        } => run_handshake(common, concurrency),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_tick_frame_reads_as_rippys_do() {
        let frame = tick_frame(42, 1_700_000_000_123);
        assert_eq!(frame.len(), 240);
        let (opcode, h, len) = next_frame(&frame).unwrap();
        assert_eq!((opcode, h + len), (1, frame.len()));
        let payload = &frame[h..];
        assert!(is_tick(payload));
        assert_eq!(number_after(payload, b"\"seq\":"), Some(42));
        assert_eq!(
            number_after(payload, b"\"sent_at_ms\":"),
            Some(1_700_000_000_123)
        );
        let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(json["type"], "ticker");
    }
}
