//! `http.static`: files from an `fs.directory`, mounted at a path.
//!
//! `GET /` serves the index file; with `spa: true` a path with no file
//! extension that matches no file serves the index too (client-side routing).
//! Paths never leave the directory (see [`crate::fs::Directory::resolve`]).

use std::sync::Arc;

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use super::HttpError;
use super::router::ServerMeta;
use crate::fs::Directory;
use crate::manifest::FieldError;

/// `static_options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticOptions {
    /// Serve `index` for paths without a file (single-page apps).
    #[serde(default)]
    pub spa: bool,
    /// The index file (default `index.html`).
    #[serde(default)]
    pub index: Option<String>,
    /// `Cache-Control` for files other than the index (default `no-cache`).
    #[serde(default)]
    pub cache: Option<String>,
}

/// The `http.static` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The server the site mounts on.
    pub meta: ServerMeta,
    /// The URL path the site is served under.
    pub path: String,
    /// The `fs.directory` entry to serve.
    pub fs: String,
    /// How files are served.
    #[serde(default)]
    pub static_options: StaticOptions,
}

/// A booted `http.static`.
pub struct StaticSite {
    /// The entry id.
    pub id: String,
    mount: String,
    dir: Arc<Directory>,
    spa: bool,
    index: String,
    cache: String,
}

impl StaticConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        if self.path.starts_with('/') {
            Vec::new()
        } else {
            vec![FieldError::at(
                "path",
                format!("expected a path starting with '/', found {:?}", self.path),
            )]
        }
    }
}

impl StaticSite {
    /// The site of a checked config, serving `dir`.
    pub fn new(id: &str, config: &StaticConfig, dir: Arc<Directory>) -> Self {
        StaticSite {
            id: id.to_owned(),
            mount: config.path.trim_end_matches('/').to_owned(),
            dir,
            spa: config.static_options.spa,
            index: config
                .static_options
                .index
                .clone()
                .unwrap_or_else(|| "index.html".into()),
            cache: config
                .static_options
                .cache
                .clone()
                .unwrap_or_else(|| "no-cache".into()),
        }
    }

    /// The path inside this site for a request path, if it is under the mount.
    pub(crate) fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.mount.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// The mount path's length, for longest-match ordering.
    pub(crate) fn mount_len(&self) -> usize {
        self.mount.len()
    }

    /// Serves `rel` (already known to be under the mount).
    pub(crate) async fn serve(&self, req: &HttpRequest, rel: &str) -> HttpResponse {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return HttpError::MethodNotAllowed {
                allow: "GET, HEAD".into(),
            }
            .error_response();
        }
        let Some(decoded) = percent_decode(rel) else {
            return HttpError::NotFound.error_response();
        };
        let wants_index = decoded.is_empty() || decoded.ends_with('/');
        let target = if wants_index {
            format!("{decoded}{}", self.index)
        } else {
            decoded.clone()
        };
        let file = self.dir.resolve(&target).or_else(|| {
            let last = decoded.rsplit('/').next().unwrap_or("");
            (self.spa && !last.contains('.'))
                .then(|| self.dir.resolve(&self.index))
                .flatten()
        });
        let Some(file) = file else {
            return HttpError::NotFound.error_response();
        };
        let is_index = file.file_name().and_then(|n| n.to_str()) == Some(self.index.as_str());
        let mut res = HttpResponse::Ok();
        res.insert_header((header::CONTENT_TYPE, content_type(&file)))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header((
                header::CACHE_CONTROL,
                if is_index {
                    "no-cache"
                } else {
                    self.cache.as_str()
                },
            ));
        if req.method() == Method::HEAD {
            // The length a GET would send, without reading the file; the
            // HTTP layer sends no body for HEAD and never polls this one.
            return match web::block(move || std::fs::metadata(file)).await {
                Ok(Ok(meta)) => res.body(actix_web::body::SizedStream::new(
                    meta.len(),
                    futures_util::stream::empty::<Result<web::Bytes, actix_web::Error>>(),
                )),
                _ => HttpError::NotFound.error_response(),
            };
        }
        match web::block(move || std::fs::read(file)).await {
            Ok(Ok(bytes)) => res.body(bytes),
            _ => HttpError::NotFound.error_response(),
        }
    }
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("txt") => "text/plain; charset=utf-8",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; `None` for bad escapes or non-UTF-8 results.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
