//! The kind table: every manifest kind, as data: its name, its config type,
//! the fields that reference other entries (with the kinds each must name),
//! its load-time rules (a `check` in the kind's own module) and its boot: the
//! handles it needs, resolved by field, and one constructor call. Only this
//! file knows every kind; how a kind is described is in `kind.rs`, the kinds
//! that name native code share `code.rs`.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use super::code::{self, arg_references, args_json, missing_args};
use super::kind::{Kind, depends_on, fail, kind, no_check, reference};
use crate::feed::{FeedConfig, RedisFeed};
use crate::fs::{Directory, DirectoryConfig};
use crate::function::FunctionSpec;
use crate::gateway::{Proxy, ProxyConfig};
use crate::http::{
    Endpoint, EndpointConfig, HttpService, HttpServiceConfig, Router, RouterConfig, StaticConfig,
    StaticSite,
};
use crate::lua::LuaCode;
use crate::manifest::{Entry, FieldError};
use crate::process::{HostConfig, ProcessHost, ProcessSpec, ServiceConfig, ServiceHandle};
use crate::security::{
    IdentityConfig, IdentityResolver, JwtConfig, JwtVerifier, Policy, PolicyConfig, TokenBackend,
    TokenStore, TokenStoreConfig,
};

/// The kinds a `sql` reference may name.
pub(crate) const SQL_KINDS: &[&str] = &["db.sql.sqlite", "db.sql.postgres"];
use crate::sql::{Db, PostgresConfig, PostgresDb, SqliteConfig, SqliteDb};
use crate::store::{MemoryStore, MemoryStoreConfig, RedisStore, RedisStoreConfig};

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
                b.insert(e, Arc::new(Db::from(db)));
                Ok(())
            },
        ),
        kind::<PostgresConfig>(
            "db.sql.postgres",
            |c, _| depends_on(&c.lifecycle),
            |c, _| c.check(),
            |b, e, c| {
                let db = PostgresDb::open(&e.id, c)
                    .map_err(|err| FieldError::at("url", err.to_string()))?;
                b.insert(e, Arc::new(Db::from(db)));
                Ok(())
            },
        ),
        kind::<RedisStoreConfig>(
            "store.redis",
            |c, _| depends_on(&c.lifecycle),
            |c, _| c.check(),
            |b, e, c| {
                let store = RedisStore::new(&e.id, c).map_err(|m| FieldError::at("url", m))?;
                b.insert(e, Arc::new(store));
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
        kind::<FeedConfig>(
            "feed.redis",
            |c, _| {
                let mut refs = vec![reference("store", &c.store, &["store.redis"])];
                refs.extend(depends_on(&c.lifecycle));
                refs
            },
            |c, _| c.check(),
            |b, e, c| {
                let store = b.handle::<RedisStore>("store", &c.store)?;
                let feed = RedisFeed::start(&e.id, c, store, b.node.metrics());
                b.insert(e, feed);
                Ok(())
            },
        ),
        kind::<TokenStoreConfig>(
            "security.token_store",
            |c, _| {
                let mut refs = vec![reference(
                    "store",
                    &c.store,
                    &["store.memory", "store.redis"],
                )];
                refs.extend(depends_on(&c.lifecycle));
                refs
            },
            |c, _| c.check(),
            |b, e, c| {
                let store = match b.handle::<MemoryStore>("store", &c.store) {
                    Ok(memory) => TokenBackend::Memory(memory),
                    Err(_) => TokenBackend::Redis(b.handle::<RedisStore>("store", &c.store)?),
                };
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
        code::process_rust(),
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
                    // The process entry checks its own args; these are the service's.
                    errors.extend(code::arg_modules_check(spec, &c.args, &code.modules));
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
        code::function_rust(),
        code::lua_kind("process.lua", |b, e, c| {
            let code = LuaCode::load(b.base_dir, c)?;
            let spec = ProcessSpec::new(
                &e.id,
                code::capabilities(b, e, &c.modules)?,
                crate::lua::process_factory(Arc::new(code)),
                args_json(&c.args)?,
            );
            b.insert(e, Arc::new(spec));
            Ok(())
        }),
        code::lua_kind("function.lua", |b, e, c| {
            let code = LuaCode::load(b.base_dir, c)?;
            b.insert(
                e,
                Arc::new(FunctionSpec::new(
                    &e.id,
                    code::capabilities(b, e, &c.modules)?,
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
                let server = b.handle::<HttpService>("meta.server", &c.meta.server)?;
                let tokens = c
                    .token_store()
                    .map(|id| b.handle::<TokenStore>("options.token_auth.store", id))
                    .transpose()?;
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
                let router = b.handle::<Router>("meta.router", &c.meta.router)?;
                let func = b.handle::<FunctionSpec>("func", &c.func)?;
                let service = b.handle::<HttpService>("meta.router", router.server())?;
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
                let dir = b.handle::<Directory>("fs", &c.fs)?;
                let service = b.handle::<HttpService>("meta.server", &c.meta.server)?;
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
            |c, _| vec![reference("db", &c.db, SQL_KINDS)],
            |c, _| c.check(),
            |b, e, c| {
                let db = b.handle::<Db>("db", &c.db)?;
                b.insert(e, Arc::new(IdentityResolver::new(c, (*db).clone())));
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
                    Some(id) => Some(b.handle::<JwtVerifier>("jwt", id)?),
                    None => None,
                };
                let identity = match &c.identity {
                    Some(id) => Some(b.handle::<IdentityResolver>("identity", id)?),
                    None => None,
                };
                let service = b.handle::<HttpService>("meta.server", &c.meta.server)?;
                let proxy = Arc::new(Proxy::new(&e.id, c, jwt, identity, b.node)?);
                service.add_mount(proxy.clone());
                service.add_fast(proxy.clone());
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
