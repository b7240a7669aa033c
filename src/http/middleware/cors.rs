//! `cors`: answers preflights and adds `Access-Control-Allow-Origin` to
//! responses for allowed origins. A preflight from an origin not allowed gets
//! 403; an actual request from one simply gets no CORS headers (the browser
//! then refuses to expose the response).
//!
//! Credentials (`cors.allow.credentials: true`) need an explicit origin list:
//! with any origin (`*`) or `null` allowed it is a manifest error, so a
//! credentialed answer is never reflected to an arbitrary site.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::super::Options;
use super::parse_bool;
use crate::manifest::FieldError;

/// The option keys this middleware reads.
pub const OPTION_KEYS: &[&str] = &[
    "cors.allow.origins",
    "cors.allow.methods",
    "cors.allow.headers",
    "cors.allow.credentials",
    "cors.expose.headers",
    "cors.max_age",
];

const DEFAULT_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const DEFAULT_HEADERS: &str = "Content-Type, Authorization, X-Auth-Token, X-Request-Id";

/// A router's CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `None` allows any origin.
    origins: Option<Vec<String>>,
    methods: String,
    headers: String,
    credentials: bool,
    expose: Option<String>,
    max_age: u64,
}

impl Cors {
    /// Reads the `cors.*` options; the error is `(field, message)`.
    pub fn from_options(o: &Options) -> Result<Self, FieldError> {
        let origins = o
            .list("cors.allow.origins")
            .unwrap_or_else(|| vec!["*".into()]);
        let credentials = o
            .get("cors.allow.credentials")
            .map(|v| parse_bool("cors.allow.credentials", v))
            .transpose()?
            .unwrap_or(false);
        let max_age = match o.get("cors.max_age") {
            Some(v) => v.parse().map_err(|_| {
                FieldError::at(
                    "cors.max_age",
                    format!("expected seconds as an integer, found {v:?}"),
                )
            })?,
            None => 86_400,
        };
        let any_origin = origins.iter().any(|x| x == "*");
        if credentials && any_origin {
            // The browser refuses `*` with credentials, and reflecting any
            // Origin instead would let every site read credentialed answers.
            return Err(FieldError::at(
                "cors.allow.credentials",
                "cannot be true while cors.allow.origins allows any origin (\"*\", the default): list the origins that may send credentials",
            ));
        }
        if credentials && origins.iter().any(|x| x.eq_ignore_ascii_case("null")) {
            // `null` is what sandboxed frames and file: pages send: any site can produce it.
            return Err(FieldError::at(
                "cors.allow.origins",
                "\"null\" cannot be allowed together with cors.allow.credentials",
            ));
        }
        Ok(Cors {
            origins: (!any_origin).then_some(origins),
            methods: o
                .get("cors.allow.methods")
                .unwrap_or(DEFAULT_METHODS)
                .to_owned(),
            headers: o
                .get("cors.allow.headers")
                .unwrap_or(DEFAULT_HEADERS)
                .to_owned(),
            credentials,
            expose: o.get("cors.expose.headers").map(str::to_owned),
            max_age,
        })
    }

    /// The value for `Access-Control-Allow-Origin`, if `origin` is allowed.
    fn allow_origin(&self, origin: &str) -> Option<String> {
        match &self.origins {
            None => Some("*".into()),
            Some(list) => list
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
                .then(|| origin.to_owned()),
        }
    }

    /// Whether this request is a CORS preflight.
    pub fn is_preflight(req: &HttpRequest) -> bool {
        req.method() == actix_web::http::Method::OPTIONS
            && req.headers().contains_key(header::ORIGIN)
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Answers a preflight.
    pub fn preflight(&self, req: &HttpRequest) -> HttpResponse {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(allowed) = self.allow_origin(origin) else {
            return super::super::json_error(
                actix_web::http::StatusCode::FORBIDDEN,
                "origin not allowed",
            );
        };
        let mut res = HttpResponse::NoContent();
        res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.as_str()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, self.headers.as_str()))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, self.max_age.to_string()))
            .insert_header((header::VARY, "Origin"));
        if self.credentials {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
        }
        res.finish()
    }

    /// Adds the CORS headers to a response for an allowed origin.
    pub fn apply(&self, req: &HttpRequest, res: &mut HttpResponse) {
        let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let Some(allowed) = self.allow_origin(origin) else {
            return;
        };
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&allowed) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = self
            .expose
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
    }
}
