//! The authenticating API gateway: `http.proxy` routes, JWT checks, identity
//! mapping, rate limits, forwarding and WebSocket tunnelling.
//!
//! One request, drawn once:
//!
//! ```text
//! request id -> path check (400) -> route, longest prefix by segment (404)
//!   -> cors preflight -> bearer JWT (401) -> username -> user id (404)
//!   -> rate limit (429) -> body limit (413)
//!   -> upstream (503 refused, 504 slow, 502 garbage) or WebSocket tunnel
//!   -> metrics + one JSON access-log line (target `access`)
//! ```

mod error;
mod forward;
mod proxy;
mod rate_limit;
mod tunnel;

pub use error::{Fault, GatewayError};
pub use proxy::{Proxy, ProxyConfig, RouteConfig};
pub use rate_limit::{Decision, RateLimitConfig, RateLimiter};
