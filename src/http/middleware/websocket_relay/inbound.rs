//! The inbound side: decodes the client's frames and relays messages to the
//! handler. Ends when the client goes, when a limit is broken (size: 1009,
//! rate: 1008, protocol: 1002), or when the connection is over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::outbound::{Connection, Outgoing};
use super::{RelayConfig, TOPIC_MESSAGE};

/// Reads frames until the connection ends.
pub(super) async fn run(conn: Arc<Connection>, mut payload: web::Payload, config: RelayConfig) {
    let mut reader = Reader {
        conn: &conn,
        codec: Codec::new().max_size(config.max_message_size),
        max_size: config.max_message_size,
        max_rate: config.max_messages_per_second,
        window: Instant::now(),
        in_window: 0,
        partial: None,
    };
    let mut buf = BytesMut::new();
    loop {
        let chunk = tokio::select! {
            chunk = payload.next() => chunk,
            _ = conn.over.notified() => return,
        };
        match chunk {
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
            _ => {
                conn.finish("connection lost", 1006);
                return;
            }
        }
        if !reader.drain(&mut buf) {
            // A close is queued; wait for it to go out (or the client to go).
            conn.over.notified().await;
            return;
        }
    }
}

struct Reader<'a> {
    conn: &'a Connection,
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
                self.conn.close(code, "", "client closed");
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
