//! `GET /api/stats?since=7d&until=MS&room=R`: the insights of [`crate::store::insights`] as
//! JSON, for the console's report page. `since` is a duration back from now (`90s`, `30m`,
//! `24h`, `7d`; default `7d`) or ms since the epoch; `until` takes the same forms (default
//! now); an empty `room` means every room. A bad value is a 400 with `{"error": "..."}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::AppState;
use crate::auth::Identity;
use crate::store::insights::{self, StatsQuery};
use axum::Extension;

/// The window when `since` is not given.
pub const DEFAULT_SINCE: &str = "7d";

/// The query string, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct StatsParams {
    /// Window start: a duration back from now or ms since the epoch.
    pub since: Option<String>,
    /// Window end (exclusive), same forms; default now.
    pub until: Option<String>,
    /// Only this room.
    pub room: Option<String>,
}

use super::json_error as error;

/// `GET /api/stats`.
pub async fn get_stats(
    State(st): State<AppState>,
    Extension(identity): Extension<Identity>,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Response {
    let now_ms = st.clock.now_ms();
    let params = match params {
        Ok(Query(mut p)) => match super::scope_room(&st, &identity, &mut p.room) {
            None => Ok(Query(p)),
            Some(refused) => return refused,
        },
        Err(e) => Err(e),
    };
    let q = params.map_err(|e| e.body_text()).and_then(|Query(p)| {
        let since = p.since.as_deref().unwrap_or(DEFAULT_SINCE);
        StatsQuery::parse(since, p.until.as_deref(), p.room.as_deref(), now_ms)
    });
    let q = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    // rusqlite blocks: off the async threads.
    let hub = st.hub.clone();
    match tokio::task::spawn_blocking(move || hub.read(|conn| insights::stats(conn, &q))).await {
        Ok(Ok(stats)) => Json(stats).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("stats query failed: {e}"),
        ),
    }
}
