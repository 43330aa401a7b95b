//! The workers: each takes its share of rooms' events off the intake, hands each to
//! [`route::handle`] (dedupe, then one routing call per comment, or a retraction), and then
//! awaits the hub's queue before taking more, so a slow or full disk slows the workers (and
//! the intake sheds neutrals) without holding a thread. A panic while handling one comment is
//! caught and counted; the worker goes on.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::alerts::route::{self, supervised, Router, WorkerState};
use crate::clock::Clock;
use crate::ingest::Ingested;

/// Starts worker `index` on its queue; it ends when every sender is gone (after shutdown,
/// once the queue is drained).
pub fn spawn(
    index: usize,
    mut rx: mpsc::Receiver<Ingested>,
    router: Arc<Router>,
    clock: Arc<dyn Clock>,
    dedupe_window_ms: u64,
    dedupe_max_ids: usize,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut state = WorkerState::new(dedupe_window_ms, dedupe_max_ids);
        // Small batches: the workers share two threads with the sockets, so yield often.
        let mut batch = Vec::with_capacity(64);
        while rx.recv_many(&mut batch, 64).await > 0 {
            let now = clock.now_ms();
            for item in batch.drain(..) {
                supervised(&router.metrics, index, || {
                    route::handle(&router, &mut state, item, now)
                });
                // Usually ready at once; waits only while the store's queue is full.
                router.hub.drain().await;
            }
        }
        tracing::debug!(worker = index, "worker drained");
    })
}
