//! `token_auth`: finds a token on the request and, if it validates against
//! the configured token store, puts the [`Identity`] in the request's
//! extensions. It never answers by itself; the endpoint decides what a
//! missing identity means.
//!
//! Lookup order: the `Authorization: Bearer <token>` header, then the
//! `x-auth-token` query parameter, then the `x-auth-token` cookie (all three
//! names and the prefix configurable). Where the token was found goes into
//! the extensions too ([`TokenSource`]), next to the identity: a browser
//! sends a cookie along whatever page makes the request, so later checks
//! (the relay's origin rule) must know.

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};

use super::super::Options;
use crate::metrics::Metrics;
use crate::security::{Identity, TokenStore};

/// The option keys this middleware reads.
pub const OPTION_KEYS: &[&str] = &[
    "token_auth.store",
    "token_auth.header.name",
    "token_auth.header.prefix",
    "token_auth.query.param",
    "token_auth.cookie.name",
];

/// Where a request's token was found; in the request's extensions whenever
/// an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// The `Authorization` header (or the configured one).
    Header,
    /// The `x-auth-token` query parameter (or the configured one).
    Query,
    /// The `x-auth-token` cookie (or the configured one).
    Cookie,
}

/// The `rippy_auth_failures_total` reason for a cookie token refused on a
/// cross-origin WebSocket upgrade.
pub const CROSS_ORIGIN_COOKIE: &str = "cross_origin_cookie";

/// Takes the identity (and its source) off the request: the endpoint then
/// sees an unauthenticated request.
pub(crate) fn forget_identity(req: &HttpRequest) {
    let mut ext = req.extensions_mut();
    ext.remove::<Arc<Identity>>();
    ext.remove::<TokenSource>();
}

/// The source of the request's identity, if it has one.
pub(crate) fn token_source(req: &HttpRequest) -> Option<TokenSource> {
    req.extensions().get::<TokenSource>().copied()
}

/// A router's token authentication.
pub struct TokenAuth {
    store: Arc<TokenStore>,
    header: String,
    prefix: String,
    query_param: String,
    cookie: String,
}

impl TokenAuth {
    /// The middleware from its options and resolved token store.
    pub fn new(o: &Options, store: Arc<TokenStore>) -> Self {
        TokenAuth {
            store,
            header: o
                .get("token_auth.header.name")
                .unwrap_or("Authorization")
                .to_owned(),
            prefix: o
                .get("token_auth.header.prefix")
                .unwrap_or("Bearer ")
                .to_owned(),
            query_param: o
                .get("token_auth.query.param")
                .unwrap_or("x-auth-token")
                .to_owned(),
            cookie: o
                .get("token_auth.cookie.name")
                .unwrap_or("x-auth-token")
                .to_owned(),
        }
    }

    fn find_token(&self, req: &HttpRequest) -> Option<(String, TokenSource)> {
        if let Some(value) = req
            .headers()
            .get(self.header.as_str())
            .and_then(|v| v.to_str().ok())
        {
            let value = value.trim();
            let prefix = self.prefix.trim_end();
            let token = if prefix.is_empty() {
                Some(value)
            } else if value.len() > prefix.len()
                && value[..prefix.len()].eq_ignore_ascii_case(prefix)
            {
                Some(value[prefix.len()..].trim_start())
            } else {
                None
            };
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                return Some((t.to_owned(), TokenSource::Header));
            }
        }
        if let Some(v) =
            crate::http::query_values(req.query_string(), &self.query_param).find(|v| !v.is_empty())
        {
            return Some((v.into_owned(), TokenSource::Query));
        }
        req.cookie(&self.cookie)
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| (v, TokenSource::Cookie))
    }

    /// Validates the request's token, if any, and stores the identity.
    pub fn enrich(&self, req: &HttpRequest, metrics: &Metrics) {
        let Some((token, source)) = self.find_token(req) else {
            return;
        };
        match self.store.identify(&token) {
            Ok(identity) => {
                let mut ext = req.extensions_mut();
                ext.insert(Arc::new(identity));
                ext.insert(source);
            }
            Err(reason) => {
                metrics.auth_failure(reason.label());
                log::debug!("token rejected reason={}", reason.label());
            }
        }
    }
}
