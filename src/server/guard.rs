//! The door every request passes (an axum middleware on the route table): the `Host` header
//! against `allowed_hosts` (no DNS rebinding), the `Origin` of WebSocket upgrades and
//! state-changing requests against `allowed_origins` or the request's own origin (no
//! cross-site requests), the body size, then who is calling — a Bearer token, the console's
//! session cookie, or (overlay routes only, for OBS) `?token=` — its role against the route's,
//! and its request rate. Each refusal is counted in `liveguard_refused_total{reason}`.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::auth::session::{self, Sessions};
use crate::auth::{AuthConfig, Identity, Keyring, Role};
use crate::limits::{Buckets, Limits};
use crate::metrics::Metrics;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`/healthz`).
    Open,
    /// Anyone from an allowed host and origin, to present a token (the console's login).
    Login,
    /// These roles (any role at all in protected mode).
    Roles(&'static [Role]),
}

/// One route of the table: what [`super::router`] serves and what the guard enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The method.
    pub method: Method,
    /// The path pattern, as axum matches it (`/api/alerts/{seq}/actions`).
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
    /// Whether `?token=` is accepted (the overlay in OBS cannot send a header or a cookie).
    pub query_token: bool,
}

const LOGIN_HTML: &str = include_str!("assets/login.html");

/// Logins tried per second across all callers (a burst of twice as many): guessing a
/// 16-character secret at this rate takes longer than the universe has.
pub const LOGINS_PER_SECOND: u32 = 5;

/// The guard's state.
#[derive(Debug)]
pub struct Guard {
    /// The tokens in force (SIGHUP swaps them).
    pub keyring: ArcSwap<Keyring>,
    /// Console sessions.
    pub sessions: Sessions,
    /// How long a login lasts.
    pub session_ttl_ms: u64,
    /// Served over TLS (session cookies get `Secure`).
    pub tls: bool,
    hosts: Vec<String>,
    origins: Vec<String>,
    routes: Vec<RouteInfo>,
    rate: Buckets,
    logins: Buckets,
    max_body: usize,
    metrics: Arc<Metrics>,
}

/// Host names of the listen address and the defaults, lower case, without brackets.
fn default_hosts(listen: &SocketAddr) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    hosts
}

/// `host` of a `Host` header or an origin's authority (`[::1]:8787` → `::1`).
pub fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        a.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl Guard {
    /// The guard for a daemon listening on `listen` with `keyring`, routes `routes`.
    pub fn new(
        cfg: &AuthConfig,
        limits: &Limits,
        listen: SocketAddr,
        keyring: Keyring,
        tls: bool,
        routes: Vec<RouteInfo>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut hosts = default_hosts(&listen);
        hosts.extend(cfg.allowed_hosts.iter().map(|h| host_name(h)));
        let port = listen.port();
        let mut origins = Vec::new();
        for h in default_hosts(&listen) {
            let h = if h.contains(':') { format!("[{h}]") } else { h };
            for scheme in ["http", "https"] {
                origins.push(format!("{scheme}://{h}:{port}"));
            }
        }
        origins.extend(cfg.allowed_origins.iter().map(|o| normalize_origin(o)));
        let rps = limits.requests_per_second;
        Self {
            keyring: ArcSwap::from_pointee(keyring),
            sessions: Sessions::default(),
            session_ttl_ms: if cfg.session_ttl_ms == 0 {
                crate::auth::SESSION_TTL_MS
            } else {
                cfg.session_ttl_ms
            },
            tls,
            hosts,
            origins,
            routes,
            rate: Buckets::new(rps, 1_000, rps.saturating_mul(2), 10_000),
            logins: Buckets::new(LOGINS_PER_SECOND, 1_000, LOGINS_PER_SECOND * 2, 1),
            max_body: limits.max_body_bytes,
            metrics,
        }
    }

    /// The route table.
    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// Takes a login attempt from the shared budget; false: too many, try later.
    pub fn login_allowed(&self, now_ms: u64) -> bool {
        self.logins.take("login", now_ms)
    }

    /// Counts a refusal and answers it.
    pub fn refuse(&self, code: StatusCode, reason: &'static str, message: &str) -> Response {
        self.metrics.refused(reason);
        let mut r = (code, Json(serde_json::json!({ "error": message }))).into_response();
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }

    fn host_ok(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(host) = headers.get(header::HOST) else {
            return Ok(());
        };
        let name = host_name(host.to_str().unwrap_or(""));
        if self.hosts.contains(&name) {
            Ok(())
        } else {
            Err(format!(
                "host {name:?} is not served here: add it to [auth] allowed_hosts"
            ))
        }
    }

    fn origin_ok(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            // Browsers always send Origin on these requests; tools that do not must hold a
            // token anyway once tokens exist.
            return Ok(());
        };
        let origin = normalize_origin(origin.to_str().unwrap_or(""));
        let same = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| {
                origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(h.trim()))
            });
        if same || self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(format!(
                "origin {origin:?} may not act here: add it to [auth] allowed_origins"
            ))
        }
    }

    /// The caller: `Ok(None)` when no credential came, `Err` for a wrong one.
    fn identify(&self, req: &Request, query_token: bool, now_ms: u64) -> Result<Option<Identity>, ()> {
        let keyring = self.keyring.load();
        if keyring.is_open() {
            return Ok(Some(Identity::local()));
        }
        let headers = req.headers();
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let secret = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or(())?;
            return keyring.verify(secret).map(Some).ok_or(());
        }
        if query_token {
            if let Some(secret) = req.uri().query().and_then(query_param_token) {
                return keyring.verify(&secret).map(Some).ok_or(());
            }
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::from_cookie_header);
        match cookie {
            Some(id) => self.sessions.identity(id, &keyring, now_ms).map(Some).ok_or(()),
            None => Ok(None),
        }
    }
}

/// `token` of a query string.
fn query_param_token(query: &str) -> Option<String> {
    form_urlencoded_pairs(query)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The middleware.
pub async fn guard(State(g): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    let Some(route) = g
        .routes
        .iter()
        .find(|r| r.path == path && r.method == method)
        .cloned()
    else {
        // A path served for other methods only: nothing to reach here.
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    if route.access == Access::Open {
        return next.run(req).await;
    }
    if let Err(m) = g.host_ok(req.headers()) {
        return g.refuse(StatusCode::FORBIDDEN, "host", &m);
    }
    let changes = !matches!(method, Method::GET | Method::OPTIONS);
    if changes || is_upgrade(req.headers()) {
        if let Err(m) = g.origin_ok(req.headers()) {
            return g.refuse(StatusCode::FORBIDDEN, "origin", &m);
        }
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if length.is_some_and(|n| n > g.max_body) {
        return g.refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            &format!("body over {} bytes", g.max_body),
        );
    }
    let now = crate::clock::now_ms();
    if route.access == Access::Login {
        return next.run(req).await;
    }
    let Access::Roles(roles) = route.access else {
        return next.run(req).await;
    };
    let identity = match g.identify(&req, route.query_token, now) {
        Ok(Some(id)) => id,
        // The console's page answers with the login form (a session may have expired).
        Ok(None) if path == "/console" => {
            g.metrics.refused("no_token");
            return (StatusCode::UNAUTHORIZED, Html(LOGIN_HTML)).into_response();
        }
        Err(()) if path == "/console" => {
            g.metrics.refused("bad_token");
            return (StatusCode::UNAUTHORIZED, Html(LOGIN_HTML)).into_response();
        }
        Ok(None) => return g.refuse(StatusCode::UNAUTHORIZED, "no_token", "a token is required"),
        Err(()) => return g.refuse(StatusCode::UNAUTHORIZED, "bad_token", "unknown or expired token"),
    };
    if identity.token && !roles.contains(&identity.role) {
        return g.refuse(
            StatusCode::FORBIDDEN,
            "role",
            &format!("the {} role may not use {path}", identity.role.as_str()),
        );
    }
    if identity.token && !g.rate.take(&identity.name, now) {
        return g.refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate",
            "too many requests: slow down",
        );
    }
    req.extensions_mut().insert(identity);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("LocalHost:8787"), "localhost");
        assert_eq!(host_name("[::1]:8787"), "::1");
        assert_eq!(host_name("evil.example"), "evil.example");
        assert_eq!(query_param_token("room=r1&token=a%2Bb"), Some("a+b".into()));
    }
}
