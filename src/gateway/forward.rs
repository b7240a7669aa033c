//! Forwarding one request upstream and its answer back.
//!
//! Bodies travel as the exact bytes received, never parsed or re-encoded.
//! Hop-by-hop headers (Connection and every header it names, Keep-Alive, TE,
//! Trailer, Transfer-Encoding, Upgrade, Proxy-*) are dropped both ways.
//! Client-sent `X-User-Id` / `X-Username` are always removed; the gateway
//! sets them on authenticated routes. `X-Forwarded-For` gets the peer
//! appended; `X-Forwarded-Proto` and `X-Forwarded-Host` are set.

use std::collections::HashSet;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use super::GatewayError;

/// Largest upstream response body passed through.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

pub const X_USER_ID: &str = "x-user-id";
pub const X_USERNAME: &str = "x-username";
pub const X_REQUEST_ID: &str = "x-request-id";

thread_local! {
    // One pooled client per worker thread: connections to upstreams are reused.
    static CLIENT: awc::Client = awc::Client::builder()
        .no_default_headers()
        .disable_redirects()
        .timeout(Duration::from_secs(3600))
        .finish();
}

/// Who the request is for, on authenticated routes.
#[derive(Debug, Clone)]
pub struct Forwarded<'a> {
    pub user_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub request_id: &'a str,
}

/// Headers that describe one connection, not the message.
pub fn hop_by_hop(headers: &HeaderMap) -> HashSet<HeaderName> {
    let mut set: HashSet<HeaderName> = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
    ]
    .into_iter()
    .collect();
    for value in headers.get_all(header::CONNECTION) {
        if let Ok(v) = value.to_str() {
            for token in v.split(',') {
                if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                    set.insert(name);
                }
            }
        }
    }
    set
}

fn is_dropped(name: &HeaderName, hop: &HashSet<HeaderName>) -> bool {
    hop.contains(name) || name.as_str().starts_with("proxy-")
}

/// The headers to send upstream for `req`.
pub fn upstream_headers(req: &HttpRequest, fwd: &Forwarded<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let headers = req.headers();
    let hop = hop_by_hop(headers);
    let mut out = Vec::with_capacity(headers.len() + 6);
    for (name, value) in headers.iter() {
        let own = matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "expect"
                | X_USER_ID
                | X_USERNAME
                | X_REQUEST_ID
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
        );
        if !own && !is_dropped(name, &hop) {
            out.push((name.clone(), value.clone()));
        }
    }
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let prior: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = if prior.is_empty() {
        peer
    } else {
        format!("{}, {peer}", prior.join(", "))
    };
    let mut push = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.push((HeaderName::from_static(name), v));
        }
    };
    push("x-forwarded-for", &xff);
    push("x-forwarded-proto", req.connection_info().scheme());
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        push("x-forwarded-host", host);
    }
    push(X_REQUEST_ID, fwd.request_id);
    if let (Some(id), Some(name)) = (fwd.user_id, fwd.username) {
        push(X_USER_ID, id);
        push(X_USERNAME, name);
    }
    out
}

/// Sends the request upstream and turns the answer into our response.
pub async fn forward(
    req: &HttpRequest,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    timeout: Duration,
) -> Result<HttpResponse, GatewayError> {
    let mut upstream = CLIENT.with(|c| c.request(req.method().clone(), url));
    upstream = upstream.timeout(timeout);
    for (name, value) in headers {
        upstream = upstream.append_header((name, value));
    }
    let exchange = async {
        let mut res = upstream.send_body(body).await.map_err(|e| match e {
            awc::error::SendRequestError::Timeout => GatewayError::UpstreamTimeout,
            awc::error::SendRequestError::Connect(_) => GatewayError::ServiceUnavailable,
            _ => GatewayError::BadGateway,
        })?;
        let body = res.body().limit(MAX_RESPONSE).await.map_err(|e| match e {
            awc::error::PayloadError::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
                GatewayError::UpstreamTimeout
            }
            _ => GatewayError::BadGateway,
        })?;
        Ok::<_, GatewayError>((res.status(), res.headers().clone(), body))
    };
    let (status, headers, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)??;
    let status = StatusCode::from_u16(status.as_u16()).map_err(|_| GatewayError::BadGateway)?;
    let hop = hop_by_hop(&headers);
    let mut res = HttpResponse::build(status);
    for (name, value) in headers.iter() {
        if name != header::CONTENT_LENGTH && !is_dropped(name, &hop) {
            res.append_header((name.clone(), value.clone()));
        }
    }
    Ok(res.body(body))
}
