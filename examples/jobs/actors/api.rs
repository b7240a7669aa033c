//! The HTTP API: `POST /jobs {"n": 1000}` queues a job and answers 202
//! `{"id", "status": "queued"}`; `GET /jobs/status?id=<id>` answers the
//! job's state (`queued`, `running`, `done` with `result`, `failed` with
//! `error`) or 404. HTTP callers have no pid, so they poll.

use rippy::prelude::*;

use super::queue::{NAME, TOPIC_SUBMIT};

fn unavailable(what: &str, e: impl std::fmt::Display) -> HttpResponse {
    log::error!("{what} error={e}");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable")
}

/// `POST /jobs`.
pub async fn submit(call: FunctionCall) -> HttpResponse {
    let ctx = &call.ctx;
    let Some(n) = serde_json::from_slice::<Value>(&call.body)
        .ok()
        .and_then(|v| v.get("n").and_then(Value::as_u64))
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected {\"n\": <non-negative integer>}",
        );
    };
    let id = match ctx.modules().random_bytes(8) {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(e) => return unavailable("no randomness", e),
    };
    let state = match ctx
        .modules()
        .store(ctx.arg_str("state").unwrap_or("jobs:state"))
    {
        Ok(state) => state,
        Err(e) => return unavailable("no state store", e),
    };
    // Recorded before the queue hears of it, so a poll never finds nothing.
    if let Err(e) = state.set(&id, json!({ "status": "queued" }), None) {
        return unavailable("job not recorded", e);
    }
    if let Err(e) = ctx.send(NAME, TOPIC_SUBMIT, json!({ "id": id, "n": n })) {
        state.delete(&id);
        return unavailable("queue unreachable", e);
    }
    HttpResponse::Accepted().json(json!({ "id": id, "status": "queued" }))
}

/// `GET /jobs/status?id=<id>`.
pub async fn status(call: FunctionCall) -> HttpResponse {
    let ctx = &call.ctx;
    let id = call
        .req
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("id="))
        .unwrap_or("");
    let state = match ctx
        .modules()
        .store(ctx.arg_str("state").unwrap_or("jobs:state"))
    {
        Ok(state) => state,
        Err(e) => return unavailable("no state store", e),
    };
    match state.get(id) {
        Some(job) => HttpResponse::Ok().json(job),
        None => json_error(StatusCode::NOT_FOUND, "unknown job"),
    }
}
