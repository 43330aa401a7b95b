//! The bounded door into the workers: one queue per worker, a room always to the same worker
//! (so a room's comments keep their order). Each source task holds an [`IntakeSink`], the
//! [`Sink`] its client hands events to.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::classify::{classify, Input, Scratch};
use crate::ingest::{Event, Ingested, Sink};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::taxonomy::Class;

/// The bounded door into the workers: one queue per worker, a room always to the same worker
/// (so a room's comments keep their order). When a queue is full, a comment is classified on
/// the spot: a neutral one is shed (counted), a complaint or attack waits for room.
#[derive(Debug)]
pub struct Intake {
    shards: Vec<mpsc::Sender<Ingested>>,
    capacity: usize,
    rules: Arc<ArcSwap<RuleSet>>,
    metrics: Arc<Metrics>,
}

impl Intake {
    /// `workers` queues of `capacity` each; returns the intake and the receivers.
    pub fn new(
        workers: usize,
        capacity: usize,
        rules: Arc<ArcSwap<RuleSet>>,
        metrics: Arc<Metrics>,
    ) -> (Self, Vec<mpsc::Receiver<Ingested>>) {
        let (shards, receivers): (Vec<_>, Vec<_>) = (0..workers.max(1))
            .map(|_| mpsc::channel(capacity.max(1)))
            .unzip();
        (
            Self {
                shards,
                capacity: capacity.max(1),
                rules,
                metrics,
            },
            receivers,
        )
    }

    fn shard(&self, room: &str) -> usize {
        (crate::fasthash::key(room) % self.shards.len() as u64) as usize
    }

    /// Room for this many comments in all queues together.
    pub fn capacity(&self) -> usize {
        self.capacity * self.shards.len()
    }

    /// Comments waiting in all queues.
    pub fn depth(&self) -> usize {
        self.shards.iter().map(|s| self.capacity - s.capacity()).sum()
    }

    /// Queues an event; sheds a neutral comment when its queue is full. A deletion with no
    /// room goes to every worker. Returns false when the workers are gone (shutting down).
    pub async fn push(&self, item: Ingested, scratch: &mut Scratch) -> bool {
        // The shard, from the room as borrowed (no copy of it per comment).
        let shard = match &item.event {
            Event::Comment(c) => Some(self.shard(&c.room)),
            Event::Delete { room, .. } => room.as_deref().map(|r| self.shard(r)),
            Event::Ignored(_) => None,
        };
        let Some(shard) = shard else {
            if let Event::Delete {
                room,
                msg_ids,
                user_ids,
            } = &item.event
            {
                for tx in &self.shards {
                    let copy = Ingested {
                        event: Event::Delete {
                            room: room.clone(),
                            msg_ids: msg_ids.clone(),
                            user_ids: user_ids.clone(),
                        },
                        source: item.source.clone(),
                        format: item.format,
                        received_at: item.received_at,
                        received_ms: item.received_ms,
                        connected_ms: item.connected_ms,
                    };
                    if tx.send(copy).await.is_err() {
                        return false;
                    }
                }
            } else if let Event::Ignored(kind) = &item.event {
                self.metrics.ignored(kind);
            }
            return true;
        };
        let tx = &self.shards[shard];
        match tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(item)) => {
                if let Event::Comment(c) = &item.event {
                    let rules = self.rules.load();
                    let v = classify(
                        &rules,
                        scratch,
                        Input {
                            text: &c.text,
                            ..Input::default()
                        },
                    );
                    if v.class == Class::Neutral {
                        self.metrics.shed_neutral.inc();
                        return true;
                    }
                }
                tx.send(item).await.is_ok()
            }
        }
    }
}

/// One source's way into the [`Intake`], with its own classifier buffers (for shedding).
#[derive(Debug)]
pub struct IntakeSink {
    intake: Arc<Intake>,
    scratch: Scratch,
}

impl IntakeSink {
    /// A sink into `intake`.
    pub fn new(intake: Arc<Intake>) -> Self {
        Self {
            intake,
            scratch: Scratch::new(),
        }
    }
}

impl Sink for IntakeSink {
    async fn push(&mut self, item: Ingested) -> bool {
        self.intake.push(item, &mut self.scratch).await
    }
}
