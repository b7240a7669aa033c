//! `http.service`: an actix-web server on `addr`.
//!
//! Routers, endpoints and static sites attach to the service while the
//! registry boots; the server binds and starts when boot is complete, with
//! every route known. Each worker builds the same `App` from that snapshot.
//! Every server answers `GET /healthz` and `GET /metrics`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_service::{
    IntoServiceFactory, ServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::admission::{self, Admission};
use super::app::{Routes, build_app};
use super::front::{FastMount, Front};
use super::listener::{admit, split_addr};
use super::upgrade::Upgraded;
use super::workers::Workers;
use super::{Endpoint, StaticSite};
use crate::manifest::FieldError;
use crate::manifest::{ByteSize, Lifecycle, ManifestDuration};
use crate::process::{Node, Pid};

/// Default request body limit.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The `http.service` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServiceConfig {
    /// `host:port` (or Go's `:port` for every interface); port 0 picks a
    /// free port.
    pub addr: String,
    /// An environment variable that, when set, holds the address instead
    /// (several nodes from one manifest).
    #[serde(default)]
    pub addr_env: Option<String>,
    /// Worker threads (default: the number of cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// Request body limit (default 64KiB); larger bodies get 413.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Time a client has to send its request head (default 5s).
    #[serde(default)]
    pub request_timeout: Option<ManifestDuration>,
    /// How long shutdown waits for in-flight requests (default 5s).
    #[serde(default)]
    pub shutdown_timeout: Option<ManifestDuration>,
    /// Total size of a request's header fields (default 16KiB); larger gets 431.
    #[serde(default)]
    pub max_header_size: Option<ByteSize>,
    /// Time from the end of a request's head to the end of its body
    /// (default 30s); later gets 408 and the connection is closed.
    #[serde(default)]
    pub body_timeout: Option<ManifestDuration>,
    /// Longest pause between two parts of a request body (default 10s).
    #[serde(default)]
    pub body_idle_timeout: Option<ManifestDuration>,
    /// Connections one client address may hold while they speak HTTP
    /// (default 256, 0 = no cap); more get 429 and are closed.
    #[serde(default)]
    pub max_connections_per_address: Option<usize>,
}

impl HttpServiceConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.workers == Some(0) {
            errors.push(FieldError::at(
                "workers",
                "expected at least 1 worker, found 0",
            ));
        }
        if let Err(message) = split_addr(&self.addr) {
            errors.push(FieldError::at("addr", message));
        }
        errors
    }

    /// `addr` as the system resolver takes it: Go's `:8081` (every
    /// interface) becomes `0.0.0.0:8081`.
    fn bind_addr(&self) -> String {
        let addr = self
            .addr_env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| self.addr.clone());
        match addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => addr,
        }
    }
}

/// Default deadline for a whole request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default longest pause inside a request body.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit on a request's header fields.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;

/// Something mounted on a server that answers the paths no endpoint took
/// (an `http.proxy`), ahead of static files.
pub trait Mount: Send + Sync {
    /// Whether this mount serves `path`: the length of the route prefix it
    /// matched, so that of two mounts on one server the more specific route
    /// wins (`/admin` on one over `/` on another), whatever their order.
    fn matches(&self, path: &str) -> Option<usize>;
    /// Answers a request (also one it does not match: its own 404).
    fn handle(
        &self,
        req: HttpRequest,
        payload: web::Payload,
    ) -> Pin<Box<dyn Future<Output = HttpResponse> + '_>>;
}

/// A booted `http.service`.
pub struct HttpService {
    id: Arc<str>,
    pub(super) config: HttpServiceConfig,
    pub(super) node: Arc<Node>,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    statics: Mutex<Vec<Arc<StaticSite>>>,
    mounts: Mutex<Vec<Arc<dyn Mount>>>,
    /// The mounts that also answer on the server's own HTTP/1 path.
    fast: Mutex<Vec<Arc<dyn FastMount + Send + Sync>>>,
    running: Mutex<Option<(Workers, SocketAddr)>>,
    clients: Arc<ClientPids>,
    upgraded: Arc<Upgraded>,
}

/// The pids of a server's WebSocket clients: `{<server id>|<n>}`.
#[derive(Debug)]
pub(crate) struct ClientPids {
    server: Arc<str>,
    next: AtomicU64,
}

impl ClientPids {
    /// A new client pid.
    pub fn next(&self) -> Pid {
        Pid::new(
            self.server.clone(),
            self.next.fetch_add(1, Ordering::Relaxed) + 1,
        )
    }
}

/// A router's handles on its server, resolved at boot.
#[derive(Clone)]
pub(crate) struct RouteWiring {
    pub node: Arc<Node>,
    pub max_body: usize,
    pub clients: Arc<ClientPids>,
}

impl HttpService {
    /// A server not yet listening; [`HttpService::start`] binds it.
    pub fn new(id: &str, config: &HttpServiceConfig, node: Arc<Node>) -> Self {
        HttpService {
            id: id.into(),
            config: config.clone(),
            node,
            endpoints: Mutex::default(),
            statics: Mutex::default(),
            mounts: Mutex::default(),
            fast: Mutex::default(),
            running: Mutex::default(),
            clients: Arc::new(ClientPids {
                server: id.into(),
                next: AtomicU64::new(0),
            }),
            upgraded: Arc::default(),
        }
    }

    /// The entry id (also the host part of WebSocket client pids).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What a router on this server is wired with at boot, so that nothing
    /// on the request path calls back into the server.
    pub(crate) fn wiring(&self) -> RouteWiring {
        RouteWiring {
            node: self.node.clone(),
            max_body: self.config.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
            clients: self.clients.clone(),
        }
    }

    /// Adds an endpoint (during boot). A method+path taken twice is an error.
    pub fn add_endpoint(&self, endpoint: Arc<Endpoint>) -> Result<(), String> {
        let mut list = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = list
            .iter()
            .find(|e| e.path == endpoint.path && e.method == endpoint.method)
        {
            return Err(format!(
                "{} {} is already served by {}",
                endpoint.method, endpoint.path, other.id
            ));
        }
        list.push(endpoint);
        Ok(())
    }

    /// Adds a static site (during boot).
    pub fn add_static(&self, site: Arc<StaticSite>) {
        self.statics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(site);
    }

    /// Mounts a proxy (during boot).
    pub fn add_mount(&self, mount: Arc<dyn Mount>) {
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mount);
    }

    /// Lets a mounted proxy answer on the server's own HTTP/1 path too
    /// (see `front`), used when every route of the server is one.
    pub(crate) fn add_fast(&self, mount: Arc<dyn FastMount + Send + Sync>) {
        self.fast
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mount);
    }

    /// The server's front, when all it serves is mounts that answer there.
    fn front(&self, routes: &Routes, stopping: &Arc<tokio::sync::Notify>) -> Option<Arc<Front>> {
        let fast = self.fast.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let only_fast = routes.by_path.is_empty()
            && routes.statics.is_empty()
            && !routes.mounts.is_empty()
            && fast.len() == routes.mounts.len();
        only_fast.then(|| {
            Arc::new(Front {
                mounts: fast,
                header_limit: self
                    .config
                    .max_header_size
                    .map_or(DEFAULT_MAX_HEADER_SIZE, |b| b.0),
                request_timeout: self
                    .config
                    .request_timeout
                    .map_or(Duration::from_secs(5), |d| d.get()),
                stopping: stopping.clone(),
                server: self.id.clone(),
                handoffs: self.node.metrics().counter_vec(
                    "rippy_http_front_handoffs_total",
                    "Connections a server's own HTTP/1 path handed to actix-http, by server.",
                    &["server"],
                ),
            })
        })
    }

    /// The bound address once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, a)| *a)
    }

    fn routes(&self) -> Arc<Routes> {
        let mut by_path: BTreeMap<String, Vec<Arc<Endpoint>>> = BTreeMap::new();
        for e in self
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            by_path.entry(e.path.clone()).or_default().push(e.clone());
        }
        let mut statics = self
            .statics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        statics.sort_by_key(|s| std::cmp::Reverse(s.mount_len()));
        let mounts = self
            .mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Arc::new(Routes {
            by_path,
            statics,
            mounts,
        })
    }

    /// Binds and starts serving. Must run inside an actix system.
    ///
    /// The server is actix-web's `HttpServer` assembled by hand, for one
    /// addition: an upgrade service, through which WebSocket requests leave
    /// the HTTP dispatcher once answered (see `http::upgrade`).
    pub fn start(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let routes = self.routes();
        let service = self.clone();
        let workers = self
            .config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 512);
        let request_timeout = self
            .config
            .request_timeout
            .map_or(Duration::from_secs(5), |d| d.get());
        let admission = Admission::new(
            self.config
                .max_connections_per_address
                .unwrap_or(admission::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
            self.node.metrics().counter_vec(
                "rippy_http_connections_refused_total",
                "Connections closed at accept, by server and reason.",
                &["server", "reason"],
            ),
            self.id.clone(),
        );
        let stopping = Arc::new(tokio::sync::Notify::new());
        let front = self.front(&routes, &stopping);
        let bind_addr = self.config.bind_addr();
        let http_stopping = stopping.clone();
        let factory = move || {
            let app = {
                let (service, routes) = (service.clone(), routes.clone());
                move || {
                    build_app(service.clone(), routes.clone())
                        .into_factory()
                        .map_err(|e| e.error_response())
                }
            };
            let upgrades = {
                let (app, upgraded) = (app.clone(), service.upgraded.clone());
                fn_factory(move || {
                    let (app, upgraded) = (app(), upgraded.clone());
                    async move {
                        let app = Rc::new(app.new_service(AppConfig::default()).await?);
                        Ok::<_, ()>(fn_service(move |(req, framed)| {
                            super::upgrade::serve(app.clone(), upgraded.clone(), req, framed)
                        }))
                    }
                })
            };
            let stopping = http_stopping.clone();
            let http = actix_http::HttpService::build()
                .client_request_timeout(request_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .upgrade(upgrades)
                .finish(map_config(app(), |_| AppConfig::default()));
            admit(admission.clone(), front.clone(), http)
        };
        let (workers, addr) =
            Workers::start(&bind_addr, workers, stopping, factory).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", self.config.addr),
                )
            })?;
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((workers, addr));
        log::info!(
            "http server listening server={} addr=http://{addr}",
            self.id
        );
        Ok(addr)
    }

    /// Stops accepting connections and closes open WebSockets with 1001.
    pub async fn close_intake(&self) {
        let handle = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(h, _)| h.clone());
        if let Some(handle) = handle {
            handle.pause();
        }
        for pid in self.node.pids_on(&self.id) {
            self.node.shutdown_process(&pid);
        }
        // The close frames go out before the workers stop; tunnels, which
        // get no close, are cut when the shutdown timeout is up.
        let _ = tokio::time::timeout(self.shutdown_timeout(), self.upgraded.closed()).await;
    }

    fn shutdown_timeout(&self) -> Duration {
        self.config
            .shutdown_timeout
            .map_or(Duration::from_secs(5), |d| d.get())
    }

    /// Stops the server, waiting for in-flight requests up to the shutdown timeout.
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((workers, _)) = running {
            workers.stop(true, self.shutdown_timeout()).await;
        }
    }
}
