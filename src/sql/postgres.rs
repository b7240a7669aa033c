//! `db.sql.postgres`: a PostgreSQL database, reached through [`Db`](super::Db)
//! and the [`Sql`] trait with the same `?` statements as SQLite.
//!
//! Each of the `pool_size` connections lives on a thread of its own (the
//! synchronous `postgres` client), and every call is a job sent to the pool:
//! blocking callers wait on a channel, async callers await a one-shot, so no
//! actix worker ever drives PostgreSQL's I/O. A connection that breaks is
//! dropped and the next job on that thread connects again; while the server
//! is down every call fails at once with an error naming the database
//! (callers answer 503), and calls work again as soon as it is back.
//!
//! Parameters are converted to the types PostgreSQL infers for them
//! (`bool`, `int2/4/8`, `float4/8`, text types); cells of those types come
//! back as JSON values, `NULL` as null. Prepared statements are cached per
//! connection.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};
use serde::Deserialize;
use serde_json::Value;

use super::{Dialect, Rows, Sql, SqlError, numbered_placeholders};
use crate::manifest::{FieldError, Lifecycle, ManifestDuration};

/// The `db.sql.postgres` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A connection URL (`postgres://user@127.0.0.1:5432/db`); for local runs.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the URL; wins when set (production:
    /// the password stays out of the manifest).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Connections, one thread each (default 4).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// How long connecting may take (default 2s).
    #[serde(default)]
    pub connect_timeout: Option<ManifestDuration>,
    /// The server-side limit on one statement (default 10s).
    #[serde(default)]
    pub statement_timeout: Option<ManifestDuration>,
    /// SQL run at every boot, in order, in one transaction; write it to be
    /// idempotent (`CREATE TABLE IF NOT EXISTS ...`).
    #[serde(default)]
    pub init: Vec<String>,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

impl PostgresConfig {
    /// Load-time checks.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.url.is_none() && self.url_env.is_none() {
            errors.push(FieldError::at("url", "expected url or url_env"));
        }
        if let Some(url) = &self.url
            && url.parse::<postgres::Config>().is_err()
        {
            errors.push(FieldError::at(
                "url",
                "expected a PostgreSQL URL (postgres://user@host:port/db)",
            ));
        }
        if self.pool_size == Some(0) {
            errors.push(FieldError::at("pool_size", "expected at least 1"));
        }
        errors
    }

    fn resolve_url(&self) -> Result<String, String> {
        crate::util::inline_or_env(self.url.as_deref(), self.url_env.as_deref(), "url")
    }
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// A booted `db.sql.postgres`.
pub struct PostgresDb {
    id: String,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    pub(super) memos: super::Memos,
}

struct Worker {
    id: String,
    config: postgres::Config,
    client: Option<Client>,
    cache: HashMap<String, Statement>,
}

impl Worker {
    fn client(&mut self) -> Result<&mut Client, SqlError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            self.cache.clear();
            let client = self
                .config
                .connect(NoTls)
                .map_err(|e| SqlError::unavailable(&self.id, format!("cannot connect: {e}")))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("set above"))
    }
}

impl PostgresDb {
    /// Starts the pool and runs `init` once (which also proves the server
    /// is reachable).
    pub fn open(id: &str, config: &PostgresConfig) -> Result<Arc<Self>, SqlError> {
        let url = config.resolve_url().map_err(|m| SqlError::new(id, m))?;
        let mut pg: postgres::Config = url
            .parse()
            .map_err(|e| SqlError::new(id, format!("bad url: {e}")))?;
        pg.connect_timeout(
            config
                .connect_timeout
                .map_or(Duration::from_secs(2), |d| d.get()),
        );
        let statement_ms = config
            .statement_timeout
            .map_or(10_000, |d| d.get().as_millis());
        pg.options(&format!("-c statement_timeout={statement_ms}"));
        pg.application_name("rippy");
        // NOTICEs (`... already exists, skipping` from idempotent init) are
        // not events of the node.
        pg.notice_callback(|n| log::debug!("postgres notice: {}", n.message()));
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.pool_size.unwrap_or(4).max(1) {
            let rx = rx.clone();
            let mut worker = Worker {
                id: id.to_owned(),
                config: pg.clone(),
                client: None,
                cache: HashMap::new(),
            };
            std::thread::Builder::new()
                .name(format!("pg-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { return };
                        // Code that panics inside a call costs its caller an
                        // error ("the query was dropped"), not this pool a
                        // thread; the connection may be mid-statement, so it
                        // goes too.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut worker));
                        if std::panic::catch_unwind(run).is_err() {
                            worker.client = None;
                            worker.cache.clear();
                        }
                    }
                })
                .map_err(|e| SqlError::new(id, format!("cannot start a pool thread: {e}")))?;
        }
        let db = Arc::new(PostgresDb {
            id: id.to_owned(),
            jobs: Mutex::new(Some(tx)),
            memos: super::Memos::default(),
        });
        let init = config.init.clone();
        db.blocking(true, move |sql: &dyn PgSql| {
            for (i, stmt) in init.iter().enumerate() {
                sql.batch(stmt)
                    .map_err(|e| SqlError::new(&e.db, format!("init[{i}]: {}", e.message)))?;
            }
            Ok(())
        })?;
        Ok(db)
    }

    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn submit(&self, job: Job) -> Result<(), SqlError> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| SqlError::new(&self.id, "the connection pool has stopped"))
    }

    fn job<T: Send + 'static>(
        tx: bool,
        f: impl FnOnce(&dyn PgSql) -> Result<T, SqlError> + Send + 'static,
        reply: impl FnOnce(Result<T, SqlError>) + Send + 'static,
    ) -> Job {
        Box::new(move |worker: &mut Worker| {
            let id = worker.id.clone();
            let result = match worker.client() {
                Err(e) => Err(e),
                Ok(_) => {
                    let Worker { client, cache, .. } = worker;
                    let client = client.as_mut().expect("connected above");
                    if tx {
                        match client.transaction() {
                            Err(e) => Err(SqlError::new(&id, e)),
                            Ok(t) => {
                                let conn = Conn {
                                    id: &id,
                                    inner: std::cell::RefCell::new(Inner::Tx(t, cache)),
                                };
                                match f(&conn) {
                                    Ok(v) => match conn.inner.into_inner() {
                                        Inner::Tx(t, _) => {
                                            t.commit().map(|_| v).map_err(|e| SqlError::new(&id, e))
                                        }
                                        Inner::Client(..) => Ok(v),
                                    },
                                    Err(e) => Err(e), // dropped: rolled back
                                }
                            }
                        }
                    } else {
                        let conn = Conn {
                            id: &id,
                            inner: std::cell::RefCell::new(Inner::Client(client, cache)),
                        };
                        f(&conn)
                    }
                }
            };
            reply(result);
        })
    }

    /// Runs `f` on a pool thread and waits for it (blocking).
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        self.blocking(false, move |c: &dyn PgSql| f(c))
    }

    /// Runs `f` in one transaction on a pool thread and waits (blocking).
    pub fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        self.blocking(true, move |c: &dyn PgSql| f(c))
    }

    fn blocking<T: Send + 'static>(
        &self,
        tx: bool,
        f: impl FnOnce(&dyn PgSql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.submit(Self::job(tx, f, move |r| {
            let _ = reply.send(r);
        }))?;
        wait.recv()
            .unwrap_or_else(|_| Err(SqlError::new(&self.id, "the query was dropped")))
    }

    /// Runs `f` on a pool thread; the caller awaits without blocking.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.submit(Self::job(
            false,
            move |c: &dyn PgSql| f(c),
            move |r| {
                let _ = reply.send(r);
            },
        ))?;
        wait.await
            .unwrap_or_else(|_| Err(SqlError::new(&self.id, "the query was dropped")))
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        // Closing the channel ends every pool thread after its current job.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// [`Sql`] plus a multi-statement batch (for `init`).
trait PgSql: Sql {
    fn batch(&self, sql: &str) -> Result<(), SqlError>;
}

enum Inner<'a> {
    Client(&'a mut Client, &'a mut HashMap<String, Statement>),
    Tx(
        postgres::Transaction<'a>,
        &'a mut HashMap<String, Statement>,
    ),
}

struct Conn<'a> {
    id: &'a str,
    inner: std::cell::RefCell<Inner<'a>>,
}

impl Conn<'_> {
    fn err(&self, e: impl std::fmt::Display) -> SqlError {
        SqlError::new(self.id, e)
    }

    /// A client error: the server's own error, or (no server error) a lost
    /// connection, which callers report as unavailable.
    fn pg(&self, e: &postgres::Error) -> SqlError {
        match e.as_db_error() {
            Some(_) => self.err(db_message(e)),
            None => SqlError::unavailable(self.id, e),
        }
    }

    fn prepared(&self, inner: &mut Inner<'_>, sql: &str) -> Result<Statement, SqlError> {
        let (cache, stmt) = match inner {
            Inner::Client(c, cache) => {
                if let Some(s) = cache.get(sql) {
                    return Ok(s.clone());
                }
                (cache, c.prepare(&numbered_placeholders(sql)))
            }
            Inner::Tx(t, cache) => {
                if let Some(s) = cache.get(sql) {
                    return Ok(s.clone());
                }
                (cache, t.prepare(&numbered_placeholders(sql)))
            }
        };
        let stmt = stmt.map_err(|e| self.pg(&e))?;
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    fn params(&self, stmt: &Statement, params: &[Value]) -> Result<Vec<Param>, SqlError> {
        if stmt.params().len() != params.len() {
            return Err(self.err(format!(
                "the statement takes {} parameters, {} given",
                stmt.params().len(),
                params.len()
            )));
        }
        stmt.params()
            .iter()
            .zip(params)
            .enumerate()
            .map(|(i, (ty, v))| {
                Param::of(ty, v).map_err(|m| self.err(format!("parameter {}: {m}", i + 1)))
            })
            .collect()
    }
}

fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

impl Sql for Conn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, SqlError> {
        let mut inner = self.inner.borrow_mut();
        let stmt = self.prepared(&mut inner, sql)?;
        let params = self.params(&stmt, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = match &mut *inner {
            Inner::Client(c, _) => c.query(&stmt, &refs),
            Inner::Tx(t, _) => t.query(&stmt, &refs),
        }
        .map_err(|e| self.pg(&e))?;
        let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(columns.len());
            for (i, col) in stmt.columns().iter().enumerate() {
                cells.push(
                    cell(row, i, col.type_())
                        .map_err(|m| self.err(format!("column {}: {m}", col.name())))?,
                );
            }
            out.push(cells);
        }
        Ok(Rows { columns, rows: out })
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        let mut inner = self.inner.borrow_mut();
        let stmt = self.prepared(&mut inner, sql)?;
        let params = self.params(&stmt, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        match &mut *inner {
            Inner::Client(c, _) => c.execute(&stmt, &refs),
            Inner::Tx(t, _) => t.execute(&stmt, &refs),
        }
        .map_err(|e| self.pg(&e))
    }
}

impl PgSql for Conn<'_> {
    fn batch(&self, sql: &str) -> Result<(), SqlError> {
        match &mut *self.inner.borrow_mut() {
            Inner::Client(c, _) => c.batch_execute(sql),
            Inner::Tx(t, _) => t.batch_execute(sql),
        }
        .map_err(|e| self.pg(&e))
    }
}

/// One parameter, typed as PostgreSQL inferred it.
#[derive(Debug)]
enum Param {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
}

impl Param {
    fn of(ty: &Type, v: &Value) -> Result<Param, String> {
        if v.is_null() {
            return Ok(Param::Null);
        }
        let int = || match v {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| format!("expected an integer for {ty}, found {n}")),
            Value::Bool(b) => Ok(*b as i64),
            Value::String(s) => s
                .parse()
                .map_err(|_| format!("expected an integer for {ty}, found {s:?}")),
            other => Err(format!("expected an integer for {ty}, found {other}")),
        };
        let float = || match v {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| format!("expected a number for {ty}")),
            Value::String(s) => s
                .parse()
                .map_err(|_| format!("expected a number for {ty}, found {s:?}")),
            other => Err(format!("expected a number for {ty}, found {other}")),
        };
        Ok(match *ty {
            Type::BOOL => Param::Bool(match v {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
                other => return Err(format!("expected a boolean, found {other}")),
            }),
            Type::INT2 => Param::I16(int()?.try_into().map_err(|_| "out of range for int2")?),
            Type::INT4 => Param::I32(int()?.try_into().map_err(|_| "out of range for int4")?),
            Type::INT8 => Param::I64(int()?),
            Type::FLOAT4 => Param::F32(float()? as f32),
            Type::FLOAT8 => Param::F64(float()?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Param::Text(match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            _ => {
                return Err(format!(
                    "parameters of type {ty} are not supported (cast it: ?::text)"
                ));
            }
        })
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::I16(v) => v.to_sql(ty, out),
            Param::I32(v) => v.to_sql(ty, out),
            Param::I64(v) => v.to_sql(ty, out),
            Param::F32(v) => v.to_sql(ty, out),
            Param::F64(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each value was converted for the type PostgreSQL inferred.
        true
    }

    postgres::types::to_sql_checked!();
}

fn cell(row: &postgres::Row, i: usize, ty: &Type) -> Result<Value, String> {
    let e = |e: postgres::Error| e.to_string();
    Ok(match *ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(e)?
            .map(Value::from),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(e)?
            .map(Value::from),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(e)?
            .map(Value::from),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(e)?
            .map(Value::from),
        Type::OID => row
            .try_get::<_, Option<u32>>(i)
            .map_err(e)?
            .map(Value::from),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(e)?
            .map(|f| Value::from(f as f64)),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(e)?
            .map(Value::from),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row
            .try_get::<_, Option<String>>(i)
            .map_err(e)?
            .map(Value::from),
        _ => {
            return Err(format!(
                "values of type {ty} are not supported (cast it: ::text)"
            ));
        }
    }
    .unwrap_or(Value::Null))
}
