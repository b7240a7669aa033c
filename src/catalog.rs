//! The catalog: native code that manifest entries name by `source` + `method`.
//!
//! The binary (and the tests) build one from `actors/mod.rs`. Boot fails with
//! a clear error when a `process.rust` or `function.rust` entry names code the
//! catalog lacks, listing what it has.
//!
//! Code may also declare the modules it needs ([`Catalog::needs`]); `rippy
//! check` then reports an entry whose `modules` lacks one, instead of the
//! code failing at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::function::{FunctionCall, FunctionFuture, FunctionHandler};
use crate::process::{Process, ProcessFactory};

/// One piece of native code.
#[derive(Clone)]
pub enum CatalogItem {
    Process(ProcessFactory),
    Function(FunctionHandler),
}

impl CatalogItem {
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
    needs: BTreeMap<(String, String), Vec<&'static str>>,
}

impl Catalog {
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

    /// Declares the modules the code at `source` + `method` uses (names from
    /// [`crate::process::MODULES`]): an entry running it without one of them
    /// is a `check` error.
    pub fn needs(mut self, source: &str, method: &str, modules: &[&'static str]) -> Self {
        self.needs
            .entry((source.to_owned(), method.to_owned()))
            .or_default()
            .extend_from_slice(modules);
        self
    }

    /// The modules the code at `source` + `method` declared it needs.
    pub fn needs_of(&self, source: &str, method: &str) -> &[&'static str] {
        self.needs
            .get(&(source.to_owned(), method.to_owned()))
            .map_or(&[], Vec::as_slice)
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
