//! `auth_token`: `POST /auth/token` trades an API key for a token.
//!
//! Wire (DESIGN.md section 5): invalid JSON -> 400, missing or empty
//! `api_key` -> 400, unknown key -> 401, ok -> 200 `{token, user_id, role,
//! expires_in}` with `Cache-Control: no-store`. The body limit (413) is the
//! HTTP layer's.
//!
//! Failed exchanges are counted per client address in a `store.memory`
//! (`args.attempts_store`); past `args.max_failures` (default 20) within
//! `args.failure_window` (default 1m) the address gets 429 with
//! `Retry-After` until the window ends. Successful exchanges are not counted.

use std::sync::Arc;
use std::time::Duration;

use rippy::prelude::*;

use super::api_keys;

/// This function's wire errors: fixed status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    InvalidJson,
    ApiKeyRequired,
    InvalidApiKey,
    TooManyAttempts {
        retry_after: u64,
    },
    Internal,
    /// The key database (or the token store) cannot be reached.
    Unavailable,
}

impl AuthError {
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::InvalidJson | AuthError::ApiKeyRequired => StatusCode::BAD_REQUEST,
            AuthError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            AuthError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthError::InvalidJson => "invalid JSON",
            AuthError::ApiKeyRequired => "api_key required",
            AuthError::InvalidApiKey => "invalid API key",
            AuthError::TooManyAttempts { .. } => "too many failed attempts",
            AuthError::Internal => "internal error",
            AuthError::Unavailable => "service unavailable",
        }
    }

    pub fn response(self) -> HttpResponse {
        let mut res = json_error(self.status(), self.message());
        if let AuthError::TooManyAttempts { retry_after } = self
            && let Ok(v) = retry_after.to_string().parse()
        {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        res
    }
}

/// Failed attempts per client address, kept in a memory store.
struct Attempts<'a> {
    store: Arc<MemoryStore>,
    key: String,
    max: i64,
    window: Duration,
    ctx: &'a FunctionContext,
}

impl Attempts<'_> {
    fn refused(&self) -> Option<AuthError> {
        let (count, left) = self.store.counter(&self.key)?;
        (count >= self.max).then(|| AuthError::TooManyAttempts {
            retry_after: left.as_secs().max(1),
        })
    }

    fn failed(&self) {
        self.store.incr(&self.key, self.window);
        self.ctx.metrics().auth_failure("invalid_api_key");
    }
}

pub async fn handler(call: FunctionCall) -> HttpResponse {
    let attempts = match attempts(&call) {
        Ok(a) => a,
        Err(e) => return e.response(),
    };
    if let Some(refused) = attempts.refused() {
        return refused.response();
    }
    match exchange(&call).await {
        Ok(res) => res,
        Err(e) => {
            if matches!(
                e,
                AuthError::InvalidJson | AuthError::ApiKeyRequired | AuthError::InvalidApiKey
            ) {
                attempts.failed();
            }
            e.response()
        }
    }
}

fn attempts(call: &FunctionCall) -> Result<Attempts<'_>, AuthError> {
    let ctx = &call.ctx;
    let store = ctx
        .modules()
        .store(ctx.arg_str("attempts_store").unwrap_or_default())
        .map_err(internal)?;
    let window = ctx
        .arg_str("failure_window")
        .and_then(|w| parse_duration(w).ok())
        .unwrap_or(Duration::from_secs(60));
    let max = ctx
        .args()
        .get("max_failures")
        .and_then(Value::as_i64)
        .unwrap_or(20);
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(b"auth_token.failures:");
    if let Some(peer) = call.req.peer_addr() {
        rippy::util::put_ip(&mut key, peer.ip());
    }
    let key = String::from_utf8(key).unwrap_or_default();
    Ok(Attempts {
        store,
        key,
        max,
        window,
        ctx,
    })
}

async fn exchange(call: &FunctionCall) -> Result<HttpResponse, AuthError> {
    let body: Value = serde_json::from_slice(&call.body).map_err(|_| AuthError::InvalidJson)?;
    let api_key = body
        .get("api_key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::ApiKeyRequired)?
        .to_owned();
    let ctx = &call.ctx;
    let modules = ctx.modules();
    let db = modules
        .sql(ctx.arg_str("db").unwrap_or_default())
        .map_err(internal)?;
    let tokens = modules
        .tokens(ctx.arg_str("tokens").unwrap_or_default())
        .map_err(internal)?;
    let owner = db
        .read(move |conn| api_keys::lookup(conn, &api_key))
        .await
        .map_err(|e| match e.unavailable {
            true => unavailable(e),
            false => internal(e),
        })?
        .ok_or(AuthError::InvalidApiKey)?;
    let scope: Vec<String> = match ctx.args().get("scope") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let actor = Actor::new(format!("user:{}", owner.user_id))
        .with_meta("user_id", owner.user_id.clone())
        .with_meta("role", owner.role.clone());
    let lifetime = tokens.default_expiration();
    // A token store that cannot write its record (Redis down) is a 503.
    let token = tokens
        .create(actor, scope, None, json!({ "api_key_id": owner.key_id }))
        .map_err(|e| match e {
            ModuleError::Failed { .. } => unavailable(e),
            e => internal(e),
        })?;
    log::info!("token issued user_id={} role={}", owner.user_id, owner.role);
    // A credential: no cache (browser, proxy) may keep it (RFC 6749 5.1).
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(Issued {
            expires_in: lifetime.as_secs(),
            role: &owner.role,
            token: &token,
            user_id: &owner.user_id,
        }))
}

/// The answer to a token exchange. Fields in the order a JSON map had them
/// (sorted), so the body is byte for byte what it was; written straight
/// from its parts, with no map built and dropped per request.
#[derive(serde::Serialize)]
struct Issued<'a> {
    expires_in: u64,
    role: &'a str,
    token: &'a str,
    user_id: &'a str,
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    log::warn!("token exchange unavailable error={e}");
    AuthError::Unavailable
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    log::error!("token exchange failed error={e}");
    AuthError::Internal
}
