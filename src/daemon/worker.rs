//! The workers: each takes its share of rooms' events off the intake, drops a message id it
//! has already seen, routes a comment into the alerts ([`Router::comment`]) or a deletion
//! into a retraction, and then awaits the hub's queue before taking more, so a slow or full
//! disk slows the workers (and the intake sheds neutrals) without holding a thread. A panic
//! while handling one comment is caught and counted; the worker goes on.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::alerts::route::Router;
use crate::classify::Scratch;
use crate::clock::Clock;
use crate::ingest::{Event, Ingested};
use crate::metrics::Metrics;

/// Recently seen message ids, per worker (rooms are sharded to workers, so a room's ids always
/// meet the same one): two generations of a plain set, the older dropped when the newer is
/// `window/2` old or full. Memory stays bounded and nothing sweeps a shared map while the
/// workers wait (a shared map with a periodic sweep stalled them at 100k comments/s).
#[derive(Debug)]
pub struct Dedupe {
    current: std::collections::HashSet<u64>,
    previous: std::collections::HashSet<u64>,
    started_ms: u64,
    half_window_ms: u64,
    per_generation: usize,
}

impl Dedupe {
    /// Remembers ids for about `window_ms` (at least half of it), at most `max_ids` in all; at
    /// very high rates the cap shortens the window.
    pub fn new(window_ms: u64, max_ids: usize) -> Self {
        Self {
            current: std::collections::HashSet::new(),
            previous: std::collections::HashSet::new(),
            started_ms: 0,
            half_window_ms: (window_ms / 2).max(1),
            per_generation: (max_ids / 2).max(1),
        }
    }

    /// Whether `key` was seen recently; records it either way.
    pub fn seen(&mut self, key: u64, now_ms: u64) -> bool {
        if now_ms.saturating_sub(self.started_ms) >= self.half_window_ms
            || self.current.len() >= self.per_generation
        {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.started_ms = now_ms;
        }
        self.previous.contains(&key) || !self.current.insert(key)
    }
}

/// What each worker owns: its classifier buffers and its share of the dedupe memory.
#[derive(Debug)]
pub struct WorkerState {
    /// Classifier buffers.
    pub scratch: Scratch,
    /// Message ids this worker saw.
    pub dedupe: Dedupe,
}

impl WorkerState {
    /// Fresh state remembering ids for `window_ms`, at most `max_ids`.
    pub fn new(window_ms: u64, max_ids: usize) -> Self {
        Self {
            scratch: Scratch::new(),
            dedupe: Dedupe::new(window_ms, max_ids),
        }
    }
}

/// Handles one ingested event with the calling worker's state.
pub fn handle(router: &Router, worker: &mut WorkerState, item: Ingested, now_ms: u64) {
    match item.event {
        Event::Comment(c) => {
            let mut h = DefaultHasher::new();
            (&c.platform, &c.room, &c.msg_id).hash(&mut h);
            if !c.msg_id.is_empty() && worker.dedupe.seen(h.finish(), now_ms) {
                router.metrics.duplicates.inc();
                return;
            }
            router.comment(
                &mut worker.scratch,
                &item.source,
                &c,
                &item.received_at,
                item.received_ms,
                item.connected_ms,
                item.format,
                now_ms,
            );
        }
        Event::Delete {
            room,
            msg_ids,
            user_ids,
        } => router.hub.retract(room, msg_ids, user_ids, now_ms),
        Event::Ignored(kind) => router.metrics.ignored(&kind),
    }
}

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
                supervised(&router.metrics, index, || handle(&router, &mut state, item, now));
                // Usually ready at once; waits only while the store's queue is full.
                router.hub.drain().await;
            }
        }
        tracing::debug!(worker = index, "worker drained");
    })
}

/// Runs `f`, catching a panic: counted and logged, and the caller goes on.
pub fn supervised(metrics: &Metrics, worker: usize, f: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            metrics.worker_panics.inc();
            tracing::error!(worker, panic = %crate::logsafe::Esc(&what), "handling a comment panicked; the worker goes on");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_remembers_a_window_and_stays_bounded() {
        let mut d = Dedupe::new(10_000, 4);
        assert!(!d.seen(1, 0));
        assert!(d.seen(1, 100), "a resend within the window is a duplicate");
        assert!(!d.seen(2, 6_000));
        assert!(d.seen(1, 6_001), "still remembered one generation later");
        assert!(!d.seen(3, 12_000));
        assert!(!d.seen(1, 12_001), "forgotten after two half-windows");
        // Full generations rotate early: never more than max_ids remembered.
        for k in 100..200 {
            d.seen(k, 13_000);
        }
        assert!(d.current.len() + d.previous.len() <= 4);
    }
}
