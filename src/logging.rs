//! Log output. `env_logger` (`RUST_LOG`) filters and formats each record.
//! On a terminal every line is written as it comes. Anywhere else (a file,
//! a pipe, a collector) lines at `info` and below are gathered and written
//! together by one thread, [`LINGER`] after the first of them: under load
//! that is one `write` for hundreds of lines, where a `write` per gateway
//! access-log line cost a tenth of the gateway's CPU. A warning or an error
//! is written at once, after whatever was gathered before it, so the order of
//! lines always holds and a failure is on stderr before the program can die
//! of it. [`flush`] writes what is waiting; the runtime calls it before it
//! returns its exit code. A process killed outright loses at most the last
//! [`LINGER`] of `info` lines.

use std::cell::Cell;
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

thread_local! {
    /// Whether the record being written on this thread is a warning or worse.
    static URGENT: Cell<bool> = const { Cell::new(false) };
}

/// Where gathered lines wait, and the output they go to.
struct Sink {
    pending: Mutex<Vec<u8>>,
    /// Taken (before `pending`) by whoever writes, so batches leave in order.
    out: Mutex<Box<dyn Write + Send>>,
    wake: Condvar,
}

impl Sink {
    fn new(out: Box<dyn Write + Send>) -> Arc<Sink> {
        Arc::new(Sink {
            pending: Mutex::new(Vec::new()),
            out: Mutex::new(out),
            wake: Condvar::new(),
        })
    }

    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes everything gathered so far.
    fn write_out(&self) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut *self.pending());
        if !batch.is_empty() {
            // Nowhere to report a failing stderr.
            let _ = out.write_all(&batch);
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

/// `env_logger`'s output: it writes each formatted record whole, then
/// flushes, under its own lock.
struct Gather {
    sink: Arc<Sink>,
    /// Whether the record being written is the first one waiting.
    first: bool,
}

impl Write for Gather {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pending = self.sink.pending();
        self.first |= pending.is_empty();
        pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let first = std::mem::take(&mut self.first);
        if URGENT.get()
            || WRITE_THROUGH.load(Ordering::Relaxed)
            || self.sink.pending().len() >= HIGH_WATER
        {
            self.sink.write_out();
        } else if first {
            self.sink.wake.notify_one();
        }
        Ok(())
    }
}

/// `env_logger`, telling the output which records are urgent.
struct Logger {
    inner: env_logger::Logger,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.inner.matches(record) {
            URGENT.set(record.level() <= Level::Warn);
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        flush();
    }
}

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

/// Installs the logger (`RUST_LOG`, default `info`) unless one is already
/// installed.
pub(crate) fn init() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if io::stderr().is_terminal() {
        builder.try_init().ok();
        return;
    }
    let sink = Sink::new(Box::new(io::stderr()));
    builder.target(env_logger::Target::Pipe(Box::new(Gather {
        sink: sink.clone(),
        first: false,
    })));
    let inner = builder.build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_err() {
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
    let _ = SINK.set(sink);
}

/// Writes the log lines still waiting (a no-op on a terminal).
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test reads back, telling `written` of each write.
    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>, std::sync::mpsc::Sender<()>);

    impl Shared {
        fn new() -> (Shared, std::sync::mpsc::Receiver<()>) {
            let (tx, rx) = std::sync::mpsc::channel();
            (Shared(Arc::default(), tx), rx)
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

    fn line(gather: &mut Gather, text: &str, urgent: bool) {
        URGENT.set(urgent);
        gather.write_all(text.as_bytes()).unwrap();
        gather.flush().unwrap();
    }

    #[test]
    fn info_lines_wait_and_a_warning_takes_them_out_first_in_order() {
        let (out, _written) = Shared::new();
        let sink = Sink::new(Box::new(out.clone()));
        let mut gather = Gather {
            sink: sink.clone(),
            first: false,
        };
        line(&mut gather, "a\n", false);
        line(&mut gather, "b\n", false);
        assert!(out.0.lock().unwrap().is_empty(), "info lines are gathered");
        line(&mut gather, "w\n", true);
        assert_eq!(&*out.0.lock().unwrap(), b"a\nb\nw\n");
        line(&mut gather, "c\n", false);
        sink.write_out();
        assert_eq!(&*out.0.lock().unwrap(), b"a\nb\nw\nc\n");
        assert!(sink.pending().is_empty());
    }

    #[test]
    fn gathered_lines_past_the_high_water_mark_go_at_once() {
        let (out, _written) = Shared::new();
        let sink = Sink::new(Box::new(out.clone()));
        let mut gather = Gather { sink, first: false };
        let long = "x".repeat(HIGH_WATER);
        line(&mut gather, &long, false);
        assert_eq!(out.0.lock().unwrap().len(), HIGH_WATER);
    }

    #[test]
    fn the_writer_thread_writes_what_was_gathered() {
        let (out, written) = Shared::new();
        let sink = Sink::new(Box::new(out.clone()));
        let writer = sink.clone();
        std::thread::spawn(move || writer.run());
        let mut gather = Gather { sink, first: false };
        line(&mut gather, "a\n", false);
        line(&mut gather, "b\n", false);
        written
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer thread writes");
        assert_eq!(&*out.0.lock().unwrap(), b"a\nb\n", "in one write");
    }
}
