//! The gateway's wire errors: one variant per failure, a fixed status and
//! code, and whose fault it is (client, upstream, internal) for the logs.
//! Body: `{"error": {"code", "message", "timestamp", "request_id"}}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use serde_json::json;

/// The methods the gateway proxies, for `Allow` (any other, extension
/// methods included, passes too; CONNECT and TRACE never do).
const ALLOWED: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// A request the gateway answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The path has no unambiguous normal form: `..`, `.`, `//`, `;`, encoded
    /// separators, dots or control characters, double encoding, NUL or
    /// backslash; or it is a case variant of a protected route.
    InvalidPath,
    /// The request body could not be read.
    BadRequest,
    /// A request other than GET asked to become a WebSocket (its body, if
    /// any, never reaches the gateway: the connection is an upgrade one).
    UpgradeNotGet,
    /// The request body did not arrive within the server's body deadlines.
    RequestTimeout,
    /// No route matches.
    NotFound,
    /// CONNECT or TRACE: never proxied (a tunnel to anywhere; an echo of
    /// the request with the headers the gateway added).
    MethodNotAllowed,
    /// Missing, malformed, wrongly signed or not-yet-valid token; the reason
    /// is for metrics.
    InvalidToken(&'static str),
    /// The token has expired.
    TokenExpired,
    /// The token's username has no user.
    UserNotFound,
    /// Over the route's rate limit.
    RateLimited {
        /// Requests allowed per window.
        limit: u32,
        /// Seconds until the window resets.
        reset_secs: u64,
    },
    /// The body is over the proxy's `max_body`.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The upstream refused the connection or is unreachable.
    ServiceUnavailable,
    /// The upstream did not answer within the route's timeout.
    UpstreamTimeout,
    /// The upstream answered with something that is not valid HTTP.
    BadGateway,
    /// A failure of the gateway itself.
    Internal,
}

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong.
    Client,
    /// The upstream failed.
    Upstream,
    /// The gateway failed.
    Internal,
}

impl GatewayError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidPath | GatewayError::BadRequest | GatewayError::UpgradeNotGet => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::NotFound | GatewayError::UserNotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::InvalidToken(_) | GatewayError::TokenExpired => StatusCode::UNAUTHORIZED,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::BadGateway => StatusCode::BAD_GATEWAY,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable error code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::InvalidPath => "INVALID_PATH",
            GatewayError::BadRequest | GatewayError::UpgradeNotGet => "BAD_REQUEST",
            GatewayError::NotFound => "NOT_FOUND",
            GatewayError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            GatewayError::InvalidToken(_) => "INVALID_TOKEN",
            GatewayError::TokenExpired => "TOKEN_EXPIRED",
            GatewayError::UserNotFound => "USER_NOT_FOUND",
            GatewayError::RateLimited { .. } => "RATE_LIMIT_EXCEEDED",
            GatewayError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            GatewayError::RequestTimeout => "REQUEST_TIMEOUT",
            GatewayError::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            GatewayError::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            GatewayError::BadGateway => "BAD_GATEWAY",
            GatewayError::Internal => "INTERNAL_ERROR",
        }
    }

    /// The human-readable message in the JSON body.
    pub fn message(&self) -> String {
        match self {
            GatewayError::InvalidPath => "request path is not allowed".into(),
            GatewayError::BadRequest => "request body could not be read".into(),
            GatewayError::UpgradeNotGet => "only a GET can open a WebSocket".into(),
            GatewayError::NotFound => "no route for this path".into(),
            GatewayError::MethodNotAllowed => "method not allowed through the gateway".into(),
            GatewayError::InvalidToken(_) => "missing or invalid bearer token".into(),
            GatewayError::TokenExpired => "token has expired".into(),
            GatewayError::UserNotFound => "user not found".into(),
            GatewayError::RateLimited { reset_secs, .. } => {
                format!("rate limit exceeded, retry in {reset_secs} s")
            }
            GatewayError::PayloadTooLarge { limit } => format!("request body over {limit} bytes"),
            GatewayError::RequestTimeout => "request body not received in time".into(),
            GatewayError::ServiceUnavailable => "upstream service unavailable".into(),
            GatewayError::UpstreamTimeout => "upstream service timed out".into(),
            GatewayError::BadGateway => "upstream sent an invalid response".into(),
            GatewayError::Internal => "internal error".into(),
        }
    }

    /// Whose fault the failure is.
    pub fn fault(&self) -> Fault {
        match self {
            GatewayError::ServiceUnavailable
            | GatewayError::UpstreamTimeout
            | GatewayError::BadGateway => Fault::Upstream,
            GatewayError::Internal => Fault::Internal,
            _ => Fault::Client,
        }
    }

    /// The JSON error response, tagged with `request_id`.
    pub fn response(&self, request_id: &str) -> HttpResponse {
        let mut res = HttpResponse::build(self.status());
        res.insert_header(("X-Request-Id", request_id));
        match self {
            GatewayError::InvalidToken(_) | GatewayError::TokenExpired => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            GatewayError::RateLimited { limit, reset_secs } => {
                res.insert_header((header::RETRY_AFTER, reset_secs.to_string()))
                    .insert_header(("X-RateLimit-Limit", limit.to_string()))
                    .insert_header(("X-RateLimit-Remaining", "0"))
                    .insert_header(("X-RateLimit-Reset", reset_secs.to_string()));
            }
            GatewayError::RequestTimeout => {
                res.force_close();
            }
            GatewayError::MethodNotAllowed => {
                res.insert_header((header::ALLOW, ALLOWED));
            }
            _ => {}
        }
        res.json(json!({
            "error": {
                "code": self.code(),
                "message": self.message(),
                "timestamp": crate::util::rfc3339(crate::util::unix_ms()),
                "request_id": request_id,
            }
        }))
    }
}
