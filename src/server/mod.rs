//! Stage 8, server (axum, on the daemon's runtime): `GET /ws/alerts?room=…&since=SEQ` (a
//! WebSocket of alert messages; `since` replays what the subscriber missed from the store),
//! `GET /api/alerts` (recent alerts as JSON), `GET /api/tickets` (the worklist,
//! [`worklist`]), `POST /api/alerts/{seq}/actions` (console actions, [`actions`]),
//! `POST /api/report` (a comment liveguard missed, [`report`]),
//! `GET /ws/overlay?room=…` (prompts for the streamer's overlay), the pages `GET /console`
//! and `GET /overlay` ([`pages`]), `GET /healthz` (503 while blind, see
//! [`crate::health`]) and `GET /metrics`.
//!
//! A slow subscriber never slows ingest: it reads from a bounded broadcast; when it falls
//! behind it is told how many alerts it missed (and from which `seq` to resync), and a
//! subscriber that stops reading altogether is disconnected after a send timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

pub mod actions;
pub mod pages;
pub mod report;
pub mod stats;
pub mod worklist;

use crate::alerts::{wire, Hub, MsgKind};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// A subscriber whose socket does not take a message within this time is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Alerts.
    pub hub: Arc<Hub>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Stops subscriber sockets on shutdown.
    pub shutdown: Shutdown,
    /// Prompts for the streamers' overlays.
    pub overlay: tokio::sync::broadcast::Sender<Arc<actions::Prompt>>,
    /// What the console needs to know (promised response time).
    pub console: ConsoleSettings,
    /// The last rules reload (the console shows a banner when it failed).
    pub reload: crate::reload::SharedStatus,
    /// Time (injectable for tests).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Whether the sources and the store work (`/healthz`, the console's banner).
    pub health: Arc<crate::health::Health>,
}

/// Settings the console page reads from `GET /api/console`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsoleSettings {
    /// Promised response time for complaints (ms): timers go amber at half, red when due.
    pub response_ms: u64,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws/alerts", get(ws_alerts))
        .route("/ws/overlay", get(ws_overlay))
        .route("/api/alerts", get(api_alerts))
        .route(
            "/api/alerts/{seq}/actions",
            axum::routing::post(actions::post_action),
        )
        .route("/api/report", axum::routing::post(report::post_report))
        .route("/api/console", get(console_settings))
        .route("/api/stats", get(stats::get_stats))
        .route("/api/tickets", get(worklist::get_tickets))
        .route("/console", get(pages::console))
        .route("/overlay", get(pages::overlay))
        .route("/assets/{file}", get(pages::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Query of the alert endpoints.
#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    /// Only this room.
    pub room: Option<String>,
    /// Replay alerts with a sequence number above this one.
    pub since: Option<u64>,
    /// At most this many (`/api/alerts`, default 100).
    pub limit: Option<usize>,
}

async fn console_settings(State(st): State<AppState>) -> Json<serde_json::Value> {
    let reload = st.reload.lock().map(|r| r.clone()).unwrap_or_default();
    let reasons = problems(&st);
    Json(serde_json::json!({
        "response_ms": st.console.response_ms,
        "rules_generation": reload.generation,
        "rules_error": reload.error,
        "health": { "status": if reasons.is_empty() { "ok" } else { "degraded" }, "reasons": reasons },
        "now_ms": crate::clock::Clock::now_ms(&crate::clock::SystemClock),
    }))
}

/// What is wrong now (a source down or silent, the store failing).
fn problems(st: &AppState) -> Vec<crate::health::Problem> {
    let store = st.hub.store_failure();
    st.health.check(
        store.as_ref(),
        crate::clock::Clock::now_ms(&crate::clock::SystemClock),
    )
}

/// Query of the overlay socket.
#[derive(Debug, Deserialize)]
pub struct OverlayQuery {
    /// The room whose prompts to show.
    pub room: String,
}

async fn ws_overlay(
    ws: WebSocketUpgrade,
    State(st): State<AppState>,
    Query(q): Query<OverlayQuery>,
) -> Response {
    ws.on_upgrade(move |socket| overlay_socket(socket, st, q.room))
}

/// Streams the room's prompts; only what the floor manager pushed (or an auto room's invites).
async fn overlay_socket(socket: WebSocket, st: AppState, room: String) {
    let (mut tx, mut rx_socket) = socket.split();
    let mut prompts = st.overlay.subscribe();
    let mut shutdown = st.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.wait() => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            incoming = rx_socket.next() => if client_closed(&incoming) { break },
            p = prompts.recv() => match p {
                Ok(p) if p.room == room => {
                    let json = serde_json::to_string(&*p).unwrap_or_default();
                    if !send(&mut tx, json).await {
                        break;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
}

/// `GET /healthz`: 200 `{"status":"ok"}`, or 503 `{"status":"degraded","reasons":[…]}` while
/// a source is down or silent past `source_down_ms`, or the store cannot commit.
async fn healthz(State(st): State<AppState>) -> Response {
    let reasons = problems(&st);
    let last_seq = st.hub.last_seq();
    if reasons.is_empty() {
        Json(serde_json::json!({ "status": "ok", "last_seq": last_seq })).into_response()
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "degraded", "last_seq": last_seq, "reasons": reasons })),
        )
            .into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        st.metrics.render(),
    )
        .into_response()
}

/// Alerts replayed from the store per read (a subscriber catching up reads in pages).
pub const REPLAY_PAGE: usize = 1_000;

/// Runs a blocking store read off the async threads.
async fn read<T: Send + 'static>(
    hub: &Arc<Hub>,
    f: impl FnOnce(&Hub) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, String> {
    let hub = hub.clone();
    match tokio::task::spawn_blocking(move || f(&hub)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("store read failed: {e}")),
    }
}

/// `GET /api/alerts?room=&since=&limit=`: from the store, as stored (the latest version of
/// each alert). With `since`, oldest first; without, the newest first.
async fn api_alerts(State(st): State<AppState>, Query(q): Query<AlertQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let room = q.room.clone();
    let rows = match q.since {
        Some(since) => read(&st.hub, move |h| h.since(since, room.as_deref(), limit)).await,
        None => read(&st.hub, move |h| h.recent(limit, room.as_deref())).await,
    };
    match rows {
        Ok(rows) => {
            let mut body = String::with_capacity(rows.iter().map(|(_, b)| b.len() + 1).sum::<usize>() + 2);
            body.push('[');
            for (i, (_, b)) in rows.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(b);
            }
            body.push(']');
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}

async fn ws_alerts(
    ws: WebSocketUpgrade,
    State(st): State<AppState>,
    Query(q): Query<AlertQuery>,
) -> Response {
    ws.on_upgrade(move |socket| subscriber(socket, st, q))
}

/// Whether what the client sent ends the session (close, error, end of stream); anything
/// else a client sends on these push-only sockets is ignored.
fn client_closed(incoming: &Option<Result<Message, axum::Error>>) -> bool {
    matches!(incoming, None | Some(Err(_)) | Some(Ok(Message::Close(_))))
}

/// Sends one text message; false when the socket failed or did not take it in time.
async fn send(tx: &mut futures_util::stream::SplitSink<WebSocket, Message>, text: String) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn subscriber(socket: WebSocket, st: AppState, q: AlertQuery) {
    let (mut tx, mut rx_socket) = socket.split();
    st.metrics.subscribers.inc();
    // Subscribe before reading the ring, so nothing published in between is missed; the
    // sequence check below drops what the replay already sent.
    let mut live = st.hub.subscribe();
    let room = q.room.as_deref();
    let mut last = st.hub.last_seq();
    let mut shutdown = st.shutdown.clone();
    let hello = serde_json::json!({ "type": "hello", "last_seq": last, "room": room }).to_string();
    let mut ok = send(&mut tx, hello).await;
    if let (true, Some(since)) = (ok, q.since) {
        // Catch up from the store, a page at a time; the live stream (subscribed above)
        // carries on from whatever the last page ended with.
        last = since;
        'replay: loop {
            let (r, from) = (q.room.clone(), last);
            let page = match read(&st.hub, move |h| h.since(from, r.as_deref(), REPLAY_PAGE)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "replay from the store failed");
                    ok = false;
                    break;
                }
            };
            for (seq, body) in &page {
                last = last.max(*seq);
                if !send(&mut tx, wire("alert", body)).await {
                    ok = false;
                    break 'replay;
                }
            }
            if page.len() < REPLAY_PAGE {
                break;
            }
        }
    }
    if !ok {
        st.metrics.subscribers.dec();
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.wait() => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            incoming = rx_socket.next() => if client_closed(&incoming) { break },
            msg = live.recv() => match msg {
                Ok(m) => {
                    if room.is_some_and(|r| r != &*m.room) || (m.kind == MsgKind::Alert && m.seq <= last) {
                        continue;
                    }
                    if m.kind == MsgKind::Alert {
                        last = m.seq;
                    }
                    if !send(&mut tx, m.json.to_string()).await {
                        st.metrics.subscriber_dropped.inc();
                        tracing::info!("alert subscriber not reading; disconnected");
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    st.metrics.subscriber_missed.inc_by(n);
                    let note = serde_json::json!({ "type": "lagged", "missed": n, "resync_since": last }).to_string();
                    if !send(&mut tx, note).await {
                        st.metrics.subscriber_dropped.inc();
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    st.metrics.subscribers.dec();
}
