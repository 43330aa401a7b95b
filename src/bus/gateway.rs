//! The console gateway (`liveguard console --nats URL`): a daemon with no comments of its own
//! whose store mirrors every partition's alerts from the alert stream, so `/ws/alerts`,
//! `/api/alerts` and the console page show every room. Each version is applied through the
//! hub ([`Hub::mirror`]): the newest wins, committed before it is announced, as for local
//! alerts. The gateway never ticks tickets (the owners remind; their reminders arrive as new
//! versions) and forwards console actions to the owners ([`super::actions`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::streams::ALERT_STREAM;
use super::{streams, BusConfig, BusError, ALERTS};
use crate::alerts::hub::KnownIds;
use crate::alerts::Hub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::record::Alert;
use crate::store::StoreConfig;

/// What a gateway found at start.
#[derive(Debug)]
pub struct Prepared {
    /// The connection.
    pub client: async_nats::Client,
    /// JetStream on it.
    pub js: jetstream::Context,
    /// Rooms are hashed over this many partitions.
    pub count: u32,
    /// Alert ids already mirrored in the local database.
    pub ids: Vec<(String, u64)>,
}

/// Connects, reads the partition count, and indexes what the local database already mirrors.
pub async fn prepare(cfg: &BusConfig, store: &StoreConfig) -> Result<Prepared, BusError> {
    let client = super::connect(cfg, "liveguard-console").await?;
    let js = jetstream::new(client.clone());
    let count = streams::ensure(&js, cfg, cfg.partition_count).await?;
    let store = store.clone();
    let imported = tokio::task::spawn_blocking(move || {
        crate::store::import::import(
            &store,
            Vec::new(),
            |_| false,
            0,
            crate::alerts::hub::KNOWN_IDS_CAP,
        )
    })
    .await
    .map_err(|e| BusError::js("indexing the mirror", e))?
    .map_err(|e| BusError::js("indexing the mirror", e))?;
    Ok(Prepared {
        client,
        js,
        count,
        ids: imported.ids.into_iter().collect(),
    })
}

/// Starts mirroring every alert version from the beginning of the alert stream (versions the
/// store already has are skipped) and on, until shutdown.
pub fn spawn(
    prepared: &Prepared,
    hub: &Arc<Hub>,
    metrics: &Arc<Metrics>,
    health: Option<Arc<crate::health::SourceHealth>>,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    hub.dedupe_ids(KnownIds::new(prepared.ids.clone()));
    let (js, hub, metrics) = (prepared.js.clone(), hub.clone(), metrics.clone());
    super::bridge::spawn_connection_gauge(&prepared.client, &metrics, health, shutdown.clone());
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut next_seq: u64 = 0;
        loop {
            let messages = async {
                let stream = js
                    .get_stream(ALERT_STREAM)
                    .await
                    .map_err(|e| BusError::js("opening the alert stream", e))?;
                let deliver_policy = match next_seq {
                    0 => consumer::DeliverPolicy::All,
                    s => consumer::DeliverPolicy::ByStartSequence { start_sequence: s },
                };
                stream
                    .create_consumer(consumer::pull::OrderedConfig {
                        filter_subject: format!("{ALERTS}.>"),
                        deliver_policy,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| BusError::js("mirroring the alert stream", e))?
                    .messages()
                    .await
                    .map_err(|e| BusError::js("mirroring the alert stream", e))
            };
            let messages = tokio::select! {
                _ = shutdown.wait() => return,
                m = messages => m,
            };
            let mut messages = match messages {
                Ok(m) => m.ready_chunks(256),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot mirror; retrying");
                    if !super::back_off(&mut backoff, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            loop {
                let chunk = tokio::select! {
                    _ = shutdown.wait() => return,
                    c = messages.next() => c,
                };
                let Some(chunk) = chunk else { break };
                for m in chunk {
                    let Ok(m) = m else { continue };
                    if let Ok(info) = m.info() {
                        next_seq = info.stream_sequence + 1;
                    }
                    match serde_json::from_slice::<Alert>(&m.payload) {
                        Ok(a) if !a.id.is_empty() => {
                            metrics.bus.imported.inc();
                            hub.mirror(a);
                        }
                        _ => {
                            tracing::warn!(subject = %m.subject, "not an alert on the alert stream; skipped")
                        }
                    }
                }
                hub.drain().await;
            }
        }
    })
}
