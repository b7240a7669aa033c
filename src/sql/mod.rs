//! SQL databases. `db.sql.sqlite` is [`SqliteDb`], `db.sql.postgres`
//! [`PostgresDb`].
//!
//! Code that should run on either goes through [`Db`] and the [`Sql`] trait:
//! statements use `?` placeholders (translated to `$1, $2, ...` for
//! PostgreSQL outside quotes), parameters and cells are JSON values (null,
//! bool, integer, float, text), and rows come back with their column names.
//! Booleans read back as `true`/`false` on PostgreSQL and as `0`/`1` on
//! SQLite; [`cell_bool`] reads either.

mod postgres;
mod sqlite;

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};

pub use self::postgres::{PostgresConfig, PostgresDb};
pub use sqlite::{SqlError, SqliteConfig, SqliteDb};

use serde_json::Value;

/// Which SQL dialect a database speaks, for the few statements that differ
/// (schema, locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A query's result: column names and rows of cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// The column names, in order.
    pub columns: Vec<String>,
    /// Each row's cells, in column order.
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// The first row, if any.
    pub fn first(&self) -> Option<&[Value]> {
        self.rows.first().map(Vec::as_slice)
    }

    /// Each row as an object keyed by column name.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect(),
                )
            })
            .collect()
    }
}

/// A cell read as a boolean: SQLite has integers where PostgreSQL has `bool`.
pub fn cell_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// One connection (or transaction) of either backend.
pub trait Sql {
    /// The database's dialect.
    fn dialect(&self) -> Dialect;
    /// Runs a statement that returns rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, SqlError>;
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError>;
}

/// State code keeps beside one database, one value per type, made on first
/// use and dropped with the database ([`Db::memo`]).
#[derive(Default)]
pub(crate) struct Memos(Mutex<Vec<Arc<dyn Any + Send + Sync>>>);

impl Memos {
    fn get<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut memos = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(memo) = memos.iter().find_map(|m| m.clone().downcast::<T>().ok()) {
            return memo;
        }
        let memo = Arc::new(T::default());
        memos.push(memo.clone());
        memo
    }
}

/// A booted database of either kind, as code reaches it through `sql`.
#[derive(Clone)]
pub enum Db {
    /// A `db.sql.sqlite` entry.
    Sqlite(Arc<SqliteDb>),
    /// A `db.sql.postgres` entry.
    Postgres(Arc<PostgresDb>),
}

impl From<Arc<SqliteDb>> for Db {
    fn from(db: Arc<SqliteDb>) -> Self {
        Db::Sqlite(db)
    }
}

impl From<Arc<PostgresDb>> for Db {
    fn from(db: Arc<PostgresDb>) -> Self {
        Db::Postgres(db)
    }
}

impl Db {
    /// The entry id.
    pub fn id(&self) -> &str {
        match self {
            Db::Sqlite(db) => db.id(),
            Db::Postgres(db) => db.id(),
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// This database's value of type `T`, made with `T::default()` on first
    /// use and shared by every clone of this `Db`: a cache of what was read
    /// from it, say, whose invalidation the caller owns. It lives as long as
    /// the database entry, so two apps booted in one process (tests) never
    /// share one.
    pub fn memo<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        match self {
            Db::Sqlite(db) => db.memos.get(),
            Db::Postgres(db) => db.memos.get(),
        }
    }

    /// The SQLite database, if this is one (for file-based extras such as
    /// the demo key beside it).
    pub fn sqlite(&self) -> Option<&Arc<SqliteDb>> {
        match self {
            Db::Sqlite(db) => Some(db),
            Db::Postgres(_) => None,
        }
    }

    /// Runs `f` with a connection, blocking the calling thread (process
    /// hooks, commands). On PostgreSQL the statements run on a pool thread.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        match self {
            Db::Sqlite(db) => db.with(|conn| f(conn)),
            Db::Postgres(db) => db.call(f),
        }
    }

    /// Runs `f` in one transaction, blocking: committed when it returns
    /// `Ok`, rolled back otherwise.
    pub fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        match self {
            Db::Sqlite(db) => db.with(|conn| {
                let tx = conn.unchecked_transaction().map_err(|e| db.err(e))?;
                let out = f(&*tx)?;
                tx.commit().map_err(|e| db.err(e))?;
                Ok(out)
            }),
            Db::Postgres(db) => db.transaction(f),
        }
    }

    /// Runs `f` without holding an executor thread: a short SQLite read
    /// runs in place ([`SqliteDb::read`]); PostgreSQL statements run on its
    /// pool threads while the caller awaits.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&dyn Sql) -> Result<T, SqlError> + Clone + Send + 'static,
    ) -> Result<T, SqlError> {
        match self {
            Db::Sqlite(db) => db.read_sql(f).await,
            Db::Postgres(db) => db.run(f).await,
        }
    }

    /// Runs `f` off the async executor (SQLite: tokio's blocking pool;
    /// PostgreSQL: its pool threads).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        match self {
            Db::Sqlite(db) => db.run_sql(f).await,
            Db::Postgres(db) => db.run(f).await,
        }
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, ...`; a `?` inside a quoted
/// string, a quoted identifier or a comment is left alone.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::numbered_placeholders;

    #[test]
    fn question_marks_become_numbered_outside_quotes_and_comments() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ? -- ?\n"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2 -- ?\n"
        );
        assert_eq!(
            numbered_placeholders(r#"SELECT "x?" FROM t WHERE y = ?"#),
            r#"SELECT "x?" FROM t WHERE y = $1"#
        );
        assert_eq!(
            numbered_placeholders("SELECT 'it''s ?', ?"),
            "SELECT 'it''s ?', $1"
        );
    }
}
