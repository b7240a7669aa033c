//! The scale-out backends on real servers: token records in Redis shared by
//! two stores (two nodes), SQL on PostgreSQL with the statements SQLite
//! runs, and `security.identity` on PostgreSQL. Skipped, saying so, where
//! the server program is missing (a failure under CI).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rippy::security::{Actor, IdentityConfig, IdentityResolver, TokenError, TokenStore};
use rippy::sql::{Db, PostgresConfig, PostgresDb, SqliteConfig, SqliteDb, cell_bool};
use rippy::store::{RedisStore, RedisStoreConfig};
use serde_json::{Value, json};

use crate::support::servers::{Postgres, Redis};

fn redis_store(id: &str, redis: &Redis) -> Arc<RedisStore> {
    let config: RedisStoreConfig =
        serde_yaml::from_str(&format!("url: {}\nkey_prefix: \"t:\"\n", redis.url())).unwrap();
    Arc::new(RedisStore::new(id, &config).unwrap())
}

fn token_store(redis: Arc<RedisStore>, dir: &std::path::Path) -> TokenStore {
    let config: rippy::security::TokenStoreConfig = serde_yaml::from_str(&format!(
        "store: t:redis\ntoken_key_file: {}\n",
        dir.join("token.key").display()
    ))
    .unwrap();
    TokenStore::new("t:tokens", &config, dir, redis, Arc::default()).unwrap()
}

#[test]
fn a_token_minted_on_one_node_validates_on_another_and_a_revocation_reaches_both() {
    let name = "a_token_minted_on_one_node_validates_on_another_and_a_revocation_reaches_both";
    let Some(redis) = Redis::start(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Two nodes: two connection pools, one key, one Redis.
    let (a_redis, b_redis) = (
        redis_store("t:redis", &redis),
        redis_store("t:redis", &redis),
    );
    let (a, b) = (
        token_store(a_redis.clone(), dir.path()),
        token_store(b_redis, dir.path()),
    );
    let token = a
        .create(
            Actor::new("user:alice"),
            vec!["p".into()],
            Some(Duration::from_secs(60)),
            json!({ "api_key_id": 7 }),
        )
        .unwrap();
    let record = b.validate(&token).unwrap();
    assert_eq!(record.actor.id, "user:alice");
    assert_eq!(record.meta["api_key_id"], 7);
    // The record lives as long as the token, plus the grace that lets an
    // expired token be told from an unknown one.
    let ttl = a_redis
        .ttl(&format!("token:{}", &token[..64]))
        .unwrap()
        .unwrap();
    assert!(
        ttl > Duration::from_secs(355) && ttl <= Duration::from_secs(360),
        "{ttl:?}"
    );
    assert!(b.revoke(&token));
    assert_eq!(a.validate(&token).err(), Some(TokenError::Unknown));
    assert_eq!(b.validate(&token).err(), Some(TokenError::Unknown));
}

#[test]
fn with_redis_down_validation_fails_at_once_as_unavailable_and_recovers_with_it() {
    let name = "with_redis_down_validation_fails_at_once_as_unavailable_and_recovers_with_it";
    let Some(mut redis) = Redis::start(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_store(redis_store("t:redis", &redis), dir.path());
    let token = tokens
        .create(Actor::new("user:a"), vec![], None, Value::Null)
        .unwrap();
    redis.kill();
    let started = Instant::now();
    assert_eq!(tokens.validate(&token).err(), Some(TokenError::Unavailable));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        tokens
            .create(Actor::new("user:a"), vec![], None, Value::Null)
            .is_err()
    );
    redis.restart();
    // A fresh server has no records, but the store works again.
    let deadline = Instant::now() + crate::support::TIMEOUT;
    let again = loop {
        match tokens.create(Actor::new("user:a"), vec![], None, Value::Null) {
            Ok(t) => break t,
            Err(e) => assert!(Instant::now() < deadline, "redis did not come back: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(tokens.validate(&again).is_ok());
    assert_eq!(tokens.validate(&token).err(), Some(TokenError::Unknown));
}

fn postgres_db(pg: &Postgres) -> Db {
    let config: PostgresConfig = serde_yaml::from_str(&format!(
        "url: {}\ninit: [\"CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, username TEXT NOT NULL UNIQUE)\"]\n",
        pg.url()
    ))
    .unwrap();
    Db::from(PostgresDb::open("t:pg", &config).unwrap())
}

fn sqlite_db(dir: &std::path::Path) -> Db {
    let config: SqliteConfig =
        serde_yaml::from_str(&format!("file: {}", dir.join("t.db").display())).unwrap();
    Db::from(SqliteDb::open("t:lite", &dir.join("t.db"), &config).unwrap())
}

#[test]
fn postgres_runs_the_question_mark_statements_sqlite_runs_with_the_same_rows() {
    let name = "postgres_runs_the_question_mark_statements_sqlite_runs_with_the_same_rows";
    let Some(pg) = Postgres::start(name) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for db in [sqlite_db(dir.path()), postgres_db(&pg)] {
        let rows = db
            .transaction(|sql| {
                sql.execute(
                    "CREATE TABLE items (id BIGINT, name TEXT, price DOUBLE PRECISION, ok BOOLEAN, note TEXT)",
                    &[],
                )?;
                let n = sql.execute(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)",
                    &[
                        json!(1), json!("a '?' b"), json!(2.5), json!(true), Value::Null,
                        json!(2), json!("c"), json!(10), json!(false), json!("n"),
                    ],
                )?;
                assert_eq!(n, 2);
                sql.query(
                    "SELECT id, name, price, ok, note FROM items WHERE id >= ? AND name <> '?' ORDER BY id",
                    &[json!(1)],
                )
            })
            .unwrap();
        assert_eq!(rows.columns, ["id", "name", "price", "ok", "note"]);
        // Booleans are 0/1 on SQLite; cell_bool reads both.
        let normal: Vec<Value> = rows
            .rows
            .iter()
            .map(|r| json!([r[0], r[1], r[2].as_f64(), cell_bool(&r[3]), r[4]]))
            .collect();
        results.push(normal);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(
        results[1],
        vec![
            json!([1, "a '?' b", 2.5, true, null]),
            json!([2, "c", 10.0, false, "n"])
        ]
    );
}

#[test]
fn a_statement_error_names_the_database_and_a_stopped_server_is_unavailable_not_a_hang() {
    let name =
        "a_statement_error_names_the_database_and_a_stopped_server_is_unavailable_not_a_hang";
    let Some(mut pg) = Postgres::start(name) else {
        return;
    };
    let db = postgres_db(&pg);
    let e = db
        .call(|sql| sql.query("SELECT * FROM nope", &[]))
        .unwrap_err();
    assert!(
        e.to_string().contains("t:pg") && e.to_string().contains("nope"),
        "{e}"
    );
    assert!(!e.unavailable);
    let e = db
        .call(|sql| sql.query("SELECT ?::text", &[json!(1), json!(2)]))
        .unwrap_err();
    assert!(e.message.contains("takes 1 parameters, 2 given"), "{e}");
    pg.stop();
    let started = Instant::now();
    let mut last = None;
    // Each pool thread finds its connection gone at its next call.
    for _ in 0..8 {
        last = Some(db.call(|sql| sql.query("SELECT 1::int8", &[])));
    }
    let e = last.unwrap().unwrap_err();
    assert!(e.unavailable, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn security_identity_maps_usernames_on_postgres() {
    let name = "security_identity_maps_usernames_on_postgres";
    let Some(pg) = Postgres::start(name) else {
        return;
    };
    let db = postgres_db(&pg);
    db.call(|sql| {
        sql.execute(
            "INSERT INTO users (id, username) VALUES (?, ?)",
            &[json!(42), json!("alice")],
        )
    })
    .unwrap();
    let config: IdentityConfig =
        serde_yaml::from_str("db: t:pg\nquery: \"SELECT id FROM users WHERE username = ?\"\n")
            .unwrap();
    let identity = IdentityResolver::new(&config, db);
    assert_eq!(identity.resolve("alice").await, Ok(Some("42".into())));
    assert_eq!(identity.resolve("bob").await, Ok(None));
}

#[test]
fn code_that_panics_in_a_call_gets_an_error_and_the_pool_keeps_its_thread() {
    let name = "code_that_panics_in_a_call_gets_an_error_and_the_pool_keeps_its_thread";
    let Some(pg) = Postgres::start(name) else {
        return;
    };
    let config: PostgresConfig =
        serde_yaml::from_str(&format!("url: {}\npool_size: 1\n", pg.url())).unwrap();
    let db = Db::from(PostgresDb::open("t:pg", &config).unwrap());
    let e = db
        .call(|_| -> Result<(), rippy::sql::SqlError> { panic!("a bug in the caller's code") })
        .unwrap_err();
    assert!(e.message.contains("dropped"), "{e}");
    // The one pool thread is still there, with a fresh connection.
    let rows = db
        .call(|sql| sql.query("SELECT 7::int8 AS n", &[]))
        .unwrap();
    assert_eq!(rows.rows, vec![vec![json!(7)]]);
}
