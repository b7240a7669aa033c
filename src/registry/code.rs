//! Entries that name native code (`process.rust`, `function.rust`): the
//! catalog must hold the code, each name in `modules` must be one of
//! [`crate::process::MODULES`] (a check error names `modules[i]`), a module
//! the code needs must be listed, and a module that reaches entries makes the
//! entry depend on every entry of the kind it reaches ([`module_kinds`]), so
//! its capabilities are resolved at boot with those entries booted. The
//! `args` fields the code declares as entry ids are references like any
//! other.

use std::sync::Arc;

use crate::catalog::{ArgSpec, Catalog, CatalogItem};
use crate::function::FunctionSpec;
use crate::lua::LuaEntryConfig;
use crate::manifest::{Entry, FieldError};
use crate::process::modules::unknown_module;
use crate::process::{Capabilities, MODULES, Module, ProcessSpec, RustEntryConfig};

use super::Boot;
use super::kind::{Code, Fail, Kind, KindOf, Reference, reference};

/// The kinds of entry a module reaches by id.
pub(crate) fn module_kinds(module: Module) -> &'static [&'static str] {
    match module {
        Module::Sql => super::kinds::SQL_KINDS,
        Module::Store => &["store.memory"],
        Module::Security => &["security.token_store"],
        Module::Feed => &["feed.redis"],
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
    errors.extend(arg_modules_check(
        catalog.args(&config.source, &config.method),
        &config.args,
        &config.modules,
    ));
    errors
}

/// An entry id in `args` is only of use through the module that reaches its
/// kind (`args.db` through `sql`, `args.feed` through `feed`): `modules`
/// must list it, or the code fails at run time.
pub(crate) fn arg_modules_check(
    spec: Option<&ArgSpec>,
    args: &Option<serde_yaml::Value>,
    modules: &[String],
) -> Vec<FieldError> {
    let (Some(spec), Some(args)) = (spec, args) else {
        return Vec::new();
    };
    spec.fields()
        .iter()
        .filter(|f| args.get(f.name).is_some())
        .filter_map(|f| {
            let module = MODULES.iter().filter_map(|n| Module::parse(n)).find(|m| {
                let reach = module_kinds(*m);
                !reach.is_empty() && f.kinds.iter().all(|k| reach.contains(k))
            })?;
            (!modules.iter().any(|m| m == module.name())).then(|| {
                FieldError::at(
                    format!("args.{}", f.name),
                    format!(
                        "names a {} entry, which code reaches through module `{}`; `modules` does not list it (listed: [{}])",
                        f.kinds.join(" or "),
                        module.name(),
                        modules.join(", ")
                    ),
                )
            })
        })
        .collect()
}

pub(crate) fn capabilities(
    b: &Boot<'_>,
    e: &Entry,
    modules: &[String],
) -> Result<Capabilities, Fail> {
    Capabilities::resolve(&e.id, modules, b.components)
        .map_err(|(i, message)| FieldError::at(format!("modules[{i}]"), message))
}

/// A kind whose entries name native code (`source` + `method`).
pub(crate) fn code_kind(
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
                modules: c.modules.clone(),
            })
        },
    })
}

/// The entry ids in `args` (the first of `layers` that has a field wins)
/// that `spec` declares, as references `args.<field>` / `args.<field>[i]`.
pub(crate) fn arg_references(
    spec: Option<&ArgSpec>,
    layers: &[&Option<serde_yaml::Value>],
) -> Vec<Reference> {
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
pub(crate) fn missing_args(
    spec: Option<&ArgSpec>,
    layers: &[&Option<serde_yaml::Value>],
) -> Vec<FieldError> {
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

pub(crate) fn args_json(args: &Option<serde_yaml::Value>) -> Result<serde_json::Value, Fail> {
    match args {
        None => Ok(serde_json::Value::Null),
        Some(v) => serde_json::to_value(v)
            .map_err(|e| FieldError::at("args", format!("cannot use as JSON: {e}"))),
    }
}

/// The `process.rust` kind.
pub(crate) fn process_rust() -> Box<dyn Kind> {
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
    })
}

/// The `function.rust` kind.
pub(crate) fn function_rust() -> Box<dyn Kind> {
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
    })
}

/// A kind whose entries are Lua code (`source: file://x.lua` + `method`):
/// the same module checks as the Rust code kinds, plus the file's own
/// checks (it exists, it compiles, `method` is a function of its table).
pub(crate) fn lua_kind(
    name: &'static str,
    boot: fn(&mut Boot<'_>, &Entry, &LuaEntryConfig) -> Result<(), Fail>,
) -> Box<dyn Kind> {
    Box::new(KindOf::<LuaEntryConfig> {
        name,
        references: |c, _| module_references(&c.modules),
        check: |c, cx| {
            let mut errors = modules_check(&c.modules);
            errors.extend(c.check(cx.base_dir));
            errors
        },
        boot,
        code: |_| None,
    })
}
