//! The authenticating API gateway: `http.proxy` routes, JWT checks, identity
//! mapping, rate limits, forwarding and WebSocket tunnelling.
//!
//! One request, drawn once:
//!
//! ```text
//! request id -> path normal form (400, `path.rs`) -> route on it
//!   (`routes.rs`), longest prefix by segment, case-folded lookalike of a
//!   protected route refused (400, 404)
//!   -> cors preflight -> bearer JWT (401) -> username -> user id (404)
//!      (on an open route: a valid JWT gives the identity, any other is
//!      ignored)
//!   -> rate limit (429; per user, or per client IP: the real peer, or the
//!      rightmost untrusted X-Forwarded-For hop behind `trusted_proxies`)
//!   -> request headers: protected names (any spelling) and `_` names
//!      dropped, X-Forwarded-* from the real connection
//!   -> body limit (413)
//!   -> upstream with the normalised path, on a pooled keep-alive
//!      connection (`upstream/`; 503 refused, 504 no head in time, 502
//!      garbage) -> response body streamed with backpressure
//!      (stall or failure mid-body closes the connection)
//!      or WebSocket tunnel
//!   -> metrics + one JSON access-log line (target `access`, `access.rs`)
//! ```
//!
//! On a server whose routes are all proxies, the plainest requests (no
//! body, no upgrade, no CORS, no compression) come from the server's own
//! HTTP/1 path (`http::front`) instead of actix-http, through the same
//! steps, and `fast.rs` writes their answers from the upstream's head.

mod access;
mod config;
mod error;
mod fast;
mod forward;
mod path;
mod proxy;
mod rate_limit;
mod routes;
mod trusted;
mod tunnel;
mod upstream;

pub use config::{ProxyConfig, RouteConfig, upstream_authority};
pub use error::{Fault, GatewayError};
pub use proxy::Proxy;
pub use rate_limit::{Decision, RateLimitConfig, RateLimiter};
