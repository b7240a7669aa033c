//! How a kind is described to the registry: a type-erased [`Kind`] built
//! from a config type and four functions (references, check, boot, and for
//! kinds that name native code, the code), and what checks see beyond the
//! entry ([`CheckContext`]).

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::Boot;
use crate::catalog::Catalog;
use crate::manifest::{Entry, FieldError, Lifecycle, ManifestError, decode};

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

pub(crate) fn reference(
    field: impl Into<String>,
    id: &str,
    kinds: &'static [&'static str],
) -> Reference {
    Reference {
        field: field.into(),
        id: id.to_owned(),
        kinds,
        every: false,
    }
}

/// A boot failure: about one field, or about the entry as a whole.
pub(crate) type Fail = FieldError;

pub(crate) fn fail(message: impl std::fmt::Display) -> Fail {
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
    pub modules: Vec<String>,
}

pub(crate) struct KindOf<T> {
    pub(crate) name: &'static str,
    pub(crate) references: fn(&T, &CheckContext<'_>) -> Vec<Reference>,
    pub(crate) check: fn(&T, &CheckContext<'_>) -> Vec<FieldError>,
    pub(crate) boot: fn(&mut Boot<'_>, &Entry, &T) -> Result<(), Fail>,
    pub(crate) code: fn(&T) -> Option<Code>,
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

pub(crate) fn kind<T: DeserializeOwned + Send + Sync + 'static>(
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

pub(crate) fn no_check<T>(_: &T, _: &CheckContext<'_>) -> Vec<FieldError> {
    Vec::new()
}

pub(crate) fn depends_on(lifecycle: &Option<Lifecycle>) -> Vec<Reference> {
    lifecycle
        .iter()
        .flat_map(|l| l.dependencies())
        .map(|(field, id)| reference(field, id, &[]))
        .collect()
}
