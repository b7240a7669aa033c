//! An `http.proxy`'s route table: which route a path is for.
//!
//! A route matches its path and everything below it by whole segments
//! (`/api/auth` matches `/api/auth` and `/api/auth/x`, never `/api/authx`);
//! the longest matching route wins. Routes match the path's normal form
//! (`path.rs`), case-sensitively; a path whose ASCII-case-folded form would
//! land on a different route that requires auth is refused, so an upstream
//! that matches case-insensitively cannot be reached around it.

use std::sync::Arc;
use std::time::Duration;

use super::config::{RouteConfig, upstream_authority};
use super::{GatewayError, path};
use crate::manifest::FieldError;

/// One route, checked and ready to forward to.
pub(super) struct Route {
    /// The path prefix, in normal form.
    pub path: String,
    /// `http://host:port`, as the access log names it.
    pub upstream: String,
    /// `host:port`.
    pub authority: Arc<str>,
    pub auth_required: bool,
    pub timeout: Duration,
    /// Idle upstream connections kept per worker.
    pub keepalive: usize,
}

/// The routes, longest path first.
pub(super) struct Routes(Vec<Route>);

impl Routes {
    /// The table from the manifest's routes; `timeout` is the proxy's, for
    /// routes that set none.
    pub fn new(config: &[RouteConfig], timeout: Duration) -> Result<Self, FieldError> {
        let mut routes = Vec::with_capacity(config.len());
        for (i, r) in config.iter().enumerate() {
            let authority = upstream_authority(&r.upstream)
                .map_err(|e| FieldError::at(format!("routes[{i}].upstream"), e))?;
            routes.push(Route {
                path: r.path.clone(),
                upstream: format!("http://{authority}"),
                authority: authority.into(),
                auth_required: r.auth_required,
                timeout: r.timeout.map_or(timeout, |d| d.get()),
                keepalive: r.keepalive.unwrap_or(super::upstream::DEFAULT_KEEPALIVE),
            });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        Ok(Routes(routes))
    }

    /// The route at `index` (one [`Routes::route_for`] gave).
    pub fn get(&self, index: usize) -> &Route {
        &self.0[index]
    }

    /// The length of the route matching `raw` (the path as received), if
    /// one does. A path that is refused but lies under a route is the
    /// proxy's too: it answers its 400.
    pub fn matches(&self, raw: &str) -> Option<usize> {
        let index = match path::normalise(raw) {
            Ok(normal) => self.index(&normal, false),
            Err(_) => self.index(raw, false),
        };
        index.map(|i| self.0[i].path.len())
    }

    /// The route for a normalised path. Refused when the case-folded path
    /// would pick a different route that needs auth: an upstream matching
    /// case-insensitively would serve `/API/Admin` as `/api/admin`.
    pub fn route_for(&self, path: &str) -> Result<usize, GatewayError> {
        let index = self.index(path, false);
        if let Some(folded) = self.index(path, true)
            && Some(folded) != index
            && self.0[folded].auth_required
        {
            return Err(GatewayError::InvalidPath);
        }
        index.ok_or(GatewayError::NotFound)
    }

    /// The longest route matching `path` by whole segments; with
    /// `fold_case`, ASCII case is ignored.
    fn index(&self, path: &str, fold_case: bool) -> Option<usize> {
        self.0.iter().position(|r| {
            let route = r.path.as_str();
            let Some(head) = path.get(..route.len()) else {
                return route == "/";
            };
            let same = if fold_case {
                head.eq_ignore_ascii_case(route)
            } else {
                head == route
            };
            route == "/" || (same && matches!(path.as_bytes().get(route.len()), None | Some(b'/')))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, bool)]) -> Routes {
        let config: Vec<RouteConfig> = routes
            .iter()
            .map(|(path, auth_required)| RouteConfig {
                path: (*path).to_owned(),
                upstream: "http://127.0.0.1:9000".to_owned(),
                auth_required: *auth_required,
                timeout: None,
                keepalive: None,
            })
            .collect();
        Routes::new(&config, Duration::from_secs(1)).unwrap()
    }

    fn path_of(routes: &Routes, path: &str) -> Result<String, GatewayError> {
        routes.route_for(path).map(|i| routes.get(i).path.clone())
    }

    #[test]
    fn the_longest_route_matching_whole_segments_wins() {
        let routes = table(&[("/", false), ("/api", false), ("/api/auth", true)]);
        assert_eq!(path_of(&routes, "/api/auth").unwrap(), "/api/auth");
        assert_eq!(path_of(&routes, "/api/auth/x").unwrap(), "/api/auth");
        assert_eq!(path_of(&routes, "/api/authx").unwrap(), "/api");
        assert_eq!(path_of(&routes, "/apix").unwrap(), "/");
        assert_eq!(path_of(&routes, "/").unwrap(), "/");
        let no_root = table(&[("/api", false)]);
        assert!(matches!(
            path_of(&no_root, "/other"),
            Err(GatewayError::NotFound)
        ));
        assert_eq!(no_root.matches("/api/x"), Some(4));
        assert_eq!(no_root.matches("/ap"), None);
    }

    #[test]
    fn a_case_folded_path_onto_a_protected_route_is_refused() {
        let routes = table(&[("/api", false), ("/api/admin", true)]);
        assert!(matches!(
            path_of(&routes, "/api/Admin"),
            Err(GatewayError::InvalidPath)
        ));
        // Folding onto an open route is no way around anything.
        let open = table(&[("/", false), ("/docs", false)]);
        assert_eq!(path_of(&open, "/DOCS").unwrap(), "/");
    }

    #[test]
    fn a_bad_upstream_names_its_route() {
        let config = [RouteConfig {
            path: "/a".to_owned(),
            upstream: "https://x:1".to_owned(),
            auth_required: false,
            timeout: None,
            keepalive: None,
        }];
        let err = Routes::new(&config, Duration::from_secs(1)).err().unwrap();
        assert!(err.to_string().contains("routes[0].upstream"), "{err}");
    }
}
