//! The `App` every worker of a server builds from its route table: health
//! and metrics, the header limit, compression, the endpoints grouped by path
//! (405 with `Allow`, CORS preflights), then mounts (proxies), static sites
//! and 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, ResponseError, web};

use super::service::{DEFAULT_BODY_IDLE_TIMEOUT, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_HEADER_SIZE};
use super::{BodyDeadlines, Endpoint, HttpError, HttpService, Mount, StaticSite};

/// What one server serves, snapshotted when it starts.
pub(crate) struct Routes {
    /// Endpoints grouped by full path, in declaration order.
    pub by_path: BTreeMap<String, Vec<Arc<Endpoint>>>,
    /// Longest mount first.
    pub statics: Vec<Arc<StaticSite>>,
    pub mounts: Vec<Arc<dyn Mount>>,
}

/// The app of one worker of `service`.
pub(crate) fn build_app(
    service: Arc<HttpService>,
    routes: Arc<Routes>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // gzip when the client accepts it; a response that already has a
    // Content-Encoding (an upstream's) or is an upgrade passes untouched.
    let header_limit = service
        .config
        .max_header_size
        .map_or(DEFAULT_MAX_HEADER_SIZE, |b| b.0);
    let deadlines = BodyDeadlines {
        total: service
            .config
            .body_timeout
            .map_or(DEFAULT_BODY_TIMEOUT, |d| d.get()),
        idle: service
            .config
            .body_idle_timeout
            .map_or(DEFAULT_BODY_IDLE_TIMEOUT, |d| d.get()),
    };
    let mut app = App::new()
        .app_data(deadlines)
        .wrap(super::compress::CompressIfAsked)
        .wrap(actix_web::middleware::from_fn(
            move |req: actix_web::dev::ServiceRequest,
                  next: actix_web::middleware::Next<_>| async move {
                let size: usize = req
                    .headers()
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum();
                if size > header_limit {
                    let res = HttpError::HeadersTooLarge { limit: header_limit }.error_response();
                    return Ok(req.into_response(res).map_into_right_body());
                }
                let mut req = req;
                super::guard_unread_body(&mut req, deadlines.idle);
                next.call(req).await.map(|r| r.map_into_left_body())
            },
        ))
        .route(
            "/healthz",
            web::get()
                .to(|| async { HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/metrics", {
            let service = service.clone();
            web::get().to(move || {
                let body = service.node.metrics().render();
                async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4; charset=utf-8")
                        .body(body)
                }
            })
        });
    for (path, endpoints) in &routes.by_path {
        let mut allow: Vec<String> = endpoints.iter().map(|e| e.method.to_string()).collect();
        let cors_router = endpoints
            .iter()
            .find(|e| e.router.has_cors())
            .map(|e| e.router.clone());
        if cors_router.is_some() {
            allow.push("OPTIONS".into());
        }
        let allow = allow.join(", ");
        let mut resource = web::resource(path.as_str());
        for endpoint in endpoints {
            let endpoint = endpoint.clone();
            resource = resource.route(web::method(endpoint.method.clone()).to(
                move |req: HttpRequest, payload: web::Payload| {
                    let endpoint = endpoint.clone();
                    async move { endpoint.router.dispatch(&endpoint, req, payload).await }
                },
            ));
        }
        if let Some(router) = cors_router {
            let allow = allow.clone();
            resource = resource.route(web::method(Method::OPTIONS).to(move |req: HttpRequest| {
                let res = router.preflight(&req, &allow);
                async move { res }
            }));
        }
        resource = resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { HttpError::MethodNotAllowed { allow }.error_response() }
        }));
        app = app.service(resource);
    }
    app.default_service(web::to(move |req: HttpRequest, payload: web::Payload| {
        let routes = routes.clone();
        async move {
            let path = req.uri().path();
            // The longest route of any mount; on a tie the first declared.
            let best = routes
                .mounts
                .iter()
                .filter_map(|m| Some((m.matches(path)?, m)))
                .min_by_key(|&(len, _)| std::cmp::Reverse(len));
            if let Some((_, mount)) = best {
                return mount.handle(req, payload).await;
            }
            for site in &routes.statics {
                if let Some(rel) = site.relative(req.uri().path()) {
                    return site.serve(&req, rel).await;
                }
            }
            match routes.mounts.first() {
                Some(mount) => mount.handle(req, payload).await,
                None => HttpError::NotFound.error_response(),
            }
        }
    }))
}
