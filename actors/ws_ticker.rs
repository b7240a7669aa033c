//! `ws_ticker`: `GET /ws/ticker` spawns a `ws_handler` for the caller and
//! asks the relay to upgrade. No identity (no, bad, revoked or expired
//! token, or a token whose API key has since been revoked) -> 401 before any
//! upgrade; a scope that may not spawn -> 403. `?since=<seq>` (the last seq
//! the client saw) asks for the ticks it missed before live ones; anything
//! but a sequence number there -> 400.

use rippy::prelude::*;

use super::api_keys;

fn unauthorized() -> HttpResponse {
    json_error(StatusCode::UNAUTHORIZED, "authentication required")
}

/// The `since` query parameter: `Ok(None)` when absent.
fn since(query: &str) -> Result<Option<u64>, ()> {
    match query_param(query, "since") {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map(Some).map_err(|_| ())
        }
        Some(_) => Err(()),
    }
}

pub async fn handler(call: FunctionCall) -> HttpResponse {
    let ctx = &call.ctx;
    let Some(identity) = ctx.identity() else {
        return unauthorized();
    };
    let Ok(since) = since(call.req.query_string()) else {
        return json_error(StatusCode::BAD_REQUEST, "since must be a sequence number");
    };
    // A token outlives nothing: its API key must still be active.
    if let Some(key_id) = identity.meta.get("api_key_id").and_then(Value::as_i64) {
        let db = match ctx.modules().sql(ctx.arg_str("db").unwrap_or_default()) {
            Ok(db) => db,
            Err(e) => {
                log::error!("ws_ticker cannot reach the database error={e}");
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
            }
        };
        match api_keys::ActiveKeys::check(&db, key_id).await {
            Ok(true) => {}
            Ok(false) => {
                ctx.metrics().auth_failure("key_revoked");
                return unauthorized();
            }
            Err(e) => {
                log::error!("api key check failed error={e}");
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
            }
        }
    }
    let entry = ctx.arg_str("handler").unwrap_or_default();
    let host = ctx.arg_str("host").unwrap_or_default();
    let pid = match ctx.spawn(entry, host, Value::Null) {
        Ok(pid) => pid,
        Err(e @ SpawnError::Denied(_)) => {
            log::warn!("handler spawn refused user={} error={e}", identity.actor.id);
            return json_error(StatusCode::FORBIDDEN, "forbidden");
        }
        Err(e) => {
            log::error!("handler spawn failed error={e}");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
        }
    };
    let target = RelayTarget {
        target_pid: pid,
        metadata: match since {
            Some(since) => json!({
                "user_id": identity.actor.id,
                "role": identity.actor.meta_str("role"),
                "since": since,
            }),
            None => json!({
                "user_id": identity.actor.id,
                "role": identity.actor.meta_str("role"),
            }),
        },
    };
    target.respond()
}
