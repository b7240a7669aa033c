//! Router middleware: `cors` and `token_auth` before the endpoint,
//! `websocket_relay` after it. Options are dotted keys on the router
//! (`options` for middleware, `post_options` for post-middleware); a key that
//! belongs to no listed middleware, or that its middleware does not know, is
//! a manifest error.

pub mod cors;
pub mod token_auth;
pub mod websocket_relay;

use super::Options;
use crate::manifest::FieldError;

/// The `cors` middleware name.
pub const CORS: &str = "cors";
/// The `token_auth` middleware name.
pub const TOKEN_AUTH: &str = "token_auth";
/// The `websocket_relay` post-middleware name.
pub const WEBSOCKET_RELAY: &str = "websocket_relay";

/// Middleware that run before the endpoint.
pub const PRE: &[&str] = &[CORS, TOKEN_AUTH];
/// Middleware that run after the endpoint.
pub const POST: &[&str] = &[WEBSOCKET_RELAY];

/// The option prefix and known keys of a middleware.
pub fn option_keys(middleware: &str) -> (&'static str, &'static [&'static str]) {
    match middleware {
        CORS => ("cors.", cors::OPTION_KEYS),
        TOKEN_AUTH => ("token_auth.", token_auth::OPTION_KEYS),
        WEBSOCKET_RELAY => ("wsrelay.", websocket_relay::OPTION_KEYS),
        _ => ("", &[]),
    }
}

/// Checks the middleware names and option keys of one list (pre or post).
/// Returns `(field, message)` pairs.
pub fn validate(
    list_field: &str,
    names: &[String],
    allowed: &[&str],
    options_field: &str,
    options: &Options,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            errors.push(FieldError::at(
                format!("{list_field}[{i}]"),
                format!(
                    "unknown middleware {name:?}, expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    for key in options.keys() {
        let owner = names
            .iter()
            .map(|n| (n, option_keys(n)))
            .find(|(_, (prefix, _))| !prefix.is_empty() && key.starts_with(prefix));
        match owner {
            Some((_, (_, keys))) if keys.contains(&key) => {}
            Some((name, (_, keys))) => errors.push(FieldError::at(
                format!("{options_field}.{key}"),
                format!(
                    "unknown option for {name}, expected one of {}",
                    keys.join(", ")
                ),
            )),
            None => errors.push(FieldError::at(
                format!("{options_field}.{key}"),
                format!(
                    "option belongs to no middleware in {list_field} ({})",
                    names.join(", ")
                ),
            )),
        }
    }
    // The values too, with the same parsers boot uses, so `check` sees what
    // boot would refuse (`cors.max_age: soon`, credentials with any origin).
    let value_error = |e: FieldError| e.under(options_field);
    for name in names {
        let parsed = match name.as_str() {
            CORS => cors::Cors::from_options(options).map(drop),
            WEBSOCKET_RELAY => websocket_relay::RelayConfig::from_options(options).map(drop),
            _ => Ok(()),
        };
        errors.extend(parsed.err().map(value_error));
    }
    errors
}

pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, FieldError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(FieldError::at(
            key.to_owned(),
            format!("expected true or false, found {other:?}"),
        )),
    }
}

pub(crate) fn parse_usize(key: &str, v: &str) -> Result<usize, FieldError> {
    v.parse()
        .map_err(|_| FieldError::at(key, format!("expected a non-negative integer, found {v:?}")))
}
