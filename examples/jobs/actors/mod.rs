//! The job queue's processes and functions, and the catalog that maps the
//! manifest's `source` + `method` to them. Uses only `rippy::prelude`.

#![allow(dead_code)]

pub mod api;
pub mod queue;
pub mod worker;

use rippy::prelude::Catalog;

/// Every process and function of the job queue.
pub fn catalog() -> Catalog {
    Catalog::new()
        .process("file://actors/queue.rs", "run", queue::Queue::new)
        .process("file://actors/worker.rs", "run", worker::Worker::new)
        .function("file://actors/api.rs", "submit", api::submit)
        .function("file://actors/api.rs", "status", api::status)
}
