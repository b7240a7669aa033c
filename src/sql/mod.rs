//! SQL databases. `db.sql.sqlite` lives in [`sqlite`].

mod sqlite;

pub use sqlite::{SqlError, SqliteConfig, SqliteDb};
