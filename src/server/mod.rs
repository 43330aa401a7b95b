//! Stage 8, server (axum, on the daemon's runtime): `GET /ws/alerts?room=…&since=SEQ` (a
//! WebSocket of alert messages; `since` replays what the subscriber missed from the store),
//! `GET /api/alerts` (recent alerts as JSON), `GET /api/alerts/{seq}` (one, as stored),
//! `GET /api/console` (settings, health and the [`vocab`]), `GET /api/tickets` (the worklist,
//! [`worklist`]), `POST /api/alerts/{seq}/actions` (console actions, [`actions`]),
//! `POST /api/report` (a comment liveguard missed, [`report`]),
//! `GET /ws/overlay?room=…` (prompts for the streamer's overlay), the pages `GET /console`
//! and `GET /overlay` ([`pages`]), `GET /healthz` (503 while blind, see
//! [`crate::health`]) and `GET /metrics`.
//!
//! Every route is in one table ([`routes`]) that says who may use it; [`guard`] enforces it
//! (tokens, roles, hosts, origins, rates) and [`listen`] serves it (TLS, handshake timeout,
//! connection cap). Served sockets ping the client, close one that stays silent past
//! `ws_idle_timeout_ms`, answer a client's Close, and cap what a client may send.
//!
//! A slow subscriber never slows ingest: it reads from a bounded broadcast; when it falls
//! behind it is told how many alerts it missed (and from which `seq` to resync), and a
//! subscriber that stops reading altogether is disconnected after a send timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Extension, Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

pub mod actions;
pub mod guard;
pub mod listen;
pub mod login;
pub mod pages;
pub mod report;
pub mod stats;
pub mod vocab;
pub mod worklist;

use crate::alerts::{wire, Hub, MsgKind};
use crate::auth::{Identity, Role};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use guard::{Access, RouteInfo};

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
    pub reload: crate::health::SharedStatus,
    /// Time (injectable for tests).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Whether the sources and the store work (`/healthz`, the console's banner).
    pub health: Arc<crate::health::Health>,
    /// Tokens, sessions, hosts and origins.
    pub guard: Arc<guard::Guard>,
    /// Sizes, rates and timeouts.
    pub limits: crate::limits::Limits,
    /// Sockets open per role, against `subscribers_*`.
    pub sockets: Arc<SocketCounts>,
    /// A console gateway's way to the alerts' owners (actions go there); `None`: act here.
    pub remote: Option<Arc<dyn actions::RemoteActions>>,
}

/// Served sockets open, per role.
#[derive(Debug, Default)]
pub struct SocketCounts {
    manager: std::sync::atomic::AtomicUsize,
    overlay: std::sync::atomic::AtomicUsize,
}

/// One open socket, counted until dropped.
#[derive(Debug)]
pub struct SocketSlot {
    counts: Arc<SocketCounts>,
    overlay: bool,
}

impl SocketCounts {
    /// A slot for a socket of `role`, or None when `max` are open.
    pub fn take(self: &Arc<Self>, overlay: bool, max: usize) -> Option<SocketSlot> {
        use std::sync::atomic::Ordering;
        let n = if overlay { &self.overlay } else { &self.manager };
        n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (v < max).then_some(v + 1)
        })
        .ok()?;
        Some(SocketSlot {
            counts: self.clone(),
            overlay,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let n = if self.overlay {
            &self.counts.overlay
        } else {
            &self.counts.manager
        };
        n.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Settings the console page reads from `GET /api/console`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsoleSettings {
    /// Promised response time for complaints (ms): timers go amber at half, red when due.
    pub response_ms: u64,
}

const MANAGER: &[Role] = &[Role::Manager];
const OVERLAY: &[Role] = &[Role::Manager, Role::Overlay];
const METRICS: &[Role] = &[Role::Manager, Role::Metrics];
const ASSETS: &[Role] = &[Role::Manager, Role::Overlay];

/// Every route: method, path, who may use it, whether `?token=` counts, and its handler. The
/// router and the guard are both built from this list, so no route can miss its check.
fn routes() -> Vec<(RouteInfo, MethodRouter<AppState>)> {
    use axum::routing::{delete, post};
    let r =
        |method: Method, path: &'static str, access: Access, query_token: bool, h: MethodRouter<AppState>| {
            (
                RouteInfo {
                    method,
                    path,
                    access,
                    query_token,
                },
                h,
            )
        };
    let roles = Access::Roles;
    vec![
        r(Method::GET, "/ws/alerts", roles(MANAGER), false, get(ws_alerts)),
        r(Method::GET, "/ws/overlay", roles(OVERLAY), true, get(ws_overlay)),
        r(Method::GET, "/api/alerts", roles(MANAGER), false, get(api_alerts)),
        r(
            Method::GET,
            "/api/alerts/{seq}",
            roles(MANAGER),
            false,
            get(api_alert),
        ),
        r(
            Method::POST,
            "/api/alerts/{seq}/actions",
            roles(MANAGER),
            false,
            post(actions::post_action),
        ),
        r(
            Method::POST,
            "/api/report",
            roles(MANAGER),
            false,
            post(report::post_report),
        ),
        r(
            Method::GET,
            "/api/console",
            roles(MANAGER),
            false,
            get(console_settings),
        ),
        r(
            Method::GET,
            "/api/stats",
            roles(MANAGER),
            false,
            get(stats::get_stats),
        ),
        r(
            Method::GET,
            "/api/tickets",
            roles(MANAGER),
            false,
            get(worklist::get_tickets),
        ),
        r(
            Method::POST,
            "/api/session",
            Access::Login,
            false,
            post(login::login),
        ),
        r(
            Method::DELETE,
            "/api/session",
            roles(MANAGER),
            false,
            delete(login::logout),
        ),
        r(
            Method::GET,
            "/console",
            roles(MANAGER),
            false,
            get(pages::console),
        ),
        r(Method::GET, "/overlay", roles(OVERLAY), true, get(pages::overlay)),
        r(
            Method::GET,
            "/assets/{file}",
            roles(ASSETS),
            false,
            get(pages::asset),
        ),
        r(Method::GET, "/healthz", Access::Open, false, get(healthz)),
        r(Method::GET, "/metrics", roles(METRICS), false, get(metrics)),
    ]
}

/// The route table (what the guard enforces), for the guard and for tests that walk it.
pub fn route_table() -> Vec<RouteInfo> {
    routes().into_iter().map(|(info, _)| info).collect()
}

/// The routes, each behind the guard; CORS headers only for `cors_origins`.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let mut router = Router::new();
    for (info, handler) in routes() {
        router = router.route(info.path, handler);
    }
    let router = router
        .route_layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state);
    if cors_origins.is_empty() {
        return router;
    }
    let origins: Vec<header::HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| header::HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    router.layer(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .allow_credentials(true),
    )
}

/// A refusal with `{"error": …}`, counted.
fn refuse(st: &AppState, code: StatusCode, reason: &'static str, message: &str) -> Response {
    st.guard.refuse(code, reason, message)
}

/// Highest `since` accepted: sequence numbers are stored as SQLite's signed 64-bit integers.
pub const MAX_SINCE: u64 = i64::MAX as u64;

/// `{"error": msg}` with `code`.
pub(crate) fn json_error(code: axum::http::StatusCode, msg: &str) -> Response {
    (code, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Narrows a query's `room` to what `identity` may read (its own room when it is limited to
/// one); a room it may not see gives the refusal to answer with (403, counted).
pub(crate) fn scope_room(
    st: &AppState,
    identity: &crate::auth::Identity,
    room: &mut Option<String>,
) -> Option<Response> {
    match identity.room_for(room.as_deref()) {
        Ok(r) => {
            *room = r;
            None
        }
        Err(m) => Some(st.guard.refuse(axum::http::StatusCode::FORBIDDEN, "room", &m)),
    }
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

/// `GET /api/console`: what the console page needs besides alerts: the promised response
/// time, the last rules reload, the daemon's health, who is signed in, and the vocabulary
/// (labels and action rules, [`vocab::vocabulary`]).
async fn console_settings(
    State(st): State<AppState>,
    Extension(id): Extension<Identity>,
) -> Json<serde_json::Value> {
    let reload = st.reload.lock().map(|r| r.clone()).unwrap_or_default();
    let reasons = problems(&st);
    Json(serde_json::json!({
        "response_ms": st.console.response_ms,
        "rules_generation": reload.generation,
        "rules_error": reload.error,
        "health": { "status": if reasons.is_empty() { "ok" } else { "degraded" }, "reasons": reasons },
        "now_ms": crate::clock::Clock::now_ms(&crate::clock::SystemClock),
        "identity": { "name": &*id.name, "role": id.role, "token": id.token, "rooms": &*id.rooms },
        "vocab": vocab::vocabulary(),
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
    Extension(id): Extension<Identity>,
    Query(q): Query<OverlayQuery>,
) -> Response {
    if !id.may_see(&q.room) {
        return refuse(
            &st,
            StatusCode::FORBIDDEN,
            "room",
            &format!("{} may not show room {:?}", id.name, q.room),
        );
    }
    let Some(slot) = st.sockets.take(true, st.limits.subscribers_overlay) else {
        return refuse(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            "subscribers",
            "too many overlay sockets",
        );
    };
    ws.max_message_size(st.limits.max_ws_message_bytes).on_upgrade({
        // Subscribed before the handshake answer: a prompt pushed once the client is
        // connected reaches it (subscribing in the upgraded task raced the first alert).
        let prompts = st.overlay.subscribe();
        move |socket| overlay_socket(socket, st, q.room, prompts, slot)
    })
}

/// Keeps a served socket honest: pings every third of the idle timeout and says when the
/// client has been silent (not even a pong) for the whole of it.
struct Liveness {
    ping: tokio::time::Interval,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl Liveness {
    fn new(limit: Duration) -> Self {
        let mut ping = tokio::time::interval((limit / 3).max(Duration::from_millis(10)));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            ping,
            idle: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }

    /// The client sent something.
    fn heard(&mut self) {
        self.idle.as_mut().reset(tokio::time::Instant::now() + self.limit);
    }
}

/// What the loop does with what the client sent.
enum Incoming {
    /// Keep going.
    Go,
    /// The client closed (its Close answered) or the socket failed.
    Stop,
}

/// Handles one incoming message on a push-only socket: a Close is answered (so the client
/// sees a clean close, not 1006), anything else is ignored.
async fn incoming(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    m: Option<Result<Message, axum::Error>>,
    live: &mut Liveness,
) -> Incoming {
    match m {
        Some(Ok(Message::Close(_))) => {
            // tungstenite queued the reply when it read the Close; closing the sink writes
            // it out (a second Close frame would be refused as a send after closing).
            let _ = tokio::time::timeout(SEND_TIMEOUT, tx.close()).await;
            Incoming::Stop
        }
        Some(Ok(_)) => {
            live.heard();
            Incoming::Go
        }
        None | Some(Err(_)) => Incoming::Stop,
    }
}

/// Streams the room's prompts; only what the floor manager pushed (or an auto room's invites).
async fn overlay_socket(
    socket: WebSocket,
    st: AppState,
    room: String,
    mut prompts: tokio::sync::broadcast::Receiver<Arc<actions::Prompt>>,
    _slot: SocketSlot,
) {
    let (mut tx, mut rx_socket) = socket.split();
    let mut shutdown = st.shutdown.clone();
    let mut live = Liveness::new(Duration::from_millis(st.limits.ws_idle_timeout_ms));
    loop {
        tokio::select! {
            _ = shutdown.wait() => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            m = rx_socket.next() => if let Incoming::Stop = incoming(&mut tx, m, &mut live).await { break },
            _ = live.ping.tick() => if !ping(&mut tx).await { break },
            _ = live.idle.as_mut() => {
                st.metrics.limited("ws_idle");
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
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

async fn ping(tx: &mut futures_util::stream::SplitSink<WebSocket, Message>) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Ping(Vec::new().into()))).await,
        Ok(Ok(()))
    )
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
async fn api_alerts(
    State(st): State<AppState>,
    Extension(id): Extension<Identity>,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match checked_query(&st, &id, q) {
        Ok(q) => q,
        Err(r) => return *r,
    };
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

/// `GET /api/alerts/{seq}`: one alert as stored (its latest version), for a console that got
/// an update of an alert it does not hold. 404 when unknown (or pruned), 403 for a room the
/// caller may not see.
async fn api_alert(
    State(st): State<AppState>,
    Extension(id): Extension<Identity>,
    axum::extract::Path(seq): axum::extract::Path<u64>,
) -> Response {
    match read(&st.hub, move |h| h.get(seq)).await {
        Ok(Some(a)) if !id.may_see(&a.room) => refuse(
            &st,
            StatusCode::FORBIDDEN,
            "room",
            &format!("{} may not see room {:?}", id.name, a.room),
        ),
        Ok(Some(a)) => Json(a).into_response(),
        Ok(None) => json_error(StatusCode::NOT_FOUND, &format!("no alert {seq}")),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// The query, with `since` in range and `room` one the caller may read (a room-limited
/// manager with one room gets it by default).
fn checked_query(
    st: &AppState,
    id: &Identity,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<AlertQuery, Box<Response>> {
    let Query(mut q) = q.map_err(|e| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": e.body_text() })),
            )
                .into_response(),
        )
    })?;
    if q.since.is_some_and(|s| s > MAX_SINCE) {
        return Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": format!("since must be at most {MAX_SINCE}") })),
            )
                .into_response(),
        ));
    }
    q.room = id
        .room_for(q.room.as_deref())
        .map_err(|m| Box::new(refuse(st, StatusCode::FORBIDDEN, "room", &m)))?;
    Ok(q)
}

async fn ws_alerts(
    ws: WebSocketUpgrade,
    State(st): State<AppState>,
    Extension(id): Extension<Identity>,
    q: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match checked_query(&st, &id, q) {
        Ok(q) => q,
        Err(r) => return *r,
    };
    let Some(slot) = st.sockets.take(false, st.limits.subscribers_manager) else {
        return refuse(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            "subscribers",
            "too many alert sockets",
        );
    };
    ws.max_message_size(st.limits.max_ws_message_bytes)
        .on_upgrade(move |socket| subscriber(socket, st, q, slot))
}

/// At most this many alert messages are written before one flush.
const SEND_BATCH: usize = 256;

/// Tells a subscriber it missed `n` messages and where to resync from; false when the socket
/// failed.
async fn lagged(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    st: &AppState,
    n: u64,
    last: u64,
) -> bool {
    st.metrics.subscriber_missed.inc_by(n);
    let note = serde_json::json!({ "type": "lagged", "missed": n, "resync_since": last }).to_string();
    send(tx, note).await
}

/// Sends one text message; false when the socket failed or did not take it in time.
async fn send(tx: &mut futures_util::stream::SplitSink<WebSocket, Message>, text: String) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn subscriber(socket: WebSocket, st: AppState, q: AlertQuery, _slot: SocketSlot) {
    let (mut tx, mut rx_socket) = socket.split();
    st.metrics.subscribers.inc();
    // Subscribe before reading the ring, so nothing published in between is missed; the
    // sequence check below drops what the replay already sent.
    let mut live = st.hub.subscribe();
    let room = q.room.as_deref();
    let mut last = st.hub.last_seq();
    let mut shutdown = st.shutdown.clone();
    let mut alive = Liveness::new(Duration::from_millis(st.limits.ws_idle_timeout_ms));
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
            m = rx_socket.next() => if let Incoming::Stop = incoming(&mut tx, m, &mut alive).await { break },
            _ = alive.ping.tick() => if !ping(&mut tx).await { break },
            _ = alive.idle.as_mut() => {
                st.metrics.limited("ws_idle");
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            msg = live.recv() => match msg {
                Ok(m) => {
                    // What is already waiting goes out with it under one flush: one write and
                    // one wake of the client per burst, not per message.
                    let (mut next, mut fed, mut lag) = (Some(m), 0, None);
                    let mut ok = true;
                    while let Some(m) = next.take() {
                        let skip = room.is_some_and(|r| r != &*m.room) || (m.kind == MsgKind::Alert && m.seq <= last);
                        if !skip {
                            if m.kind == MsgKind::Alert {
                                last = m.seq;
                            }
                            let text = Message::Text(m.json.to_string().into());
                            ok = matches!(tokio::time::timeout(SEND_TIMEOUT, tx.feed(text)).await, Ok(Ok(())));
                            fed += 1;
                        }
                        if !ok || fed >= SEND_BATCH {
                            break;
                        }
                        match live.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(TryRecvError::Lagged(n)) => lag = Some(n),
                            Err(_) => {}
                        }
                    }
                    ok = ok && matches!(tokio::time::timeout(SEND_TIMEOUT, tx.flush()).await, Ok(Ok(())));
                    if let (true, Some(n)) = (ok, lag) {
                        ok = lagged(&mut tx, &st, n, last).await;
                    }
                    if !ok {
                        st.metrics.subscriber_dropped.inc();
                        tracing::info!("alert subscriber not reading; disconnected");
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    if !lagged(&mut tx, &st, n, last).await {
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
