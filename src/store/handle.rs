//! The store as one handle: [`Store::open`] opens the database, starts the writer and the
//! checkpointer threads and keeps a read connection; dropping it stops them. The way in is a
//! bounded queue that never blocks a thread: a change that finds it full waits, in order, in
//! a small overflow that [`Store::drain`] moves on as the writer makes room (callers await
//! it before taking more work, which is the back-pressure), and a handler that must not wait
//! gets [`Busy`] instead. Sequence numbers are given under the same short lock, so the
//! writer sees changes in sequence order.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};

use super::record::HubMsg;
use super::writer::{Cmd, Writer};
use super::{StoreConfig, StoreError};
use crate::health::StoreFailure;
use crate::metrics::Metrics;
use crate::tickets::TicketConfig;

/// State the writer thread shares with the handle.
#[derive(Debug)]
pub struct Shared {
    /// The last committed (announced) sequence number.
    pub committed: AtomicU64,
    /// Active tickets by (room, user): where the buyer's later comments go.
    pub open_tickets: crate::fasthash::DashMap<u64, u64>,
    /// The fan-out.
    pub tx: broadcast::Sender<Arc<HubMsg>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Set while commits fail (the writer retries), cleared by the next commit.
    pub store_failure: Mutex<Option<StoreFailure>>,
    /// Woken whenever the writer takes changes off its queue.
    pub space: Notify,
    /// Set by the checkpointer when the WAL should start over; the writer does it between
    /// two commits ([`super::restart_wal`]).
    pub restart_wal: Arc<AtomicBool>,
}

/// Why a change was not queued for a caller that must not wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// The writer's queue is full (the disk is slow or failing).
    #[error("the alert store is behind ({0}); try again")]
    Full(String),
    /// The store is closed (shutting down).
    #[error("the alert store is closed")]
    Closed,
}

struct Queue {
    next_seq: u64,
    tx: Option<mpsc::SyncSender<Cmd>>,
    /// Changes that found the queue full, oldest first; never longer than the callers that
    /// await [`Store::drain`] between changes can make it (a few per worker).
    overflow: VecDeque<Cmd>,
}

#[derive(Default)]
struct Threads {
    writer: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

/// The open store: its writer, checkpointer and reader.
pub struct Store {
    path: PathBuf,
    shared: Arc<Shared>,
    queue: Mutex<Queue>,
    reader: Mutex<Option<rusqlite::Connection>>,
    threads: Mutex<Threads>,
    stop_checkpoints: Arc<AtomicBool>,
    /// The overflow's length, readable without the lock: `drain` is called after every
    /// comment and must cost nothing while nothing waits.
    waiting: AtomicUsize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How long [`Store::drain`] sleeps between looks when no wake-up comes (a safety net).
const DRAIN_POLL: Duration = Duration::from_millis(50);

impl Store {
    /// Opens (or creates) the database, loads what is still live (recent alerts, active
    /// tickets) and starts the writer and checkpointer. `fanout_cap` messages are buffered per
    /// subscriber before a slow one is told it lagged. Blocking (it reads the database).
    pub fn open(
        cfg: &StoreConfig,
        tickets: TicketConfig,
        fanout_cap: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let path = cfg.db_path();
        let conn = super::open_writer(&path, cfg.durability)?;
        let last = super::max_seq(&conn)?;
        let (tx, _) = broadcast::channel(fanout_cap.max(1));
        let shared = Arc::new(Shared {
            committed: AtomicU64::new(last),
            open_tickets: Default::default(),
            tx,
            metrics,
            store_failure: Mutex::new(None),
            space: Notify::new(),
            restart_wal: Arc::new(AtomicBool::new(false)),
        });
        let (cmd_tx, cmd_rx) = mpsc::sync_channel(cfg.queue.max(1));
        let writer = Writer::new(conn, shared.clone(), tickets, cfg)?;
        let handle = std::thread::Builder::new()
            .name("liveguard-store".into())
            .spawn(move || writer.run(&cmd_rx))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        let stop_checkpoints = Arc::new(AtomicBool::new(false));
        let commits = shared.metrics.store_commits.clone();
        let checkpointer = super::spawn_checkpointer(
            &path,
            super::WAL_RESTART_BYTES,
            stop_checkpoints.clone(),
            shared.restart_wal.clone(),
            move || commits.get(),
        )?;
        tracing::info!(path = %path.display(), last_seq = last, "state database open");
        Ok(Self {
            path,
            shared,
            queue: Mutex::new(Queue {
                next_seq: last + 1,
                tx: Some(cmd_tx),
                overflow: VecDeque::new(),
            }),
            reader: Mutex::new(None),
            threads: Mutex::new(Threads {
                writer: Some(handle),
                checkpointer: Some(checkpointer),
            }),
            stop_checkpoints,
            waiting: AtomicUsize::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the writer shares (fan-out, open tickets, the committed mark).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Only non-blocking work happens under this lock, and a panic under it leaves a
        // consistent queue, so a poisoned lock is usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the change `make` builds (given the next sequence number to take or leave).
    /// Never waits: when the queue is full the change waits in the overflow, in order, and
    /// the caller should await [`Store::drain`] before its next one. False when closed.
    pub fn submit(&self, make: impl FnOnce(&mut u64) -> Cmd) -> bool {
        let mut q = self.lock();
        let cmd = make(&mut q.next_seq);
        let Some(tx) = q.tx.clone() else {
            drop(q);
            self.closed();
            return false;
        };
        if !q.overflow.is_empty() {
            q.overflow.push_back(cmd);
            self.overflowed(q.overflow.len());
            return true;
        }
        match tx.try_send(cmd) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(cmd)) => {
                q.overflow.push_back(cmd);
                self.shared.metrics.store_waits.inc();
                self.overflowed(q.overflow.len());
                true
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                drop(q);
                self.closed();
                false
            }
        }
    }

    /// Queues the change only if it can go straight in: for callers that must answer now
    /// (HTTP handlers). The sequence number is given back when refused.
    pub fn try_submit(&self, make: impl FnOnce(&mut u64) -> Cmd) -> Result<(), Busy> {
        let mut q = self.lock();
        let Some(tx) = q.tx.clone() else {
            return Err(Busy::Closed);
        };
        if !q.overflow.is_empty() {
            return Err(Busy::Full(self.why_busy()));
        }
        let before = q.next_seq;
        let cmd = make(&mut q.next_seq);
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(_)) => {
                q.next_seq = before;
                self.shared.metrics.store_rejected.inc();
                Err(Busy::Full(self.why_busy()))
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                q.next_seq = before;
                Err(Busy::Closed)
            }
        }
    }

    fn overflowed(&self, len: usize) {
        self.waiting.store(len, Ordering::Release);
        self.shared.metrics.store_overflow.set(len as i64);
    }

    fn why_busy(&self) -> String {
        self.failure()
            .map_or_else(|| "its queue is full".to_string(), |f| f.to_string())
    }

    fn closed(&self) {
        self.shared.metrics.store_rejected.inc();
        tracing::error!("alert store closed: change dropped");
    }

    /// Resolves once nothing waits in the overflow: everything submitted so far is in the
    /// writer's queue. Awaiting it between changes is how a worker slows down while the
    /// writer is behind (the intake then sheds neutral comments), without holding a thread.
    pub async fn drain(&self) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake-up between the look and the wait is kept.
            notified.as_mut().enable();
            {
                let mut q = self.lock();
                let Some(tx) = q.tx.clone() else { return };
                while let Some(cmd) = q.overflow.pop_front() {
                    match tx.try_send(cmd) {
                        Ok(()) => {}
                        Err(mpsc::TrySendError::Full(cmd)) => {
                            q.overflow.push_front(cmd);
                            break;
                        }
                        Err(mpsc::TrySendError::Disconnected(_)) => {
                            q.overflow.clear();
                            break;
                        }
                    }
                }
                self.overflowed(q.overflow.len());
                if q.overflow.is_empty() {
                    return;
                }
            }
            let _ = tokio::time::timeout(DRAIN_POLL, notified).await;
        }
    }

    /// Changes waiting in the overflow (not yet in the writer's queue).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Stops the writer after it has committed everything queued (the overflow included),
    /// and the checkpointer; waits for both. Blocking: call it from a blocking context.
    pub fn close(&self) {
        let tx = {
            let mut q = self.lock();
            let tx = q.tx.take();
            if let Some(tx) = &tx {
                // Blocking sends are fine here: this runs off the async threads.
                for cmd in q.overflow.drain(..) {
                    let _ = tx.send(cmd);
                }
            }
            tx
        };
        drop(tx);
        let mut t = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = t.writer.take() {
            if h.join().is_err() {
                tracing::error!("alert store writer panicked");
            }
        }
        self.stop_checkpoints.store(true, Ordering::SeqCst);
        if let Some(h) = t.checkpointer.take() {
            if h.join().is_err() {
                tracing::error!("WAL checkpointer panicked");
            }
        }
    }

    /// Runs `f` on the store's read connection (opened on first use). Blocking.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(super::open_reader(&self.path)?);
        }
        match guard.as_ref() {
            Some(conn) => f(conn),
            None => Err(StoreError::Open {
                path: self.path.display().to_string(),
                detail: "no read connection".into(),
            }),
        }
    }

    /// Why commits fail, while they do (the writer keeps retrying).
    pub fn failure(&self) -> Option<StoreFailure> {
        self.shared
            .store_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Store {
    /// Stops the threads: the writer ends once its queue is empty, the checkpointer at its
    /// next tick. Joined only off the async threads (`close` is the orderly way).
    fn drop(&mut self) {
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        if in_runtime {
            self.lock().tx = None;
            self.stop_checkpoints.store(true, Ordering::SeqCst);
        } else {
            self.close();
        }
    }
}
