//! HTTP: servers, routers, endpoints, static files and middleware.
//!
//! The request path, drawn once:
//!
//! ```text
//! request -> http.service -> router resource (prefix + path, method)
//!         -> cors (preflight answered here; headers added on the way out)
//!         -> token_auth (enriches: puts the Identity in request extensions)
//!         -> body read (limit -> 413)
//!         -> endpoint function
//!         -> websocket_relay (X-WS-Relay -> upgrade, header stripped)
//! unmatched -> http.static (if any) -> 404
//! ```

mod endpoint;
mod error;
pub mod middleware;
mod options;
mod router;
mod service;
#[path = "static.rs"]
mod static_files;

pub use endpoint::{Endpoint, EndpointConfig, METHODS as ENDPOINT_METHODS};
pub use error::HttpError;
pub use options::Options;
pub use router::{Router, RouterConfig, ServerMeta};
pub use service::{HttpService, HttpServiceConfig, Mount};
pub use static_files::{StaticConfig, StaticOptions, StaticSite};

/// A JSON error response `{"error": message}` with `status`.
pub fn json_error(status: actix_web::http::StatusCode, message: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}
