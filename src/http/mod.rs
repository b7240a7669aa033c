//! HTTP: servers, routers, endpoints, static files and middleware.
//!
//! The request path, drawn once:
//!
//! ```text
//! request -> http.service -> router resource (prefix + path, method)
//!         -> cors (preflight answered here; headers added on the way out)
//!         -> token_auth (enriches: puts the Identity in request extensions,
//!            with where the token came from)
//!         -> relay origin rules, WebSocket upgrades only (a foreign origin
//!            -> 403; a cookie token from a foreign origin is taken back)
//!         -> body read (limit -> 413)
//!         -> endpoint function
//!         -> websocket_relay (X-WS-Relay -> upgrade, header stripped)
//! unmatched -> http.static (if any) -> 404
//! ```
//!
//! A WebSocket upgrade request takes the same path through a second copy of
//! the app (`upgrade`); a `101` carrying a [`Takeover`] then leaves the HTTP
//! layer with its socket, so an open WebSocket keeps none of actix-http's
//! per-connection state or buffers.

mod admission;
mod app;
mod compress;
mod endpoint;
mod error;
pub(crate) mod front;
mod listener;
pub mod middleware;
mod options;
mod router;
mod service;
#[path = "static.rs"]
mod static_files;
mod upgrade;
mod workers;

pub use endpoint::{Endpoint, EndpointConfig, METHODS as ENDPOINT_METHODS, join_path};
pub use error::HttpError;
pub use options::Options;
pub use router::{Router, RouterConfig, ServerMeta};
pub use service::{HttpService, HttpServiceConfig, Mount};
pub use static_files::{StaticConfig, StaticOptions, StaticSite};
pub use upgrade::{Socket, Takeover};

/// Why a request body could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the limit (already by `Content-Length`, or while reading).
    TooLarge,
    /// The transfer broke off or was malformed.
    Unreadable,
    /// Not all there by the deadline, or a pause between two parts too long.
    TimedOut,
}

/// How long a server waits for request bodies (`http.service`
/// `body_timeout`, `body_idle_timeout`), in every request's app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadlines {
    /// From the end of the head to the last byte of the body.
    pub total: std::time::Duration,
    /// Between two parts of the body.
    pub idle: std::time::Duration,
}

impl Default for BodyDeadlines {
    fn default() -> Self {
        BodyDeadlines {
            total: service::DEFAULT_BODY_TIMEOUT,
            idle: service::DEFAULT_BODY_IDLE_TIMEOUT,
        }
    }
}

/// The declared `Content-Length` of a request, if any.
pub(crate) fn declared_length(req: &actix_web::HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the whole body, refusing more than `limit` bytes (at once when
/// `Content-Length` already says so) and giving up at the server's body
/// deadlines, so a client that trickles its body cannot hold a connection.
pub(crate) async fn read_body(
    req: &actix_web::HttpRequest,
    mut payload: actix_web::web::Payload,
    limit: usize,
) -> Result<actix_web::web::Bytes, BodyError> {
    use futures_util::StreamExt;
    use tokio::time::{Instant, timeout_at};
    let declared = declared_length(req);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let deadlines = req.app_data::<BodyDeadlines>().copied().unwrap_or_default();
    let far = |d: std::time::Duration| {
        // A deadline too far to represent is no deadline at all.
        Instant::now()
            .checked_add(d)
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(86_400 * 365))
    };
    let end = far(deadlines.total);
    let mut body = actix_web::web::BytesMut::new();
    loop {
        let next = timeout_at(end.min(far(deadlines.idle)), payload.next());
        match next.await {
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) => return Ok(body.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(Some(Ok(chunk))) if body.is_empty() && declared == Some(chunk.len() as u64) => {
                // The usual case: the whole body in one part, no copy.
                return Ok(chunk);
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Makes a chunked request body that no handler reads to its end cost its
/// connection, not hold it.
///
/// actix-http drains the rest of an unread chunked body after the answer,
/// with no deadline, so a client could trickle chunks forever into a path
/// that never reads them (a 404, `/healthz`, a refusal). The body is wrapped:
/// when the wrapper is dropped before the end, the original body is held
/// a little longer instead of dropped, so the HTTP layer sees a body still
/// unread when it answers, and answers `Connection: close` and hangs up.
pub(crate) fn guard_unread_body(
    req: &mut actix_web::dev::ServiceRequest,
    hold: std::time::Duration,
) {
    let chunked = req
        .headers()
        .get(actix_web::http::header::TRANSFER_ENCODING)
        .is_some();
    if !chunked {
        return; // a Content-Length body left unread already closes
    }
    let inner = actix_web::HttpMessage::take_payload(req);
    req.set_payload(actix_web::dev::Payload::from(Box::pin(GuardedBody {
        inner: Some(inner),
        finished: false,
        hold,
    })
        as actix_http::BoxedPayloadStream));
}

struct GuardedBody {
    inner: Option<actix_web::dev::Payload>,
    finished: bool,
    hold: std::time::Duration,
}

impl futures_util::Stream for GuardedBody {
    type Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let next = std::pin::Pin::new(inner).poll_next(cx);
        if let std::task::Poll::Ready(None) = next {
            self.finished = true;
        }
        next
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(inner) = self.inner.take() {
            let hold = self.hold;
            actix_web::rt::spawn(async move {
                tokio::time::sleep(hold).await;
                drop(inner);
            });
        }
    }
}

/// Whether the request asks to become a WebSocket.
///
/// The same test actix-http's handshake check makes (the header *contains*
/// `websocket`, any case), so every request the relay could upgrade goes
/// through the relay's origin and cookie checks first.
pub(crate) fn is_websocket_upgrade(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"))
}

/// The first value of `name` in the query string `query` (form-encoded, as
/// `HttpRequest::query_string` gives it), percent-decoded; borrowed from
/// `query` when nothing needed decoding. Reads no further than the match.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<std::borrow::Cow<'q, str>> {
    query_values(query, name).next()
}

/// Every value of `name` in the query string `query`, in order, decoded as
/// [`query_param`] decodes them, read lazily. A pair is decoded only when
/// its key matches (or needs decoding to tell): looking for `since` does
/// not percent-decode the token next to it.
pub(crate) fn query_values<'q>(
    query: &'q str,
    name: &str,
) -> impl Iterator<Item = std::borrow::Cow<'q, str>> {
    let encoded = |s: &str| s.contains(['%', '+']);
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if pair.is_empty() || (!encoded(key) && key != name) {
            return None;
        }
        if !encoded(key) && !encoded(value) {
            return Some(std::borrow::Cow::Borrowed(value));
        }
        // One pair, decoded as form_urlencoded decodes a whole query.
        let (key, value) = form_urlencoded::parse(pair.as_bytes()).next()?;
        (key == name).then_some(value)
    })
}

/// A JSON error response `{"error": message}` with `status`.
pub fn json_error(status: actix_web::http::StatusCode, message: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::query_param;

    #[test]
    fn query_param_decodes_only_what_needs_it_and_takes_the_first() {
        let q = "a=1&token=abc%20d&since=7&since=8&e";
        assert_eq!(query_param(q, "since"), Some(Cow::Borrowed("7")));
        assert!(matches!(query_param(q, "since"), Some(Cow::Borrowed(_))));
        assert_eq!(query_param(q, "token").as_deref(), Some("abc d"));
        assert_eq!(query_param(q, "e").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param("", "a"), None);
        assert_eq!(query_param("x=%ZZ+y", "x").as_deref(), Some("%ZZ y"));
    }

    #[test]
    fn query_values_agree_with_form_urlencoded() {
        let queries = [
            "a=1&token=abc%20d&since=7&since=8&e",
            "&&since=&since=3&",
            "s%69nce=4&since+=5&since=6%26&since==x",
            "since&since=a=b&+since=9&since=%E2%82%AC+%ZZ",
            "",
        ];
        for q in queries {
            for name in ["since", "e", "a", "since ", "missing"] {
                let ours: Vec<String> = super::query_values(q, name).map(Cow::into_owned).collect();
                let theirs: Vec<String> = form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .collect();
                assert_eq!(ours, theirs, "{q:?} {name:?}");
            }
        }
    }
}
