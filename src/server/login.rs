//! `POST /api/session`: the console's login form (or a JSON `{"token": …}`) exchanges a
//! manager token for a session cookie (`HttpOnly; SameSite=Strict`, `Secure` over TLS);
//! `DELETE /api/session` logs out. Attempts share one small rate budget; a wrong token is a
//! 401, a token of another role a 403.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};

use super::AppState;
use crate::auth::session;
use crate::auth::{Identity, Role};

#[derive(serde::Deserialize)]
struct LoginBody {
    token: String,
}

/// `POST /api/session`.
pub async fn login(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let g = &st.guard;
    let now = st.clock.now_ms();
    if !g.login_allowed(crate::clock::now_ms()) {
        return g.refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "login",
            "too many logins: wait a second",
        );
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Option<LoginBody> = if json {
        serde_json::from_slice(&body).ok()
    } else {
        serde_urlencoded::from_bytes(&body).ok()
    };
    let Some(LoginBody { token }) = parsed else {
        return g.refuse(StatusCode::UNAUTHORIZED, "no_token", "send token=…");
    };
    let keyring = g.keyring.load();
    let Some(identity) = keyring.verify(token.trim()) else {
        return g.refuse(StatusCode::UNAUTHORIZED, "bad_token", "unknown token");
    };
    if identity.role != Role::Manager {
        return g.refuse(
            StatusCode::FORBIDDEN,
            "role",
            &format!("the {} role has no console", identity.role.as_str()),
        );
    }
    let id = match g
        .sessions
        .open(crate::auth::hash(token.trim()), now, g.session_ttl_ms)
    {
        Ok(id) => id,
        Err(e) => {
            return g.refuse(StatusCode::SERVICE_UNAVAILABLE, "sessions", &e.to_string());
        }
    };
    tracing::info!(name = %identity.name, "console login");
    let cookie = session::set_cookie(&id, g.session_ttl_ms, g.tls);
    let mut res = if json {
        Json(serde_json::json!({ "name": &*identity.name, "role": identity.role })).into_response()
    } else {
        Redirect::to("/console").into_response()
    };
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// `DELETE /api/session`.
pub async fn logout(
    State(st): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Response {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header);
    if let Some(id) = cookie {
        st.guard.sessions.close(id);
    }
    tracing::info!(name = %identity.name, "console logout");
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::clear_cookie())],
    )
        .into_response()
}
