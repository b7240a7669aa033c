//! `db.sql.sqlite`: a SQLite database file (bundled SQLite).
//!
//! Connections are opened in WAL mode with a busy timeout and kept in a small
//! pool. Nothing waits on an async executor thread:
//! - [`SqliteDb::run`] moves a query to tokio's blocking pool;
//! - [`SqliteDb::read`] runs a read in place on a read-only connection that
//!   never waits (busy timeout 0). In WAL mode readers do not wait for
//!   writers, so this almost always succeeds in microseconds; if the database
//!   is busy anyway the read moves to the blocking pool. This saves two thread
//!   hops per request on hot read paths (key lookups).
//! - [`SqliteDb::call`] is for code already off the executor (CLI, migrations,
//!   process hooks).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use serde::Deserialize;

use crate::manifest::{Lifecycle, ManifestDuration};

/// The `db.sql.sqlite` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file, relative to the manifest's directory.
    pub file: String,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// How long a writer waits for a lock (default 5s).
    #[serde(default)]
    pub busy_timeout: Option<ManifestDuration>,
    /// Idle connections kept open (default 4).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// SQL run at every boot, in order, in one transaction; write it to be
    /// idempotent (`CREATE TABLE IF NOT EXISTS ...`).
    #[serde(default)]
    pub init: Vec<String>,
}

/// A database error, naming the database.
#[derive(Debug)]
pub struct SqlError {
    /// The `db.sql.sqlite` entry id.
    pub db: String,
    /// The database's message.
    pub message: String,
    /// SQLite was busy or locked (a read in place moves to the blocking pool).
    pub busy: bool,
    /// The server could not be reached (PostgreSQL down): callers answer
    /// 503, not 500.
    pub unavailable: bool,
}

impl SqlError {
    /// An error of database `db`.
    pub fn new(db: &str, message: impl std::fmt::Display) -> Self {
        SqlError {
            db: db.to_owned(),
            message: message.to_string(),
            busy: false,
            unavailable: false,
        }
    }

    /// The server of database `db` could not be reached.
    pub fn unavailable(db: &str, message: impl std::fmt::Display) -> Self {
        SqlError {
            unavailable: true,
            ..SqlError::new(db, message)
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database {}: {}", self.db, self.message)
    }
}

impl std::error::Error for SqlError {}

/// A booted `db.sql.sqlite`.
pub struct SqliteDb {
    id: String,
    path: PathBuf,
    busy_timeout: Duration,
    pool_size: usize,
    idle: Mutex<Vec<Connection>>,
    /// Read-only connections that never wait, for [`SqliteDb::read`].
    readers: Mutex<Vec<Connection>>,
    pub(super) memos: super::Memos,
}

impl SqliteDb {
    /// Opens (creating if needed) the database file and checks it with one connection.
    pub fn open(id: &str, path: &Path, config: &SqliteConfig) -> Result<Arc<Self>, SqlError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| SqlError::new(id, format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Arc::new(SqliteDb {
            id: id.to_owned(),
            path: path.to_path_buf(),
            busy_timeout: config
                .busy_timeout
                .map_or(Duration::from_secs(5), |d| d.get()),
            pool_size: config.pool_size.unwrap_or(4).max(1),
            idle: Mutex::new(Vec::new()),
            readers: Mutex::new(Vec::new()),
            memos: super::Memos::default(),
        });
        let mut conn = db.connect()?;
        if !config.init.is_empty() {
            let tx = conn.transaction().map_err(|e| db.err(e))?;
            for (i, sql) in config.init.iter().enumerate() {
                tx.execute_batch(sql)
                    .map_err(|e| db.err(format!("init[{i}]: {e}")))?;
            }
            tx.commit().map_err(|e| db.err(e))?;
        }
        db.release(conn);
        Ok(db)
    }

    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with a pooled connection on the calling thread (blocking),
    /// for code written against [`Sql`](super::Sql).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = f(&mut conn).map_err(|e| self.named(e));
        self.release(conn);
        result
    }

    fn named(&self, mut e: SqlError) -> SqlError {
        if e.db.is_empty() {
            e.db = self.id.clone();
        }
        e
    }

    /// [`SqliteDb::read`] for code written against [`Sql`](super::Sql): in
    /// place on a reader that never waits, on the blocking pool when busy.
    pub(crate) async fn read_sql<T, F>(self: &Arc<Self>, f: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: Fn(&dyn super::Sql) -> Result<T, SqlError> + Clone + Send + 'static,
    {
        if let Ok(conn) = self.reader() {
            let result = f(&conn).map_err(|e| self.named(e));
            self.release_reader(conn);
            if !result.as_ref().is_err_and(|e| e.busy) {
                return result;
            }
        }
        self.run_sql(f).await
    }

    /// Runs `f` (written against [`Sql`](super::Sql)) on tokio's blocking
    /// pool, off the async executor.
    pub(crate) async fn run_sql<T, F>(self: &Arc<Self>, f: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn super::Sql) -> Result<T, SqlError> + Send + 'static,
    {
        let db = self.clone();
        match tokio::task::spawn_blocking(move || db.with(|conn| f(conn))).await {
            Ok(result) => result,
            Err(join) => Err(self.err(format!("query task failed: {join}"))),
        }
    }

    /// An error naming this database.
    pub(crate) fn err(&self, e: impl std::fmt::Display) -> SqlError {
        SqlError::new(&self.id, e)
    }

    fn connect(&self) -> Result<Connection, SqlError> {
        let conn = Connection::open(&self.path).map_err(|e| self.err(e))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| self.err(e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))?;
        Ok(conn)
    }

    fn release(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.pool_size {
            idle.push(conn);
        }
    }

    /// Runs `f` with a connection on the calling thread (blocking).
    pub fn call<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SqlError> {
        self.with(|conn| f(conn).map_err(|e| self.err(e)))
    }

    fn release_reader(&self, conn: Connection) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < self.pool_size {
            readers.push(conn);
        }
    }

    fn reader(&self) -> Result<Connection, SqlError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(c) = pooled {
            return Ok(c);
        }
        let conn = self.connect()?;
        conn.busy_timeout(Duration::ZERO).map_err(|e| self.err(e))?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| self.err(e))?;
        Ok(conn)
    }

    /// Runs a read in place without ever waiting; falls back to the blocking
    /// pool when the database is busy (see the module docs).
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Clone + Send + 'static,
    {
        let mut conn = match self.reader() {
            Ok(c) => c,
            Err(_) => return self.run(f).await,
        };
        let result = f(&mut conn);
        self.release_reader(conn);
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                self.run(f).await
            }
            other => other.map_err(|e| self.err(e)),
        }
    }

    /// Runs `f` on the blocking pool, off the async executor.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = self.clone();
        match tokio::task::spawn_blocking(move || db.call(f)).await {
            Ok(result) => result,
            Err(join) => Err(self.err(format!("query task failed: {join}"))),
        }
    }
}

fn sql_param(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        serde_json::Value::Null => V::Null,
        serde_json::Value::Bool(b) => V::Integer(*b as i64),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => V::Integer(i),
            None => V::Real(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

fn sql_cell(v: rusqlite::types::ValueRef<'_>) -> serde_json::Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => f.into(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned().into(),
    }
}

fn sqlite_error(e: rusqlite::Error) -> SqlError {
    let busy = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    // The connection does not know its entry; `SqliteDb::with` names it.
    SqlError {
        db: String::new(),
        message: e.to_string(),
        busy,
        unavailable: false,
    }
}

impl super::Sql for Connection {
    fn dialect(&self) -> super::Dialect {
        super::Dialect::Sqlite
    }

    fn query(&self, sql: &str, params: &[serde_json::Value]) -> Result<super::Rows, SqlError> {
        let mut stmt = self.prepare_cached(sql).map_err(sqlite_error)?;
        let columns: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let params: Vec<_> = params.iter().map(sql_param).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let mut cells = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                cells.push(sql_cell(row.get_ref(i).map_err(sqlite_error)?));
            }
            out.push(cells);
        }
        Ok(super::Rows { columns, rows: out })
    }

    fn execute(&self, sql: &str, params: &[serde_json::Value]) -> Result<u64, SqlError> {
        let params: Vec<_> = params.iter().map(sql_param).collect();
        self.prepare_cached(sql)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(params.iter())))
            .map(|n| n as u64)
            .map_err(sqlite_error)
    }
}
