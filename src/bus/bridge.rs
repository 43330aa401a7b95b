//! The edge (`liveguard bridge`): today's firehose clients, each handing its events to a
//! [`BusSink`] instead of the daemon's intake; one publisher task sends them to the comment
//! stream with `Nats-Msg-Id` set to the event's de-duplication key, so a reconnect's backlog
//! or a second bridge on the same source adds nothing. While the server does not answer,
//! events wait in a bounded buffer (`[bus] buffer`, counted); past it the firehose reads wait.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::wire::WireEvent;
use super::{comment_subject, partition_of, BusConfig, BusError};
use crate::health::{Health, SourceHealth};
use crate::ingest::client::{self, SourceConfig};
use crate::ingest::{Event, Ingested, Sink};
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown, Trigger};

/// One event ready to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its subject.
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub msg_id: String,
    /// The JSON.
    pub payload: Bytes,
}

/// A source's way onto the bus: events → subjects by room partition → the publisher's queue.
#[derive(Debug)]
pub struct BusSink {
    tx: mpsc::Sender<Outgoing>,
    partitions: u32,
    metrics: Arc<Metrics>,
}

impl BusSink {
    /// A sink into the publisher's queue `tx`, hashing rooms over `partitions`.
    pub fn new(tx: mpsc::Sender<Outgoing>, partitions: u32, metrics: Arc<Metrics>) -> Self {
        Self {
            tx,
            partitions,
            metrics,
        }
    }

    async fn send(&self, subject: String, w: &WireEvent) -> bool {
        let payload = match serde_json::to_vec(w) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an event");
                return true;
            }
        };
        self.metrics.bus.buffered.inc();
        self.tx
            .send(Outgoing {
                subject,
                msg_id: w.dedupe_key(),
                payload,
            })
            .await
            .is_ok()
    }
}

impl Sink for BusSink {
    async fn push(&mut self, item: Ingested) -> bool {
        if let Event::Ignored(kind) = &item.event {
            self.metrics.ignored(kind);
            return true;
        }
        let Some(w) = WireEvent::from_ingested(item) else {
            return true;
        };
        match w.room() {
            Some(room) => {
                let subject = comment_subject(partition_of(room, self.partitions), Some(room));
                self.send(subject, &w).await
            }
            // A deletion naming no room may concern any partition: every one gets it.
            None => {
                for p in 0..self.partitions {
                    if !self.send(comment_subject(p, None), &w).await {
                        return false;
                    }
                }
                true
            }
        }
    }
}

/// Publishes what arrives on `rx` until every sender is gone, in order, in pipelined batches
/// of `batch`; a failed publication is retried (backing off) until the server takes it, so
/// nothing accepted is lost while the server is away. Duplicates the server drops are counted.
pub async fn publisher(
    js: jetstream::Context,
    mut rx: mpsc::Receiver<Outgoing>,
    batch: usize,
    metrics: Arc<Metrics>,
) {
    let mut buf = Vec::with_capacity(batch);
    while rx.recv_many(&mut buf, batch).await > 0 {
        publish_all(&js, &buf, &metrics).await;
        metrics.bus.buffered.dec_by(buf.len() as i64);
        buf.clear();
    }
}

/// Publishes `items` pipelined and awaits their acks together; what failed (the server went
/// away, an ack was lost) is published again, pipelined, after a back-off, until every item
/// landed. A copy that did land before is dropped by the server (same `Nats-Msg-Id`).
pub async fn publish_all(js: &jetstream::Context, items: &[Outgoing], metrics: &Metrics) {
    let mut todo: Vec<&Outgoing> = items.iter().collect();
    let mut wait = Duration::from_millis(50);
    loop {
        // Sent in order first, then the acks awaited together: a lost ack costs one timeout
        // for the whole batch, not one per message.
        let mut pending = Vec::with_capacity(todo.len());
        for o in &todo {
            pending.push(send(js, o).await);
        }
        let results = futures_util::future::join_all(pending.into_iter().map(|p| async move {
            match p {
                Ok(f) => f.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }))
        .await;
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for (o, r) in todo.into_iter().zip(results) {
            match r {
                Ok(a) => {
                    let c = if a.duplicate {
                        &metrics.bus.duplicates
                    } else {
                        &metrics.bus.published
                    };
                    c.inc();
                }
                Err(e) => {
                    metrics.bus.publish_errors.inc();
                    last_error = e;
                    failed.push(o);
                }
            }
        }
        if failed.is_empty() {
            return;
        }
        tracing::warn!(error = %last_error, failed = failed.len(), retry_in_ms = wait.as_millis() as u64, "publish failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
        todo = failed;
    }
}

async fn send(
    js: &jetstream::Context,
    o: &Outgoing,
) -> Result<PublishAckFuture, jetstream::context::PublishError> {
    js.send_publish(
        o.subject.clone(),
        jetstream::message::PublishMessage::build()
            .payload(o.payload.clone())
            .message_id(&o.msg_id),
    )
    .await
}

/// The bus's entry among the sources in `/healthz` and the ops alerts.
pub const BUS_HEALTH_NAME: &str = "nats";

/// What a bridge needs.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The firehoses.
    pub sources: Vec<SourceConfig>,
    /// The bus.
    pub bus: BusConfig,
    /// Rooms are hashed over this many partitions.
    pub partitions: u32,
    /// A source down this long is reported (ms).
    pub source_down_ms: u64,
    /// Serve `/metrics` and `/healthz` here (no tokens: they tell nothing secret; keep it on
    /// loopback or a private network).
    pub listen: Option<String>,
}

/// A running bridge.
#[derive(Debug)]
pub struct Bridge {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Source health.
    pub health: Arc<Health>,
    /// The NATS client (connection state).
    pub client: async_nats::Client,
    /// Where `/metrics` and `/healthz` are served, when asked.
    pub addr: Option<std::net::SocketAddr>,
    trigger: Trigger,
    sources: Vec<JoinHandle<()>>,
    publisher: JoinHandle<()>,
}

/// Connects, makes sure the streams exist, and starts one client per source.
pub async fn start(cfg: BridgeConfig) -> Result<Bridge, BusError> {
    let metrics = Arc::new(Metrics::new());
    let client = super::connect(&cfg.bus, "liveguard-bridge").await?;
    let js = jetstream::new(client.clone());
    super::streams::ensure(&js, &cfg.bus, Some(cfg.partitions)).await?;
    let (tx, rx) = mpsc::channel(cfg.bus.buffer.max(1));
    let publisher = tokio::spawn(publisher(js, rx, cfg.bus.batch.max(1), metrics.clone()));
    let mut names: Vec<(String, Option<String>)> = cfg
        .sources
        .iter()
        .map(|s| (s.display_name().to_string(), s.room.clone()))
        .collect();
    names.push((BUS_HEALTH_NAME.into(), None));
    let health = Health::new(&names, cfg.source_down_ms, crate::clock::now_ms());
    let (trigger, _shutdown) = shutdown::channel();
    let sources = cfg
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let h = health.source(i)?;
            Some(tokio::spawn(client::run(
                s.clone(),
                BusSink::new(tx.clone(), cfg.partitions, metrics.clone()),
                metrics.clone(),
                h,
                trigger.subscribe(),
            )))
        })
        .collect();
    spawn_connection_gauge(
        &client,
        &metrics,
        health.source(cfg.sources.len()),
        trigger.subscribe(),
    );
    let addr = match &cfg.listen {
        Some(l) => Some(serve_ops(l, &metrics, &health, trigger.subscribe()).await?),
        None => None,
    };
    tracing::info!(
        partitions = cfg.partitions,
        sources = cfg.sources.len(),
        "bridge publishing"
    );
    Ok(Bridge {
        metrics,
        health,
        client,
        addr,
        trigger,
        sources,
        publisher,
    })
}

/// `/metrics` (Prometheus text) and `/healthz` (200, or 503 with the reasons: a source or the
/// bus down) for a bridge, until shutdown.
async fn serve_ops(
    listen: &str,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    shutdown: Shutdown,
) -> Result<std::net::SocketAddr, BusError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BusError::Config(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BusError::Config(format!("cannot listen on {listen}: {e}")))?;
    let (m, h) = (metrics.clone(), health.clone());
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let h = h.clone();
                async move {
                    let reasons = h.check(None, crate::clock::now_ms());
                    let (code, status) = match reasons.is_empty() {
                        true => (axum::http::StatusCode::OK, "ok"),
                        false => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "degraded"),
                    };
                    (
                        code,
                        axum::Json(serde_json::json!({ "status": status, "reasons": reasons })),
                    )
                }
            }),
        );
    let serve = crate::server::listen::Serve {
        max_connections: 64,
        handshake_timeout: Duration::from_secs(5),
        tls: None,
        metrics: metrics.clone(),
    };
    tokio::spawn(crate::server::listen::run(
        listener,
        app,
        serve,
        shutdown,
        Duration::from_secs(2),
    ));
    tracing::info!(%addr, "bridge metrics and health listening");
    Ok(addr)
}

/// Keeps `liveguard_bus_connected` current (checked twice a second), and `health`'s entry for
/// the bus: disconnected longer than `source_down_ms` makes `/healthz` answer 503.
pub fn spawn_connection_gauge(
    client: &async_nats::Client,
    metrics: &Arc<Metrics>,
    health: Option<Arc<SourceHealth>>,
    mut shutdown: Shutdown,
) {
    let (client, metrics) = (client.clone(), metrics.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut was = None;
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {
                    let up = client.connection_state() == async_nats::connection::State::Connected;
                    metrics.bus.connected.set(i64::from(up));
                    if let Some(h) = &health {
                        // On changes only: the health counts from the last change.
                        if was != Some(up) {
                            h.set_connected(up);
                        }
                        // A quiet bus is not a blind one: only the connection counts.
                        if up {
                            h.frame();
                        }
                    }
                    was = Some(up);
                }
            }
        }
    });
}

impl Bridge {
    /// Stops the sources, then publishes what they handed over (waiting at most `grace`).
    pub async fn stop(self, grace: Duration) {
        self.trigger.fire();
        for h in self.sources {
            let _ = tokio::time::timeout(grace, h).await;
        }
        // The sinks are gone with their tasks: the publisher ends once it has sent the rest.
        let _ = tokio::time::timeout(grace, self.publisher).await;
        let _ = tokio::time::timeout(grace, self.client.flush()).await;
    }
}
