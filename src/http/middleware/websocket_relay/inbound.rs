//! The connection's task: reads and decodes the client's frames and relays
//! messages to the handler, and writes for the hub while the socket is full.
//! Reading ends when the client goes, when a limit is broken (size: 1009,
//! rate: 1008, protocol: 1002), or when the connection is over.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{Bytes, BytesMut};
use serde_json::{Value, json};

use super::outbound::{Connection, Outgoing};
use super::{RelayConfig, TOPIC_MESSAGE};
use crate::http::Socket;
use crate::metrics::ClosedBy;

/// How much one read takes at most.
const READ_CHUNK: usize = 4096;
/// How long a closing connection waits for its last bytes to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the connection on `socket` until it ends.
pub(super) async fn drive(conn: Arc<Connection>, socket: Socket, config: RelayConfig) {
    let Socket {
        io,
        read: mut buf,
        write: head,
    } = socket;
    // One turn for the tasks of this thread first: a handler placed here
    // answers `ws.join` now, and its greeting leaves with the `101`.
    tokio::task::yield_now().await;
    let socket = conn.attach(io, head);
    let mut reader = Reader {
        conn: &conn,
        codec: Codec::new().max_size(config.max_message_size),
        max_size: config.max_message_size,
        max_rate: config.max_messages_per_second,
        window: Instant::now(),
        in_window: 0,
        partial: None,
    };
    let mut reading = reader.drain(&mut buf);
    while !conn.is_finished() {
        let blocked = conn.is_blocked();
        tokio::select! {
            biased;
            _ = conn.over.notified() => break,
            // poll_*_ready (not readable()/writable()) so that the socket
            // keeps this task's waker only, not the HTTP layer's.
            ready = poll_fn(|cx| socket.poll_write_ready(cx)), if blocked => {
                if ready.is_err() {
                    conn.finish("connection lost", 1006, ClosedBy::Client);
                    break;
                }
                conn.flush(&mut BytesMut::new());
            }
            _ = conn.blocked.notified() => {}
            ready = poll_fn(|cx| socket.poll_read_ready(cx)), if reading => {
                if ready.is_err() {
                    conn.finish("connection lost", 1006, ClosedBy::Client);
                    break;
                }
                buf.reserve(READ_CHUNK);
                match socket.try_read_buf(&mut buf) {
                    Ok(0) => {
                        conn.finish("connection lost", 1006, ClosedBy::Client);
                        break;
                    }
                    Ok(_) => {
                        reading = reader.drain(&mut buf);
                        if buf.is_empty() {
                            // An idle connection keeps no read buffer.
                            buf = BytesMut::new();
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        conn.finish("connection lost", 1006, ClosedBy::Client);
                        break;
                    }
                }
            }
        }
    }
    // Last words (a close frame, say) get a moment to leave.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        conn.flush(&mut BytesMut::new());
        while conn.is_blocked() {
            if poll_fn(|cx| socket.poll_write_ready(cx)).await.is_err() {
                return;
            }
            conn.flush(&mut BytesMut::new());
        }
    })
    .await;
}

struct Reader<'a> {
    conn: &'a Arc<Connection>,
    codec: Codec,
    max_size: usize,
    max_rate: usize,
    window: Instant,
    in_window: usize,
    /// A fragmented message being reassembled: (is_text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl Reader<'_> {
    /// Handles every whole frame in `buf`; false once the connection is closing.
    fn drain(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            match self.codec.decode(buf) {
                Ok(Some(frame)) => {
                    if !self.frame(frame) {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(ProtocolError::Overflow) => {
                    self.conn
                        .close(1009, "message too large", "message too large");
                    return false;
                }
                Err(e) => {
                    log::debug!(
                        "websocket protocol error client_pid={} error={e}",
                        self.conn.client
                    );
                    self.conn.close(1002, "protocol error", "protocol error");
                    return false;
                }
            }
        }
    }

    fn frame(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::Text(b) => self.message(true, b),
            Frame::Binary(b) => self.message(false, b),
            Frame::Ping(p) => {
                let _ = self.conn.push(Outgoing::Pong(p));
                true
            }
            Frame::Pong(_) => true,
            Frame::Close(reason) => {
                let code = reason.map_or(1000, |r| u16::from(r.code));
                self.conn.echo_close(code);
                false
            }
            Frame::Continuation(item) => {
                let (first, is_text, chunk, last) = match item {
                    Item::FirstText(b) => (true, true, b, false),
                    Item::FirstBinary(b) => (true, false, b, false),
                    Item::Continue(b) => (false, false, b, false),
                    Item::Last(b) => (false, false, b, true),
                };
                if first {
                    self.partial = Some((is_text, BytesMut::new()));
                }
                let Some((text, whole)) = self.partial.as_mut() else {
                    self.conn
                        .close(1002, "unexpected continuation", "protocol error");
                    return false;
                };
                if whole.len() + chunk.len() > self.max_size {
                    self.conn
                        .close(1009, "message too large", "message too large");
                    return false;
                }
                whole.extend_from_slice(&chunk);
                let text = *text;
                match self.partial.take() {
                    Some((_, whole)) if last => self.message(text, whole.freeze()),
                    other => {
                        self.partial = other;
                        true
                    }
                }
            }
        }
    }

    fn message(&mut self, is_text: bool, data: Bytes) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.in_window = 0;
        }
        self.in_window += 1;
        if self.in_window > self.max_rate {
            self.conn.close(1008, "too many messages", "flooding");
            return false;
        }
        let (kind, data) = if is_text {
            (
                "text",
                Value::String(String::from_utf8_lossy(&data).into_owned()),
            )
        } else {
            ("binary", Value::String(crate::util::base64_encode(&data)))
        };
        self.conn
            .to_handler(TOPIC_MESSAGE, json!({ "type": kind, "data": data }));
        true
    }
}
