//! The real binary: `rippy run` logs and files, `rippy keys`, and shutdown
//! on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use awc::ws::Message;

use super::support::{TIMEOUT, app_manifest_text, repo};
use super::{Ws, token_for};

/// Writes the application manifest into `dir` with its data there and a free port.
pub fn write_manifest(dir: &Path) -> PathBuf {
    let text =
        app_manifest_text(dir).replace("./public", &repo().join("public").display().to_string());
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `rippy run`.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
    pub base: String,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let manifest = write_manifest(dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_rippy"))
            .arg("run")
            .arg(&manifest)
            .env("RUST_LOG", "info")
            .env_remove("RIPPY_TOKEN_KEY")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn rippy");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            log: Vec::new(),
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

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the time it took.
    pub fn terminate(mut self) -> (Option<i32>, Duration, Vec<String>) {
        let started = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("rippy did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = started.elapsed();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            self.log.push(line);
        }
        (status.code(), elapsed, self.log)
    }
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
    let key = server
        .wait_for("demo API key created")
        .split("api_key=")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let token = token_for(&server.base, &key).await;
    let ws_url = format!(
        "{}/ws/ticker?x-auth-token={token}",
        server.base.replace("http://", "ws://")
    );
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut ws = Ws::try_connect(&ws_url).await.expect("upgrade");
        ws.next_of("ticker").await;
        sockets.push(ws);
    }
    let pid = server.child.id() as i32;
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

    let revoke = rippy(&["keys", "revoke", &id, "--manifest", m]);
    assert!(revoke.status.success());
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
