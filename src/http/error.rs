//! The runtime's own HTTP errors: one variant per failure, fixed status and
//! body `{"error": "..."}`. Application errors are the application's.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// An error the HTTP layer answers by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// 404: no route, no static file.
    NotFound,
    /// 405: the path exists but not for this method; `Allow` lists the methods.
    MethodNotAllowed {
        /// The methods the path has, for the `Allow` header.
        allow: String,
    },
    /// 431: the header fields are over the limit.
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 413: the body is over the limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 400: the body could not be read.
    BadBody,
    /// 408: the body did not arrive within the server's body deadlines; the
    /// connection is closed.
    BodyTimeout,

    /// 403: a WebSocket upgrade from an origin the relay does not allow.
    OriginNotAllowed,
    /// 400: a WebSocket endpoint was asked without a valid upgrade.
    UpgradeRequired,
    /// 500: something failed inside; details are in the log, not the body.
    Internal,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::NotFound => f.write_str("not found"),
            HttpError::MethodNotAllowed { .. } => f.write_str("method not allowed"),
            HttpError::PayloadTooLarge { limit } => {
                write!(f, "request body too large (limit {limit} bytes)")
            }
            HttpError::BadBody => f.write_str("request body could not be read"),
            HttpError::BodyTimeout => f.write_str("request body not received in time"),

            HttpError::HeadersTooLarge { limit } => {
                write!(f, "request header fields too large (limit {limit} bytes)")
            }
            HttpError::OriginNotAllowed => f.write_str("origin not allowed"),
            HttpError::UpgradeRequired => f.write_str("websocket upgrade required"),
            HttpError::Internal => f.write_str("internal error"),
        }
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HttpError::BadBody | HttpError::UpgradeRequired => StatusCode::BAD_REQUEST,
            HttpError::OriginNotAllowed => StatusCode::FORBIDDEN,
            HttpError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,

            HttpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let HttpError::MethodNotAllowed { allow } = self {
            res.insert_header(("Allow", allow.as_str()));
        }
        if let HttpError::BodyTimeout = self {
            // The rest of the body may still be on its way: this connection
            // cannot carry another request.
            res.force_close();
        }
        res.json(serde_json::json!({ "error": self.to_string() }))
    }
}
