//! The real binary: `rippy run` logs and files, `rippy keys`, and shutdown
//! on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use awc::ws::Message;

use super::support::binary::Rippy;
use super::support::{Edition, TIMEOUT, actors, manifest_text, repo, within};
use super::{Ws, token_for};

/// Writes the application manifest into `dir` with its data there and a free port.
pub fn write_manifest(dir: &Path) -> PathBuf {
    write_manifest_for(Edition::Rust, dir)
}

/// Writes `edition`'s manifest into `dir` with its data there, a free port,
/// and the paths that were relative to its folder made absolute.
pub fn write_manifest_for(edition: Edition, dir: &Path) -> PathBuf {
    let public = repo().join("public").display().to_string();
    let text = match edition {
        Edition::Rust => manifest_text(edition, dir).replace("./public", &public),
        Edition::Lua => manifest_text(edition, dir)
            .replace("../../public", &public)
            .replace(
                "source: file://",
                &format!("source: file://{}/", edition.dir().display()),
            ),
    };
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `rippy run`.
pub struct Server {
    pub rippy: Rippy,
    pub base: String,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, |text| text, None)
    }

    /// Starts `edition` with its data in `dir`.
    pub fn start_edition(edition: Edition, dir: &Path) -> Server {
        Self::start_edition_with(edition, dir, |text| text, None)
    }

    /// Starts after `edit` changed the manifest text, with at most
    /// `max_files` open descriptors (soft and hard) if given.
    pub fn start_with(
        dir: &Path,
        edit: impl FnOnce(String) -> String,
        max_files: Option<u64>,
    ) -> Server {
        Self::start_edition_with(Edition::Rust, dir, edit, max_files)
    }

    fn start_edition_with(
        edition: Edition,
        dir: &Path,
        edit: impl FnOnce(String) -> String,
        max_files: Option<u64>,
    ) -> Server {
        let manifest = write_manifest_for(edition, dir);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, edit(text)).unwrap();
        let mut command = match max_files {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_rippy"));
                c
            }
            None => Rippy::command(),
        };
        command
            .arg("run")
            .arg(&manifest)
            .env("RUST_LOG", "info")
            .env_remove("RIPPY_TOKEN_KEY");
        let rippy = Rippy::spawn(command);
        let mut server = Server {
            rippy,
            base: String::new(),
        };
        let listening = server.wait_for("http server listening");
        let addr = listening
            .split("addr=")
            .nth(1)
            .expect("addr in log")
            .trim()
            .to_owned();
        server.base = addr;
        server.wait_for("rippy started");
        server.wait_for("migrations applied");
        server
    }

    /// The demo key from its creation line (first start only).
    pub fn demo_key(&mut self) -> String {
        let line = self.wait_for("demo API key created");
        line.split("api_key=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("")
            .to_owned()
    }

    /// The ticker's WebSocket URL on this server for `token`.
    pub fn ws_url(&self, token: &str) -> String {
        format!(
            "{}/ws/ticker?x-auth-token={token}",
            self.base.replace("http://", "ws://")
        )
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.rippy.wait_for(needle)
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the time it took.
    pub fn terminate(self) -> (Option<i32>, Duration, Vec<String>) {
        self.rippy.terminate()
    }
}

/// The Lua migration cannot write files: its demo key is in the log of the
/// first start only, and it works; later starts find it and do not log it.
#[actix_web::test]
async fn the_lua_migration_logs_a_working_demo_key_once() {
    if Edition::Lua.skip("cli::the_lua_migration_logs_a_working_demo_key_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_edition(Edition::Lua, dir.path());
    let key = server.demo_key();
    assert!(actors::api_keys::is_well_formed(&key), "{key}");
    assert!(!dir.path().join("demo.key").exists());
    token_for(&server.base, &key).await;
    let (code, _, _) = server.terminate();
    assert_eq!(code, Some(0));

    let mut again = Server::start_edition(Edition::Lua, dir.path());
    again.wait_for("demo API key exists");
    token_for(&again.base, &key).await;
    let (code, _, log) = again.terminate();
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.contains(&key)),
        "the key was logged again"
    );
}

fn rippy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rippy"))
        .args(args)
        .output()
        .unwrap()
}

#[actix_web::test]
async fn the_first_start_logs_the_demo_key_once_and_writes_it_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let line = server.wait_for("demo API key created");
    let key = line.split("api_key=").nth(1).unwrap().trim().to_owned();
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{key}"
    );
    let file = dir.path().join("demo.key");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    token_for(&server.base, &key).await;
    let (code, _, _) = server.terminate();
    assert_eq!(code, Some(0));

    let mut again = Server::start(dir.path());
    let exists = again.wait_for("demo API key exists");
    assert!(exists.contains("demo.key"), "{exists}");
    let (code, _, log) = again.terminate();
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.contains(&key)),
        "the key was logged again"
    );
}

#[actix_web::test]
async fn sigterm_closes_open_sockets_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let key = server.demo_key();
    let token = token_for(&server.base, &key).await;
    let ws_url = server.ws_url(&token);
    let mut sockets = Vec::new();
    // The full 1,000 live in scripts/bench.sh; the code path is the same.
    for _ in 0..4 {
        let batch = futures_util::future::join_all((0..50).map(|_| Ws::try_connect(&ws_url))).await;
        for ws in batch {
            let mut ws = ws.expect("upgrade");
            ws.next_of("ticker").await;
            sockets.push(ws);
        }
    }
    let pid = server.rippy.pid() as i32;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    for ws in sockets.iter_mut() {
        assert_eq!(ws.close_code().await, Some(1001));
    }
    let (code, elapsed, log) = server.terminate();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(log.iter().any(|l| l.contains("shutdown complete")));
}

#[actix_web::test]
async fn keys_create_list_and_revoke_manage_working_keys() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path());
    let m = manifest.to_str().unwrap();
    let out = rippy(&[
        "keys",
        "create",
        "--user",
        "alice",
        "--role",
        "admin",
        "--manifest",
        m,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("rk_") && key.len() == 43, "{key}");

    let mut server = Server::start(dir.path());
    server.wait_for("demo API key created");
    let mut res = awc::Client::new()
        .post(format!("{}/auth/token", server.base))
        .send_json(&serde_json::json!({ "api_key": key }))
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (body["user_id"].as_str(), body["role"].as_str()),
        (Some("alice"), Some("admin"))
    );

    let list = rippy(&["keys", "list", "--manifest", m]);
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(!text.contains(&key), "list shows a key");
    let alice = text
        .lines()
        .find(|l| l.contains("alice"))
        .expect("alice listed");
    let id = alice.split_whitespace().next().unwrap().to_owned();
    assert!(alice.contains("active"));
    // A socket opened with a token of the key: the server now remembers the
    // key as active.
    let token = token_for(&server.base, &key).await;
    let ws_url = server.ws_url(&token);
    assert!(Ws::try_connect(&ws_url).await.is_ok(), "the socket opens");

    let revoke = rippy(&["keys", "revoke", &id, "--manifest", m]);
    assert!(revoke.status.success());
    let revoked_at = Instant::now();
    // Revoked by another process: the server's next handshakes with the
    // token are refused within the recheck bound, and never one begun later.
    within("the revoked key's token refused", async {
        loop {
            let begun = revoked_at.elapsed();
            match Ws::try_connect(&ws_url).await {
                Err(status) => break assert_eq!(status, 401),
                Ok(_) => assert!(
                    begun < actors::api_keys::RECHECK_AFTER,
                    "a handshake begun {begun:?} after the revocation passed"
                ),
            }
        }
    })
    .await;
    let res = awc::Client::new()
        .post(format!("{}/auth/token", server.base))
        .send_json(&serde_json::json!({ "api_key": key }))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let again = rippy(&["keys", "revoke", &id, "--manifest", m]);
    assert_eq!(again.status.code(), Some(1));
    let (code, _, _) = server.terminate();
    assert_eq!(code, Some(0));
    let _ = Message::Close(None);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn metric_value(base: &str, name: &str) -> f64 {
    let mut res = awc::Client::new()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{text}"))
}

async fn churn(server: &Server, token: &str, cycles: usize) {
    let url = server.ws_url(token);
    for round in 0..cycles / 50 {
        let batch = futures_util::future::join_all((0..50).map(|_| Ws::try_connect(&url))).await;
        for (i, ws) in batch.into_iter().enumerate() {
            let mut ws = ws.expect("upgrade");
            ws.next_of("ticker").await;
            if (round + i) % 2 == 0 {
                ws.send(Message::Close(None)).await;
            }
            // Dropping without a close frame just cuts the TCP connection.
        }
    }
}

#[actix_web::test]
async fn connection_churn_leaves_no_process_connection_or_subscriber_and_no_growth() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let key = server.demo_key();
    let token = token_for(&server.base, &key).await;
    let pid = server.rippy.pid();
    let settle = |base: String| async move {
        for name in [
            "rippy_processes{entry=\"app:ws_handler\"}",
            "rippy_ws_connections",
            "rippy_ticker_subscribers",
        ] {
            let deadline = std::time::Instant::now() + TIMEOUT;
            while metric_value(&base, name).await != 0.0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name} stayed above 0"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Warm up allocators and pools, then measure (the full 10,000 live in scripts/bench.sh).
    churn(&server, &token, 500).await;
    settle(server.base.clone()).await;
    let before = rss_kib(pid);
    churn(&server, &token, 1000).await;
    settle(server.base.clone()).await;
    let after = rss_kib(pid);
    assert!(
        after as f64 <= before as f64 * 1.10,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let (code, _, _) = server.terminate();
    assert_eq!(code, Some(0));
}

#[actix_web::test]
async fn the_logs_of_a_whole_session_carry_no_token_and_no_key_after_creation() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path());
    let m = manifest.to_str().unwrap();
    let out = rippy(&["keys", "create", "--user", "carol", "--manifest", m]);
    let carol = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut server = Server::start(dir.path());
    let demo = server.demo_key();
    let token = token_for(&server.base, &carol).await;
    let ws_url = server.ws_url(&token);
    let mut ws = Ws::try_connect(&ws_url).await.expect("upgrade");
    ws.next_of("ticker").await;
    ws.ping_pong().await;
    let _ = Ws::try_connect(&format!("{ws_url}00")).await;
    let _ = awc::Client::new()
        .post(format!("{}/auth/token", server.base))
        .send_json(&serde_json::json!({ "api_key": format!("{carol}x") }))
        .await;
    drop(ws);
    let (code, _, log) = server.terminate();
    assert_eq!(code, Some(0));
    let all = log.join("\n");
    assert!(!all.contains(&token), "a token was logged");
    assert!(!all.contains(&token[..64]), "part of a token was logged");
    assert!(!all.contains(&carol), "an API key was logged");
    let demo_lines = log.iter().filter(|l| l.contains(&demo)).count();
    assert_eq!(
        demo_lines, 1,
        "the demo key appears only in its creation line"
    );
}

#[actix_web::test]
async fn sigkill_while_keys_are_created_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path());
    let m = manifest.to_str().unwrap().to_owned();
    let mut children = Vec::new();
    for i in 0..24 {
        let child = Command::new(env!("CARGO_BIN_EXE_rippy"))
            .args([
                "keys",
                "create",
                "--user",
                &format!("u{i}"),
                "--manifest",
                &m,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
    }
    // Kill every other one at once, wherever it is.
    for (i, child) in children.iter().enumerate() {
        if i % 2 == 1 {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
        }
    }
    let mut created = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            created.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
        }
    }
    assert!(
        created.len() >= 12,
        "only {} creations finished",
        created.len()
    );
    let config: rippy::sql::SqliteConfig =
        serde_yaml::from_str(&format!("file: {}", dir.path().join("auth.db").display())).unwrap();
    let db = rippy::sql::SqliteDb::open("t:db", &dir.path().join("auth.db"), &config).unwrap();
    let check: String = db
        .call(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(check, "ok");
    for key in &created {
        let k = key.clone();
        let owner = db
            .with(move |c| super::support::actors::api_keys::lookup(c, &k))
            .unwrap();
        assert!(owner.is_some(), "a reported key is missing");
    }
}

#[test]
fn an_inline_token_key_is_refused_unless_the_run_is_declared_local() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path());
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "    token_key_env: RIPPY_TOKEN_KEY\n",
        "    token_key: \"change-me-please-0123456789\"\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rippy"))
        .args(["run", manifest.to_str().unwrap()])
        .env_remove("RIPPY_DEV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entry app:tokens") && stderr.contains("--dev"),
        "{stderr}"
    );
}
