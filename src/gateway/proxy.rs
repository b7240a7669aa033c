//! `http.proxy`: routes by path prefix to upstream services.
//!
//! Routes match the path's normal form (`path.rs`: unreserved escapes
//! decoded once; `;`, dot segments, `//`, encoded separators, dots or
//! control characters refused as `INVALID_PATH`), by whole segments,
//! longest first (`routes.rs`). Exactly the normal form that was matched is
//! forwarded, with the query unchanged. Route paths must themselves be in
//! normal form (checked at load).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};

use super::access::{AccessLine, number};
use super::config::ProxyConfig;
use super::forward::{self, Forwarded, HeaderPolicy};
use super::rate_limit::{Decision, RateLimiter};
use super::routes::Routes;
use super::trusted::{Cidr, TrustedProxies};
use super::{GatewayError, path, tunnel};
use crate::http::front::{Headers, Incoming, text};
use crate::http::middleware::cors::Cors;
use crate::manifest::FieldError;
use crate::metrics::{CounterVec, HistogramVec};
use crate::process::Node;
use crate::security::{IdentityResolver, JwtError, JwtVerifier};
use actix_web::web::BytesMut;

/// Default upstream timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default request body limit.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

struct GatewayMetrics {
    requests: Arc<CounterVec>,
    duration: Arc<HistogramVec>,
    auth_failures: Arc<CounterVec>,
    proxy_errors: Arc<CounterVec>,
}

/// A booted `http.proxy`.
pub struct Proxy {
    /// The entry id.
    pub id: String,
    service: String,
    routes: Routes,
    jwt: Option<Arc<JwtVerifier>>,
    identity: Option<Arc<IdentityResolver>>,
    limiter: Option<RateLimiter>,
    /// `X-RateLimit-Limit`, the same on every answer: built once, shared.
    pub(super) limit_header: Option<HeaderValue>,
    max_body: usize,
    cors: Option<Cors>,
    headers: HeaderPolicy,
    metrics: GatewayMetrics,
}

/// What the access log records about one request.
#[derive(Default)]
pub(super) struct Outcome {
    pub username: Option<Arc<str>>,
    pub user_id: Option<Arc<str>>,
    pub route: Option<usize>,
    pub limit: Option<Decision>,
}

impl Proxy {
    /// A proxy from its config and resolved dependencies.
    pub fn new(
        id: &str,
        config: &ProxyConfig,
        jwt: Option<Arc<JwtVerifier>>,
        identity: Option<Arc<IdentityResolver>>,
        node: &Node,
    ) -> Result<Self, FieldError> {
        let timeout = config.timeout.map_or(DEFAULT_TIMEOUT, |d| d.get());
        let routes = Routes::new(&config.routes, timeout)?;
        let cors = if config
            .middleware
            .iter()
            .any(|m| m == crate::http::middleware::CORS)
        {
            Some(Cors::from_options(&config.options).map_err(|e| e.under("options"))?)
        } else {
            None
        };
        let mut trusted = Vec::new();
        for (i, net) in config.trusted_proxies.iter().enumerate() {
            trusted.push(
                Cidr::parse(net).map_err(|e| FieldError::at(format!("trusted_proxies[{i}]"), e))?,
            );
        }
        let m = node.metrics();
        Ok(Proxy {
            id: id.to_owned(),
            service: config.service_name.clone().unwrap_or_else(|| id.to_owned()),
            routes,
            jwt,
            identity,
            limiter: config.rate_limit.as_ref().map(RateLimiter::new),
            limit_header: config
                .rate_limit
                .as_ref()
                .map(|r| number(r.requests.into())),
            max_body: config.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
            cors,
            headers: HeaderPolicy {
                underscores: config.underscores_in_headers,
                trusted: TrustedProxies::new(trusted),
            },
            metrics: GatewayMetrics {
                requests: m.counter_vec(
                    "gateway_requests_total",
                    "Gateway requests by route, method and status.",
                    &["route", "method", "status"],
                ),
                duration: m.histogram_vec(
                    "gateway_request_duration_seconds",
                    "Gateway request duration by route.",
                    &["route"],
                    DURATION_BUCKETS,
                ),
                auth_failures: m.counter_vec(
                    "gateway_auth_failures_total",
                    "Gateway authentication failures by reason.",
                    &["reason"],
                ),
                proxy_errors: m.counter_vec(
                    "gateway_proxy_errors_total",
                    "Gateway upstream failures by route and kind.",
                    &["route", "kind"],
                ),
            },
        })
    }

    /// The length of the route matching `raw` (the path as received), if
    /// one does. A path that is refused but lies under a route is ours
    /// too: we answer its 400.
    pub fn matches(&self, raw: &str) -> Option<usize> {
        self.routes.matches(raw)
    }

    /// The rate limiter, if configured.
    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.limiter.as_ref()
    }

    /// Answers one request (matched or not: an unmatched one gets 404).
    pub async fn handle(&self, req: HttpRequest, payload: web::Payload) -> HttpResponse {
        let started = Instant::now();
        let mut generated = [0; uuid::fmt::Hyphenated::LENGTH];
        let incoming = incoming_request_id(Headers::Map(req.headers()));
        let request_id = match incoming {
            Some((_, text)) => text,
            None => new_request_id(&mut generated),
        };
        let mut outcome = Outcome::default();
        let mut res = match self.run(&req, payload, request_id, &mut outcome).await {
            Ok(res) => res,
            Err(e) => self.failure(e, request_id, &outcome),
        };
        self.label(
            res.headers_mut(),
            incoming.and_then(|(value, _)| value),
            request_id,
            &outcome,
        );
        if let Some(cors) = &self.cors {
            cors.apply(&req, &mut res);
        }
        self.record(
            &Incoming::of(&req),
            request_id,
            &outcome,
            res.status(),
            started.elapsed(),
        );
        res
    }

    /// The answer for a request that failed with `e`, counted and logged.
    pub(super) fn failure(
        &self,
        e: GatewayError,
        request_id: &str,
        outcome: &Outcome,
    ) -> HttpResponse {
        if let Some(i) = outcome.route
            && e.fault() == super::Fault::Upstream
        {
            let kind = match e {
                GatewayError::UpstreamTimeout => "timeout",
                GatewayError::ServiceUnavailable => "connect",
                _ => "protocol",
            };
            self.metrics
                .proxy_errors
                .inc(&[&self.routes.get(i).path, kind]);
        }
        if e.fault() != super::Fault::Client {
            log::warn!(
                "gateway error request_id={request_id} code={} fault={:?}",
                e.code(),
                e.fault()
            );
        }
        e.response(request_id)
    }

    /// Puts on an answer's headers its request id (`incoming`, the
    /// client's own value, shared rather than copied, when it was kept) and,
    /// for a request the rate limit let through, where it stands.
    pub(super) fn label(
        &self,
        headers: &mut HeaderMap,
        incoming: Option<&HeaderValue>,
        request_id: &str,
        outcome: &Outcome,
    ) {
        let id = incoming.map(|value| Ok(value.clone()));
        if let Ok(v) = id.unwrap_or_else(|| HeaderValue::from_str(request_id)) {
            headers.insert(forward::X_REQUEST_ID_NAME, v);
        }
        if let Some(d) = outcome.limit
            && d.allowed
        {
            let limit = self.limit_header.clone();
            headers.insert(
                X_RATELIMIT_LIMIT,
                limit.unwrap_or_else(|| number(d.limit.into())),
            );
            headers.insert(X_RATELIMIT_REMAINING, number(d.remaining.into()));
            headers.insert(X_RATELIMIT_RESET, number(d.reset_secs));
        }
    }

    async fn run(
        &self,
        req: &HttpRequest,
        payload: web::Payload,
        request_id: &str,
        outcome: &mut Outcome,
    ) -> Result<HttpResponse, GatewayError> {
        let incoming = Incoming::of(req);
        let (path, index) = self.locate(&incoming, outcome)?;
        if let Some(cors) = &self.cors
            && Cors::is_preflight(req)
        {
            return Ok(cors.preflight(req));
        }
        self.admit(&incoming, index, outcome).await?;
        let route = self.routes.get(index);
        let websocket = crate::http::is_websocket_upgrade(req);
        // Only a GET can open a WebSocket (RFC 6455 4.1): tunnelled as a GET
        // a POST would change method, forwarded as a POST it would lose the
        // body an upgrade connection never reads.
        if websocket && req.method() != Method::GET {
            return Err(GatewayError::UpgradeNotGet);
        }
        let head = self.upstream_head(&incoming, &path, index, request_id, outcome);
        if websocket {
            return tunnel::open(head, &route.authority, route.timeout).await;
        }
        let limit = self.max_body;
        let deadlines = req
            .app_data::<crate::http::BodyDeadlines>()
            .copied()
            .unwrap_or_default();
        let body = match crate::http::declared_length(req) {
            Some(n) if n > limit as u64 => {
                return Err(GatewayError::PayloadTooLarge { limit });
            }
            Some(n) if n > forward::STREAM_FROM => forward::Upload::Stream(
                n,
                forward::UploadStream::new(payload, deadlines.total, deadlines.idle),
            ),
            _ => {
                forward::Upload::Whole(crate::http::read_body(req, payload, limit).await.map_err(
                    |e| match e {
                        crate::http::BodyError::TooLarge => GatewayError::PayloadTooLarge { limit },
                        crate::http::BodyError::Unreadable => GatewayError::BadRequest,
                        crate::http::BodyError::TimedOut => GatewayError::RequestTimeout,
                    },
                )?)
            }
        };
        forward::forward(
            req.method(),
            head,
            body,
            self.destination(index),
            deadlines.total,
        )
        .await
    }

    /// The path's normal form and its route: 400 for a path refused, 404
    /// for none, 405 for `CONNECT` and `TRACE`.
    pub(super) fn locate<'p>(
        &self,
        req: &Incoming<'p>,
        outcome: &mut Outcome,
    ) -> Result<(Cow<'p, str>, usize), GatewayError> {
        let path = path::normalise(req.path)?;
        let index = self.routes.route_for(&path)?;
        outcome.route = Some(index);
        if *req.method == Method::CONNECT || *req.method == Method::TRACE {
            return Err(GatewayError::MethodNotAllowed);
        }
        Ok((path, index))
    }

    /// The caller's identity on route `index` (required on a protected
    /// route, taken when proven on an open one) and the rate limit.
    pub(super) async fn admit(
        &self,
        req: &Incoming<'_>,
        index: usize,
        outcome: &mut Outcome,
    ) -> Result<(), GatewayError> {
        if self.routes.get(index).auth_required {
            let (username, user_id) = self.authenticate(req.headers).await.inspect_err(|e| {
                let reason = match e {
                    GatewayError::InvalidToken(r) => r,
                    GatewayError::TokenExpired => "expired",
                    GatewayError::UserNotFound => "user_not_found",
                    _ => "internal",
                };
                self.metrics.auth_failures.inc(&[reason]);
            })?;
            outcome.username = Some(username);
            outcome.user_id = Some(user_id);
        } else if self.jwt.is_some() && req.headers.contains(&header::AUTHORIZATION) {
            // An open route still tells the upstream who is calling when the
            // caller proves it; a token that does not validate is no error
            // here, the request simply goes on without an identity.
            if let Ok((username, user_id)) = self.authenticate(req.headers).await {
                outcome.username = Some(username);
                outcome.user_id = Some(user_id);
            }
        }
        if let Some(limiter) = &self.limiter {
            let decision = match &outcome.user_id {
                Some(id) => limiter.check_user(id),
                None => limiter.check_ip(self.headers.trusted.client(req.peer, req.headers)),
            };
            outcome.limit = Some(decision);
            if !decision.allowed {
                return Err(GatewayError::RateLimited {
                    limit: decision.limit,
                    reset_secs: decision.reset_secs,
                });
            }
        }
        Ok(())
    }

    /// The upstream request's head for route `index`: exactly the path
    /// that was matched, and the query as received.
    pub(super) fn upstream_head(
        &self,
        req: &Incoming<'_>,
        path: &str,
        index: usize,
        request_id: &str,
        outcome: &Outcome,
    ) -> BytesMut {
        let fwd = Forwarded {
            user_id: outcome.user_id.as_deref(),
            username: outcome.username.as_deref(),
            request_id,
        };
        let route = self.routes.get(index);
        forward::request_head(req, path, &route.authority, &fwd, &self.headers)
    }

    pub(super) fn destination(&self, index: usize) -> forward::Destination<'_> {
        let route = self.routes.get(index);
        forward::Destination {
            authority: &route.authority,
            keepalive: route.keepalive,
            timeout: route.timeout,
        }
    }

    /// Checks the bearer token, then maps its username to a user id.
    async fn authenticate(
        &self,
        headers: Headers<'_>,
    ) -> Result<(Arc<str>, Arc<str>), GatewayError> {
        let (Some(jwt), Some(identity)) = (&self.jwt, &self.identity) else {
            return Err(GatewayError::Internal);
        };
        let mut values = headers.get_all(&header::AUTHORIZATION);
        let value = values.next().ok_or(GatewayError::InvalidToken("missing"))?;
        if values.next().is_some() {
            return Err(GatewayError::InvalidToken("duplicate_header"));
        }
        let value = text(value).ok_or(GatewayError::InvalidToken("malformed"))?;
        let split = value
            .bytes()
            .position(|b| b == b' ')
            .map(|at| (&value[..at], &value[at + 1..]));
        let token = match split {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => return Err(GatewayError::InvalidToken("malformed")),
        };
        let claims = jwt.verify(token).map_err(|e| match e {
            JwtError::Expired => GatewayError::TokenExpired,
            JwtError::Invalid(reason) => GatewayError::InvalidToken(reason),
        })?;
        match identity.resolve(&claims.username).await {
            Ok(Some(id)) => Ok((claims.username, id)),
            Ok(None) => Err(GatewayError::UserNotFound),
            Err(e) => {
                log::error!("identity lookup failed proxy={} error={e}", self.id);
                Err(GatewayError::Internal)
            }
        }
    }

    pub(super) fn record(
        &self,
        req: &Incoming<'_>,
        request_id: &str,
        outcome: &Outcome,
        status: actix_web::http::StatusCode,
        took: Duration,
    ) {
        let route = outcome
            .route
            .map_or("unmatched", |i| self.routes.get(i).path.as_str());
        let method = req.method.as_str();
        let method = if METHODS.contains(&method) {
            method
        } else {
            "OTHER"
        };
        self.metrics.requests.inc(&[route, method, status.as_str()]);
        self.metrics.duration.observe(&[route], took.as_secs_f64());
        thread_local! {
            // The line's timestamp, reused request after request.
            static TIMESTAMP: std::cell::Cell<String> = const { std::cell::Cell::new(String::new()) };
        }
        // Nothing is written when the filter leaves access lines out.
        crate::logging::info_line("access", |json| {
            crate::util::with_scratch(&TIMESTAMP, |timestamp| {
                timestamp.clear();
                crate::util::rfc3339_into(timestamp, crate::util::unix_ms());
                let line = AccessLine {
                    timestamp,
                    level: "INFO",
                    service: &self.service,
                    request_id,
                    method: req.method.as_str(),
                    path: req.path,
                    username: outcome.username.as_deref(),
                    user_id: outcome.user_id.as_deref(),
                    backend_service: outcome.route.map(|i| self.routes.get(i).upstream.as_str()),
                    response_time_ms: (took.as_secs_f64() * 1e6).round() / 1e3,
                    status_code: status.as_u16(),
                };
                line.write(json);
            });
        });
    }
}

impl crate::http::Mount for Proxy {
    fn matches(&self, path: &str) -> Option<usize> {
        Proxy::matches(self, path)
    }

    fn handle(
        &self,
        req: HttpRequest,
        payload: web::Payload,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpResponse> + '_>> {
        Box::pin(Proxy::handle(self, req, payload))
    }
}

// Names built once: `from_static` at run time checks the name each call.
/// The rate-limit headers `label` sets: limit, remaining, reset.
pub(super) const RATE_LIMIT_NAMES: [&str; 3] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];
const X_RATELIMIT_LIMIT: header::HeaderName = header::HeaderName::from_static(RATE_LIMIT_NAMES[0]);
const X_RATELIMIT_REMAINING: header::HeaderName =
    header::HeaderName::from_static(RATE_LIMIT_NAMES[1]);
const X_RATELIMIT_RESET: header::HeaderName = header::HeaderName::from_static(RATE_LIMIT_NAMES[2]);

/// The client's `X-Request-Id` when it is one the gateway keeps: 1 to 128
/// of `A-Za-z0-9._-`.
pub(super) fn incoming_request_id(headers: Headers<'_>) -> Option<(Option<&HeaderValue>, &str)> {
    let text = text(headers.get(&forward::X_REQUEST_ID_NAME)?)?;
    let kept = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    kept.then(|| (headers.value(&forward::X_REQUEST_ID_NAME), text))
}

/// A fresh request id: a random (v4) UUID written into `buf`, its bits from
/// the thread's CSPRNG rather than a `getrandom` call per request.
pub(super) fn new_request_id(buf: &mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &str {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_lower(buf)
}
