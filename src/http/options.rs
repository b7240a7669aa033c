//! Middleware options: a flat map of dotted keys (`cors.allow.origins`).
//! Nested mappings are flattened, scalars become strings, lists join with ",".

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// Options for a router's middleware.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(BTreeMap<String, String>);

impl Options {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A comma-separated value as a list of trimmed, non-empty items.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// Builds options from pairs (for code and tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Options(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => {
                        return Err(format!(
                            "option keys must be strings, found {}",
                            crate::manifest::describe(other)
                        ));
                    }
                };
                let full = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&full, v, out)?;
            }
        }
        Value::Sequence(items) => {
            let mut parts = Vec::new();
            for item in items {
                parts.push(scalar(prefix, item)?);
            }
            out.insert(prefix.to_owned(), parts.join(","));
        }
        other => {
            out.insert(prefix.to_owned(), scalar(prefix, other)?);
        }
    }
    Ok(())
}

fn scalar(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "option {key}: expected a string, number, boolean or list, found {}",
            crate::manifest::describe(other)
        )),
    }
}

impl<'de> Deserialize<'de> for Options {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        if !matches!(value, Value::Mapping(_) | Value::Null) {
            return Err(serde::de::Error::custom(format!(
                "expected a mapping of options, found {}",
                crate::manifest::describe(&value)
            )));
        }
        let mut out = BTreeMap::new();
        if let Value::Mapping(_) = value {
            flatten("", &value, &mut out).map_err(serde::de::Error::custom)?;
        }
        Ok(Options(out))
    }
}
