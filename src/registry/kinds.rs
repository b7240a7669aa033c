//! The kind table: every manifest kind, its config type, the fields that
//! reference other entries (with the kinds each must name), extra load-time
//! checks, and its boot function. Only this file knows every kind.
//!
//! `process.rust` and `function.rust` entries: each name in `modules` must be
//! one of [`crate::process::MODULES`] (a check error names `modules[i]`), and
//! a module that reaches entries makes the entry depend on every entry of the
//! kind it reaches ([`module_kinds`]), so its capabilities are resolved at
//! boot with those entries already booted.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use serde::de::DeserializeOwned;

use super::Boot;
use std::collections::HashMap;

use crate::catalog::{ArgSpec, Catalog, CatalogItem};
use crate::fs::{Directory, DirectoryConfig};
use crate::function::FunctionSpec;
use crate::gateway::{Proxy, ProxyConfig};
use crate::http::{
    Endpoint, EndpointConfig, HttpService, HttpServiceConfig, Router, RouterConfig, StaticConfig,
    StaticSite,
};
use crate::lua::{LuaCode, LuaEntryConfig};
use crate::manifest::FieldError;
use crate::manifest::{Entry, Lifecycle, ManifestError, decode};
use crate::process::modules::unknown_module;
use crate::process::{
    Capabilities, HostConfig, Module, ProcessHost, ProcessSpec, RustEntryConfig, ServiceConfig,
    ServiceHandle,
};
use crate::security::{
    IdentityConfig, IdentityResolver, JwtConfig, JwtVerifier, Policy, PolicyConfig, TokenStore,
    TokenStoreConfig,
};
use crate::sql::{SqliteConfig, SqliteDb};
use crate::store::{MemoryStore, MemoryStoreConfig};

/// A field of one entry that names another entry.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    pub field: String,
    pub id: String,
    /// The kinds the referenced entry may have; empty means any.
    pub kinds: &'static [&'static str],
    /// Not one id: every entry of `kinds` (possibly none), for boot order.
    pub every: bool,
}

fn reference(field: impl Into<String>, id: &str, kinds: &'static [&'static str]) -> Reference {
    Reference {
        field: field.into(),
        id: id.to_owned(),
        kinds,
        every: false,
    }
}

/// The kinds of entry a module reaches by id.
pub(crate) fn module_kinds(module: Module) -> &'static [&'static str] {
    match module {
        Module::Sql => &["db.sql.sqlite"],
        Module::Store => &["store.memory"],
        Module::Security => &["security.token_store"],
        _ => &[],
    }
}

/// The boot-order edges of a code entry's `modules`.
fn module_references(modules: &[String]) -> Vec<Reference> {
    modules
        .iter()
        .enumerate()
        .filter_map(|(i, name)| Some((i, Module::parse(name)?)))
        .filter(|(_, m)| !module_kinds(*m).is_empty())
        .map(|(i, m)| Reference {
            field: format!("modules[{i}]"),
            id: String::new(),
            kinds: module_kinds(m),
            every: true,
        })
        .collect()
}

/// Unknown module names, each at its index.
fn modules_check(modules: &[String]) -> Vec<FieldError> {
    modules
        .iter()
        .enumerate()
        .filter(|(_, name)| Module::parse(name).is_none())
        .map(|(i, name)| FieldError::at(format!("modules[{i}]"), unknown_module(name)))
        .collect()
}

/// Modules the catalog says the code needs and the entry does not list.
fn needs_check(config: &RustEntryConfig, catalog: &Catalog) -> Vec<FieldError> {
    catalog
        .needs_of(&config.source, &config.method)
        .iter()
        .filter(|need| !config.modules.iter().any(|m| m == *need))
        .map(|need| {
            FieldError::at(
                "modules",
                format!(
                    "{}#{} uses module `{need}`, which `modules` does not list (listed: [{}])",
                    config.source,
                    config.method,
                    config.modules.join(", ")
                ),
            )
        })
        .collect()
}

fn code_check(config: &RustEntryConfig, catalog: &Catalog, want: &str) -> Vec<FieldError> {
    let mut errors = catalog_check(config, catalog, want);
    errors.extend(modules_check(&config.modules));
    errors.extend(needs_check(config, catalog));
    errors
}

fn capabilities(b: &Boot<'_>, e: &Entry, modules: &[String]) -> Result<Capabilities, Fail> {
    Capabilities::resolve(&e.id, modules, b.components)
        .map_err(|(i, message)| FieldError::at(format!("modules[{i}]"), message))
}

/// A boot failure: about one field, or about the entry as a whole.
pub(crate) type Fail = FieldError;

fn fail(message: impl std::fmt::Display) -> Fail {
    FieldError::entry(message.to_string())
}

/// One kind, type-erased.
pub(crate) trait Kind: Send + Sync {
    fn name(&self) -> &'static str;
    fn decode(
        &self,
        file: &str,
        entry: &Entry,
    ) -> Result<Box<dyn Any + Send + Sync>, ManifestError>;
    fn references(&self, config: &dyn Any, cx: &CheckContext<'_>) -> Vec<Reference>;
    fn check(&self, config: &dyn Any, cx: &CheckContext<'_>) -> Vec<FieldError>;
    /// The native code an entry of this kind names, with its own `args`.
    fn code(&self, config: &dyn Any) -> Option<Code>;
    fn boot(&self, boot: &mut Boot<'_>, entry: &Entry, config: &dyn Any) -> Result<(), Fail>;
}

/// What a kind's checks see beyond the entry's own config.
pub(crate) struct CheckContext<'a> {
    pub catalog: &'a Catalog,
    /// The manifest's folder (Lua sources are read relative to it).
    pub base_dir: &'a Path,
    /// The code each `process.rust` / `function.rust` entry names, by id.
    pub code: HashMap<String, Code>,
}

/// The native code an entry names, and the `args` the entry gives it.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub source: String,
    pub method: String,
    pub args: Option<serde_yaml::Value>,
}

struct KindOf<T> {
    name: &'static str,
    references: fn(&T, &CheckContext<'_>) -> Vec<Reference>,
    check: fn(&T, &CheckContext<'_>) -> Vec<FieldError>,
    boot: fn(&mut Boot<'_>, &Entry, &T) -> Result<(), Fail>,
    code: fn(&T) -> Option<Code>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> Kind for KindOf<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn decode(
        &self,
        file: &str,
        entry: &Entry,
    ) -> Result<Box<dyn Any + Send + Sync>, ManifestError> {
        decode::<T>(file, entry).map(|c| Box::new(c) as Box<dyn Any + Send + Sync>)
    }

    fn references(&self, config: &dyn Any, cx: &CheckContext<'_>) -> Vec<Reference> {
        config
            .downcast_ref::<T>()
            .map(|c| (self.references)(c, cx))
            .unwrap_or_default()
    }

    fn check(&self, config: &dyn Any, cx: &CheckContext<'_>) -> Vec<FieldError> {
        config
            .downcast_ref::<T>()
            .map(|c| (self.check)(c, cx))
            .unwrap_or_default()
    }

    fn code(&self, config: &dyn Any) -> Option<Code> {
        config.downcast_ref::<T>().and_then(self.code)
    }

    fn boot(&self, boot: &mut Boot<'_>, entry: &Entry, config: &dyn Any) -> Result<(), Fail> {
        match config.downcast_ref::<T>() {
            Some(c) => (self.boot)(boot, entry, c),
            None => Err(fail("internal error: config of the wrong type")),
        }
    }
}

fn kind<T: DeserializeOwned + Send + Sync + 'static>(
    name: &'static str,
    references: fn(&T, &CheckContext<'_>) -> Vec<Reference>,
    check: fn(&T, &CheckContext<'_>) -> Vec<FieldError>,
    boot: fn(&mut Boot<'_>, &Entry, &T) -> Result<(), Fail>,
) -> Box<dyn Kind> {
    Box::new(KindOf {
        name,
        references,
        check,
        boot,
        code: |_| None,
    })
}

/// A kind whose entries name native code (`source` + `method`).
fn code_kind(
    name: &'static str,
    want: &'static str,
    boot: fn(&mut Boot<'_>, &Entry, &RustEntryConfig) -> Result<(), Fail>,
) -> Box<dyn Kind> {
    Box::new(KindOf::<RustEntryConfig> {
        name,
        references: |c, cx| {
            let mut refs = module_references(&c.modules);
            refs.extend(arg_references(
                cx.catalog.args(&c.source, &c.method),
                &[&c.args],
            ));
            refs
        },
        check: match want {
            "process" => |c, cx| code_check(c, cx.catalog, "process"),
            _ => |c, cx| {
                let mut errors = code_check(c, cx.catalog, "function");
                errors.extend(missing_args(
                    cx.catalog.args(&c.source, &c.method),
                    &[&c.args],
                ));
                errors
            },
        },
        boot,
        code: |c| {
            Some(Code {
                source: c.source.clone(),
                method: c.method.clone(),
                args: c.args.clone(),
            })
        },
    })
}

/// A kind whose entries are Lua code (`source: file://x.lua` + `method`):
/// the same module checks as [`code_kind`], plus the file's own checks.
fn lua_kind(
    name: &'static str,
    boot: fn(&mut Boot<'_>, &Entry, &LuaEntryConfig) -> Result<(), Fail>,
) -> Box<dyn Kind> {
    Box::new(KindOf::<LuaEntryConfig> {
        name,
        references: |c, _| module_references(&c.modules),
        check: |c, cx| {
            let mut errors = modules_check(&c.modules);
            errors.extend(
                c.check(cx.base_dir)
                    .into_iter()
                    .map(|(field, message)| FieldError::at(field, message)),
            );
            errors
        },
        boot,
        code: |_| None,
    })
}

/// The entry ids in `args` (the first of `layers` that has a field wins)
/// that `spec` declares, as references `args.<field>` / `args.<field>[i]`.
fn arg_references(spec: Option<&ArgSpec>, layers: &[&Option<serde_yaml::Value>]) -> Vec<Reference> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    for field in spec.fields() {
        let Some(value) = layers
            .iter()
            .find_map(|args| args.as_ref().and_then(|a| a.get(field.name)))
        else {
            continue;
        };
        match value {
            serde_yaml::Value::Sequence(items) if field.list => {
                for (i, item) in items.iter().enumerate() {
                    let id = item.as_str().unwrap_or("");
                    refs.push(reference(
                        format!("args.{}[{i}]", field.name),
                        id,
                        field.kinds,
                    ));
                }
            }
            other => refs.push(reference(
                format!("args.{}", field.name),
                other.as_str().unwrap_or(""),
                field.kinds,
            )),
        }
    }
    refs
}

/// Required `args` fields of `spec` that none of `layers` gives.
fn missing_args(spec: Option<&ArgSpec>, layers: &[&Option<serde_yaml::Value>]) -> Vec<FieldError> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    spec.fields()
        .iter()
        .filter(|f| f.required)
        .filter(|f| {
            !layers
                .iter()
                .any(|args| args.as_ref().is_some_and(|a| a.get(f.name).is_some()))
        })
        .map(|f| {
            FieldError::at(
                format!("args.{}", f.name),
                format!(
                    "missing, expected the id of a {} entry",
                    f.kinds.join(" or ")
                ),
            )
        })
        .collect()
}

fn no_check<T>(_: &T, _: &CheckContext<'_>) -> Vec<FieldError> {
    Vec::new()
}

fn depends_on(lifecycle: &Option<Lifecycle>) -> Vec<Reference> {
    lifecycle
        .iter()
        .flat_map(|l| l.dependencies())
        .map(|(field, id)| reference(field, id, &[]))
        .collect()
}

fn catalog_check(config: &RustEntryConfig, catalog: &Catalog, want: &str) -> Vec<FieldError> {
    match catalog.get(&config.source, &config.method) {
        Some(item) if item.kind() == want => Vec::new(),
        Some(item) => vec![FieldError::at(
            "method",
            format!(
                "{}#{} is a {} in the catalog, expected a {want}",
                config.source,
                config.method,
                item.kind()
            ),
        )],
        None => vec![FieldError::at(
            "source",
            format!(
                "the catalog has no {want} {}#{}; it has: {}",
                config.source,
                config.method,
                catalog.describe().join(", ")
            ),
        )],
    }
}

fn args_json(args: &Option<serde_yaml::Value>) -> Result<serde_json::Value, Fail> {
    match args {
        None => Ok(serde_json::Value::Null),
        Some(v) => serde_json::to_value(v)
            .map_err(|e| FieldError::at("args", format!("cannot use as JSON: {e}"))),
    }
}

fn resolve_path(base: &Path, rel: &str) -> std::path::PathBuf {
    let rel = rel.strip_prefix("file://").unwrap_or(rel);
    base.join(rel)
}

pub(crate) static KINDS: LazyLock<Vec<Box<dyn Kind>>> = LazyLock::new(|| {
    vec![
        kind::<SqliteConfig>(
            "db.sql.sqlite",
            |c, _| depends_on(&c.lifecycle),
            no_check,
            |b, e, c| {
                let db = SqliteDb::open(&e.id, &resolve_path(b.base_dir, &c.file), c)
                    .map_err(|err| FieldError::at("file", err.to_string()))?;
                b.insert(e, db);
                Ok(())
            },
        ),
        kind::<MemoryStoreConfig>(
            "store.memory",
            |c, _| depends_on(&c.lifecycle),
            no_check,
            |b, e, c| {
                b.insert(e, MemoryStore::start(c));
                Ok(())
            },
        ),
        kind::<TokenStoreConfig>(
            "security.token_store",
            |c, _| {
                let mut refs = vec![reference("store", &c.store, &["store.memory"])];
                refs.extend(depends_on(&c.lifecycle));
                refs
            },
            |c, _| c.check(),
            |b, e, c| {
                let store = b
                    .components
                    .get::<MemoryStore>(&c.store)
                    .map_err(|err| FieldError::at("store", err.to_string()))?;
                let tokens = TokenStore::new(&e.id, c, b.base_dir, store, b.components.clone())
                    .map_err(fail)?;
                b.insert(e, Arc::new(tokens));
                Ok(())
            },
        ),
        kind::<PolicyConfig>(
            "security.policy",
            |_, _| Vec::new(),
            no_check,
            |b, e, c| {
                b.insert(e, Arc::new(Policy::new(&e.id, c)));
                Ok(())
            },
        ),
        kind::<HostConfig>(
            "process.host",
            |c, _| depends_on(&c.lifecycle),
            |c, _| c.check(),
            |b, e, c| {
                let host = Arc::new(ProcessHost::start(&e.id, c));
                b.hosts.push(host.clone());
                b.insert(e, host);
                Ok(())
            },
        ),
        code_kind("process.rust", "process", |b, e, c| {
            let Some(CatalogItem::Process(factory)) = b.catalog.get(&c.source, &c.method) else {
                return Err(FieldError::at(
                    "source",
                    format!("the catalog has no process {}#{}", c.source, c.method),
                ));
            };
            let spec = ProcessSpec::new(
                &e.id,
                capabilities(b, e, &c.modules)?,
                factory.clone(),
                args_json(&c.args)?,
            );
            b.insert(e, Arc::new(spec));
            Ok(())
        }),
        kind::<ServiceConfig>(
            "process.service",
            |c, cx| {
                let mut refs = vec![
                    reference("process", &c.process, &["process.rust", "process.lua"]),
                    reference("host", &c.host, &["process.host"]),
                ];
                refs.extend(depends_on(&c.lifecycle));
                // The process's declared args, as this service passes them
                // (its own args first, then the process entry's).
                if let Some(code) = cx.code.get(&c.process) {
                    let spec = cx.catalog.args(&code.source, &code.method);
                    refs.extend(arg_references(spec, &[&c.args, &code.args]));
                }
                refs
            },
            |c, cx| {
                let mut errors = c.check();
                if let Some(code) = cx.code.get(&c.process) {
                    let spec = cx.catalog.args(&code.source, &code.method);
                    errors.extend(missing_args(spec, &[&c.args, &code.args]));
                }
                errors
            },
            |b, e, c| {
                let service = ServiceHandle::new(&e.id, c, args_json(&c.args)?);
                let auto_start = c.lifecycle.as_ref().is_some_and(|l| l.auto_start);
                b.insert(e, Arc::new(service.clone()));
                if auto_start {
                    service.start(b.node).map_err(fail)?;
                    b.services.push(service);
                }
                Ok(())
            },
        ),
        code_kind("function.rust", "function", |b, e, c| {
            let Some(CatalogItem::Function(handler)) = b.catalog.get(&c.source, &c.method) else {
                return Err(FieldError::at(
                    "source",
                    format!("the catalog has no function {}#{}", c.source, c.method),
                ));
            };
            b.insert(
                e,
                Arc::new(FunctionSpec::new(
                    &e.id,
                    capabilities(b, e, &c.modules)?,
                    args_json(&c.args)?,
                    handler.clone(),
                )),
            );
            Ok(())
        }),
        lua_kind("process.lua", |b, e, c| {
            let code = LuaCode::load(b.base_dir, c)
                .map_err(|(field, message)| FieldError::at(field, message))?;
            let spec = ProcessSpec::new(
                &e.id,
                capabilities(b, e, &c.modules)?,
                crate::lua::process_factory(Arc::new(code)),
                args_json(&c.args)?,
            );
            b.insert(e, Arc::new(spec));
            Ok(())
        }),
        lua_kind("function.lua", |b, e, c| {
            let code = LuaCode::load(b.base_dir, c)
                .map_err(|(field, message)| FieldError::at(field, message))?;
            b.insert(
                e,
                Arc::new(FunctionSpec::new(
                    &e.id,
                    capabilities(b, e, &c.modules)?,
                    args_json(&c.args)?,
                    crate::lua::function::handler(Arc::new(code)),
                )),
            );
            Ok(())
        }),
        kind::<HttpServiceConfig>(
            "http.service",
            |c, _| depends_on(&c.lifecycle),
            |c, _| c.check(),
            |b, e, c| {
                let service = Arc::new(HttpService::new(&e.id, c, b.node.clone()));
                b.http.push(service.clone());
                b.insert(e, service);
                Ok(())
            },
        ),
        kind::<RouterConfig>(
            "http.router",
            |c, _| {
                let mut refs = vec![reference("meta.server", &c.meta.server, &["http.service"])];
                if let Some(store) = c.token_store() {
                    refs.push(reference(
                        "options.token_auth.store",
                        store,
                        &["security.token_store"],
                    ));
                }
                refs
            },
            |c, _| c.check(),
            |b, e, c| {
                let server = b
                    .components
                    .get::<HttpService>(&c.meta.server)
                    .map_err(|err| FieldError::at("meta.server", err.to_string()))?;
                let tokens = match c.token_store() {
                    Some(id) => Some(b.components.get::<TokenStore>(id).map_err(|err| {
                        FieldError::at("options.token_auth.store", err.to_string())
                    })?),
                    None => None,
                };
                let router = Router::new(&e.id, c, &server, tokens)?;
                b.insert(e, Arc::new(router));
                Ok(())
            },
        ),
        kind::<EndpointConfig>(
            "http.endpoint",
            |c, _| {
                vec![
                    reference("meta.router", &c.meta.router, &["http.router"]),
                    reference("func", &c.func, &["function.rust", "function.lua"]),
                ]
            },
            |c, _| c.check(),
            |b, e, c| {
                let router = b
                    .components
                    .get::<Router>(&c.meta.router)
                    .map_err(|err| FieldError::at("meta.router", err.to_string()))?;
                let func = b
                    .components
                    .get::<FunctionSpec>(&c.func)
                    .map_err(|err| FieldError::at("func", err.to_string()))?;
                let service = b
                    .components
                    .get::<HttpService>(router.server())
                    .map_err(|err| FieldError::at("meta.router", err.to_string()))?;
                let endpoint = Arc::new(Endpoint::new(&e.id, c, router, func));
                service
                    .add_endpoint(endpoint.clone())
                    .map_err(|m| FieldError::at("path", m))?;
                b.insert(e, endpoint);
                Ok(())
            },
        ),
        kind::<DirectoryConfig>(
            "fs.directory",
            |_, _| Vec::new(),
            no_check,
            |b, e, c| {
                let dir = Directory::open(&resolve_path(b.base_dir, &c.directory), c)
                    .map_err(|m| FieldError::at("directory", m))?;
                b.insert(e, Arc::new(dir));
                Ok(())
            },
        ),
        kind::<StaticConfig>(
            "http.static",
            |c, _| {
                vec![
                    reference("meta.server", &c.meta.server, &["http.service"]),
                    reference("fs", &c.fs, &["fs.directory"]),
                ]
            },
            |c, _| c.check(),
            |b, e, c| {
                let dir = b
                    .components
                    .get::<Directory>(&c.fs)
                    .map_err(|err| FieldError::at("fs", err.to_string()))?;
                let service = b
                    .components
                    .get::<HttpService>(&c.meta.server)
                    .map_err(|err| FieldError::at("meta.server", err.to_string()))?;
                let site = Arc::new(StaticSite::new(&e.id, c, dir));
                service.add_static(site.clone());
                b.insert(e, site);
                Ok(())
            },
        ),
        kind::<JwtConfig>(
            "security.jwt",
            |_, _| Vec::new(),
            |c, _| c.check(),
            |b, e, c| {
                let verifier = JwtVerifier::new(c).map_err(|m| FieldError::at("secret_env", m))?;
                b.insert(e, Arc::new(verifier));
                Ok(())
            },
        ),
        kind::<IdentityConfig>(
            "security.identity",
            |c, _| vec![reference("db", &c.db, &["db.sql.sqlite"])],
            |c, _| c.check(),
            |b, e, c| {
                let db = b
                    .components
                    .get::<SqliteDb>(&c.db)
                    .map_err(|err| FieldError::at("db", err.to_string()))?;
                b.insert(e, Arc::new(IdentityResolver::new(c, db)));
                Ok(())
            },
        ),
        kind::<ProxyConfig>(
            "http.proxy",
            |c, _| {
                let mut refs = vec![reference("meta.server", &c.meta.server, &["http.service"])];
                if let Some(jwt) = &c.jwt {
                    refs.push(reference("jwt", jwt, &["security.jwt"]));
                }
                if let Some(identity) = &c.identity {
                    refs.push(reference("identity", identity, &["security.identity"]));
                }
                refs
            },
            |c, _| c.check(),
            |b, e, c| {
                let jwt = match &c.jwt {
                    Some(id) => Some(
                        b.components
                            .get::<JwtVerifier>(id)
                            .map_err(|err| FieldError::at("jwt", err.to_string()))?,
                    ),
                    None => None,
                };
                let identity = match &c.identity {
                    Some(id) => Some(
                        b.components
                            .get::<IdentityResolver>(id)
                            .map_err(|err| FieldError::at("identity", err.to_string()))?,
                    ),
                    None => None,
                };
                let service = b
                    .components
                    .get::<HttpService>(&c.meta.server)
                    .map_err(|err| FieldError::at("meta.server", err.to_string()))?;
                let proxy = Arc::new(Proxy::new(&e.id, c, jwt, identity, b.node)?);
                service.add_mount(proxy.clone());
                b.insert(e, proxy);
                Ok(())
            },
        ),
    ]
});

/// Rules that span entries: two endpoints may not serve the same method and
/// full path (router prefix + path) on one server. Returns `(index, error)` for the entry at `index` of `steps`.
pub(crate) fn cross_check(steps: &[(&Entry, &dyn Any)]) -> Vec<(usize, FieldError)> {
    let routers: HashMap<&str, &RouterConfig> = steps
        .iter()
        .filter_map(|(e, c)| Some((e.id.as_str(), c.downcast_ref::<RouterConfig>()?)))
        .collect();
    let mut served: HashMap<(String, String, String), &str> = HashMap::new();
    let mut errors = Vec::new();
    for (i, (entry, config)) in steps.iter().enumerate() {
        let Some(endpoint) = config.downcast_ref::<EndpointConfig>() else {
            continue;
        };
        let Some(router) = routers.get(endpoint.meta.router.as_str()) else {
            continue; // a dangling reference, reported on its own
        };
        let method = endpoint.method.to_ascii_uppercase();
        let path = crate::http::join_path(&router.prefix, &endpoint.path);
        let key = (router.meta.server.clone(), method.clone(), path.clone());
        match served.get(&key) {
            Some(other) => errors.push((
                i,
                FieldError::at(
                    "path",
                    format!(
                        "{method} {path} on {} is already served by {other}",
                        router.meta.server
                    ),
                ),
            )),
            None => {
                served.insert(key, &entry.id);
            }
        }
    }
    errors
}

/// The kind named `name`.
pub(crate) fn find(name: &str) -> Option<&'static dyn Kind> {
    KINDS.iter().find(|k| k.name() == name).map(|k| k.as_ref())
}

/// Every kind name, for error messages.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}
