//! A classifier instance's side of the bus (`liveguard run --nats URL --partitions LIST`).
//! [`prepare`], before the store opens: connect, find the partition count, rebuild the owned
//! partitions from the alert stream into the local database. [`spawn`], once the hub runs:
//! the alert publisher, then one task per owned partition reading its durable pull consumer
//! in order: route each comment ([`worker::handle`]), flush the hub (committed), wait for the
//! publisher's barrier (on the alert stream), then ack each comment of the batch.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::publish::{self, AlertPublisher};
use super::wire::WireEvent;
use super::{partition_of, rebuild, streams, BusConfig, BusError};
use crate::alerts::hub::KnownIds;
use crate::alerts::route::Router;
use crate::alerts::route::{self as worker, WorkerState};
use crate::clock::Clock;
use crate::ingest::Event;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::record::Alert;
use crate::store::StoreConfig;

/// What [`prepare`] found.
#[derive(Debug)]
pub struct Prepared {
    /// The connection.
    pub client: async_nats::Client,
    /// JetStream on it.
    pub js: jetstream::Context,
    /// Rooms are hashed over this many partitions.
    pub count: u32,
    /// The partitions this instance consumes.
    pub owned: Vec<u32>,
    /// Alert ids in the local database (after the rebuild).
    pub ids: Vec<(String, u64)>,
    /// Room and message ids of the alerts rebuilt: a redelivered comment among them was
    /// handled by the previous owner.
    pub handled: HashSet<u64>,
    /// Local versions the stream may lack (published first).
    pub ahead: Vec<Alert>,
}

fn msg_key(room: &str, msg_id: &str) -> u64 {
    crate::fnv::fnv1a(format!("{room}\u{1f}{msg_id}").as_bytes())
}

/// Connects, makes sure the streams exist, and rebuilds the owned partitions' alerts into
/// the database of `store` (newer versions win; local ones the stream lacks come back in
/// [`Prepared::ahead`]). Runs before the store is opened by the daemon.
pub async fn prepare(cfg: &BusConfig, store: &StoreConfig) -> Result<Prepared, BusError> {
    let owned = cfg.owned().map_err(BusError::Config)?;
    if owned.is_empty() {
        return Err(BusError::Config(
            "an instance needs --partitions (e.g. 0-3) to consume".into(),
        ));
    }
    let client = super::connect(cfg, "liveguard-run").await?;
    let js = jetstream::new(client.clone());
    let count = streams::ensure(&js, cfg, cfg.partition_count).await?;
    if let Some(bad) = owned.iter().find(|&&p| p >= count) {
        return Err(BusError::Config(format!(
            "partition {bad} does not exist: the streams have {count} (0-{})",
            count - 1
        )));
    }
    let alerts = tokio::time::timeout(
        Duration::from_millis(cfg.connect_timeout_ms.max(1_000) * 3),
        rebuild::partitions(&js, &owned),
    )
    .await
    .map_err(|_| BusError::js("rebuilding from the alert stream", "timed out"))??;
    let mut handled = HashSet::new();
    for a in &alerts {
        for m in &a.msg_ids {
            handled.insert(msg_key(&a.room, m));
        }
    }
    // Partitions were read one after another: merge them back into the order alerts were raised.
    let mut alerts = alerts;
    alerts.sort_by_key(|a| (a.classified_ms, a.seq));
    let n = alerts.len();
    let (store, own) = (store.clone(), owned.clone());
    let since = crate::clock::now_ms().saturating_sub(cfg.alerts_max_age_ms);
    let imported = tokio::task::spawn_blocking(move || {
        crate::store::import::import(
            &store,
            alerts,
            |room| own.contains(&partition_of(room, count)),
            since,
            crate::alerts::hub::KNOWN_IDS_CAP,
        )
    })
    .await
    .map_err(|e| BusError::js("importing alerts", e))?
    .map_err(|e| BusError::js("importing alerts", e))?;
    tracing::info!(partitions = ?owned, count, alerts = n, written = imported.written, ahead = imported.ahead.len(), "takeover rebuilt");
    Ok(Prepared {
        client,
        js,
        count,
        owned,
        ids: imported.ids.into_iter().collect(),
        handled,
        ahead: imported.ahead,
    })
}

/// Settings the partition tasks share.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Comments per batch.
    pub batch: usize,
    /// Worker de-duplication window and size (as the daemon's workers).
    pub dedupe_window_ms: u64,
    /// At most this many ids per partition.
    pub dedupe_max_ids: usize,
    /// The bus's entry in the daemon's health (`/healthz`).
    pub health: Option<Arc<crate::health::SourceHealth>>,
}

/// Starts the alert publisher and one consumer task per owned partition.
pub fn spawn(
    prepared: Prepared,
    cfg: &BusConfig,
    settings: &Settings,
    router: &Arc<Router>,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
    shutdown: &crate::shutdown::Trigger,
) -> Vec<JoinHandle<()>> {
    let hub = router.hub.clone();
    hub.dedupe_ids(KnownIds::new(prepared.ids));
    // Subscribed before the first comment: no committed version can slip past.
    let rx = hub.subscribe();
    let (publisher, ptask) = publish::spawn(
        prepared.js.clone(),
        hub,
        rx,
        prepared.count,
        prepared.ahead,
        metrics.clone(),
        shutdown.subscribe(),
    );
    super::bridge::spawn_connection_gauge(
        &prepared.client,
        metrics,
        settings.health.clone(),
        shutdown.subscribe(),
    );
    let handled = Arc::new(prepared.handled);
    let actions = super::actions::serve(
        prepared.client.clone(),
        router.hub.clone(),
        prepared.owned.clone(),
        shutdown.subscribe(),
    );
    let mut tasks = vec![ptask, actions];
    for p in prepared.owned {
        let task = Partition {
            partition: p,
            js: prepared.js.clone(),
            cfg: cfg.clone(),
            settings: settings.clone(),
            router: router.clone(),
            clock: clock.clone(),
            publisher: publisher.clone(),
            metrics: metrics.clone(),
            handled: handled.clone(),
        };
        let span = tracing::info_span!("partition", partition = p);
        tasks.push(tokio::spawn(task.run(shutdown.subscribe()).instrument(span)));
    }
    tasks
}

struct Partition {
    partition: u32,
    js: jetstream::Context,
    cfg: BusConfig,
    settings: Settings,
    router: Arc<Router>,
    clock: Arc<dyn Clock>,
    publisher: AlertPublisher,
    metrics: Arc<Metrics>,
    handled: Arc<HashSet<u64>>,
}

impl Partition {
    async fn run(self, mut shutdown: Shutdown) {
        let mut state = WorkerState::new(self.settings.dedupe_window_ms, self.settings.dedupe_max_ids);
        let mut backoff = Duration::from_millis(100);
        'connect: loop {
            let messages = async {
                let mut consumer = streams::partition_consumer(&self.js, &self.cfg, self.partition).await?;
                // Comments delivered before (to a dead owner, or to us before an outage) and not
                // acked come back once their ack wait passes, and the server hands redeliveries
                // out before new comments: waiting for them keeps each room in order.
                let held = consumer.info().await.map_or(0, |i| i.num_ack_pending);
                if held > 0 {
                    let wait = Duration::from_millis(self.cfg.ack_wait_ms.saturating_add(500));
                    tracing::info!(
                        held,
                        wait_ms = wait.as_millis() as u64,
                        "waiting for unacked comments to come back first"
                    );
                    tokio::time::sleep(wait).await;
                }
                consumer
                    .stream()
                    .max_messages_per_batch(self.settings.batch)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                    .map_err(|e| BusError::js("pulling comments", e))
            };
            let messages = tokio::select! {
                _ = shutdown.wait() => return,
                m = messages => m,
            };
            let mut messages = match messages {
                Ok(m) => m.ready_chunks(self.settings.batch.max(1)),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot consume; retrying");
                    if !super::back_off(&mut backoff, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            tracing::info!("consuming");
            let mut failed_pulls = 0u32;
            loop {
                let chunk = tokio::select! {
                    _ = shutdown.wait() => return,
                    c = messages.next() => c,
                };
                let Some(chunk) = chunk else { continue 'connect };
                let mut done = Vec::with_capacity(chunk.len());
                for m in chunk {
                    match m {
                        Ok(m) => {
                            self.handle(&mut state, &m).await;
                            done.push(m);
                        }
                        // Missed heartbeats while the server is away: the stream goes on
                        // pulling once it is back.
                        Err(e) => tracing::debug!(error = %e, "pull interrupted"),
                    }
                }
                let Some(last) = done.last() else {
                    // Missed heartbeats while the server is away are expected; a consumer that
                    // keeps failing (deleted, say) is looked up again.
                    failed_pulls += 1;
                    if failed_pulls >= 3 {
                        tokio::select! {
                            _ = shutdown.wait() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue 'connect;
                    }
                    continue;
                };
                failed_pulls = 0;
                if let Ok(info) = last.info() {
                    self.metrics.bus.set_lag(self.partition, info.pending);
                }
                // Committed, then on the alert stream, then acked: a crash anywhere before
                // the ack gets these comments delivered again to whoever owns the partition.
                self.router.hub.flush().await;
                if !self.publisher.barrier().await {
                    return;
                }
                for m in done {
                    if let Err(e) = m.ack().await {
                        tracing::warn!(error = %e, "ack failed; the comment will be delivered again");
                    }
                }
            }
        }
    }

    async fn handle(&self, state: &mut WorkerState, m: &jetstream::Message) {
        let redelivered = m.info().is_ok_and(|i| i.delivered > 1);
        if redelivered {
            self.metrics.bus.redeliveries.inc();
        }
        self.metrics.bus.consumed.inc();
        let w: WireEvent = match serde_json::from_slice(&m.payload) {
            Ok(w) => w,
            Err(e) => {
                self.metrics.parse_error("bus", "bad_event");
                tracing::warn!(error = %e, subject = %m.subject, "not a liveguard event; skipped");
                return;
            }
        };
        let item = w.into_ingested();
        if redelivered {
            if let Event::Comment(c) = &item.event {
                // The previous owner handled it and its alert is rebuilt: not again.
                if self.handled.contains(&msg_key(&c.room, &c.msg_id)) {
                    self.metrics.duplicates.inc();
                    return;
                }
            }
        }
        let now = self.clock.now_ms();
        let router = &self.router;
        worker::supervised(&self.metrics, self.partition as usize, || {
            worker::handle(router, state, item, now)
        });
        router.hub.drain().await;
    }
}
