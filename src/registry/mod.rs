//! The registry: validates a manifest, boots its entries in dependency order,
//! and shuts them down in reverse.
//!
//! Validation ([`Registry::check`]) reports every problem at once: unknown
//! kinds, bad fields, dangling references (a reference to an entry of the
//! wrong kind counts as dangling), missing catalog code, and dependency
//! cycles, each naming the entry and field. Boot then cannot fail on the
//! manifest's shape, only on the world (a port in use, an unreadable file);
//! such a failure of an entry with `lifecycle.startup: optional` is logged
//! and boot goes on without it. Bare references (`server: gateway`) are
//! first resolved in the entry's namespace (the module `bare`).

mod bare;
mod code;
mod graph;
mod kind;
pub mod kinds;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::component::{Components, LookupError};
use crate::http::HttpService;
use crate::manifest::{
    Entry, FieldError, Manifest, ManifestError, ManifestErrors, Startup, is_entry_id,
};
use crate::process::{Node, Pid, ProcessCollector, ProcessHost, ProcessSpec, ServiceHandle};

/// A manifest that passed validation: entries with decoded configs, in boot order.
pub struct Plan {
    manifest: Manifest,
    steps: Vec<Step>,
}

struct Step {
    entry: Entry,
    kind: &'static dyn kind::Kind,
    config: Box<dyn Any + Send + Sync>,
}

impl Plan {
    /// Entry ids in boot order.
    pub fn boot_order(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.entry.id.as_str()).collect()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the plan has no entries.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// Why a registry could not start.
#[derive(Debug)]
pub enum RegistryError {
    /// The manifest is invalid.
    Manifest(ManifestErrors),
    /// An entry failed to boot.
    Boot(ManifestError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Manifest(e) => e.fmt(f),
            RegistryError::Boot(e) => write!(f, "boot failed: {e}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// What a boot function can use.
pub(crate) struct Boot<'a> {
    pub base_dir: &'a Path,
    pub node: &'a Arc<Node>,
    pub components: &'a Arc<Components>,
    pub catalog: &'a Catalog,
    pub hosts: Vec<Arc<ProcessHost>>,
    pub http: Vec<Arc<HttpService>>,
    pub services: Vec<ServiceHandle>,
    kind: &'static str,
}

impl Boot<'_> {
    /// The booted entry `id` that `field` references, as a `T`.
    pub fn handle<T: Any + Send + Sync>(
        &self,
        field: &str,
        id: &str,
    ) -> Result<Arc<T>, FieldError> {
        self.components
            .get(id)
            .map_err(|e| FieldError::at(field, e.to_string()))
    }

    /// Records a booted entry; process entries and hosts also become spawn
    /// targets of the node, whatever kind booted them.
    pub fn insert<T: Any + Send + Sync>(&self, entry: &Entry, value: Arc<T>) {
        let any: Arc<dyn Any + Send + Sync> = value.clone();
        if let Ok(spec) = any.clone().downcast::<ProcessSpec>() {
            self.node.add_spec(&entry.id, spec);
        } else if let Ok(host) = any.downcast::<ProcessHost>() {
            self.node.add_host(&entry.id, host);
        }
        self.components.insert(&entry.id, self.kind, value);
    }
}

/// A booted manifest.
pub struct Registry {
    node: Arc<Node>,
    components: Arc<Components>,
    order: Vec<String>,
    hosts: Vec<Arc<ProcessHost>>,
    http: Vec<Arc<HttpService>>,
    services: Vec<ServiceHandle>,
    skipped: Vec<String>,
}

impl Registry {
    /// Validates a manifest against the kind table and the catalog.
    pub fn check(manifest: Manifest, catalog: &Catalog) -> Result<Plan, ManifestErrors> {
        let (manifest, written) = bare::resolve(manifest, catalog);
        let written_as = |entry: &Entry, field: &str| {
            written
                .get(&(entry.id.clone(), field.to_owned()))
                .map(|w| format!(" (written {w:?}, resolved in the entry's namespace)"))
                .unwrap_or_default()
        };
        let file = manifest.file.clone();
        let mut errors = Vec::new();
        let mut decoded = Vec::new();
        for entry in &manifest.entries {
            let Some(kind) = kinds::find(&entry.kind) else {
                errors.push(entry.error(
                    &file,
                    Some("kind"),
                    format!(
                        "unknown kind {:?}, expected one of {}",
                        entry.kind,
                        kinds::names().join(", ")
                    ),
                ));
                continue;
            };
            match kind.decode(&file, entry) {
                Ok(config) => decoded.push(Step {
                    entry: entry.clone(),
                    kind,
                    config,
                }),
                Err(e) => errors.push(e),
            }
        }
        let cx = kind::CheckContext {
            catalog,
            base_dir: &manifest.base_dir,
            code: decoded
                .iter()
                .filter_map(|s| Some((s.entry.id.clone(), s.kind.code(s.config.as_ref())?)))
                .collect(),
        };
        for step in &decoded {
            for e in step.kind.check(step.config.as_ref(), &cx) {
                errors.push(e.for_entry(&file, &step.entry));
            }
        }
        let all: Vec<(&Entry, &dyn Any)> = decoded
            .iter()
            .map(|s| (&s.entry, s.config.as_ref() as &dyn Any))
            .collect();
        for (i, e) in kinds::cross_check(&all) {
            errors.push(e.for_entry(&file, &decoded[i].entry));
        }
        let kinds_by_id: HashMap<&str, &str> = manifest
            .entries
            .iter()
            .map(|e| (e.id.as_str(), e.kind.as_str()))
            .collect();
        let mut edges: Vec<Vec<(usize, String)>> = Vec::with_capacity(decoded.len());
        let index: HashMap<&str, usize> = decoded
            .iter()
            .enumerate()
            .map(|(i, s)| (s.entry.id.as_str(), i))
            .collect();
        for Step {
            entry,
            kind,
            config,
        } in &decoded
        {
            let mut deps = Vec::new();
            for r in kind.references(config.as_ref(), &cx) {
                if r.every {
                    deps.extend(
                        decoded
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| r.kinds.contains(&s.entry.kind.as_str()))
                            .map(|(i, _)| (i, r.field.clone())),
                    );
                    continue;
                }
                let expected = if r.kinds.is_empty() {
                    "an entry id".to_owned()
                } else {
                    format!("the id of a {} entry", r.kinds.join(" or "))
                };
                if !is_entry_id(&r.id) {
                    errors.push(entry.error(
                        &file,
                        Some(&r.field),
                        format!(
                            "expected {expected} like {}:name, found {:?}",
                            manifest.namespace, r.id
                        ),
                    ));
                    continue;
                }
                match kinds_by_id.get(r.id.as_str()) {
                    None => errors.push(entry.error(
                        &file,
                        Some(&r.field),
                        format!(
                            "dangling reference: no entry {} (expected {expected}){}",
                            r.id,
                            written_as(entry, &r.field)
                        ),
                    )),
                    Some(k) if !r.kinds.is_empty() && !r.kinds.contains(k) => {
                        errors.push(entry.error(
                            &file,
                            Some(&r.field),
                            format!(
                                "dangling reference: {} is a {k}, expected {expected}{}",
                                r.id,
                                written_as(entry, &r.field)
                            ),
                        ))
                    }
                    Some(_) => {
                        if let Some(&i) = index.get(r.id.as_str()) {
                            deps.push((i, r.field.clone()));
                        }
                    }
                }
            }
            edges.push(deps);
        }
        let order = match graph::topological_order(&edges) {
            Ok(order) => order,
            Err(cycles) => {
                for cycle in cycles {
                    let (first, field) = &cycle[0];
                    let path: Vec<&str> = cycle
                        .iter()
                        .map(|(i, _)| decoded[*i].entry.id.as_str())
                        .chain(std::iter::once(decoded[cycle[0].0].entry.id.as_str()))
                        .collect();
                    errors.push(decoded[*first].entry.error(
                        &file,
                        Some(field),
                        format!("dependency cycle: {}", path.join(" -> ")),
                    ));
                }
                Vec::new()
            }
        };
        if !errors.is_empty() {
            return Err(ManifestErrors(errors));
        }
        let mut slots: Vec<Option<Step>> = decoded.into_iter().map(Some).collect();
        let steps = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(Plan { manifest, steps })
    }

    /// Validates and boots a manifest. Must run inside an actix system.
    pub fn boot(manifest: Manifest, catalog: &Catalog) -> Result<Registry, RegistryError> {
        let plan = Self::check(manifest, catalog).map_err(RegistryError::Manifest)?;
        Self::boot_plan(plan, catalog)
    }

    /// Boots a validated plan: entries in order, then the HTTP servers.
    pub fn boot_plan(plan: Plan, catalog: &Catalog) -> Result<Registry, RegistryError> {
        let components = Arc::new(Components::default());
        let node = Node::new();
        let file = plan.manifest.file.clone();
        let mut boot = Boot {
            base_dir: &plan.manifest.base_dir,
            node: &node,
            components: &components,
            catalog,
            hosts: Vec::new(),
            http: Vec::new(),
            services: Vec::new(),
            kind: "",
        };
        let mut order = Vec::new();
        let mut skipped = Vec::new();
        for step in &plan.steps {
            boot.kind = step.kind.name();
            if let Err(e) = step.kind.boot(&mut boot, &step.entry, step.config.as_ref()) {
                let error = e.for_entry(&file, &step.entry);
                if startup(&step.entry) == Startup::Optional {
                    log::error!("optional entry failed to boot, continuing without it: {error}");
                    skipped.push(step.entry.id.clone());
                    continue;
                }
                stop_hosts(&boot.hosts);
                return Err(RegistryError::Boot(error));
            }
            log::debug!("entry booted id={} kind={}", step.entry.id, step.entry.kind);
            order.push(step.entry.id.clone());
        }
        let mut started = Vec::new();
        for service in std::mem::take(&mut boot.http) {
            if let Err(e) = service.start() {
                let entry = plan.manifest.entry(service.id());
                if entry.is_some_and(|e| startup(e) == Startup::Optional) {
                    log::error!(
                        "optional http.service failed to start, continuing without it: id={} error={e}",
                        service.id()
                    );
                    skipped.push(service.id().to_owned());
                    continue;
                }
                stop_hosts(&boot.hosts);
                let error = match entry {
                    Some(entry) => entry.error(&file, Some("addr"), e.to_string()),
                    None => ManifestError {
                        file: file.clone(),
                        entry: Some(service.id().to_owned()),
                        kind: Some("http.service".into()),
                        field: Some("addr".into()),
                        message: e.to_string(),
                    },
                };
                return Err(RegistryError::Boot(error));
            }
            started.push(service);
        }
        boot.http = started;
        let Boot {
            hosts,
            http,
            services,
            ..
        } = boot;
        node.metrics().add_collector(Arc::new(ProcessCollector {
            node: Arc::downgrade(&node),
            services: components.all::<ServiceHandle>(),
        }));
        Ok(Registry {
            node,
            components,
            order,
            hosts,
            http,
            services,
            skipped,
        })
    }

    /// Entries with `lifecycle.startup: optional` that failed to boot or
    /// start, and run without.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The node (process table) of this registry.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The booted entry `id` as a `T`.
    pub fn get<T: Any + Send + Sync>(&self, id: &str) -> Result<Arc<T>, LookupError> {
        self.components.get(id)
    }

    /// Entry ids in the order they booted.
    pub fn boot_order(&self) -> &[String] {
        &self.order
    }

    /// The bound address of an `http.service`.
    pub fn http_addr(&self, id: &str) -> Option<SocketAddr> {
        self.get::<HttpService>(id).ok()?.local_addr()
    }

    /// Shuts down: HTTP intake stops and WebSockets close with 1001; every
    /// process gets a shutdown event; services stop in reverse boot order;
    /// a service with `lifecycle.stop_timeout` that has not exited within it
    /// is killed then; whatever has not exited when `grace` runs out is killed.
    pub async fn shutdown(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        log::info!("shutting down grace_ms={}", grace.as_millis());
        for http in &self.http {
            http.close_intake().await;
        }
        let service_pids: HashSet<Pid> = self
            .services
            .iter()
            .flat_map(|s| [s.supervisor(), s.pid()])
            .flatten()
            .collect();
        let mut others = Vec::new();
        for host in &self.hosts {
            for pid in self.node.pids_on(host.id()) {
                if !service_pids.contains(&pid) {
                    self.node.shutdown_process(&pid);
                    others.push(pid);
                }
            }
        }
        for http in &self.http {
            others.extend(self.node.pids_on(http.id()));
        }
        self.wait_all(&others, deadline).await;
        for service in self.services.iter().rev() {
            if let Some(sup) = service.supervisor() {
                self.node.shutdown_process(&sup);
                let Some(stop_timeout) = service.stop_timeout() else {
                    self.wait_all(&[sup], deadline).await;
                    continue;
                };
                let until = deadline.min(Instant::now() + stop_timeout);
                let left = until.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, self.node.wait_exit(&sup))
                    .await
                    .is_err()
                {
                    log::warn!(
                        "service did not stop within stop_timeout, killing it service={} stop_timeout_ms={}",
                        service.id(),
                        stop_timeout.as_millis()
                    );
                    for pid in [service.pid(), Some(sup)].into_iter().flatten() {
                        self.node.kill(&pid);
                    }
                }
            }
        }
        let mut killed = 0;
        for host in &self.hosts {
            for pid in self.node.pids_on(host.id()) {
                if self.node.kill(&pid) {
                    killed += 1;
                }
            }
        }
        if killed > 0 {
            log::warn!("killed processes after grace period count={killed}");
            let stragglers: Vec<Pid> = self
                .hosts
                .iter()
                .flat_map(|h| self.node.pids_on(h.id()))
                .collect();
            self.wait_all(&stragglers, Instant::now() + Duration::from_secs(1))
                .await;
        }
        for http in &self.http {
            http.stop().await;
        }
        // Last: a feed's lease is given up only once nothing here produces.
        for (_, feed) in self.components.all::<crate::feed::RedisFeed>() {
            feed.stop();
        }
        stop_hosts(&self.hosts);
        log::info!("shutdown complete");
    }

    async fn wait_all(&self, pids: &[Pid], deadline: Instant) {
        for pid in pids {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, self.node.wait_exit(pid))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The entry's `lifecycle.startup` (its kind's config has validated it).
fn startup(entry: &Entry) -> Startup {
    entry
        .fields
        .get("lifecycle")
        .and_then(|l| l.get("startup"))
        .and_then(|v| serde_yaml::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn stop_hosts(hosts: &[Arc<ProcessHost>]) {
    for host in hosts {
        host.stop();
    }
}
