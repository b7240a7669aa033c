//! `websocket_relay`: turns an endpoint's `X-WS-Relay` answer into a
//! WebSocket connection bridged to a handler process.
//!
//! ## Protocol
//! The endpoint spawns a handler and answers with the header
//! `X-WS-Relay: {"target_pid": "<pid>", "metadata": {...}}` (a Rust
//! endpoint may hand the same over typed: `RelayTarget::respond`). This
//! post-middleware upgrades the connection, strips the header, and creates
//! the connection's own process (`client_pid`, hosted on the HTTP server's id).
//!
//! - to the handler: `ws.join {client_pid, metadata}` once, then
//!   `ws.message {type: "text"|"binary", data}` per inbound message (binary
//!   data base64), then `ws.leave {client_pid, metadata, reason}` exactly
//!   once, however the connection ended.
//! - to the client pid: `ws.send {type, data}` writes one frame (a bytes
//!   payload is written as a text frame as is, a string payload as a text
//!   frame of the string); `ws.close {code, reason}` closes; any other
//!   topic goes out as a text frame `{"topic", "data"}`.
//! - the relay monitors the handler: if it dies, the socket closes with 1011.
//!
//! ## Limits on what the client sends
//! - a message (one frame, or fragments with their running total) over
//!   `max_message_size` closes 1009, decided at the frame's header before
//!   any payload is buffered;
//! - more than `max_messages_per_second` messages, or more than
//!   `max_frames_per_second` frames of any kind (pings, pongs and every
//!   fragment count), in a second closes 1008;
//! - a text message that is not UTF-8 closes 1007 and never reaches the
//!   handler; a protocol error closes 1002;
//! - a client's close frame is answered with its own code.
//!
//! ## Origins
//! `wsrelay.allowed.origins`, when set, refuses other origins (403). A token
//! that came in a cookie, which a browser attaches whatever page opens the
//! socket, only counts from an allowed origin: one in that list if set,
//! else the server's own (the `Origin`'s host and port equal the `Host`
//! header); without any `Origin` only if `wsrelay.allow_missing_origin`.
//! Otherwise the router takes the identity back before the endpoint runs,
//! so the endpoint answers 401 as for no token (counted as
//! `rippy_auth_failures_total{reason="cross_origin_cookie"}`).
//!
//! ## Back-pressure
//! Once the `101` is written the relay owns the socket (`http::upgrade`).
//! Outbound frames wait in the connection's queue; the worker's hub writes
//! everything queued in one write, and while the socket is full the
//! connection's task waits for it to drain and nothing more is written.
//! A hub that keeps up writes at once. One that falls behind (connections
//! became ready while it wrote) keeps its write duty cycle at or under one
//! half: after a round that took `t`, the next starts no sooner than `2t`
//! after the round began (at most 20 ms after it began), and the frames
//! that arrived meanwhile go out together, one write per connection
//! instead of one per frame. A client that does not read fills
//! its queue; past `queue_size` frames the oldest shared (broadcast) frame
//! is dropped and counted (prices conflate, only the newest matters); past
//! `max_lag` dropped frames in a row it is closed with 1008 and its process
//! ends at once, so nobody sends to it any more. One slow client never
//! slows the others: nothing on the fan-out path waits for a socket.
//!
//! The handshake check and the inbound frame codec are actix-http's. The
//! relay writes its outbound frames itself (whole, unmasked server frames:
//! a byte of opcode, the length, the payload), byte for byte what
//! actix-http's writer produces (unit test), without its generic path.

mod hub;
mod inbound;
mod outbound;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::Value;

use super::super::service::ClientPids;
use super::super::{HttpError, Options, Takeover};
use super::token_auth::{self, TokenSource};
use super::{parse_bool, parse_usize};
use crate::manifest::FieldError;
use crate::metrics::Metrics;
use crate::process::{Node, Pid};

/// The response header an endpoint sets to ask for a relay.
pub const RELAY_HEADER: &str = "X-WS-Relay";
/// Relay to handler: a client connected `{client_pid, metadata}`.
pub const TOPIC_JOIN: &str = "ws.join";
/// Relay to handler: a frame `{type, data}`.
pub const TOPIC_MESSAGE: &str = "ws.message";
/// Relay to handler: the connection ended `{client_pid, metadata, reason}`.
pub const TOPIC_LEAVE: &str = "ws.leave";
/// Handler to client pid: write a frame `{type, data}` (or shared bytes).
pub const TOPIC_SEND: &str = "ws.send";
/// Handler to client pid: close `{code, reason}`.
pub const TOPIC_CLOSE: &str = "ws.close";

/// The option keys this post-middleware reads.
pub const OPTION_KEYS: &[&str] = &[
    "wsrelay.allowed.origins",
    "wsrelay.allow_missing_origin",
    "wsrelay.max_message_size",
    "wsrelay.queue_size",
    "wsrelay.max_lag",
    "wsrelay.max_messages_per_second",
    "wsrelay.max_frames_per_second",
];

/// Default limit for one inbound message (frame or reassembled fragments).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Default bound of a connection's outbound queue, in frames.
pub const DEFAULT_QUEUE_SIZE: usize = 256;
/// Default number of frames dropped in a row before a client is closed (1008).
pub const DEFAULT_MAX_LAG: usize = 1000;
/// Default inbound message rate before a client is closed (1008).
pub const DEFAULT_MAX_MESSAGES_PER_SECOND: usize = 100;
/// Unless set, the inbound frame rate (any frame: data, control,
/// fragment) is this many times the message rate.
pub const DEFAULT_FRAMES_PER_MESSAGE: usize = 10;

/// The relay's options.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `None` allows any origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Whether a handshake without `Origin` is accepted.
    pub allow_missing_origin: bool,
    /// The largest inbound message, in bytes (1009 past it).
    pub max_message_size: usize,
    /// Frames queued per client before conflation starts.
    pub queue_size: usize,
    /// Frames a client may fall behind before it is closed with 1008.
    pub max_lag: usize,
    /// Inbound messages per second before the client is closed with 1008.
    pub max_messages_per_second: usize,
    /// Frames of any kind per second; default ten times the message rate.
    pub max_frames_per_second: usize,
}

impl RelayConfig {
    /// Reads the `wsrelay.*` options; the error is `(field, message)`.
    pub fn from_options(o: &Options) -> Result<Self, FieldError> {
        let size = |key: &str, default: usize| match o.get(key) {
            Some(v) => parse_usize(key, v).map(|n| n.max(1)),
            None => Ok(default),
        };
        let allow_missing_origin = match o.get("wsrelay.allow_missing_origin") {
            Some(v) => parse_bool("wsrelay.allow_missing_origin", v)?,
            None => true,
        };
        let max_messages_per_second = size(
            "wsrelay.max_messages_per_second",
            DEFAULT_MAX_MESSAGES_PER_SECOND,
        )?;
        let max_frames_per_second = size(
            "wsrelay.max_frames_per_second",
            max_messages_per_second.saturating_mul(DEFAULT_FRAMES_PER_MESSAGE),
        )?;
        Ok(RelayConfig {
            allowed_origins: o
                .list("wsrelay.allowed.origins")
                .filter(|l| !l.iter().any(|x| x == "*")),
            allow_missing_origin,
            max_message_size: size("wsrelay.max_message_size", DEFAULT_MAX_MESSAGE_SIZE)?,
            queue_size: size("wsrelay.queue_size", DEFAULT_QUEUE_SIZE)?,
            max_lag: size("wsrelay.max_lag", DEFAULT_MAX_LAG)?,
            max_messages_per_second,
            max_frames_per_second,
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

    /// Whether a token from a cookie may open a socket for this request: a
    /// browser sends the cookie whatever page opens the socket, so only an
    /// allowed origin counts (the list if set, else the server's own).
    pub fn cookie_origin_allowed(&self, req: &HttpRequest) -> bool {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return self.allow_missing_origin;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        match &self.allowed_origins {
            Some(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            None => {
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok());
                host.is_some_and(|host| same_origin(origin, host))
            }
        }
    }
}

/// Whether `origin` (`http[s]://host[:port]`) names the server the request
/// reached as `host` (the `Host` header). Default ports compare equal to
/// none.
fn same_origin(origin: &str, host: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let (authority, default_port) = if let Some(a) = origin.strip_prefix("http://") {
        (a, ":80")
    } else if let Some(a) = origin.strip_prefix("https://") {
        (a, ":443")
    } else {
        return false;
    };
    let bare = |s: &str| s.strip_suffix(default_port).unwrap_or(s).to_owned();
    !authority.is_empty() && !authority.contains('/') && bare(authority) == bare(&host)
}

impl RelayConfig {
    /// The relay's step before the endpoint, on an upgrade request: the
    /// `Origin` must be allowed (else 403), and an identity that came from a
    /// cookie on a cross-origin upgrade is dropped and counted (cross-site
    /// WebSocket hijacking), so the endpoint sees no caller.
    pub(crate) fn before(
        &self,
        req: &HttpRequest,
        metrics: &Metrics,
        router: &str,
    ) -> Result<(), HttpError> {
        if !self.origin_allowed(req) {
            return Err(HttpError::OriginNotAllowed);
        }
        if token_auth::token_source(req) == Some(TokenSource::Cookie)
            && !self.cookie_origin_allowed(req)
        {
            token_auth::forget_identity(req);
            metrics.auth_failure(token_auth::CROSS_ORIGIN_COOKIE);
            log::debug!("cookie token refused on a cross-origin upgrade router={router}");
        }
        Ok(())
    }

    /// The relay's step after the endpoint: an answer with `X-WS-Relay`
    /// becomes the upgrade (header stripped); any other answer passes. A
    /// handler whose connection cannot come up is told (`ws.leave`).
    pub(crate) fn after(
        &self,
        mut res: HttpResponse,
        req: &HttpRequest,
        upgrade_requested: bool,
        endpoint: &str,
        node: &Arc<Node>,
        clients: &ClientPids,
    ) -> HttpResponse {
        // A Rust endpoint's target comes typed (`RelayTarget::respond`);
        // any other endpoint's in the header.
        let typed = res.extensions_mut().remove::<RelayTarget>();
        let target = match typed {
            Some(target) => Handoff::from(target),
            None => {
                let Some(value) = res.headers_mut().remove(RELAY_HEADER).next() else {
                    return res;
                };
                match Handoff::parse(value.as_bytes()) {
                    Ok(t) => t,
                    Err(e) => {
                        log::error!(
                            "endpoint returned a bad relay header endpoint={endpoint} error={e}"
                        );
                        return HttpError::Internal.error_response();
                    }
                }
            }
        };
        if !upgrade_requested {
            leave_without_connection(node, &target, "upgrade required");
            return HttpError::UpgradeRequired.error_response();
        }
        match accept_key(req) {
            Ok(accept) => upgrade(accept, target, self, node, clients.next()),
            Err(e) => {
                log::debug!("websocket upgrade failed endpoint={endpoint} error={e}");
                leave_without_connection(node, &target, "upgrade failed");
                e.error_response()
            }
        }
    }
}

/// An `X-WS-Relay` as the relay uses it: the metadata stays JSON text, the
/// form the connection keeps it in, so it is neither built into a map nor
/// written out again.
pub(super) struct Handoff {
    pub(super) target_pid: Pid,
    pub(super) metadata: Box<str>,
    /// The metadata as a value when it came as one (a typed handoff), for
    /// `ws.join` to carry without parsing the text back.
    pub(super) parsed: Option<Value>,
}

impl Handoff {
    fn parse(value: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Header<'a> {
            #[serde(borrow)]
            target_pid: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            metadata: Option<&'a serde_json::value::RawValue>,
        }
        let header: Header<'_> =
            serde_json::from_slice(value).map_err(|e| format!("X-WS-Relay: {e}"))?;
        let pid = header
            .target_pid
            .ok_or("X-WS-Relay has no string target_pid")?;
        let target_pid = pid
            .parse::<Pid>()
            .map_err(|e| format!("X-WS-Relay target_pid: {e}"))?;
        Ok(Handoff {
            target_pid,
            metadata: header.metadata.map_or("null", |m| m.get()).into(),
            parsed: None,
        })
    }

    pub(super) fn metadata(&self) -> Value {
        match &self.parsed {
            Some(v) => v.clone(),
            None => metadata_value(&self.metadata),
        }
    }
}

impl From<RelayTarget> for Handoff {
    fn from(target: RelayTarget) -> Self {
        Handoff {
            target_pid: target.target_pid,
            // Writing a `Value` into a String cannot fail.
            metadata: serde_json::to_string(&target.metadata)
                .unwrap_or_else(|_| "null".to_owned())
                .into(),
            parsed: Some(target.metadata),
        }
    }
}

/// Kept metadata text as the value `ws.join` and `ws.leave` carry.
pub(super) fn metadata_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The parsed `X-WS-Relay` header.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayTarget {
    /// The handler process for the connection.
    pub target_pid: Pid,
    /// Passed to the handler in `ws.join` and `ws.leave`.
    pub metadata: Value,
}

impl RelayTarget {
    /// Parses the header value; errors say what is wrong.
    pub fn parse(value: &[u8]) -> Result<Self, String> {
        let handoff = Handoff::parse(value)?;
        Ok(RelayTarget {
            metadata: handoff.metadata(),
            target_pid: handoff.target_pid,
        })
    }

    /// The endpoint's answer that asks the relay for this target: the same
    /// as a `200` with [`RELAY_HEADER`] set to [`RelayTarget::header_value`],
    /// handed to the relay as it is, so it is neither written out as JSON
    /// nor parsed back. Only a relay reads it: without one in front of the
    /// endpoint the client gets an empty `200`.
    pub fn respond(self) -> HttpResponse {
        let mut res = HttpResponse::Ok().finish();
        res.extensions_mut().insert(self);
        res
    }

    /// The header value for this target.
    pub fn header_value(&self) -> String {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(br#"{"target_pid":"#);
        // Writing a string or a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &self.target_pid.to_string());
        out.extend_from_slice(br#","metadata":"#);
        let _ = serde_json::to_writer(&mut out, &self.metadata);
        out.push(b'}');
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The `Sec-WebSocket-Accept` for a valid upgrade request.
fn accept_key(req: &HttpRequest) -> Result<[u8; 28], HttpError> {
    actix_http::ws::verify_handshake(req.head()).map_err(|_| HttpError::UpgradeRequired)?;
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HttpError::UpgradeRequired)?;
    Ok(actix_http::ws::hash_key(key.as_bytes()))
}

/// Answers the upgrade and starts the relay for `target` once the `101` is
/// written.
fn upgrade(
    accept: [u8; 28],
    target: Handoff,
    config: &RelayConfig,
    node: &Arc<Node>,
    client: Pid,
) -> HttpResponse {
    let conn = outbound::Connection::open(client, target, node.clone(), config);
    let config = config.clone();
    let res = HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, &accept[..]))
        .finish();
    Takeover::new(move |socket| inbound::drive(conn, socket, config)).attach(res)
}

/// Tells a handler whose connection never came up that it is over.
fn leave_without_connection(node: &Node, target: &Handoff, reason: &str) {
    let _ = node.send(
        None,
        &target.target_pid,
        TOPIC_LEAVE,
        crate::util::json_object([
            ("client_pid", Value::Null),
            ("metadata", target.metadata()),
            ("reason", reason.into()),
        ]),
    );
}

#[cfg(test)]
mod tests {
    use super::{Handoff, RelayTarget, same_origin};

    #[test]
    fn a_typed_target_is_handed_over_as_its_header_would_be() {
        let target = RelayTarget {
            target_pid: "{app:ws_processes|0x0002a}".parse().unwrap(),
            metadata: serde_json::json!({"user_id": "u\"1", "role": null, "since": 7}),
        };
        let header = Handoff::parse(target.header_value().as_bytes()).unwrap();
        let typed = Handoff::from(target.clone());
        assert_eq!(typed.target_pid, header.target_pid);
        assert_eq!(typed.metadata(), header.metadata());
        assert_eq!(typed.metadata(), target.metadata);
        // The answer carries no header: nothing reaches a client without a relay.
        let res = target.clone().respond();
        assert!(res.headers().get(super::RELAY_HEADER).is_none());
        assert_eq!(res.extensions().get::<RelayTarget>(), Some(&target));
    }

    #[test]
    fn an_origin_is_the_same_only_with_the_same_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8081", "127.0.0.1:8081"));
        assert!(same_origin("HTTPS://Ticker.Example", "ticker.example"));
        assert!(same_origin("https://ticker.example:443", "ticker.example"));
        assert!(same_origin("http://ticker.example", "ticker.example:80"));
        assert!(!same_origin("http://127.0.0.1:9999", "127.0.0.1:8081"));
        assert!(!same_origin("https://evil.example", "ticker.example"));
        assert!(!same_origin(
            "https://ticker.example.evil",
            "ticker.example"
        ));
        assert!(!same_origin("null", "ticker.example"));
        assert!(!same_origin("ws://ticker.example", "ticker.example"));
        assert!(!same_origin("http://", ""));
    }
}
