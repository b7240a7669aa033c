//! `http.router`: a path prefix with its middleware, under one server.
//!
//! The router owns the per-request pipeline for its endpoints (see the
//! diagram in `http/mod.rs`). Middleware options are validated at load time;
//! here they are already typed. Everything the pipeline needs is resolved at
//! boot into handles the router holds (its server's node, body limit and
//! client pid counter; its token store): nothing on the request path looks
//! an entry up or calls back into the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use super::middleware::cors::Cors;
use super::middleware::token_auth::TokenAuth;
use super::middleware::websocket_relay::RelayConfig;
use super::middleware::{self, CORS, TOKEN_AUTH, WEBSOCKET_RELAY};
use super::service::RouteWiring;
use super::{BodyError, Endpoint, HttpError, HttpService, Options};
use crate::manifest::FieldError;
use crate::security::TokenStore;

/// `meta: { server: <id> }`, other meta keys free.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMeta {
    /// The `http.service` entry id.
    pub server: String,
    /// Other `meta` fields, kept as written.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

/// The `http.router` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The server the router mounts on.
    pub meta: ServerMeta,
    /// The path prefix of every endpoint on the router.
    #[serde(default)]
    pub prefix: String,
    /// Middleware run before the endpoint, in order.
    #[serde(default)]
    pub middleware: Vec<String>,
    /// The middleware's options.
    #[serde(default)]
    pub options: Options,
    /// Middleware run on the response (`websocket_relay`).
    #[serde(default)]
    pub post_middleware: Vec<String>,
    /// The post-middleware's options.
    #[serde(default)]
    pub post_options: Options,
}

impl RouterConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !self.prefix.is_empty() && !self.prefix.starts_with('/') {
            errors.push(FieldError::at(
                "prefix",
                format!("expected a path starting with '/', found {:?}", self.prefix),
            ));
        }
        if self.middleware.iter().any(|m| m == TOKEN_AUTH)
            && self.options.get("token_auth.store").is_none()
        {
            errors.push(FieldError::at(
                "options.token_auth.store",
                "missing, token_auth needs a security.token_store id",
            ));
        }
        errors.extend(middleware::validate(
            "middleware",
            &self.middleware,
            middleware::PRE,
            "options",
            &self.options,
        ));
        errors.extend(middleware::validate(
            "post_middleware",
            &self.post_middleware,
            middleware::POST,
            "post_options",
            &self.post_options,
        ));
        errors
    }

    /// The token store `token_auth` uses, if the router lists it.
    pub fn token_store(&self) -> Option<&str> {
        self.middleware
            .iter()
            .any(|m| m == TOKEN_AUTH)
            .then(|| self.options.get("token_auth.store"))
            .flatten()
    }
}

/// A booted `http.router`.
pub struct Router {
    /// The entry id.
    pub id: String,
    wiring: RouteWiring,
    server: String,
    prefix: String,
    cors: Option<Cors>,
    token_auth: Option<TokenAuth>,
    relay: Option<RelayConfig>,
}

impl Router {
    /// Builds the middleware from a checked config and the handles boot
    /// resolved: its server and, with `token_auth`, its token store. The
    /// error is `(field, message)`.
    pub fn new(
        id: &str,
        config: &RouterConfig,
        server: &HttpService,
        tokens: Option<Arc<TokenStore>>,
    ) -> Result<Self, FieldError> {
        let at = |field: &'static str| move |e: FieldError| e.under(field);
        let cors = if config.middleware.iter().any(|m| m == CORS) {
            Some(Cors::from_options(&config.options).map_err(at("options"))?)
        } else {
            None
        };
        let token_auth = tokens.map(|store| TokenAuth::new(&config.options, store));
        let relay = if config.post_middleware.iter().any(|m| m == WEBSOCKET_RELAY) {
            Some(RelayConfig::from_options(&config.post_options).map_err(at("post_options"))?)
        } else {
            None
        };
        Ok(Router {
            id: id.to_owned(),
            wiring: server.wiring(),
            server: config.meta.server.clone(),
            prefix: config.prefix.clone(),
            cors,
            token_auth,
            relay,
        })
    }

    /// The `http.service` this router belongs to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The path prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn has_cors(&self) -> bool {
        self.cors.is_some()
    }

    /// Answers a CORS preflight for one of this router's paths.
    pub(crate) fn preflight(&self, req: &HttpRequest, allow: &str) -> HttpResponse {
        match &self.cors {
            Some(cors) if Cors::is_preflight(req) => cors.preflight(req),
            _ => HttpError::MethodNotAllowed {
                allow: allow.to_owned(),
            }
            .error_response(),
        }
    }

    /// Runs one request through the pipeline.
    pub(crate) async fn dispatch(
        &self,
        endpoint: &Endpoint,
        req: HttpRequest,
        payload: web::Payload,
    ) -> HttpResponse {
        let mut res = self.run(endpoint, &req, payload).await;
        if let Some(cors) = &self.cors {
            cors.apply(&req, &mut res);
        }
        self.wiring
            .node
            .metrics()
            .http_request(&self.id, res.status().as_u16());
        res
    }

    async fn run(
        &self,
        endpoint: &Endpoint,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> HttpResponse {
        let node = &self.wiring.node;
        if let Some(auth) = &self.token_auth {
            auth.enrich(req, node.metrics());
        }
        let upgrade = self
            .relay
            .as_ref()
            .filter(|_| super::is_websocket_upgrade(req));
        if let Some(relay) = upgrade
            && let Err(refused) = relay.before(req, node.metrics(), &self.id)
        {
            return refused.error_response();
        }
        let body = if upgrade.is_some() {
            Bytes::new()
        } else {
            let limit = self.wiring.max_body;
            match super::read_body(req, payload, limit).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => {
                    return HttpError::PayloadTooLarge { limit }.error_response();
                }
                Err(BodyError::Unreadable) => return HttpError::BadBody.error_response(),
                Err(BodyError::TimedOut) => return HttpError::BodyTimeout.error_response(),
            }
        };
        let res = endpoint.func.call(node, req.clone(), body).await;
        match &self.relay {
            Some(relay) => relay.after(
                res,
                req,
                upgrade.is_some(),
                &endpoint.id,
                node,
                &self.wiring.clients,
            ),
            None => res,
        }
    }
}
