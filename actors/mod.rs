//! The crypto-ticker application: its processes and functions, and the
//! catalog that maps the manifest's `source` + `method` to them.
//!
//! Compiled into the binary (`src/main.rs`) and the tests
//! (`tests/support/mod.rs`) as a module; it uses only `rippy::prelude`.

#![allow(dead_code)]

pub mod api_keys;
pub mod auth_token;
pub mod migrate;
pub mod ticker;
pub mod ws_handler;
pub mod ws_ticker;

use rippy::prelude::{ArgSpec, Catalog};

/// Every process and function of the application.
pub fn catalog() -> Catalog {
    Catalog::new()
        .process("file://actors/migrate.rs", "run", migrate::Migrate::new)
        .with_args(ArgSpec::new().entry("db", &["db.sql.sqlite", "db.sql.postgres"]))
        .process("file://actors/ticker.rs", "run", ticker::Ticker::new)
        .with_args(ArgSpec::new().optional_entry("feed", &["feed.redis"]))
        .process(
            "file://actors/ws_handler.rs",
            "run",
            ws_handler::WsHandler::new,
        )
        .function(
            "file://actors/auth_token.rs",
            "handler",
            auth_token::handler,
        )
        .with_args(
            ArgSpec::new()
                .entry("db", &["db.sql.sqlite", "db.sql.postgres"])
                .entry("tokens", &["security.token_store"])
                .entry("attempts_store", &["store.memory"])
                .entries("scope", &["security.policy"]),
        )
        .function("file://actors/ws_ticker.rs", "handler", ws_ticker::handler)
        .with_args(
            ArgSpec::new()
                .entry("db", &["db.sql.sqlite", "db.sql.postgres"])
                .entry("handler", &["process.rust"])
                .entry("host", &["process.host"]),
        )
        // What each uses, so `rippy check` catches a manifest that lacks it.
        .needs("file://actors/migrate.rs", "run", &["sql", "crypto"])
        .needs("file://actors/ticker.rs", "run", &["time"])
        .needs(
            "file://actors/auth_token.rs",
            "handler",
            &["sql", "security", "store"],
        )
        .needs("file://actors/ws_ticker.rs", "handler", &["sql"])
}
