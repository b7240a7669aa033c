//! A job queue with a worker pool, built on rippy's public API only.
//!
//! `cargo run --example jobs` serves http://127.0.0.1:8082 (see
//! `_index.yaml`); `cargo run --example jobs -- check` validates the manifest.

mod actors;

use std::process::ExitCode;

use rippy::Runtime;

fn main() -> ExitCode {
    Runtime::builder()
        .name("jobs")
        .about("A job queue with a worker pool")
        .version(env!("CARGO_PKG_VERSION"))
        .catalog(actors::catalog())
        .manifest("examples/jobs/_index.yaml")
        .run()
}
