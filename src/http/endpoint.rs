//! `http.endpoint`: a method and path on a router, served by a function.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::Method;
use serde::Deserialize;

use super::Router;
use crate::function::FunctionSpec;
use crate::manifest::FieldError;

/// `meta: { router: <id> }`, other meta keys free.
#[derive(Debug, Clone, Deserialize)]
pub struct RouterMeta {
    pub router: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

/// The `http.endpoint` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The router the endpoint mounts on.
    pub meta: RouterMeta,
    /// The HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// The path below the router's prefix.
    pub path: String,
    /// The `function.*` entry that answers.
    pub func: String,
}

/// Methods an endpoint may take.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// A booted `http.endpoint`.
pub struct Endpoint {
    /// The entry id.
    pub id: String,
    /// The HTTP method.
    pub method: Method,
    /// The full path: the router's prefix joined with the endpoint's path.
    pub path: String,
    pub(crate) func: Arc<FunctionSpec>,
    pub(crate) router: Arc<Router>,
}

impl EndpointConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !METHODS.contains(&self.method.to_ascii_uppercase().as_str()) {
            errors.push(FieldError::at(
                "method",
                format!(
                    "expected one of {}, found {:?}",
                    METHODS.join(", "),
                    self.method
                ),
            ));
        }
        if !self.path.starts_with('/') {
            errors.push(FieldError::at(
                "path",
                format!("expected a path starting with '/', found {:?}", self.path),
            ));
        }
        errors
    }
}

impl Endpoint {
    /// The endpoint of a checked config under `router`.
    pub fn new(
        id: &str,
        config: &EndpointConfig,
        router: Arc<Router>,
        func: Arc<FunctionSpec>,
    ) -> Self {
        let method = Method::from_bytes(config.method.to_ascii_uppercase().as_bytes())
            .unwrap_or(Method::GET); // unreachable: check allows only METHODS
        Endpoint {
            id: id.to_owned(),
            method,
            path: join_path(router.prefix(), &config.path),
            func,
            router,
        }
    }
}

/// `/ws` + `/ticker` = `/ws/ticker`; `/` + `/x` = `/x`.
pub fn join_path(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if path == "/" && !prefix.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}{path}")
    }
}
