//! The connection and its outbound side: the client pid's mailbox (a bounded
//! frame queue) and the flush that writes it to the socket.
//!
//! Invariants: the queue never holds more than `queue_size` frames plus one
//! close frame; only the connection's own worker thread writes to its
//! socket; `finish` (ws.leave, removal of the client pid, metrics) runs
//! exactly once, from whichever side ends first, or from `Drop`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use actix_web::web::{BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::hub::Hub;
use super::{Handoff, RelayConfig, TOPIC_CLOSE, TOPIC_JOIN, TOPIC_LEAVE, TOPIC_SEND};
use crate::metrics::ClosedBy;
use crate::process::{
    Event, ExitReason, Mailbox, Message, Node, Payload, Pid, Refused, Topic, shared_event,
};

/// One frame waiting to be written.
pub(super) enum Outgoing {
    Text(Bytes),
    /// A shared broadcast frame: the one kind that may be conflated.
    Shared(Bytes),
    Binary(Bytes),
    /// Text frames that go out in order, each its own message, taking one
    /// place in the queue and never conflated (a resume's replay).
    Batch(Vec<Bytes>),
    Pong(Bytes),
    Close {
        code: u16,
        text: String,
        leave: &'static str,
        /// Who ended the connection, for the metrics.
        by: ClosedBy,
    },
}

/// The longest close reason: a close frame's payload (code and reason) is
/// at most 125 bytes (RFC 6455 5.5).
const MAX_CLOSE_REASON: usize = 123;

/// Whether `code` may be sent in a close frame (RFC 6455 7.4): not below
/// 1000, not 1004-1006 or 1015, nothing reserved in 1016-2999.
pub(super) fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Outgoing {
    /// A close the server (or the handler) starts. A code that may not be
    /// sent becomes 1011, and a reason is cut (at a character) to what a
    /// close frame holds, so that whatever a handler asks for goes out as
    /// a valid frame.
    pub(super) fn close(code: u16, text: &str, leave: &'static str) -> Self {
        let mut end = text.len().min(MAX_CLOSE_REASON);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Outgoing::Close {
            code: if sendable(code) { code } else { 1011 },
            text: text[..end].to_owned(),
            leave,
            by: ClosedBy::Server,
        }
    }
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outgoing>,
    /// Encoded bytes the socket has not taken yet.
    unsent: BytesMut,
    /// Waiting in the hub's list.
    scheduled: bool,
    /// The socket is full: the connection's task flushes once it is writable.
    blocked: bool,
    /// Frames dropped since the client last took any.
    lag: usize,
    /// A close frame is queued: nothing more is accepted.
    closing: bool,
}

/// Buffers a writing thread reuses from one connection's write to the next,
/// so that a write allocates nothing: the encoded bytes, and an empty frame
/// queue swapped for the connection's full one.
#[derive(Default)]
pub(super) struct Scratch {
    out: BytesMut,
    frames: VecDeque<Outgoing>,
}

/// One WebSocket connection.
pub(super) struct Connection {
    pub(super) client: Pid,
    pub(super) target: Pid,
    /// Kept as JSON text: a parsed map costs several times its size, and it
    /// is needed twice (join, leave).
    metadata: Box<str>,
    pub(super) node: Arc<Node>,
    hub: Arc<Hub>,
    /// Set once the `101` is written; written to only on the hub's thread.
    socket: OnceLock<TcpStream>,
    state: Mutex<State>,
    queue_size: usize,
    max_lag: usize,
    finished: AtomicBool,
    /// Tells the connection's task that the socket is full.
    pub(super) blocked: Notify,
    /// Tells the connection's task that the connection is over.
    pub(super) over: Notify,
}

impl Connection {
    /// Registers the client pid, monitors the handler and sends `ws.join`.
    pub(super) fn open(
        client: Pid,
        mut target: Handoff,
        node: Arc<Node>,
        config: &RelayConfig,
    ) -> Arc<Self> {
        let joined = target
            .parsed
            .take()
            .unwrap_or_else(|| super::metadata_value(&target.metadata));
        let conn = Arc::new(Connection {
            client,
            target: target.target_pid,
            metadata: target.metadata,
            node,
            hub: Hub::current(),
            socket: OnceLock::new(),
            state: Mutex::default(),
            queue_size: config.queue_size,
            max_lag: config.max_lag,
            finished: AtomicBool::new(false),
            blocked: Notify::new(),
            over: Notify::new(),
        });
        let mailbox = ClientMailbox {
            conn: Arc::downgrade(&conn),
        };
        conn.node
            .insert(conn.client.clone(), Arc::new(mailbox), None, None, None);
        conn.node
            .metrics()
            .ws_connections
            .fetch_add(1, Ordering::Relaxed);
        // Monitor first: if the handler is already dead, EXIT closes the socket.
        conn.node.monitor(&conn.client, &conn.target);
        conn.to_handler(
            TOPIC_JOIN,
            crate::util::json_object([
                ("client_pid", conn.client.to_string().into()),
                ("metadata", joined),
            ]),
        );
        conn
    }

    fn metadata(&self) -> Value {
        super::metadata_value(&self.metadata)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the connection its socket and writes `head` (the `101`) with
    /// whatever queued up meanwhile.
    pub(super) fn attach(&self, io: TcpStream, head: BytesMut) -> &TcpStream {
        self.lock().unsent = head;
        let socket = self.socket.get_or_init(|| io);
        self.flush(&mut Scratch::default());
        socket
    }

    pub(super) fn is_blocked(&self) -> bool {
        self.lock().blocked
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub(super) fn to_handler(&self, topic: &'static str, payload: Value) {
        let _ = self
            .node
            .send(Some(&self.client), &self.target, topic, payload);
    }

    /// Queues a frame for the client.
    pub(super) fn push(self: &Arc<Self>, frame: Outgoing) -> Result<(), Refused> {
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
        // A blocked socket is flushed by its task; one without a socket yet
        // by `attach`.
        let schedule = !st.scheduled && !st.blocked && self.socket.get().is_some();
        st.scheduled |= schedule;
        drop(st);
        if too_slow {
            // Stop the traffic now; the close frame goes out if the client reads again.
            self.finish("too slow", 1008, ClosedBy::Server);
        }
        if schedule {
            self.hub.defer(self.clone());
        }
        Ok(())
    }

    /// Queues a close frame (at most one is ever queued).
    pub(super) fn close(self: &Arc<Self>, code: u16, text: &str, leave: &'static str) {
        let _ = self.push(Outgoing::close(code, text, leave));
    }

    /// Answers the client's close frame with the same code.
    pub(super) fn echo_close(self: &Arc<Self>, code: u16) {
        let _ = self.push(Outgoing::Close {
            code,
            text: String::new(),
            leave: "client closed",
            by: ClosedBy::Client,
        });
    }

    /// Writes everything queued (see `write_queued`) and counts it.
    pub(super) fn flush(&self, scratch: &mut Scratch) {
        let sent = self.write_queued(scratch);
        self.count_sent(sent);
    }

    pub(super) fn count_sent(&self, frames: u64) {
        if frames > 0 {
            self.node
                .metrics()
                .ws_frames_sent
                .fetch_add(frames, Ordering::Relaxed);
        }
    }

    /// Writes everything queued in one write and returns the number of
    /// frames; what the socket does not take waits in `unsent`, and the
    /// connection's task takes over until the socket is writable again.
    /// Runs on the connection's worker thread.
    pub(super) fn write_queued(&self, scratch: &mut Scratch) -> u64 {
        let Some(socket) = self.socket.get() else {
            return 0;
        };
        let mut unsent = {
            let mut st = self.lock();
            st.scheduled = false;
            st.blocked = false;
            if !st.frames.is_empty() {
                st.lag = 0;
            }
            // The full queue trades places with the scratch's empty one,
            // which keeps the room of an earlier queue: the connection's
            // next frames need no allocation.
            std::mem::swap(&mut st.frames, &mut scratch.frames);
            (!st.unsent.is_empty()).then(|| std::mem::take(&mut st.unsent))
        };
        // What an earlier write left goes first, in its own buffer; else the
        // scratch's is written into.
        let out = match unsent.as_mut() {
            Some(unsent) => unsent,
            None => {
                scratch.out.clear();
                &mut scratch.out
            }
        };
        let mut sent = 0u64;
        let mut closed = None;
        while let Some(frame) = scratch.frames.pop_front() {
            let (bytes, op) = match frame {
                Outgoing::Batch(texts) => {
                    for text in texts {
                        put_frame(out, OP_TEXT, &text);
                        sent += 1;
                    }
                    continue;
                }
                Outgoing::Text(b) | Outgoing::Shared(b) => (b, OP_TEXT),
                Outgoing::Binary(b) => (b, OP_BINARY),
                Outgoing::Pong(b) => (b, OP_PONG),
                Outgoing::Close {
                    code,
                    text,
                    leave,
                    by,
                } => {
                    let mut payload = Vec::with_capacity(2 + text.len());
                    payload.extend_from_slice(&code.to_be_bytes());
                    payload.extend_from_slice(text.as_bytes());
                    put_frame(out, OP_CLOSE, &payload);
                    closed = Some((leave, code, by));
                    break;
                }
            };
            put_frame(out, op, &bytes);
            sent += 1;
        }
        // Frames after a close are never written.
        if !scratch.frames.is_empty() {
            scratch.frames.clear();
        }
        let written = if out.is_empty() {
            Ok(0)
        } else {
            match socket.try_write(out) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                other => other,
            }
        };
        match written {
            Ok(n) if n == out.len() => {}
            Ok(n) => {
                let mut st = self.lock();
                st.unsent = BytesMut::from(&out[n..]);
                st.blocked = true;
                drop(st);
                self.blocked.notify_one();
            }
            Err(_) => self.finish("connection lost", 1006, ClosedBy::Client),
        }
        // The scratch's buffer is kept for the next write (cleared then);
        // an earlier write's goes with `unsent`.
        if let Some((leave, code, by)) = closed {
            self.finish(leave, code, by);
        }
        sent
    }

    /// The connection's process life ends: `ws.leave` to the handler, the
    /// client pid leaves the table, the counters move. Runs once.
    pub(super) fn finish(&self, reason: &'static str, code: u16, by: ClosedBy) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        self.lock().closing = true;
        self.to_handler(
            TOPIC_LEAVE,
            crate::util::json_object([
                ("client_pid", self.client.to_string().into()),
                ("metadata", self.metadata()),
                ("reason", reason.into()),
            ]),
        );
        self.node.exit(&self.client, &ExitReason::Normal);
        let metrics = self.node.metrics();
        metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
        metrics.ws_closed(by, code);
        self.over.notify_one();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.finish("connection lost", 1006, ClosedBy::Client);
    }
}

/// Frame opcodes (RFC 6455 section 5.2) with FIN set: the relay's frames
/// are never fragmented.
const OP_TEXT: u8 = 0x81;
const OP_BINARY: u8 = 0x82;
const OP_CLOSE: u8 = 0x88;
const OP_PONG: u8 = 0x8a;

/// Appends one server frame (unmasked): the first byte, the length in 7,
/// 16 or 64 bits, the payload.
fn put_frame(out: &mut BytesMut, first: u8, payload: &[u8]) {
    let n = payload.len();
    out.reserve(n + 10);
    out.put_u8(first);
    if n < 126 {
        out.put_u8(n as u8);
    } else if let Ok(short) = u16::try_from(n) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(n as u64);
    }
    out.extend_from_slice(payload);
}

/// The client pid's mailbox.
struct ClientMailbox {
    conn: Weak<Connection>,
}

impl Mailbox for ClientMailbox {
    fn deliver_shared(&self, from: &Pid, topic: &Topic, payload: &Payload) -> Result<(), Refused> {
        match (topic.as_ref(), payload) {
            (TOPIC_SEND, Payload::Bytes(b)) => {
                let conn = self.conn.upgrade().ok_or(Refused::Dead)?;
                conn.push(Outgoing::Shared(b.clone()))
            }
            _ => self.deliver(shared_event(from, topic, payload)),
        }
    }

    fn deliver(&self, event: Event) -> Result<(), Refused> {
        let conn = self.conn.upgrade().ok_or(Refused::Dead)?;
        let frame = match event {
            Event::Message(Message { topic, payload, .. }) => match (topic.as_ref(), payload) {
                (TOPIC_SEND, Payload::Bytes(b)) => Outgoing::Shared(b),
                (TOPIC_SEND, Payload::Json(v)) => send_frame(v),
                (TOPIC_CLOSE, payload) => {
                    let v = payload.into_json().unwrap_or(Value::Null);
                    let code = match v.get("code") {
                        None | Some(Value::Null) => 1000,
                        // Out of range is as unsendable as 1005.
                        Some(c) => c.as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
                    };
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
                    let text = crate::util::json_object([("topic", topic.into()), ("data", data)])
                        .to_string();
                    Outgoing::Text(text.into())
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

/// `ws.send {type, data}` as one frame; `ws.send {type: "text", frames:
/// [text, ...]}` as that many text frames, in order, never conflated. A
/// payload that is a string is one text frame of it; one that is neither a
/// string nor an object, one text frame of its JSON. Strings move into the
/// frame without a copy.
fn send_frame(v: Value) -> Outgoing {
    let mut v = match v {
        Value::String(s) => return Outgoing::Text(s.into()),
        Value::Object(map) => map,
        other => return Outgoing::Text(other.to_string().into()),
    };
    if let Some(Value::Array(frames)) = v.remove("frames") {
        return Outgoing::Batch(
            frames
                .into_iter()
                .map(|f| match f {
                    Value::String(s) => Bytes::from(s),
                    other => other.to_string().into(),
                })
                .collect(),
        );
    }
    let binary = v.get("type").and_then(Value::as_str) == Some("binary");
    match (binary, v.remove("data").unwrap_or(Value::Null)) {
        (true, Value::String(s)) => match crate::util::base64_decode(&s) {
            Some(bytes) => Outgoing::Binary(bytes.into()),
            None => Outgoing::Binary(s.into()),
        },
        (false, Value::String(s)) => Outgoing::Text(s.into()),
        (_, other) => Outgoing::Text(other.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use actix_http::ws::{OpCode, Parser};
    use actix_web::web::BytesMut;

    use super::{OP_BINARY, OP_CLOSE, OP_PONG, OP_TEXT, put_frame};

    #[test]
    fn a_frame_is_written_as_actix_http_writes_it() {
        let ops = [
            (OP_TEXT, OpCode::Text),
            (OP_BINARY, OpCode::Binary),
            (OP_CLOSE, OpCode::Close),
            (OP_PONG, OpCode::Pong),
        ];
        for (first, op) in ops {
            for n in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
                let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let (mut ours, mut theirs) = (BytesMut::new(), BytesMut::new());
                put_frame(&mut ours, first, &payload);
                Parser::write_message(&mut theirs, &payload[..], op, true, false);
                assert_eq!(ours, theirs, "opcode {op:?}, {n} bytes");
            }
        }
    }
}
