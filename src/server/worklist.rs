//! `GET /api/tickets?status=open,responding&room=R&overdue=1&offset=0&limit=50`: the
//! worklist of [`crate::store::worklist`], from the database (never from what a console
//! happened to receive): the page, nearest running deadline first, and the counts (`total`
//! for the query; `open`, `responding` and `overdue` for the header's badges). A bad value is
//! a 400 with `{"error": "..."}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::auth::Identity;
use crate::store::worklist::{self, WorklistQuery};
use axum::Extension;

/// The query string, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct TicketParams {
    /// Comma-separated statuses; default `open,responding`.
    pub status: Option<String>,
    /// Only this room.
    pub room: Option<String>,
    /// `1` or `true`: only tickets past their running deadline.
    pub overdue: Option<String>,
    /// Skip this many.
    pub offset: Option<usize>,
    /// Page size (default 50, at most 500).
    pub limit: Option<usize>,
}

use super::json_error as error;

/// `GET /api/tickets`.
pub async fn get_tickets(
    State(st): State<AppState>,
    Extension(identity): Extension<Identity>,
    params: Result<Query<TicketParams>, QueryRejection>,
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
        let overdue = matches!(p.overdue.as_deref(), Some("1" | "true"));
        WorklistQuery::parse(
            p.status.as_deref(),
            p.room.as_deref(),
            overdue,
            p.offset,
            p.limit,
            now_ms,
        )
    });
    let q = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    // rusqlite blocks: off the async threads.
    let hub = st.hub.clone();
    match tokio::task::spawn_blocking(move || hub.read(|conn| worklist::worklist(conn, &q))).await {
        Ok(Ok(w)) => ([(header::CONTENT_TYPE, "application/json")], w.to_json()).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("worklist query failed: {e}"),
        ),
    }
}
