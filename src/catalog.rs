//! The catalog: native code that manifest entries name by `source` + `method`.
//!
//! The binary (and the tests) build one from `actors/mod.rs`. Boot fails with
//! a clear error when a `process.rust` or `function.rust` entry names code the
//! catalog lacks, listing what it has.
//!
//! Code also declares which of its `args` name other entries ([`ArgSpec`]):
//! `rippy check` then checks them like any reference (the entry exists and
//! has the right kind, a required one is present), in the entry's own `args`
//! and in the `args` of a `process.service` that starts it.
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

/// The `args` fields of one piece of code that hold entry ids.
#[derive(Debug, Clone, Default)]
pub struct ArgSpec {
    fields: Vec<ArgField>,
}

/// One `args` field that holds entry ids.
#[derive(Debug, Clone)]
pub struct ArgField {
    /// The key in `args`.
    pub name: &'static str,
    /// The kinds the named entries may have.
    pub kinds: &'static [&'static str],
    /// Whether the entry must give it.
    pub required: bool,
    /// A list of ids rather than one.
    pub list: bool,
}

impl ArgSpec {
    /// No entry ids in `args`.
    pub fn new() -> Self {
        Self::default()
    }

    /// `args.<name>` must name one entry of one of `kinds`.
    pub fn entry(self, name: &'static str, kinds: &'static [&'static str]) -> Self {
        self.field(name, kinds, true, false)
    }

    /// `args.<name>`, if given, names one entry of one of `kinds`.
    pub fn optional_entry(self, name: &'static str, kinds: &'static [&'static str]) -> Self {
        self.field(name, kinds, false, false)
    }

    /// `args.<name>`, if given, is a list of ids of entries of one of `kinds`.
    pub fn entries(self, name: &'static str, kinds: &'static [&'static str]) -> Self {
        self.field(name, kinds, false, true)
    }

    fn field(
        mut self,
        name: &'static str,
        kinds: &'static [&'static str],
        required: bool,
        list: bool,
    ) -> Self {
        self.fields.push(ArgField {
            name,
            kinds,
            required,
            list,
        });
        self
    }

    /// The declared fields.
    pub fn fields(&self) -> &[ArgField] {
        &self.fields
    }
}

/// Native processes and functions by `(source, method)`.
#[derive(Clone, Default)]
pub struct Catalog {
    items: BTreeMap<(String, String), CatalogItem>,
    args: BTreeMap<(String, String), ArgSpec>,
    last: Option<(String, String)>,
    needs: BTreeMap<(String, String), Vec<&'static str>>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a process constructor for `source` + `method`.
    pub fn process<P, F>(self, source: &str, method: &str, make: F) -> Self
    where
        P: Process,
        F: Fn(serde_json::Value) -> P + Send + Sync + 'static,
    {
        let factory: ProcessFactory =
            Arc::new(move |args| Box::new(make(args)) as Box<dyn Process>);
        self.add(source, method, CatalogItem::Process(factory))
    }

    /// Adds a function for `source` + `method`.
    pub fn function<F, Fut>(self, source: &str, method: &str, f: F) -> Self
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = actix_web::HttpResponse> + 'static,
    {
        let handler: FunctionHandler = Arc::new(move |call| Box::pin(f(call)) as FunctionFuture);
        self.add(source, method, CatalogItem::Function(handler))
    }

    /// Declares the `args` fields of the item added just before that name
    /// other entries, for `rippy check`.
    ///
    /// ```
    /// # use rippy::catalog::{ArgSpec, Catalog};
    /// # async fn handler(_: rippy::function::FunctionCall) -> actix_web::HttpResponse { todo!() }
    /// let catalog = Catalog::new()
    ///     .function("file://actors/report.rs", "handler", handler)
    ///     .with_args(ArgSpec::new().entry("db", &["db.sql.sqlite"]));
    /// ```
    pub fn with_args(mut self, spec: ArgSpec) -> Self {
        if let Some(key) = self.last.clone() {
            self.args.insert(key, spec);
        }
        self
    }

    fn add(mut self, source: &str, method: &str, item: CatalogItem) -> Self {
        let key = (source.to_owned(), method.to_owned());
        self.items.insert(key.clone(), item);
        self.last = Some(key);
        self
    }

    /// What `source` + `method` declared about its `args`.
    pub fn args(&self, source: &str, method: &str) -> Option<&ArgSpec> {
        self.args.get(&(source.to_owned(), method.to_owned()))
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
