//! `websocket_relay`: turns an endpoint's `X-WS-Relay` answer into a
//! WebSocket connection bridged to a handler process.
//!
//! ## Protocol
//! The endpoint spawns a handler and answers with the header
//! `X-WS-Relay: {"target_pid": "<pid>", "metadata": {...}}`. This
//! post-middleware upgrades the connection, strips the header, and creates
//! the connection's own process (`client_pid`, hosted on the HTTP server's id).
//!
//! - to the handler: `ws.join {client_pid, metadata}` once, then
//!   `ws.message {type: "text"|"binary", data}` per inbound message (binary
//!   data base64), then `ws.leave {client_pid, metadata, reason}` exactly
//!   once, from `stopped`, however the connection ended.
//! - to the client pid: `ws.send {type, data}` writes one frame (a bytes
//!   payload is written as a text frame as is); `ws.close {code, reason}`
//!   closes; any other topic goes out as a text frame `{"topic", "data"}`.
//! - the relay monitors the handler: if it dies, the socket closes with 1011.
//!
//! ## Back-pressure
//! Outbound frames wait in a per-connection queue of at most `queue_size`
//! frames; one wake-up of the relay writes everything queued. Past the bound
//! the oldest shared (broadcast) frame is dropped and counted: prices
//! conflate, only the newest matters.
//!
//! actix-web-actors is deprecated upstream; it is used only in this file.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix::{Actor, ActorContext, Addr, AsyncContext, Handler, StreamHandler};
use actix_http::ws::Item;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use bytestring::ByteString;
use serde_json::{Value, json};

use super::super::Options;
use super::{parse_bool, parse_usize};
use crate::process::{Event, Mailbox, Message, Node, Payload, Pid, Refused};

/// The response header an endpoint sets to ask for a relay.
pub const RELAY_HEADER: &str = "X-WS-Relay";
pub const TOPIC_JOIN: &str = "ws.join";
pub const TOPIC_MESSAGE: &str = "ws.message";
pub const TOPIC_LEAVE: &str = "ws.leave";
pub const TOPIC_SEND: &str = "ws.send";
pub const TOPIC_CLOSE: &str = "ws.close";

pub const OPTION_KEYS: &[&str] = &[
    "wsrelay.allowed.origins",
    "wsrelay.max_message_size",
    "wsrelay.queue_size",
    "wsrelay.allow_missing_origin",
];

/// Default limit for one inbound message (frame or reassembled fragments).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Default bound of a connection's outbound queue, in frames.
pub const DEFAULT_QUEUE_SIZE: usize = 256;

/// The relay's options.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `None` allows any origin.
    pub allowed_origins: Option<Vec<String>>,
    pub allow_missing_origin: bool,
    pub max_message_size: usize,
    pub queue_size: usize,
}

impl RelayConfig {
    pub fn from_options(o: &Options) -> Result<Self, (String, String)> {
        let origins = o.list("wsrelay.allowed.origins");
        let max_message_size = match o.get("wsrelay.max_message_size") {
            Some(v) => parse_usize("wsrelay.max_message_size", v)?,
            None => DEFAULT_MAX_MESSAGE_SIZE,
        };
        let queue_size = match o.get("wsrelay.queue_size") {
            Some(v) => parse_usize("wsrelay.queue_size", v)?.max(1),
            None => DEFAULT_QUEUE_SIZE,
        };
        let allow_missing_origin = match o.get("wsrelay.allow_missing_origin") {
            Some(v) => parse_bool("wsrelay.allow_missing_origin", v)?,
            None => true,
        };
        Ok(RelayConfig {
            allowed_origins: origins.filter(|l| !l.iter().any(|x| x == "*")),
            allow_missing_origin,
            max_message_size,
            queue_size,
        })
    }

    /// Whether the request's `Origin` may open a socket. Non-browser clients
    /// send no Origin; `wsrelay.allow_missing_origin` decides for them.
    pub fn origin_allowed(&self, req: &HttpRequest) -> bool {
        let Some(list) = &self.allowed_origins else {
            return true;
        };
        match req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            Some(origin) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            None => self.allow_missing_origin,
        }
    }
}

/// The parsed `X-WS-Relay` header.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayTarget {
    pub target_pid: Pid,
    pub metadata: Value,
}

impl RelayTarget {
    /// Parses the header value; errors say what is wrong.
    pub fn parse(value: &[u8]) -> Result<Self, String> {
        let v: Value =
            serde_json::from_slice(value).map_err(|e| format!("X-WS-Relay is not JSON: {e}"))?;
        let pid = v
            .get("target_pid")
            .and_then(Value::as_str)
            .ok_or("X-WS-Relay has no string target_pid")?;
        let target_pid = pid
            .parse::<Pid>()
            .map_err(|e| format!("X-WS-Relay target_pid: {e}"))?;
        Ok(RelayTarget {
            target_pid,
            metadata: v.get("metadata").cloned().unwrap_or(Value::Null),
        })
    }

    /// The header value for this target.
    pub fn header_value(&self) -> String {
        json!({ "target_pid": self.target_pid.to_string(), "metadata": self.metadata }).to_string()
    }
}

enum Outgoing {
    Text(ByteString),
    /// A shared broadcast frame: the one kind that may be conflated.
    Shared(Bytes),
    Binary(Bytes),
    Close(ws::CloseReason),
}

#[derive(Default)]
struct QueueState {
    frames: VecDeque<Outgoing>,
    addr: Option<Addr<WsRelay>>,
    scheduled: bool,
    closed: bool,
}

/// The connection's outbound queue: the client pid's mailbox.
struct ClientQueue {
    state: Mutex<QueueState>,
    bound: usize,
    node: Arc<Node>,
}

#[derive(actix::Message)]
#[rtype(result = "()")]
struct Flush;

impl ClientQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, frame: Outgoing) -> Result<(), Refused> {
        let mut st = self.lock();
        if st.closed {
            return Err(Refused::Dead);
        }
        if st.frames.len() >= self.bound {
            if let Some(i) = st
                .frames
                .iter()
                .position(|f| matches!(f, Outgoing::Shared(_)))
            {
                st.frames.remove(i);
                self.node.count_conflated(1);
            } else if !matches!(frame, Outgoing::Close(_)) {
                return Err(Refused::Full);
            }
        }
        st.frames.push_back(frame);
        if !st.scheduled
            && let Some(addr) = st.addr.clone()
        {
            st.scheduled = true;
            addr.do_send(Flush);
        }
        Ok(())
    }

    fn attach(&self, addr: Addr<WsRelay>) {
        let mut st = self.lock();
        if !st.frames.is_empty() {
            st.scheduled = true;
            addr.do_send(Flush);
        }
        st.addr = Some(addr);
    }

    fn take(&self) -> VecDeque<Outgoing> {
        let mut st = self.lock();
        st.scheduled = false;
        std::mem::take(&mut st.frames)
    }

    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.frames.clear();
        st.addr = None;
    }
}

fn close_reason(code: u16, text: &str) -> ws::CloseReason {
    ws::CloseReason {
        code: ws::CloseCode::from(code),
        description: (!text.is_empty()).then(|| text.to_owned()),
    }
}

struct ClientMailbox {
    queue: Arc<ClientQueue>,
    target: Pid,
}

impl Mailbox for ClientMailbox {
    fn deliver(&self, event: Event) -> Result<(), Refused> {
        let frame = match event {
            Event::Message(Message { topic, payload, .. }) => match (topic.as_ref(), payload) {
                (TOPIC_SEND, Payload::Bytes(b)) => Outgoing::Shared(b),
                (TOPIC_SEND, Payload::Json(v)) => send_frame(&v),
                (TOPIC_CLOSE, payload) => {
                    let v = payload.to_json().unwrap_or(Value::Null);
                    let code = v.get("code").and_then(Value::as_u64).unwrap_or(1000) as u16;
                    let text = v.get("reason").and_then(Value::as_str).unwrap_or("");
                    Outgoing::Close(close_reason(code, text))
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
            Event::Exit { from, .. } if from == self.target => {
                Outgoing::Close(close_reason(1011, "handler exited"))
            }
            _ => return Ok(()),
        };
        self.queue.push(frame)
    }

    fn shutdown(&self) {
        let _ = self
            .queue
            .push(Outgoing::Close(close_reason(1001, "server shutting down")));
    }

    fn kill(&self) {
        let _ = self
            .queue
            .push(Outgoing::Close(close_reason(1011, "killed")));
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
        (false, Value::String(s)) => Outgoing::Text(s.as_str().into()),
        (_, other) => Outgoing::Text(other.to_string().into()),
    }
}

/// One WebSocket connection's actor.
pub(crate) struct WsRelay {
    client: Pid,
    target: Pid,
    metadata: Value,
    node: Arc<Node>,
    queue: Arc<ClientQueue>,
    max_message_size: usize,
    /// A fragmented message being reassembled: (is_text, bytes so far).
    partial: Option<(bool, BytesMut)>,
    leave_reason: &'static str,
    close_code: u16,
}

impl WsRelay {
    fn to_handler(&self, topic: &'static str, payload: Value) {
        let _ = self
            .node
            .send(Some(&self.client), &self.target, topic, payload);
    }

    fn close(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        reason: ws::CloseReason,
        leave: &'static str,
    ) {
        self.close_code = reason.code.into();
        self.leave_reason = leave;
        ctx.close(Some(reason));
        ctx.stop();
    }

    fn inbound(&mut self, is_text: bool, data: Bytes) {
        let data = if is_text {
            Value::String(String::from_utf8_lossy(&data).into_owned())
        } else {
            Value::String(crate::util::base64_encode(&data))
        };
        let kind = if is_text { "text" } else { "binary" };
        self.to_handler(TOPIC_MESSAGE, json!({ "type": kind, "data": data }));
    }
}

impl Actor for WsRelay {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.node.insert(
            self.client.clone(),
            Arc::new(ClientMailbox {
                queue: self.queue.clone(),
                target: self.target.clone(),
            }),
            None,
        );
        self.queue.attach(ctx.address());
        self.node
            .metrics()
            .ws_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Monitor first: if the handler is already dead, EXIT closes the socket.
        self.node.monitor(&self.client, &self.target);
        self.to_handler(
            TOPIC_JOIN,
            json!({ "client_pid": self.client.to_string(), "metadata": self.metadata }),
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.queue.close();
        let metrics = self.node.metrics();
        metrics
            .ws_connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        metrics.ws_closed(self.close_code);
        self.to_handler(
            TOPIC_LEAVE,
            json!({
                "client_pid": self.client.to_string(),
                "metadata": self.metadata,
                "reason": self.leave_reason,
            }),
        );
        self.node
            .exit(&self.client, &crate::process::ExitReason::Normal);
    }
}

impl Handler<Flush> for WsRelay {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        let frames = self.queue.take();
        let mut sent = 0u64;
        for frame in frames {
            match frame {
                Outgoing::Text(t) => ctx.text(t),
                Outgoing::Shared(b) => match ByteString::try_from(b) {
                    Ok(t) => ctx.text(t),
                    Err(_) => continue,
                },
                Outgoing::Binary(b) => ctx.binary(b),
                Outgoing::Close(reason) => {
                    let leave = match u16::from(reason.code) {
                        1001 => "server shutdown",
                        1011 => "handler exited",
                        _ => "closed by handler",
                    };
                    self.close(ctx, reason, leave);
                    break;
                }
            }
            sent += 1;
        }
        self.node
            .metrics()
            .ws_frames_sent
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsRelay {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let msg = match msg {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                return self.close(
                    ctx,
                    close_reason(1009, "message too large"),
                    "message too large",
                );
            }
            Err(e) => {
                log::debug!(
                    "websocket protocol error client_pid={} error={e}",
                    self.client
                );
                return self.close(ctx, close_reason(1002, "protocol error"), "protocol error");
            }
        };
        match msg {
            ws::Message::Text(t) => self.inbound(true, t.into_bytes()),
            ws::Message::Binary(b) => self.inbound(false, b),
            ws::Message::Ping(p) => ctx.pong(&p),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                self.close_code = reason.as_ref().map_or(1005, |r| r.code.into());
                self.leave_reason = "client closed";
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Continuation(item) => {
                let (first, is_text, chunk, last) = match item {
                    Item::FirstText(b) => (true, true, b, false),
                    Item::FirstBinary(b) => (true, false, b, false),
                    Item::Continue(b) => (false, false, b, false),
                    Item::Last(b) => (false, false, b, true),
                };
                if first {
                    self.partial = Some((is_text, BytesMut::new()));
                }
                let Some((text, buf)) = self.partial.as_mut() else {
                    return self.close(
                        ctx,
                        close_reason(1002, "unexpected continuation"),
                        "protocol error",
                    );
                };
                if buf.len() + chunk.len() > self.max_message_size {
                    return self.close(
                        ctx,
                        close_reason(1009, "message too large"),
                        "message too large",
                    );
                }
                buf.extend_from_slice(&chunk);
                let text = *text;
                if last && let Some((_, buf)) = self.partial.take() {
                    self.inbound(text, buf.freeze());
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.leave_reason == "connection lost" {
            self.close_code = 1006;
        }
        ctx.stop();
    }
}

/// Upgrades the request and starts the relay for `target`. On failure the
/// caller must tell the handler (`ws.leave`), since no relay will.
pub(crate) fn upgrade(
    req: &HttpRequest,
    payload: web::Payload,
    target: RelayTarget,
    config: &RelayConfig,
    node: &Arc<Node>,
    client: Pid,
) -> Result<HttpResponse, actix_web::Error> {
    let queue = Arc::new(ClientQueue {
        state: Mutex::new(QueueState::default()),
        bound: config.queue_size,
        node: node.clone(),
    });
    let relay = WsRelay {
        client,
        target: target.target_pid,
        metadata: target.metadata,
        node: node.clone(),
        queue,
        max_message_size: config.max_message_size,
        partial: None,
        leave_reason: "connection lost",
        close_code: 1006,
    };
    ws::WsResponseBuilder::new(relay, req, payload)
        .frame_size(config.max_message_size)
        .start()
}

/// Tells a handler whose connection never came up that it is over.
pub(crate) fn leave_without_connection(node: &Node, target: &RelayTarget, reason: &str) {
    let _ = node.send(
        None,
        &target.target_pid,
        TOPIC_LEAVE,
        json!({ "client_pid": Value::Null, "metadata": target.metadata, "reason": reason }),
    );
}
