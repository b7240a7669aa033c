//! The entry-reaching modules for Lua: `sql` (`db.sql.sqlite` and
//! `db.sql.postgres` entries, the same `?` statements on both),
//! `store` (`store.memory`) and `security` (token stores, the actor).
//!
//! SQL runs synchronously on the calling process's thread (SQLite reads are
//! short; a long write holds that host thread, as it would in a Rust actor
//! using `Db::call`; on PostgreSQL the statement runs on a pool thread while
//! this one waits). Parameters bind positionally (`?`); rows come
//! back as tables keyed by column name.

use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};

use super::api::{Host, actor_from, duration, err, ok};
use super::engine::{to_json, to_lua};

fn sql_params(lua: &Lua, params: Option<Table>) -> mlua::Result<Vec<serde_json::Value>> {
    let Some(params) = params else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for v in params.sequence_values::<Value>() {
        out.push(match v? {
            Value::Nil => serde_json::Value::Null,
            Value::Boolean(b) => serde_json::Value::from(b as i64),
            Value::Integer(i) => serde_json::Value::from(i),
            Value::Number(n) => serde_json::Value::from(n),
            Value::String(s) => serde_json::Value::from(s.to_string_lossy()),
            other => serde_json::Value::from(to_json(lua, other)?.to_string()),
        });
    }
    Ok(out)
}

/// The `sql` module.
pub(crate) fn sql(lua: &Lua, host: Arc<dyn Host>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "get",
        lua.create_function(move |lua, id: String| {
            let db = match host.modules().sql(&id) {
                Ok(db) => db,
                Err(e) => return err(lua, e),
            };
            let obj = lua.create_table()?;
            let d = db.clone();
            obj.set(
                "query",
                lua.create_function(
                    move |lua, (_this, q, params): (Value, String, Option<Table>)| {
                        let params = sql_params(lua, params)?;
                        let rows = d.call(move |sql| Ok(sql.query(&q, &params)?.objects()));
                        match rows {
                            Ok(rows) => ok(lua, to_lua(lua, &serde_json::Value::Array(rows))?),
                            Err(e) => err(lua, e),
                        }
                    },
                )?,
            )?;
            let d = db.clone();
            obj.set(
                "execute",
                lua.create_function(
                    move |lua, (_this, q, params): (Value, String, Option<Table>)| {
                        let params = sql_params(lua, params)?;
                        let done = d.call(move |sql| {
                            let n = sql.execute(&q, &params)?;
                            // SQLite's rowid of the last insert; PostgreSQL has
                            // none (use RETURNING with query).
                            let id = match sql.dialect() {
                                crate::sql::Dialect::Sqlite => sql
                                    .query("SELECT last_insert_rowid()", &[])?
                                    .first()
                                    .and_then(|r| r.first())
                                    .and_then(serde_json::Value::as_i64),
                                crate::sql::Dialect::Postgres => None,
                            };
                            Ok((n, id))
                        });
                        match done {
                            Ok((n, id)) => {
                                let r = lua.create_table()?;
                                r.set("rows_affected", n as i64)?;
                                if let Some(id) = id {
                                    r.set("last_insert_id", id)?;
                                }
                                ok(lua, r)
                            }
                            Err(e) => err(lua, e),
                        }
                    },
                )?,
            )?;
            obj.set("release", lua.create_function(|_, _this: Value| Ok(true))?)?;
            ok(lua, obj)
        })?,
    )?;
    Ok(t)
}

/// The `store` module.
pub(crate) fn store(lua: &Lua, host: Arc<dyn Host>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "get",
        lua.create_function(move |lua, id: String| {
            let store = match host.modules().store(&id) {
                Ok(s) => s,
                Err(e) => return err(lua, e),
            };
            let obj = lua.create_table()?;
            let s = store.clone();
            obj.set(
                "get",
                lua.create_function(
                    move |lua, (_this, key): (Value, String)| match s.get(&key) {
                        Some(v) => ok(lua, to_lua(lua, &v)?),
                        None => ok(lua, Value::Nil),
                    },
                )?,
            )?;
            let s = store.clone();
            obj.set(
                "set",
                lua.create_function(
                    move |lua, (_this, key, v, ttl): (Value, String, Value, Value)| {
                        let ttl = match ttl {
                            Value::Nil => None,
                            other => match duration(&other) {
                                Ok(d) => Some(d),
                                Err(e) => return err(lua, e),
                            },
                        };
                        match s.set(&key, to_json(lua, v)?, ttl) {
                            Ok(()) => ok(lua, true),
                            Err(e) => err(lua, format!("store full ({} items)", e.0)),
                        }
                    },
                )?,
            )?;
            let s = store.clone();
            obj.set(
                "delete",
                lua.create_function(move |lua, (_this, key): (Value, String)| {
                    ok(lua, s.delete(&key))
                })?,
            )?;
            ok(lua, obj)
        })?,
    )?;
    Ok(t)
}

/// The raw `security` module (the prelude wraps actors as objects).
pub(crate) fn security(lua: &Lua, host: Arc<dyn Host>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let h = host.clone();
    t.set(
        "actor",
        lua.create_function(move |lua, ()| match h.identity() {
            Some(id) => ok(
                lua,
                to_lua(
                    lua,
                    &serde_json::to_value(&id.actor).map_err(mlua::Error::external)?,
                )?,
            ),
            None => ok(lua, Value::Nil),
        })?,
    )?;
    let h = host.clone();
    t.set(
        "can",
        lua.create_function(move |_, (action, resource): (String, String)| {
            Ok(h.identity()
                .is_none_or(|i| i.scope.allows(&action, &resource)))
        })?,
    )?;
    t.set(
        "token_store",
        lua.create_function(move |lua, id: String| {
            let tokens = match host.modules().tokens(&id) {
                Ok(t) => t,
                Err(e) => return err(lua, e),
            };
            let obj = lua.create_table()?;
            let tk = tokens.clone();
            obj.set(
                "create",
                lua.create_function(
                    move |lua, (_this, actor, scope, opts): (Value, Value, Value, Option<Table>)| {
                        let actor = match actor_from(lua, actor) {
                            Ok(a) => a,
                            Err(e) => return err(lua, e),
                        };
                        let scope: Vec<String> = match to_json(lua, scope)? {
                            serde_json::Value::Array(items) => items
                                .into_iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect(),
                            serde_json::Value::String(s) => vec![s],
                            _ => Vec::new(),
                        };
                        let mut expiration = None;
                        let mut meta = serde_json::Value::Null;
                        if let Some(opts) = opts {
                            let exp: Value = opts.get("expiration")?;
                            if !exp.is_nil() {
                                match duration(&exp) {
                                    Ok(d) => expiration = Some(d),
                                    Err(e) => return err(lua, e),
                                }
                            }
                            meta = to_json(lua, opts.get("meta")?)?;
                        }
                        match tk.create(actor, scope, expiration, meta) {
                            Ok(token) => ok(lua, token),
                            Err(e) => err(lua, e),
                        }
                    },
                )?,
            )?;
            let tk = tokens.clone();
            obj.set(
                "validate",
                lua.create_function(move |lua, (_this, token): (Value, String)| {
                    match tk.validate(&token) {
                        Ok(rec) => {
                            let actor = to_lua(
                                lua,
                                &serde_json::to_value(&rec.actor).map_err(mlua::Error::external)?,
                            )?;
                            let scope = to_lua(lua, &serde_json::json!(rec.scope))?;
                            Ok(MultiValue::from_vec(vec![actor, scope]))
                        }
                        Err(e) => Ok(MultiValue::from_vec(vec![
                            Value::Nil,
                            Value::Nil,
                            Value::String(lua.create_string(e.to_string())?),
                        ])),
                    }
                })?,
            )?;
            let tk = tokens.clone();
            obj.set(
                "revoke",
                lua.create_function(move |lua, (_this, token): (Value, String)| {
                    match tk.revoke(&token) {
                        Ok(live) => ok(lua, live),
                        Err(e) => err(lua, e),
                    }
                })?,
            )?;
            obj.set("close", lua.create_function(|_, _this: Value| Ok(true))?)?;
            ok(lua, obj)
        })?,
    )?;
    Ok(t)
}
