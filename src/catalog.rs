//! The catalog: native code that manifest entries name by `source` + `method`.
//!
//! The binary (and the tests) build one from `actors/mod.rs`. Boot fails with
//! a clear error when a `process.rust` or `function.rust` entry names code the
//! catalog lacks, listing what it has.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::function::{FunctionCall, FunctionFuture, FunctionHandler};
use crate::process::{Process, ProcessFactory};

/// One piece of native code.
#[derive(Clone)]
pub enum CatalogItem {
    /// A process constructor.
    Process(ProcessFactory),
    /// An HTTP function.
    Function(FunctionHandler),
}

impl CatalogItem {
    /// `process` or `function`.
    pub fn kind(&self) -> &'static str {
        match self {
            CatalogItem::Process(_) => "process",
            CatalogItem::Function(_) => "function",
        }
    }
}

/// Native processes and functions by `(source, method)`.
#[derive(Clone, Default)]
pub struct Catalog {
    items: BTreeMap<(String, String), CatalogItem>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a process constructor for `source` + `method`.
    pub fn process<P, F>(mut self, source: &str, method: &str, make: F) -> Self
    where
        P: Process,
        F: Fn(serde_json::Value) -> P + Send + Sync + 'static,
    {
        let factory: ProcessFactory =
            Arc::new(move |args| Box::new(make(args)) as Box<dyn Process>);
        self.items.insert(
            (source.to_owned(), method.to_owned()),
            CatalogItem::Process(factory),
        );
        self
    }

    /// Adds a function for `source` + `method`.
    pub fn function<F, Fut>(mut self, source: &str, method: &str, f: F) -> Self
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = actix_web::HttpResponse> + 'static,
    {
        let handler: FunctionHandler = Arc::new(move |call| Box::pin(f(call)) as FunctionFuture);
        self.items.insert(
            (source.to_owned(), method.to_owned()),
            CatalogItem::Function(handler),
        );
        self
    }

    /// The item for `source` + `method`.
    pub fn get(&self, source: &str, method: &str) -> Option<&CatalogItem> {
        self.items.get(&(source.to_owned(), method.to_owned()))
    }

    /// What the catalog holds, as `kind source#method` lines.
    pub fn describe(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|((s, m), item)| format!("{} {s}#{m}", item.kind()))
            .collect()
    }
}
