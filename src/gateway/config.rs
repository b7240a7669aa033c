//! The `http.proxy` entry as written in the manifest, and its load-time
//! rules (routes, upstreams, trusted networks, middleware options). The
//! running proxy (`proxy.rs`) is built from a checked config.

use serde::Deserialize;

use super::path;
use super::rate_limit::RateLimitConfig;
use super::trusted::Cidr;
use crate::http::{Options, ServerMeta};
use crate::manifest::FieldError;
use crate::manifest::{ByteSize, ManifestDuration};

/// One route of an `http.proxy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The path prefix the route matches.
    pub path: String,
    /// `http://host:port`.
    pub upstream: String,
    /// Whether the route needs a valid JWT.
    #[serde(default)]
    pub auth_required: bool,
    /// Overrides the proxy's `timeout`.
    #[serde(default)]
    pub timeout: Option<ManifestDuration>,
    /// Idle keep-alive connections to the upstream kept per worker
    /// (default 64, 0: a new connection per request).
    #[serde(default)]
    pub keepalive: Option<usize>,
}

/// The `http.proxy` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The server the proxy mounts on.
    pub meta: ServerMeta,
    /// A `security.jwt` entry; required when a route needs auth.
    #[serde(default)]
    pub jwt: Option<String>,
    /// A `security.identity` entry; required when a route needs auth.
    #[serde(default)]
    pub identity: Option<String>,
    /// Per-client rate limit, if any.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Upstream timeout (default 30s).
    #[serde(default)]
    pub timeout: Option<ManifestDuration>,
    /// Request body limit (default 1MiB).
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// The routes, matched longest path first.
    pub routes: Vec<RouteConfig>,
    /// Only `cors`.
    #[serde(default)]
    pub middleware: Vec<String>,
    /// `cors.*` options, as on routers.
    #[serde(default)]
    pub options: Options,
    /// The `service` field of access-log lines (default: the entry id).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Networks (`10.0.0.0/8`, `::1/128`) of proxies in front of the
    /// gateway whose `X-Forwarded-For/Proto/Host` are believed (default:
    /// none).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Forward request headers whose names hold `_` (default: dropped, as
    /// nginx's `underscores_in_headers off`).
    #[serde(default)]
    pub underscores_in_headers: bool,
}

/// `http://host:port` -> `host:port`.
pub fn upstream_authority(upstream: &str) -> Result<&str, String> {
    let rest = upstream.strip_prefix("http://").ok_or_else(|| {
        format!("expected an upstream like http://127.0.0.1:9000, found {upstream:?}")
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let valid = !authority.is_empty()
        && !authority.contains('/')
        && authority
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if valid {
        Ok(authority)
    } else {
        Err(format!(
            "expected an upstream like http://127.0.0.1:9000 (host and port, no path), found {upstream:?}"
        ))
    }
}

impl ProxyConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.routes.is_empty() {
            errors.push(FieldError::at("routes", "expected at least one route"));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let at = |f: &str| format!("routes[{i}].{f}");
            let normal = path::normalise(&r.path).is_ok_and(|p| p == r.path.as_str());
            // In the normal form requests are matched in, or the route could
            // never match and its traffic would fall to a shorter route.
            if !normal || (r.path.len() > 1 && r.path.ends_with('/')) {
                errors.push(FieldError::at(at("path"), format!(
                        "expected a path in normal form like /api/items (no trailing '/', ';' or dot segments; bytes other than letters, digits and -._~!$&'()*+,=:@ percent-encoded in upper-case hex, like /caf%C3%A9), found {:?}",
                        r.path
                    )));
            }
            // Case variants too: requests for one would be judged against
            // the other (see `Routes::route_for`).
            if let Some(o) = self.routes[..i]
                .iter()
                .find(|o| o.path.eq_ignore_ascii_case(&r.path))
            {
                errors.push(FieldError::at(
                    at("path"),
                    if o.path == r.path {
                        format!("duplicate route {}", r.path)
                    } else {
                        format!(
                            "duplicate route {} (the same as {} ignoring case)",
                            r.path, o.path
                        )
                    },
                ));
            }
            if let Err(e) = upstream_authority(&r.upstream) {
                errors.push(FieldError::at(at("upstream"), e));
            }
            if let Some(n) = r.keepalive
                && n > super::upstream::MAX_KEEPALIVE
            {
                errors.push(FieldError::at(
                    at("keepalive"),
                    format!(
                        "expected at most {} idle connections per worker, found {n}",
                        super::upstream::MAX_KEEPALIVE
                    ),
                ));
            }
            if r.auth_required && (self.jwt.is_none() || self.identity.is_none()) {
                errors.push(FieldError::at(
                    at("auth_required"),
                    "needs the proxy's jwt and identity fields",
                ));
            }
        }
        for (i, net) in self.trusted_proxies.iter().enumerate() {
            if let Err(e) = Cidr::parse(net) {
                errors.push(FieldError::at(format!("trusted_proxies[{i}]"), e));
            }
        }
        if let Some(rl) = &self.rate_limit
            && rl.requests == 0
        {
            errors.push(FieldError::at("rate_limit.requests", "expected at least 1"));
        }
        if let Some(rl) = &self.rate_limit
            && rl.max_keys == Some(0)
        {
            errors.push(FieldError::at("rate_limit.max_keys", "expected at least 1"));
        }
        errors.extend(crate::http::middleware::validate(
            "middleware",
            &self.middleware,
            &[crate::http::middleware::CORS],
            "options",
            &self.options,
        ));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_need_host_and_port() {
        assert_eq!(
            upstream_authority("http://127.0.0.1:9000").unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            upstream_authority("http://localhost:80/").unwrap(),
            "localhost:80"
        );
        for bad in [
            "https://a:1",
            "http://a",
            "http://a:x",
            "http://a:1/path",
            "127.0.0.1:9000",
        ] {
            assert!(upstream_authority(bad).is_err(), "{bad}");
        }
    }
}
