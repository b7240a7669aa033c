//! Bare references: a reference written without a namespace (`server:
//! gateway`, `store: token_data`, `token_auth.store: tokens`) names an entry
//! in the referring entry's own namespace, as in Wippy.
//!
//! Resolution runs once, before validation: every field the kind table
//! reports as a reference ([`super::kind::Kind::references`]) whose value is
//! a bare name is rewritten in the entry's raw fields to `<namespace>:<name>`.
//! Validation and boot then only ever see full ids, so run-time lookups need
//! no namespace. What was written is kept, so errors can show both.

use std::any::Any;
use std::collections::HashMap;

use serde_yaml::{Mapping, Value};

use super::kind::CheckContext;
use super::kinds;
use crate::catalog::Catalog;
use crate::manifest::{Manifest, is_name};

/// What was written at each rewritten field: `(entry id, field) -> name`.
pub(super) type Written = HashMap<(String, String), String>;

/// An entry's kind and decoded config.
type Decoded = (&'static dyn super::kind::Kind, Box<dyn Any + Send + Sync>);

/// Keys that the config types accept under another name (serde aliases):
/// a reference reported at `args.x` may be written under `input`.
const ALIASES: &[(&str, &str)] = &[("args", "input")];

/// Rewrites bare references in `manifest` to full ids.
///
/// Two passes: some references are only known once another is resolved (the
/// args a service passes are declared by the code its `process` names).
pub(super) fn resolve(manifest: Manifest, catalog: &Catalog) -> (Manifest, Written) {
    let (manifest, mut written) = pass(manifest, catalog);
    let (manifest, more) = pass(manifest, catalog);
    written.extend(more);
    (manifest, written)
}

fn pass(mut manifest: Manifest, catalog: &Catalog) -> (Manifest, Written) {
    let file = manifest.file.clone();
    let decoded: Vec<Option<Decoded>> = manifest
        .entries
        .iter()
        .map(|e| {
            let kind = kinds::find(&e.kind)?;
            Some((kind, kind.decode(&file, e).ok()?))
        })
        .collect();
    let cx = CheckContext {
        catalog,
        base_dir: &manifest.base_dir,
        code: manifest
            .entries
            .iter()
            .zip(&decoded)
            .filter_map(|(e, d)| {
                let (kind, config) = d.as_ref()?;
                Some((e.id.clone(), kind.code(config.as_ref())?))
            })
            .collect(),
    };
    let mut written = Written::new();
    for (entry, d) in manifest.entries.iter_mut().zip(&decoded) {
        let Some((kind, config)) = d else {
            continue;
        };
        let namespace = entry.id.split_once(':').map_or("", |(ns, _)| ns).to_owned();
        for r in kind.references(config.as_ref(), &cx) {
            if !is_name(&r.id) {
                continue;
            }
            let resolved = format!("{namespace}:{}", r.id);
            if set_at(&mut entry.fields, &r.field, &r.id, &resolved) {
                written.insert((entry.id.clone(), r.field.clone()), r.id.clone());
            }
        }
    }
    (manifest, written)
}

/// Sets the string at `path` (`meta.server`, `lifecycle.requires[0]`,
/// `options.token_auth.store`, whose last key holds a dot) from `from` to
/// `to`. Returns false if `path` does not hold `from` in `fields` (a value
/// the reference took from another entry, rewritten there).
fn set_at(fields: &mut Mapping, path: &str, from: &str, to: &str) -> bool {
    let keys: Vec<String> = fields
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for key in keys {
        let written_as = ALIASES
            .iter()
            .find(|(_, alias)| *alias == key)
            .map_or(key.as_str(), |(name, _)| name);
        let Some(rest) = path.strip_prefix(written_as) else {
            continue;
        };
        let Some(value) = fields.get_mut(key.as_str()) else {
            continue;
        };
        if set_in(value, rest, from, to) {
            return true;
        }
    }
    false
}

/// [`set_at`] below a key, `rest` being what follows it in the path.
fn set_in(value: &mut Value, rest: &str, from: &str, to: &str) -> bool {
    if rest.is_empty() {
        return match value {
            Value::String(s) if s == from => {
                *s = to.to_owned();
                true
            }
            _ => false,
        };
    }
    if let Some(more) = rest.strip_prefix('.') {
        return match value {
            Value::Mapping(m) => set_at(m, more, from, to),
            _ => false,
        };
    }
    if let Some(index) = rest.strip_prefix('[') {
        let Some((i, more)) = index.split_once(']') else {
            return false;
        };
        let Ok(i) = i.parse::<usize>() else {
            return false;
        };
        return match value {
            Value::Sequence(items) => items
                .get_mut(i)
                .is_some_and(|item| set_in(item, more, from, to)),
            _ => false,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> Mapping {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn nested_dotted_and_indexed_paths_are_rewritten() {
        let mut m = mapping(
            "meta: { server: gateway }\noptions: { token_auth.store: tokens }\n\
             lifecycle: { requires: [a, db] }\ninput: { db: db }",
        );
        assert!(set_at(&mut m, "meta.server", "gateway", "app:gateway"));
        assert!(set_at(
            &mut m,
            "options.token_auth.store",
            "tokens",
            "app:tokens"
        ));
        assert!(set_at(&mut m, "lifecycle.requires[1]", "db", "app:db"));
        assert!(set_at(&mut m, "args.db", "db", "app:db"));
        assert_eq!(
            m,
            mapping(
                "meta: { server: app:gateway }\noptions: { token_auth.store: app:tokens }\n\
                 lifecycle: { requires: [a, app:db] }\ninput: { db: app:db }"
            )
        );
    }

    #[test]
    fn a_path_holding_another_value_is_left_alone() {
        let mut m = mapping("store: other");
        assert!(!set_at(&mut m, "store", "tokens", "app:tokens"));
        assert!(!set_at(&mut m, "args.db", "db", "app:db"));
        assert_eq!(m, mapping("store: other"));
    }
}
