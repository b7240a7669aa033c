//! `auth_token`: `POST /auth/token` trades an API key for a token.
//!
//! Wire (DESIGN.md section 5): invalid JSON -> 400, missing or empty
//! `api_key` -> 400, unknown key -> 401, ok -> 200 `{token, user_id, role,
//! expires_in}`. The body limit (413) is the HTTP layer's.

use rippy::prelude::*;

use super::api_keys;

/// This function's wire errors: fixed status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    InvalidJson,
    ApiKeyRequired,
    InvalidApiKey,
    Internal,
}

impl AuthError {
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::InvalidJson | AuthError::ApiKeyRequired => StatusCode::BAD_REQUEST,
            AuthError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            AuthError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthError::InvalidJson => "invalid JSON",
            AuthError::ApiKeyRequired => "api_key required",
            AuthError::InvalidApiKey => "invalid API key",
            AuthError::Internal => "internal error",
        }
    }

    pub fn response(self) -> HttpResponse {
        json_error(self.status(), self.message())
    }
}

pub async fn handler(call: FunctionCall) -> HttpResponse {
    match exchange(&call).await {
        Ok(res) => res,
        Err(e) => e.response(),
    }
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
        .sql(ctx.arg_str("db").unwrap_or("app:db"))
        .map_err(internal)?;
    let tokens = modules
        .tokens(ctx.arg_str("tokens").unwrap_or("app:tokens"))
        .map_err(internal)?;
    let owner = db
        .run(move |conn| api_keys::lookup(conn, &api_key))
        .await
        .map_err(internal)?
        .ok_or(AuthError::InvalidApiKey)?;
    let scope: Vec<String> = match ctx.args().get("scope") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec!["app:user_policy".to_owned()],
    };
    let actor = Actor::new(format!("user:{}", owner.user_id))
        .with_meta("user_id", owner.user_id.clone())
        .with_meta("role", owner.role.clone());
    let lifetime = tokens.default_expiration();
    let token = tokens
        .create(actor, scope, None, Value::Null)
        .map_err(internal)?;
    log::info!("token issued user_id={} role={}", owner.user_id, owner.role);
    Ok(HttpResponse::Ok().json(json!({
        "token": token,
        "user_id": owner.user_id,
        "role": owner.role,
        "expires_in": lifetime.as_secs(),
    })))
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    log::error!("token exchange failed error={e}");
    AuthError::Internal
}
