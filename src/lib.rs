//! rippy: a Rust actor runtime for Wippy-style YAML manifests.
//!
//! A manifest (`_index.yaml`) declares entries; the [`registry`] validates
//! them, boots them in dependency order and wires them together; processes
//! run as actix actors that talk by messages ([`process`]). Applications plug
//! native code in through a [`Catalog`](catalog::Catalog) and use the
//! [`prelude`].
//!
//! An application is a crate that depends on rippy: its processes and
//! functions, a catalog naming them, a manifest, and a `main` that hands
//! both to [`Runtime::builder`]. The runtime brings the command line (`run`,
//! `check`, and the app's own commands), logging, signals and shutdown:
//!
//! ```no_run
//! use rippy::prelude::*;
//!
//! /// Counts the messages it gets and answers each with the count.
//! struct Counter(u64);
//!
//! impl Process for Counter {
//!     fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
//!         ctx.register("counter")?;
//!         Ok(Flow::Continue)
//!     }
//!
//!     fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
//!         if let Event::Message(Message { from: Some(from), .. }) = event {
//!             self.0 += 1;
//!             let _ = ctx.send(&from, "count", json!(self.0));
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     rippy::Runtime::builder()
//!         .name("counter")
//!         .catalog(Catalog::new().process("file://counter.rs", "run", |_| Counter(0)))
//!         .manifest("_index.yaml")
//!         .run()
//! }
//! ```
//!
//! The same boot without the command line, for a program that owns its
//! `main` ([`RuntimeBuilder::boot`]), here with a manifest that runs the
//! counter as a service:
//!
//! ```
//! # use rippy::prelude::*;
//! # struct Counter(u64);
//! # impl Process for Counter {
//! #     fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
//! #         ctx.register("counter")?;
//! #         Ok(Flow::Continue)
//! #     }
//! #     fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
//! #         if let Event::Message(Message { from: Some(from), .. }) = event {
//! #             self.0 += 1;
//! #             let _ = ctx.send(&from, "count", json!(self.0));
//! #         }
//! #         Ok(Flow::Continue)
//! #     }
//! # }
//! let dir = std::env::temp_dir().join(format!("rippy-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let manifest = dir.join("_index.yaml");
//! std::fs::write(&manifest, r#"
//! version: "1.0"
//! namespace: app
//! entries:
//!   - { name: processes, kind: process.host, workers: 1 }
//!   - { name: counter, kind: process.rust, source: file://counter.rs, method: run }
//!   - name: counter-service
//!     kind: process.service
//!     process: app:counter
//!     host: app:processes
//!     lifecycle: { auto_start: true }
//! "#).unwrap();
//!
//! let app = rippy::Runtime::builder()
//!     .catalog(Catalog::new().process("file://counter.rs", "run", |_| Counter(0)))
//!     .manifest(&manifest);
//! actix_web::rt::System::new().block_on(async {
//!     let registry = app.boot().await.unwrap();
//!     assert_eq!(registry.boot_order().len(), 3);
//!     registry.shutdown(std::time::Duration::from_secs(1)).await;
//! });
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! Integration tests boot a manifest in-process with [`testing::TestApp`]:
//! ephemeral ports, spawned processes, a mailbox to receive replies on,
//! exits and metrics awaited with a timeout.
//!
//! Layers point downward: `http -> function -> process -> security / store / sql`;
//! only [`registry`] knows every kind; [`runtime`] and [`testing`] sit on top.

#![warn(missing_docs)]

pub mod catalog;
pub mod component;
pub mod feed;
pub mod fs;
pub mod function;
pub mod gateway;
pub mod http;
pub mod logging;
pub mod lua;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod process;
pub mod registry;
pub mod runtime;
pub mod security;
pub mod sql;
pub mod store;
pub mod testing;
pub mod util;

pub use runtime::{AppContext, Runtime, RuntimeBuilder, RuntimeError};

/// What application code (actors and functions) needs.
pub mod prelude {
    pub use crate::catalog::{ArgSpec, Catalog};
    pub use crate::feed::{RedisFeed, TOPIC_FEED_TICK};
    pub use crate::function::{FunctionCall, FunctionContext};
    pub use crate::http::middleware::websocket_relay::{
        RELAY_HEADER, RelayTarget, TOPIC_CLOSE, TOPIC_JOIN, TOPIC_LEAVE, TOPIC_MESSAGE, TOPIC_SEND,
    };
    pub use crate::http::{json_error, query_param};
    pub use crate::manifest::parse_duration;
    pub use crate::metrics::Metrics;
    pub use crate::process::{
        Event, ExitReason, Flow, Logger, Message, ModuleError, Modules, Payload, Pid, Process,
        ProcessContext, ProcessError, ProcessRef, ProcessResult, SendError, SpawnError, TimerId,
        Tokens,
    };
    pub use crate::security::{Actor, Denied, Identity};
    pub use crate::sql::{Db, Sql, SqlError, SqliteDb};
    pub use crate::store::MemoryStore;
    pub use crate::util::{
        constant_time_eq, json_object, sha256_hex, unix_ms, unix_secs, write_private,
    };
    pub use actix_web::http::StatusCode;
    pub use actix_web::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER};
    pub use actix_web::{HttpRequest, HttpResponse};
    pub use bytes::Bytes;
    pub use log;
    pub use rusqlite;
    pub use serde_json::{Value, json};
}
