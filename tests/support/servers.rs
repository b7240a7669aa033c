//! Real Redis, PostgreSQL and haproxy servers for the scale-out tests, each
//! started on a free loopback port in a temp dir and stopped on drop.
//!
//! A server whose program is missing is skipped with a `SKIPPED` line that
//! says how to enable it; under `CI=true` (where `.ci/run` installs them) a
//! missing program fails the test instead.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW: &str = "apt-get install redis-server postgresql haproxy (or run .ci/run)";

/// The program `name` on PATH or in `extra` folders.
fn find(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `name`'s path, or `None` after saying the test `test` is skipped (a
/// failure under CI).
pub fn require(test: &str, name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = find(name, extra) {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run under CI: {name} is missing");
    }
    eprintln!("SKIPPED {test}: {name} is missing; to enable: {HOW}");
    None
}

/// A free loopback port for a server that binds it a moment later (a
/// PostgreSQL after its initdb, a node after its boot). Taken below the
/// kernel's ephemeral range (32768 and up here), where no outgoing
/// connection or `bind(0)` can take it meanwhile; each call in this process
/// starts from a different point, and a port that is busy is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000; // up to 31,999
    let base = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = (LOW + (base + n * 37) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `port` accepts connections (the server's own readiness).
pub fn wait_port(what: &str, port: u16) {
    let deadline = Instant::now() + super::TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A `redis-server` with no persistence: a restart starts it empty.
pub struct Redis {
    bin: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start(test: &str) -> Option<Redis> {
        let bin = require(test, "redis-server", &[])?;
        let mut redis = Redis {
            bin,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.up();
        Some(redis)
    }

    fn up(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_port("redis", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: everything it held is lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c);
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.up();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster in a temp dir, as the `postgres` user when this
/// runs as root (PostgreSQL refuses root); superuser `rippy`, trust auth on
/// loopback only.
pub struct Postgres {
    bin: PathBuf,
    pub port: u16,
    dir: PathBuf,
    as_postgres: bool,
    running: bool,
}

fn pg_bins() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

impl Postgres {
    pub fn start(test: &str) -> Option<Postgres> {
        let initdb = require(test, "initdb", &pg_bins())?;
        let bin = initdb.parent().expect("bin dir").to_path_buf();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir =
            std::env::temp_dir().join(format!("rippy-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {dir:?}");
        }
        let pg = Postgres {
            bin,
            port: free_port(),
            dir,
            as_postgres,
            running: false,
        };
        let out = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "rippy", "--no-sync", "-D"])
            .arg(pg.dir.join("data"))
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = pg;
        pg.up();
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn up(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
        self.running = true;
    }

    pub fn url(&self) -> String {
        format!("postgres://rippy@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`-m immediate`).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.running = false;
    }

    /// The folder it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// haproxy in front of `backends`, round robin, WebSockets tunnelled.
pub struct Haproxy {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    pub fn start(test: &str, backends: &[u16]) -> Option<Haproxy> {
        let bin = require(test, "haproxy", &[PathBuf::from("/usr/sbin")])?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cfg = format!(
            "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  timeout tunnel 1h\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\
             backend nodes\n  balance roundrobin\n  option redispatch\n  retries 2\n"
        );
        for (i, b) in backends.iter().enumerate() {
            cfg.push_str(&format!(
                "  server n{i} 127.0.0.1:{b} check inter 200ms fall 1 rise 1\n"
            ));
        }
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, cfg).expect("haproxy.cfg");
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        wait_port("haproxy", port);
        Some(Haproxy {
            port,
            child,
            _dir: dir,
        })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
