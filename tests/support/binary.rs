//! The `rippy` binary run by a test: its stderr read line by line as it
//! comes, every wait bounded by [`TIMEOUT`], and the process killed if the
//! test ends (or fails) before it does.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// A running `rippy` process.
pub struct Rippy {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub log: Vec<String>,
}

impl Rippy {
    /// The binary, for [`Rippy::spawn`].
    pub fn command() -> Command {
        Command::new(env!("CARGO_BIN_EXE_rippy"))
    }

    /// Runs `command` (the binary, or a shell that execs it), its stderr a
    /// pipe the test reads and its stdout going nowhere.
    pub fn spawn(mut command: Command) -> Rippy {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn rippy");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Rippy {
            child,
            lines,
            log: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Sends SIGTERM and waits for the exit; returns the exit code, the
    /// time it took, and the whole log (read to the end of stderr).
    pub fn terminate(mut self) -> (Option<i32>, Duration, Vec<String>) {
        let started = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        // std has no wait with a deadline: the exit is polled.
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                panic!(
                    "rippy did not exit after SIGTERM; log so far:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = started.elapsed();
        // The reader ends at the end of stderr, which the exit closed.
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.log.push(line);
        }
        (status.code(), elapsed, std::mem::take(&mut self.log))
    }
}

impl Drop for Rippy {
    /// A test that fails midway leaves no process behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
