//! Committed alerts → the alert stream. One task follows the hub's committed messages and
//! publishes every new alert and update to `liveguard.alerts.<p>.<room>.<id>` with
//! `Nats-Msg-Id` = `<id>:<version>`. A partition's consumer acks its comments only after
//! [`AlertPublisher::barrier`] resolves: the hub's flush put every version its comments made
//! into the fan-out, and the barrier answers once those are on the stream. Commit-then-ack
//! alone is not enough: an owner killed between the two would leave alerts that no takeover
//! can rebuild, for comments that are never delivered again.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::bridge::{publish_all, Outgoing};
use super::{alert_subject, partition_of};
use crate::alerts::Hub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::record::{Alert, HubMsg, MsgKind};

/// Asks the publisher to answer once everything committed so far is on the stream.
#[derive(Debug, Clone)]
pub struct AlertPublisher {
    barriers: mpsc::Sender<oneshot::Sender<()>>,
}

impl AlertPublisher {
    /// Resolves once every alert version committed before the call is on the alert stream;
    /// false when the publisher is gone (shutting down).
    pub async fn barrier(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.barriers.send(tx).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }
}

/// The message for one alert version.
pub fn outgoing(a: &Alert, partitions: u32) -> Option<Outgoing> {
    let payload = serde_json::to_vec(a).ok()?;
    Some(Outgoing {
        subject: alert_subject(partition_of(&a.room, partitions), &a.room, &a.id),
        msg_id: format!("{}:{}", a.id, a.version),
        payload: Bytes::from(payload),
    })
}

/// Starts the publisher on `rx` (subscribed before any comment is consumed). `first` are
/// versions to publish before anything else (local alerts a crash may have kept off the
/// stream). Ends at shutdown, after publishing what was committed by then.
pub fn spawn(
    js: jetstream::Context,
    hub: Arc<Hub>,
    mut rx: broadcast::Receiver<Arc<HubMsg>>,
    partitions: u32,
    first: Vec<Alert>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) -> (AlertPublisher, JoinHandle<()>) {
    // A few waiting partitions at a time: each waits for its own barrier before asking again.
    let (btx, mut brx) = mpsc::channel::<oneshot::Sender<()>>(64);
    let task = tokio::spawn(async move {
        let mut queue: Vec<Outgoing> = first.iter().filter_map(|a| outgoing(a, partitions)).collect();
        if !queue.is_empty() {
            tracing::info!(
                alerts = queue.len(),
                "publishing local alerts the stream may lack"
            );
        }
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            if !queue.is_empty() || !waiting.is_empty() {
                // Everything the fan-out holds now goes in this round.
                loop {
                    match rx.try_recv() {
                        Ok(m) => take(&m, partitions, &mut queue),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            recover(&hub, n, partitions, &mut queue).await;
                        }
                        Err(_) => break,
                    }
                }
                metrics.bus.buffered.set(queue.len() as i64);
                publish_all(&js, &queue, &metrics).await;
                metrics.bus.alerts_published.inc_by(queue.len() as u64);
                metrics.bus.buffered.set(0);
                queue.clear();
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
            }
            tokio::select! {
                m = rx.recv() => match m {
                    Ok(m) => take(&m, partitions, &mut queue),
                    Err(broadcast::error::RecvError::Lagged(n)) => recover(&hub, n, partitions, &mut queue).await,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                b = brx.recv() => match b {
                    Some(b) => waiting.push(b),
                    None => break,
                },
                _ = shutdown.wait() => {
                    // The consumers stop first; what they committed is flushed by now.
                    while let Ok(m) = rx.try_recv() {
                        take(&m, partitions, &mut queue);
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(5), publish_all(&js, &queue, &metrics)).await;
                    break;
                }
            }
        }
    });
    (AlertPublisher { barriers: btx }, task)
}

fn take(m: &HubMsg, partitions: u32, queue: &mut Vec<Outgoing>) {
    if matches!(m.kind, MsgKind::Alert | MsgKind::Update) && !m.alert.id.is_empty() {
        queue.extend(outgoing(&m.alert, partitions));
    }
}

/// The fan-out dropped `missed` messages before this task read them: publish the newest
/// alerts again from the store (versions already on the stream are dropped as duplicates).
async fn recover(hub: &Arc<Hub>, missed: u64, partitions: u32, queue: &mut Vec<Outgoing>) {
    tracing::warn!(
        missed,
        "the alert publisher lagged; publishing recent alerts again"
    );
    let n = (missed as usize).saturating_mul(4).clamp(1_024, 65_536);
    let hub = hub.clone();
    let rows = tokio::task::spawn_blocking(move || hub.recent(n, None))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    for (_, body) in rows.iter().rev() {
        if let Ok(a) = serde_json::from_str::<Alert>(body) {
            if !a.id.is_empty() {
                queue.extend(outgoing(&a, partitions));
            }
        }
    }
}
