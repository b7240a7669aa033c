//! Parsing `_index.yaml`: the document shape, entry ids, and field errors.
//!
//! Parsing happens in two steps. First the document and each entry are read
//! as plain YAML values, so every later error can name the entry; then each
//! entry's fields are decoded into its kind's strict config type
//! ([`decode`]), which names the failing field. This module knows no kind:
//! the registry's kind table does.

mod duration;
mod lifecycle;
mod size;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

pub use duration::{ManifestDuration, parse_duration};
pub use lifecycle::{Lifecycle, RestartPolicy, Startup};
pub use size::{ByteSize, parse_size};

/// The only manifest version understood.
pub const VERSION: &str = "1.0";

/// One problem in a manifest, with as much of its place as is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest file.
    pub file: String,
    /// The entry id, if the error is about one.
    pub entry: Option<String>,
    /// The entry's kind, if known.
    pub kind: Option<String>,
    /// The field, if the error is about one.
    pub field: Option<String>,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(entry) = &self.entry {
            write!(f, "entry {entry} ")?;
            if let Some(kind) = &self.kind {
                write!(f, "({kind}) ")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, "field {field}: ")?;
        } else if self.entry.is_some() {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// What is wrong with one field of an entry, said by the entry's kind before
/// the entry is named: the field's path (`lifecycle.restart.backoff`,
/// `options.cors.max_age`) and what was expected, found. The registry adds
/// the file, the entry and its kind ([`ManifestError`]). A failure at boot
/// that concerns the entry as a whole has no field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path inside the entry, if the error is about one field.
    pub field: Option<String>,
    /// What was expected (and what was found).
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An error about the entry as a whole.
    pub fn entry(message: impl Into<String>) -> Self {
        FieldError {
            field: None,
            message: message.into(),
        }
    }

    /// The same error with its field under `parent` (`cors.max_age` under
    /// `options` is `options.cors.max_age`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = Some(match self.field {
            Some(field) => format!("{parent}.{field}"),
            None => parent.to_owned(),
        });
        self
    }

    /// The full error for `entry` of `file`.
    pub fn for_entry(self, file: &str, entry: &Entry) -> ManifestError {
        entry.error(file, self.field.as_deref(), self.message)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field {field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FieldError {}

/// Every problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// One entry as written, before its kind's config is decoded.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `<namespace>:<name>`.
    pub id: String,
    /// The name within the namespace.
    pub name: String,
    /// The kind string (`process.rust`, `http.service`, ...).
    pub kind: String,
    /// The entry's fields other than `name` and `kind`.
    pub fields: Mapping,
}

impl Entry {
    /// An error about this entry, optionally at `field`.
    pub fn error(
        &self,
        file: &str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError {
            file: file.to_owned(),
            entry: Some(self.id.clone()),
            kind: Some(self.kind.clone()),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// A parsed manifest: its namespace and entries, ids unique.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file name used in error messages.
    pub file: String,
    /// The directory relative paths (`file://`, `directory:`) resolve against.
    pub base_dir: std::path::PathBuf,
    /// The namespace of every entry id.
    pub namespace: String,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Reads and parses a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ManifestErrors(vec![ManifestError {
                file: file.clone(),
                entry: None,
                kind: None,
                field: None,
                message: format!("cannot read manifest: {e}"),
            }])
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Manifest::parse(&file, base, &text)
    }

    /// Parses manifest text; relative paths in it resolve against `base_dir`.
    pub fn parse(file: &str, base_dir: &Path, text: &str) -> Result<Manifest, ManifestErrors> {
        let top_error = |field: Option<&str>, message: String| ManifestError {
            file: file.to_owned(),
            entry: None,
            kind: None,
            field: field.map(str::to_owned),
            message,
        };
        let doc: Value = serde_yaml::from_str(text)
            .map_err(|e| ManifestErrors(vec![top_error(None, format!("invalid YAML: {e}"))]))?;
        let Value::Mapping(top) = doc else {
            return Err(ManifestErrors(vec![top_error(
                None,
                format!(
                    "expected a mapping with version, namespace and entries, found {}",
                    describe(&doc)
                ),
            )]));
        };
        let mut errors = Vec::new();
        for key in top.keys() {
            match key.as_str() {
                Some("version" | "namespace" | "entries" | "meta") => {}
                _ => errors.push(top_error(
                    Some(&key_text(key)),
                    "unknown top-level field, expected one of version, namespace, entries, meta"
                        .into(),
                )),
            }
        }
        match top.get("version") {
            Some(Value::String(v)) if v == VERSION => {}
            Some(other) => errors.push(top_error(
                Some("version"),
                format!("expected \"{VERSION}\", found {}", describe(other)),
            )),
            None => errors.push(top_error(
                Some("version"),
                format!("missing, expected \"{VERSION}\""),
            )),
        }
        let namespace = match top.get("namespace") {
            Some(Value::String(ns)) if valid_name(ns) => ns.clone(),
            Some(other) => {
                errors.push(top_error(
                    Some("namespace"),
                    format!(
                        "expected a name of letters, digits, '_', '-' or '.', found {}",
                        describe(other)
                    ),
                ));
                String::new()
            }
            None => {
                errors.push(top_error(
                    Some("namespace"),
                    "missing, expected a name like app".into(),
                ));
                String::new()
            }
        };
        let raw_entries = match top.get("entries") {
            Some(Value::Sequence(s)) => s.clone(),
            Some(other) => {
                errors.push(top_error(
                    Some("entries"),
                    format!("expected a list of entries, found {}", describe(other)),
                ));
                Vec::new()
            }
            None => {
                errors.push(top_error(
                    Some("entries"),
                    "missing, expected a list of entries".into(),
                ));
                Vec::new()
            }
        };

        let mut entries = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in raw_entries.into_iter().enumerate() {
            let at = format!("entries[{index}]");
            let Value::Mapping(mut fields) = raw else {
                errors.push(top_error(
                    Some(&at),
                    format!("expected an entry mapping, found {}", describe(&raw)),
                ));
                continue;
            };
            let name = match fields.remove("name") {
                Some(Value::String(n)) if valid_name(&n) => n,
                Some(other) => {
                    errors.push(top_error(
                        Some(&format!("{at}.name")),
                        format!(
                            "expected a name of letters, digits, '_', '-' or '.', found {}",
                            describe(&other)
                        ),
                    ));
                    continue;
                }
                None => {
                    errors.push(top_error(
                        Some(&format!("{at}.name")),
                        "missing, every entry needs a name".into(),
                    ));
                    continue;
                }
            };
            let id = format!("{namespace}:{name}");
            let kind = match fields.remove("kind") {
                Some(Value::String(k)) => k,
                other => {
                    errors.push(ManifestError {
                        file: file.to_owned(),
                        entry: Some(id.clone()),
                        kind: None,
                        field: Some("kind".into()),
                        message: match other {
                            Some(v) => format!("expected a kind string, found {}", describe(&v)),
                            None => "missing, every entry needs a kind".into(),
                        },
                    });
                    continue;
                }
            };
            if let Some(first) = seen.insert(id.clone(), index) {
                errors.push(ManifestError {
                    file: file.to_owned(),
                    entry: Some(id.clone()),
                    kind: Some(kind.clone()),
                    field: Some("name".into()),
                    message: format!(
                        "duplicate id: entries[{first}] and entries[{index}] are both {id}"
                    ),
                });
                continue;
            }
            entries.push(Entry {
                id,
                name,
                kind,
                fields,
            });
        }
        if errors.is_empty() {
            Ok(Manifest {
                file: file.to_owned(),
                base_dir: base_dir.to_path_buf(),
                namespace,
                entries,
            })
        } else {
            Err(ManifestErrors(errors))
        }
    }

    /// The entry with this id.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }
}

/// Decodes an entry's fields into its kind's config type. The error names the
/// field (`lifecycle.restart.max_restarts`) and what was expected.
pub fn decode<T: DeserializeOwned>(file: &str, entry: &Entry) -> Result<T, ManifestError> {
    let value = Value::Mapping(entry.fields.clone());
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let parent = if path == "." { String::new() } else { path };
        // serde_path_to_error's path already ends with an unknown field, but
        // stops at the parent of a missing one: name that field here.
        let name_in = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        let field = match (name_in("unknown field `"), name_in("missing field `")) {
            (Some(name), _) if parent.is_empty() => name,
            (None, Some(name)) if parent.is_empty() => name,
            (None, Some(name)) => format!("{parent}.{name}"),
            _ => parent,
        };
        entry.error(file, (!field.is_empty()).then_some(field.as_str()), message)
    })
}

/// A short description of a YAML value for "found ..." in errors.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {:?}", truncate(s, 60)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => truncate(s, 60),
        other => describe(other),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether `s` is a bare name (an entry's `name`, or a namespace): letters,
/// digits, `_`, `-`, `.`.
pub fn is_name(s: &str) -> bool {
    valid_name(s)
}

/// Whether `s` has the form of an entry id, `<namespace>:<name>`.
pub fn is_entry_id(s: &str) -> bool {
    match s.split_once(':') {
        Some((ns, name)) => valid_name(ns) && valid_name(name),
        None => false,
    }
}
