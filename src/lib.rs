//! rippy: a Rust actor runtime for Wippy-style YAML manifests.
//!
//! A manifest (`_index.yaml`) declares entries; the [`registry`] validates
//! them, boots them in dependency order and wires them together; processes
//! run as actix actors that talk by messages ([`process`]). Applications plug
//! native code in through a [`catalog::Catalog`] and use the [`prelude`].
//!
//! Layers point downward: `http -> function -> process -> security / store / sql`;
//! only [`registry`] knows every kind.

#![warn(missing_docs)]

pub mod catalog;
pub mod component;
pub mod fs;
pub mod function;
pub mod gateway;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod process;
pub mod registry;
pub mod runtime;
pub mod security;
pub mod sql;
pub mod store;
pub mod testing;
pub mod util;

/// What application code (actors and functions) needs.
pub mod prelude {
    pub use crate::catalog::Catalog;
    pub use crate::function::{FunctionCall, FunctionContext};
    pub use crate::http::json_error;
    pub use crate::http::middleware::websocket_relay::{
        RELAY_HEADER, RelayTarget, TOPIC_CLOSE, TOPIC_JOIN, TOPIC_LEAVE, TOPIC_MESSAGE, TOPIC_SEND,
    };
    pub use crate::manifest::parse_duration;
    pub use crate::process::{
        Event, ExitReason, Flow, Message, Node, Payload, Pid, Process, ProcessContext,
        ProcessError, ProcessRef, ProcessResult, SendError, SpawnError, TimerId,
    };
    pub use crate::security::{Actor, Identity};
    pub use crate::sql::SqliteDb;
    pub use crate::store::MemoryStore;
    pub use crate::util::{constant_time_eq, sha256_hex, unix_ms, unix_secs, write_private};
    pub use actix_web::http::StatusCode;
    pub use actix_web::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER};
    pub use actix_web::{HttpRequest, HttpResponse};
    pub use bytes::Bytes;
    pub use log;
    pub use rusqlite;
    pub use serde_json::{Value, json};
}
