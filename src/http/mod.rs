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

mod endpoint;
mod error;
pub mod middleware;
mod options;
mod router;
mod service;
#[path = "static.rs"]
mod static_files;
mod upgrade;

pub use endpoint::{Endpoint, EndpointConfig, METHODS as ENDPOINT_METHODS};
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
}

/// Reads the whole body, refusing more than `limit` bytes (at once when
/// `Content-Length` already says so).
pub(crate) async fn read_body(
    req: &actix_web::HttpRequest,
    payload: actix_web::web::Payload,
    limit: usize,
) -> Result<actix_web::web::Bytes, BodyError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(BodyError::Unreadable),
        Err(_) => Err(BodyError::TooLarge),
    }
}

/// Whether the request asks to become a WebSocket.
pub(crate) fn is_websocket_upgrade(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A JSON error response `{"error": message}` with `status`.
pub fn json_error(status: actix_web::http::StatusCode, message: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}
