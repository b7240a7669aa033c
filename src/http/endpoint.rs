//! `http.endpoint`: a method and path on a router, served by a function.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::Method;
use serde::Deserialize;

use super::Router;
use crate::function::FunctionSpec;

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

impl Endpoint {
    /// Checks method and path; the error is `(field, message)`.
    pub fn new(
        id: &str,
        config: &EndpointConfig,
        router: Arc<Router>,
        func: Arc<FunctionSpec>,
    ) -> Result<Self, (String, String)> {
        let upper = config.method.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            return Err((
                "method".into(),
                format!(
                    "expected one of {}, found {:?}",
                    METHODS.join(", "),
                    config.method
                ),
            ));
        }
        if !config.path.starts_with('/') {
            return Err((
                "path".into(),
                format!("expected a path starting with '/', found {:?}", config.path),
            ));
        }
        let method = Method::from_bytes(upper.as_bytes())
            .map_err(|e| ("method".to_owned(), e.to_string()))?;
        Ok(Endpoint {
            id: id.to_owned(),
            method,
            path: join_path(router.prefix(), &config.path),
            func,
            router,
        })
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
