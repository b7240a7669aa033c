//! The table of booted entries: entry id -> the value its kind's boot made.
//!
//! Only the registry inserts; every layer may look up by id and type. A wrong
//! type is an error naming the id, the kind found and the type expected.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
struct Component {
    kind: &'static str,
    value: Arc<dyn Any + Send + Sync>,
}

/// Booted entries by id.
#[derive(Default)]
pub struct Components {
    map: RwLock<HashMap<String, Component>>,
}

/// Why a lookup by id failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No entry with that id was booted.
    Missing {
        /// The id looked up.
        id: String,
        /// The kind the caller expected.
        expected: &'static str,
    },
    /// The entry exists but is of another kind.
    WrongKind {
        /// The id looked up.
        id: String,
        /// The kind the entry is.
        kind: &'static str,
        /// The kind the caller expected.
        expected: &'static str,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Missing { id, expected } => {
                write!(f, "no entry {id} (expected a {expected})")
            }
            LookupError::WrongKind { id, kind, expected } => {
                write!(f, "entry {id} is a {kind}, expected a {expected}")
            }
        }
    }
}

impl std::error::Error for LookupError {}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

impl Components {
    pub(crate) fn insert(&self, id: &str, kind: &'static str, value: Arc<dyn Any + Send + Sync>) {
        self.write()
            .insert(id.to_owned(), Component { kind, value });
    }

    /// The entry `id` as a `T`.
    pub fn get<T: Any + Send + Sync>(&self, id: &str) -> Result<Arc<T>, LookupError> {
        let expected = short_type_name::<T>();
        let found = self.read().get(id).cloned();
        let Some(component) = found else {
            return Err(LookupError::Missing {
                id: id.to_owned(),
                expected,
            });
        };
        component
            .value
            .downcast::<T>()
            .map_err(|_| LookupError::WrongKind {
                id: id.to_owned(),
                kind: component.kind,
                expected,
            })
    }

    /// Every booted entry of type `T`, with its id.
    pub fn all<T: Any + Send + Sync>(&self) -> Vec<(String, Arc<T>)> {
        self.read()
            .iter()
            .filter_map(|(id, c)| {
                c.value
                    .clone()
                    .downcast::<T>()
                    .ok()
                    .map(|v| (id.clone(), v))
            })
            .collect()
    }

    /// The kind of entry `id`, if booted.
    pub fn kind_of(&self, id: &str) -> Option<&'static str> {
        self.read().get(id).map(|c| c.kind)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Component>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Component>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}
