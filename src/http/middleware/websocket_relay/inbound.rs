//! The connection's task: reads and decodes the client's frames and relays
//! messages to the handler, and writes for the hub while the socket is full.
//! Reading ends when the client goes, when a limit is broken (size: 1009,
//! rate: 1008, text that is not UTF-8: 1007, protocol: 1002), or when the
//! connection is over.
//!
//! Invariants: the read buffer never holds more than one unfinished frame,
//! so never more than `max_message_size` + 14 (the longest header) bytes.
//! Each frame's header is read here before the codec sees it: a declared
//! length over the limit (for a fragment: with the fragments before it)
//! closes 1009 before any of its payload is read, and a read takes no more
//! than the room left. Every frame (control frames and fragments too)
//! counts toward `max_frames_per_second`, every whole message toward
//! `max_messages_per_second`; past either, 1008. An idle connection keeps
//! no read buffer.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{BufMut, Bytes, BytesMut};
use serde_json::Value;

use super::outbound::{Connection, Outgoing, Scratch};
use super::{RelayConfig, TOPIC_MESSAGE};
use crate::http::Socket;
use crate::metrics::ClosedBy;

/// How much one read takes at most.
const READ_CHUNK: usize = 4096;
/// The longest frame header: 2 bytes, a 64-bit length, a mask key.
const MAX_HEADER: usize = 14;
/// The longest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;
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
        max_frame_rate: config.max_frames_per_second,
        window: Instant::now(),
        in_window: 0,
        frames_in_window: 0,
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
                conn.flush(&mut Scratch::default());
            }
            _ = conn.blocked.notified() => {}
            ready = poll_fn(|cx| socket.poll_read_ready(cx)), if reading => {
                if ready.is_err() {
                    conn.finish("connection lost", 1006, ClosedBy::Client);
                    break;
                }
                // Never more than one frame's worth, whatever the client sends.
                let room = (reader.max_size.saturating_add(MAX_HEADER))
                    .saturating_sub(buf.len())
                    .min(READ_CHUNK);
                if room == 0 {
                    // Unreachable while `drain` holds: a whole frame fits.
                    conn.close(1009, "message too large", "message too large");
                    reading = false;
                    continue;
                }
                buf.reserve(room);
                match socket.try_read_buf(&mut (&mut buf).limit(room)) {
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
        conn.flush(&mut Scratch::default());
        while conn.is_blocked() {
            if poll_fn(|cx| socket.poll_write_ready(cx)).await.is_err() {
                return;
            }
            conn.flush(&mut Scratch::default());
        }
    })
    .await;
}

/// A frame's header, as far as the limits need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    opcode: u8,
    /// The declared payload length.
    len: u64,
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;

impl Header {
    /// The header at the start of `buf`, once its length field is there
    /// (2, 4 or 10 bytes; the mask key is the codec's business).
    fn peek(buf: &[u8]) -> Option<Header> {
        let (&first, rest) = buf.split_first()?;
        let (&second, rest) = rest.split_first()?;
        let len = match second & 0x7f {
            126 => u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            127 => u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
            n => u64::from(n),
        };
        Some(Header {
            opcode: first & 0x0f,
            len,
        })
    }

    fn is_control(self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Why a frame is refused at its header.
enum Refusal {
    TooLarge,
    Protocol,
}

struct Reader<'a> {
    conn: &'a Arc<Connection>,
    codec: Codec,
    max_size: usize,
    max_rate: usize,
    max_frame_rate: usize,
    window: Instant,
    /// Messages in the current one-second window.
    in_window: usize,
    /// Frames (of any kind) in the current one-second window.
    frames_in_window: usize,
    /// A fragmented message being reassembled: (is_text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl Reader<'_> {
    /// Handles every whole frame in `buf`; false once the connection is closing.
    fn drain(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            // The frame's declared size is checked before the codec waits
            // for (and so buffers) its payload.
            if let Some(header) = Header::peek(buf) {
                match self.admit(header) {
                    Ok(()) => {}
                    Err(Refusal::TooLarge) => {
                        self.conn
                            .close(1009, "message too large", "message too large");
                        return false;
                    }
                    Err(Refusal::Protocol) => {
                        self.conn.close(1002, "protocol error", "protocol error");
                        return false;
                    }
                }
            }
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

    /// Whether a frame with `header` may be read at all: its payload, with
    /// the fragments before it, must fit the message limit; a control
    /// frame's must fit 125 bytes.
    fn admit(&self, header: Header) -> Result<(), Refusal> {
        if header.is_control() {
            return if header.len > MAX_CONTROL_PAYLOAD {
                Err(Refusal::Protocol)
            } else {
                Ok(())
            };
        }
        let before = match header.opcode {
            OP_CONTINUATION => self.partial.as_ref().map_or(0, |(_, b)| b.len()),
            // A new message, whole or first fragment.
            OP_TEXT | OP_BINARY => 0,
            // Reserved opcodes: the codec refuses them at the header.
            _ => return Ok(()),
        };
        if (before as u64).saturating_add(header.len) > self.max_size as u64 {
            Err(Refusal::TooLarge)
        } else {
            Ok(())
        }
    }

    /// Counts one frame against the frame rate; false past it.
    fn count_frame(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.in_window = 0;
            self.frames_in_window = 0;
        }
        self.frames_in_window += 1;
        self.frames_in_window <= self.max_frame_rate
    }

    fn frame(&mut self, frame: Frame) -> bool {
        if !matches!(frame, Frame::Close(_)) && !self.count_frame() {
            self.conn.close(1008, "too many frames", "flooding");
            return false;
        }
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
                // Echo the client's code, unless it may not be sent at all.
                let code = if super::outbound::sendable(code) {
                    code
                } else {
                    1002
                };
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
                // Checked at the header already; kept as the last word.
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
        self.in_window += 1;
        if self.in_window > self.max_rate {
            self.conn.close(1008, "too many messages", "flooding");
            return false;
        }
        let (kind, data) = if is_text {
            match std::str::from_utf8(&data) {
                Ok(text) => ("text", Value::String(text.to_owned())),
                Err(_) => {
                    self.conn.close(1007, "invalid UTF-8", "invalid text");
                    return false;
                }
            }
        } else {
            ("binary", Value::String(crate::util::base64_encode(&data)))
        };
        self.conn.to_handler(
            TOPIC_MESSAGE,
            crate::util::json_object([("type", kind.into()), ("data", data)]),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Header;

    fn header(first: u8, second: u8, rest: &[u8]) -> Option<Header> {
        let mut bytes = vec![first, second];
        bytes.extend_from_slice(rest);
        Header::peek(&bytes)
    }

    #[test]
    fn a_header_is_read_in_its_three_length_encodings() {
        let seven = header(0x81, 0x80 | 5, &[1, 2, 3, 4]).unwrap();
        assert_eq!((seven.opcode, seven.len), (1, 5));
        let sixteen = header(0x02, 0x80 | 126, &[0x01, 0x00]).unwrap();
        assert_eq!((sixteen.opcode, sixteen.len), (2, 256));
        let sixty_four = header(0x82, 0x80 | 127, &(1u64 << 62).to_be_bytes()).unwrap();
        assert_eq!(sixty_four.len, 1 << 62);
    }

    #[test]
    fn a_header_whose_length_field_has_not_all_arrived_is_not_read() {
        assert_eq!(Header::peek(&[0x82]), None);
        assert_eq!(header(0x82, 0x80 | 126, &[0x01]), None);
        assert_eq!(header(0x82, 0x80 | 127, &[0, 0, 0, 0, 0, 0, 1]), None);
    }
}
