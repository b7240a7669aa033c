//! The connection and its outbound side: the client pid's mailbox (a bounded
//! frame queue) and the response body stream that drains it.
//!
//! Invariants: the queue never holds more than `queue_size` frames plus one
//! close frame; `finish` (ws.leave, removal of the client pid, metrics) runs
//! exactly once, from whichever side ends first, or from `Drop`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use actix_http::ws::{OpCode, Parser};
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{RelayConfig, RelayTarget, TOPIC_CLOSE, TOPIC_JOIN, TOPIC_LEAVE, TOPIC_SEND};
use crate::process::{Event, ExitReason, Mailbox, Message, Node, Payload, Pid, Refused};

/// Wakes the outbound streams of one HTTP worker with one cross-thread wake
/// per batch instead of one per connection: a broadcast to N connections on a
/// worker costs that worker one wake-up, and the hub then wakes each stream
/// on its own thread (no system call).
#[derive(Default)]
pub(super) struct Hub {
    ready: Mutex<Vec<Waker>>,
    task: Mutex<Option<Waker>>,
    scheduled: AtomicBool,
}

thread_local! {
    static HUB: Arc<Hub> = {
        let hub = Arc::new(Hub::default());
        actix_web::rt::spawn(Hub::run(hub.clone()));
        hub
    };
}

impl Hub {
    /// The hub of the calling HTTP worker thread.
    pub(super) fn current() -> Arc<Hub> {
        HUB.with(Arc::clone)
    }

    /// Wakes `waker` on the hub's thread.
    fn defer(&self, waker: Waker) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(task) = task {
                task.wake();
            }
        }
    }

    async fn run(hub: Arc<Hub>) {
        std::future::poll_fn(|cx| {
            *hub.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // Cleared before taking: a waker pushed after this wakes us again.
            hub.scheduled.store(false, Ordering::Release);
            let ready = std::mem::take(&mut *hub.ready.lock().unwrap_or_else(|e| e.into_inner()));
            for waker in ready {
                waker.wake();
            }
            Poll::<()>::Pending
        })
        .await
    }
}

/// One frame waiting to be written.
pub(super) enum Outgoing {
    Text(Bytes),
    /// A shared broadcast frame: the one kind that may be conflated.
    Shared(Bytes),
    Binary(Bytes),
    Pong(Bytes),
    Close {
        code: u16,
        text: String,
        leave: &'static str,
    },
}

impl Outgoing {
    pub(super) fn close(code: u16, text: &str, leave: &'static str) -> Self {
        Outgoing::Close {
            code,
            text: text.to_owned(),
            leave,
        }
    }
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outgoing>,
    waker: Option<Waker>,
    /// Frames dropped since the client last took any.
    lag: usize,
    /// A close frame is queued: nothing more is accepted.
    closing: bool,
    /// The connection is over: the body ends once the queue is drained.
    done: bool,
}

/// One WebSocket connection.
pub(super) struct Connection {
    pub(super) client: Pid,
    pub(super) target: Pid,
    metadata: Value,
    pub(super) node: Arc<Node>,
    hub: Arc<Hub>,
    state: Mutex<State>,
    queue_size: usize,
    max_lag: usize,
    finished: AtomicBool,
    /// Wakes the inbound task when the connection is over.
    pub(super) over: Notify,
}

impl Connection {
    /// Registers the client pid, monitors the handler and sends `ws.join`.
    pub(super) fn open(
        client: Pid,
        target: RelayTarget,
        node: Arc<Node>,
        config: &RelayConfig,
    ) -> Arc<Self> {
        let conn = Arc::new(Connection {
            client,
            target: target.target_pid,
            metadata: target.metadata,
            node,
            hub: Hub::current(),
            state: Mutex::default(),
            queue_size: config.queue_size,
            max_lag: config.max_lag,
            finished: AtomicBool::new(false),
            over: Notify::new(),
        });
        let mailbox = ClientMailbox {
            conn: Arc::downgrade(&conn),
        };
        conn.node
            .insert(conn.client.clone(), Arc::new(mailbox), None);
        conn.node
            .metrics()
            .ws_connections
            .fetch_add(1, Ordering::Relaxed);
        // Monitor first: if the handler is already dead, EXIT closes the socket.
        conn.node.monitor(&conn.client, &conn.target);
        conn.to_handler(
            TOPIC_JOIN,
            json!({ "client_pid": conn.client.to_string(), "metadata": conn.metadata }),
        );
        conn
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn to_handler(&self, topic: &'static str, payload: Value) {
        let _ = self
            .node
            .send(Some(&self.client), &self.target, topic, payload);
    }

    /// Queues a frame for the client.
    pub(super) fn push(&self, frame: Outgoing) -> Result<(), Refused> {
        let mut st = self.lock();
        if st.closing {
            return Err(Refused::Dead);
        }
        let mut too_slow = false;
        if matches!(frame, Outgoing::Close { .. }) {
            st.closing = true;
        } else if st.frames.len() >= self.queue_size {
            let Some(i) = st
                .frames
                .iter()
                .position(|f| matches!(f, Outgoing::Shared(_)))
            else {
                return Err(Refused::Full);
            };
            st.frames.remove(i);
            st.lag += 1;
            self.node.count_conflated(1);
            too_slow = st.lag > self.max_lag;
        }
        st.frames.push_back(frame);
        if too_slow {
            st.frames
                .push_back(Outgoing::close(1008, "too slow", "too slow"));
            st.closing = true;
        }
        let waker = st.waker.take();
        drop(st);
        if too_slow {
            // Stop the traffic now; the close frame goes out if the client reads again.
            self.finish("too slow", 1008);
        }
        if let Some(w) = waker {
            self.hub.defer(w);
        }
        Ok(())
    }

    /// Queues a close frame (at most one is ever queued).
    pub(super) fn close(&self, code: u16, text: &str, leave: &'static str) {
        let _ = self.push(Outgoing::close(code, text, leave));
    }

    /// The connection's process life ends: `ws.leave` to the handler, the
    /// client pid leaves the table, the counters move. Runs once.
    pub(super) fn finish(&self, reason: &'static str, code: u16) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = {
            let mut st = self.lock();
            st.closing = true;
            st.done = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            self.hub.defer(w);
        }
        self.to_handler(
            TOPIC_LEAVE,
            json!({ "client_pid": self.client.to_string(), "metadata": self.metadata, "reason": reason }),
        );
        self.node.exit(&self.client, &ExitReason::Normal);
        let metrics = self.node.metrics();
        metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
        metrics.ws_closed(code);
        self.over.notify_one();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.finish("connection lost", 1006);
    }
}

/// The client pid's mailbox.
struct ClientMailbox {
    conn: Weak<Connection>,
}

impl Mailbox for ClientMailbox {
    fn deliver(&self, event: Event) -> Result<(), Refused> {
        let conn = self.conn.upgrade().ok_or(Refused::Dead)?;
        let frame = match event {
            Event::Message(Message { topic, payload, .. }) => match (topic.as_ref(), payload) {
                (TOPIC_SEND, Payload::Bytes(b)) => Outgoing::Shared(b),
                (TOPIC_SEND, Payload::Json(v)) => send_frame(&v),
                (TOPIC_CLOSE, payload) => {
                    let v = payload.to_json().unwrap_or(Value::Null);
                    let code = v.get("code").and_then(Value::as_u64).unwrap_or(1000) as u16;
                    let text = v.get("reason").and_then(Value::as_str).unwrap_or("");
                    Outgoing::close(code, text, "closed by handler")
                }
                (topic, payload) => {
                    let data = match payload {
                        Payload::Json(v) => v,
                        Payload::Bytes(b) => serde_json::from_slice(&b).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&b).into_owned())
                        }),
                    };
                    Outgoing::Text(json!({ "topic": topic, "data": data }).to_string().into())
                }
            },
            Event::Exit { from, .. } if from == conn.target => {
                Outgoing::close(1011, "handler exited", "handler exited")
            }
            _ => return Ok(()),
        };
        conn.push(frame)
    }

    fn shutdown(&self) {
        if let Some(conn) = self.conn.upgrade() {
            conn.close(1001, "server shutting down", "server shutdown");
        }
    }

    fn kill(&self) {
        if let Some(conn) = self.conn.upgrade() {
            conn.close(1011, "killed", "killed");
        }
    }
}

/// `ws.send {type, data}` as one frame.
fn send_frame(v: &Value) -> Outgoing {
    let data = v.get("data").unwrap_or(&Value::Null);
    let binary = v.get("type").and_then(Value::as_str) == Some("binary");
    match (binary, data) {
        (true, Value::String(s)) => match crate::util::base64_decode(s) {
            Some(bytes) => Outgoing::Binary(bytes.into()),
            None => Outgoing::Binary(Bytes::copy_from_slice(s.as_bytes())),
        },
        (false, Value::String(s)) => Outgoing::Text(Bytes::copy_from_slice(s.as_bytes())),
        (_, other) => Outgoing::Text(other.to_string().into()),
    }
}

/// The response body: everything queued, encoded as frames, in one chunk.
pub(super) struct Outbound {
    conn: Arc<Connection>,
    buf: BytesMut,
    ended: bool,
}

impl Outbound {
    pub(super) fn new(conn: Arc<Connection>) -> Self {
        Outbound {
            conn,
            buf: BytesMut::new(),
            ended: false,
        }
    }
}

impl Stream for Outbound {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let frames = {
            let mut st = this.conn.lock();
            if st.frames.is_empty() {
                if st.done {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                st.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            st.lag = 0;
            std::mem::take(&mut st.frames)
        };
        let mut sent = 0u64;
        let mut closed = None;
        for frame in frames {
            match frame {
                Outgoing::Text(b) | Outgoing::Shared(b) => {
                    Parser::write_message(&mut this.buf, b, OpCode::Text, true, false)
                }
                Outgoing::Binary(b) => {
                    Parser::write_message(&mut this.buf, b, OpCode::Binary, true, false)
                }
                Outgoing::Pong(b) => {
                    Parser::write_message(&mut this.buf, b, OpCode::Pong, true, false)
                }
                Outgoing::Close { code, text, leave } => {
                    let mut payload = Vec::with_capacity(2 + text.len());
                    payload.extend_from_slice(&code.to_be_bytes());
                    payload.extend_from_slice(text.as_bytes());
                    Parser::write_message(&mut this.buf, payload, OpCode::Close, true, false);
                    closed = Some((leave, code));
                    break;
                }
            }
            sent += 1;
        }
        this.conn
            .node
            .metrics()
            .ws_frames_sent
            .fetch_add(sent, Ordering::Relaxed);
        if let Some((leave, code)) = closed {
            this.ended = true;
            this.conn.finish(leave, code);
        }
        Poll::Ready(Some(Ok(this.buf.split().freeze())))
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        // The server dropped the body: the client has gone.
        self.conn.finish("connection lost", 1006);
    }
}
