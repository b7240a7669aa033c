//! Log output. `env_logger`'s filter (`RUST_LOG`, default `info`) picks the
//! records. On a terminal `env_logger` writes each line as it comes, in
//! colour. Anywhere else (a file, a pipe, a collector) lines are formatted
//! here, as `env_logger` formats them without colour
//! (`[2026-12-02T04:21:56Z INFO  target] message`), and lines at `info` and
//! below are gathered and written together by one thread, [`LINGER`] after
//! the first of them: under load that is one `write` for hundreds of lines,
//! where a `write` (and a colour-stripping pass) per gateway access-log line
//! cost a tenth of the gateway's CPU. A warning or an error is written at
//! once, after whatever was gathered before it, so the order of lines always
//! holds and a failure is on stderr before the program can die of it.
//! `info_line` writes a hot path's line (the gateway's access lines)
//! straight into the gathered output, or not at all when the filter leaves
//! it out. [`flush`] writes what is waiting; the runtime calls it before it returns
//! its exit code. A process killed outright loses at most the last
//! [`LINGER`] of `info` lines.

use std::cell::Cell;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use log::{Level, Log, Metadata, Record};

/// How long the first gathered line waits for others to join it.
pub const LINGER: Duration = Duration::from_millis(10);

/// Gathered lines past this many bytes are written at once.
const HIGH_WATER: usize = 256 * 1024;

/// Set when no writer thread could start: every line is written at once.
static WRITE_THROUGH: AtomicBool = AtomicBool::new(false);

/// Where gathered lines wait, and the output they go to.
struct Sink {
    pending: Mutex<Vec<u8>>,
    /// Taken (before `pending`) by whoever writes, so batches leave in
    /// order; with the buffer the last batch left in, swapped in for
    /// `pending` so that neither is grown again batch after batch.
    out: Mutex<(Box<dyn Write + Send>, Vec<u8>)>,
    wake: Condvar,
}

impl Sink {
    fn new(out: Box<dyn Write + Send>) -> Arc<Sink> {
        Arc::new(Sink {
            pending: Mutex::new(Vec::new()),
            out: Mutex::new((out, Vec::new())),
            wake: Condvar::new(),
        })
    }

    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one whole line; `urgent` writes it (and all before it) now.
    fn push(&self, line: &[u8], urgent: bool) {
        let mut pending = self.pending();
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        let full = pending.len() >= HIGH_WATER;
        drop(pending);
        if urgent || full || WRITE_THROUGH.load(Ordering::Relaxed) {
            self.write_out();
        } else if first {
            self.wake.notify_one();
        }
    }

    /// Writes everything gathered so far.
    fn write_out(&self) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let (out, batch) = &mut *out;
        batch.clear();
        std::mem::swap(batch, &mut *self.pending());
        if !batch.is_empty() {
            // Nowhere to report a failing stderr.
            let _ = out.write_all(batch);
            let _ = out.flush();
        }
    }

    /// The writer thread: waits for a first line, lets others join it for
    /// [`LINGER`], writes them all.
    fn run(&self) {
        loop {
            let mut pending = self.pending();
            while pending.is_empty() {
                pending = self
                    .wake
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            drop(pending);
            std::thread::sleep(LINGER);
            self.write_out();
        }
    }
}

/// `[<UTC second> <LEVEL> <target>] <message>` into `line`.
fn format_line(line: &mut Vec<u8>, record: &Record<'_>) {
    put_prefix(line, record.level(), record.target());
    match record.args().as_str() {
        Some(message) => line.extend_from_slice(message.as_bytes()),
        None => {
            // A `Display` that fails leaves what it wrote, as env_logger does.
            let _ = fmt::Write::write_fmt(&mut Utf8(line), *record.args());
        }
    }
    line.push(b'\n');
}

/// Formatted text into a byte line (`io::Write::write_fmt` would panic on a
/// `Display` that returns an error the writer did not).
struct Utf8<'a>(&'a mut Vec<u8>);

impl fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What `"[{second} {level:<5} {target}] "` writes, piece by piece, the
/// second's text formatted once per second per thread.
fn put_prefix(line: &mut Vec<u8>, level: Level, target: &str) {
    line.push(b'[');
    crate::util::with_second(crate::util::unix_secs(), |text| {
        line.extend_from_slice(text.as_bytes());
    });
    line.push(b'Z');
    line.push(b' ');
    line.extend_from_slice(match level {
        Level::Error => b"ERROR",
        Level::Warn => b"WARN ",
        Level::Info => b"INFO ",
        Level::Debug => b"DEBUG",
        Level::Trace => b"TRACE",
    });
    line.push(b' ');
    line.extend_from_slice(target.as_bytes());
    line.extend_from_slice(b"] ");
}

/// One `info` line of `target` whose message `message` writes (as UTF-8),
/// and nothing at all when the filter leaves `target`'s `info` lines out
/// (`RUST_LOG=info,access=off`): no message is written for a line nobody
/// reads. Behind the gathering output the message goes straight into the
/// line, with no `format_args!` and no copy; on a terminal, or behind
/// another logger, through `log`.
pub(crate) fn info_line(target: &str, message: impl FnOnce(&mut Vec<u8>)) {
    if !log::log_enabled!(target: target, Level::Info) {
        return;
    }
    thread_local! {
        static MESSAGE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }
    crate::util::with_scratch(&MESSAGE, |line| {
        line.clear();
        let Some(logger) = LOGGER.get() else {
            message(line);
            log::info!(target: target, "{}", String::from_utf8_lossy(line));
            return;
        };
        put_prefix(line, Level::Info, target);
        let start = line.len();
        message(line);
        debug_assert!(std::str::from_utf8(&line[start..]).is_ok());
        // The filter once more, with the message, when it filters messages.
        let matches = !logger.filters_messages
            || logger.filter.matches(
                &Record::builder()
                    .level(Level::Info)
                    .target(target)
                    .args(format_args!("{}", String::from_utf8_lossy(&line[start..])))
                    .build(),
            );
        if matches {
            line.push(b'\n');
            logger.sink.push(line, false);
        }
    });
}

/// `env_logger`'s filter in front of the gathering output.
struct Logger {
    filter: env_logger::Logger,
    /// Whether the filter also looks at messages: a `/` in `RUST_LOG`
    /// (`info/regex`) is where its message pattern starts.
    filters_messages: bool,
    sink: Arc<Sink>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        thread_local! {
            static LINE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
        }
        let urgent = record.level() <= Level::Warn;
        // A message whose formatting logs gets a line of its own.
        crate::util::with_scratch(&LINE, |line| {
            line.clear();
            format_line(line, record);
            self.sink.push(line, urgent);
        });
    }

    fn flush(&self) {
        self.sink.write_out();
    }
}

/// The logger [`init`] installed, for [`info_line`] and [`flush`].
static LOGGER: OnceLock<Arc<Logger>> = OnceLock::new();

/// Installs the logger unless one is already installed.
pub(crate) fn init() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if io::stderr().is_terminal() {
        builder.try_init().ok();
        return;
    }
    let filter = builder.build();
    let max_level = filter.filter();
    let sink = Sink::new(Box::new(io::stderr()));
    let logger = Arc::new(Logger {
        filter,
        filters_messages: std::env::var(env_logger::DEFAULT_FILTER_ENV)
            .is_ok_and(|spec| spec.contains('/')),
        sink: sink.clone(),
    });
    if log::set_boxed_logger(Box::new(logger.clone())).is_err() {
        return;
    }
    log::set_max_level(max_level);
    let writer = sink.clone();
    let started = std::thread::Builder::new()
        .name("rippy-log".into())
        .spawn(move || writer.run());
    if started.is_err() {
        WRITE_THROUGH.store(true, Ordering::Relaxed);
        log::warn!("no log writer thread, writing each line at once");
    }
    let _ = LOGGER.set(logger);
}

/// Writes the log lines still waiting (a no-op on a terminal).
pub fn flush() {
    if let Some(logger) = LOGGER.get() {
        logger.sink.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test reads back, telling `written` of each write.
    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>, std::sync::mpsc::Sender<()>);

    impl Shared {
        /// A sink writing to a new `Shared`, and the receiver its writes
        /// are told to.
        fn sink() -> (Arc<Sink>, Shared, std::sync::mpsc::Receiver<()>) {
            let (tx, rx) = std::sync::mpsc::channel();
            let out = Shared(Arc::default(), tx);
            (Sink::new(Box::new(out.clone())), out, rx)
        }

        fn text(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            let _ = self.1.send(());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn info_lines_wait_and_a_warning_takes_them_out_first_in_order() {
        let (sink, out, _written) = Shared::sink();
        sink.push(b"a\n", false);
        sink.push(b"b\n", false);
        assert!(out.text().is_empty(), "info lines are gathered");
        sink.push(b"w\n", true);
        assert_eq!(out.text(), b"a\nb\nw\n");
        sink.push(b"c\n", false);
        sink.write_out();
        assert_eq!(out.text(), b"a\nb\nw\nc\n");
        assert!(sink.pending().is_empty());
    }

    #[test]
    fn gathered_lines_past_the_high_water_mark_go_at_once() {
        let (sink, out, _written) = Shared::sink();
        sink.push("x".repeat(HIGH_WATER).as_bytes(), false);
        assert_eq!(out.text().len(), HIGH_WATER);
    }

    #[test]
    fn the_writer_thread_writes_what_was_gathered_in_one_write() {
        let (sink, out, written) = Shared::sink();
        // Gathered before the thread starts: they leave in one write.
        sink.push(b"a\n", false);
        sink.push(b"b\n", false);
        let writer = sink.clone();
        std::thread::spawn(move || writer.run());
        written
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer thread writes");
        assert_eq!(out.text(), b"a\nb\n");
    }

    #[test]
    fn lines_read_as_env_logger_writes_them() {
        let mut line = Vec::new();
        format_line(
            &mut line,
            &Record::builder()
                .level(Level::Info)
                .target("access")
                .args(format_args!("{{\"status\":200}}"))
                .build(),
        );
        let status = 404;
        format_line(
            &mut line,
            &Record::builder()
                .level(Level::Warn)
                .target("rippy::x")
                .args(format_args!("status={status}"))
                .build(),
        );
        let text = String::from_utf8(line).unwrap();
        let (first, second) = text.split_once('\n').unwrap();
        let (stamp, rest) = first.split_once(' ').unwrap();
        assert_eq!(rest, "INFO  access] {\"status\":200}");
        assert_eq!(
            second.split_once(' ').unwrap().1,
            "WARN  rippy::x] status=404\n"
        );
        assert!(
            stamp.starts_with("[20") && stamp.ends_with('Z') && stamp.len() == 21,
            "{stamp}"
        );
    }
}
