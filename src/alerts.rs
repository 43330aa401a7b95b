//! Stage 6, alerts: a classified comment worth attention becomes an [`Alert`]; the [`Hub`]
//! gives it a monotonic sequence number and hands it to the store's writer, which commits it
//! to SQLite and only then fans it out to subscribers over a bounded broadcast (each message
//! serialized once, whatever the number of subscribers). Updates (a repeat counted, a brigade
//! grown, a deletion, a console action, a reminder) take the same path, in order, as `update`
//! messages with the same sequence number. Complaints open a [`Ticket`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::classify::Verdict;
use crate::ingest::User;
use crate::metrics::Metrics;
use crate::store::writer::{Cmd, Failed};
use crate::store::{StoreConfig, StoreError};
use crate::taxonomy::Class;
use crate::tickets::{Ticket, TicketConfig};

/// A brigade or repeat alert lists at most this many users and message ids (the first ones);
/// `users_total` and `msg_ids_total` count them all. A 20,000-user brigade stays one small
/// alert, not a 500 KB one re-sent on every join.
pub const SAMPLE: usize = 20;

/// One alert's JSON body stays at most this many bytes, whatever its comments and actions.
pub const MAX_ALERT_BYTES: usize = 16 * 1024;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

// Alerts stored before versions were counted read as their first version.
fn first_version() -> u32 {
    1
}

/// What produced an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// One comment's verdict.
    Comment,
    /// A word split across a user's consecutive comments (`骗` then `子`).
    Split,
    /// The same user posting the same text again and again.
    Repetition,
    /// A user posting faster than a person types.
    Flood,
    /// Several users posting near-identical attack texts: one alert, users listed.
    Brigade,
    /// Operational: a room's firehose went silent (the watcher is blind).
    Ops,
    /// A comment liveguard missed, reported by a floor manager (`POST /api/report`): it gets
    /// a ticket like any complaint, and its class is a training label.
    Reported,
}

impl AlertKind {
    /// The snake_case name (a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comment => "comment",
            Self::Split => "split",
            Self::Repetition => "repetition",
            Self::Flood => "flood",
            Self::Brigade => "brigade",
            Self::Ops => "ops",
            Self::Reported => "reported",
        }
    }
}

/// Where an alert stands with the floor manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Nobody has acted yet.
    Open,
    /// The buyer was invited to co-stream.
    Invited,
    /// A script was sent.
    Scripted,
    /// The user was muted or flagged.
    Muted,
    /// Dismissed as a false positive (feedback for the rules).
    Dismissed,
    /// The complaint's ticket was resolved (refund, exchange or otherwise).
    Resolved,
}

impl AlertStatus {
    /// The snake_case name (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invited => "invited",
            Self::Scripted => "scripted",
            Self::Muted => "muted",
            Self::Dismissed => "dismissed",
            Self::Resolved => "resolved",
        }
    }
}

/// One thing a floor manager did with an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// `invite`, `send_script`, `mute`, `dismiss` or `resolve`.
    pub action: String,
    /// Who (the console's operator name).
    pub by: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// The script used (send_script), as edited.
    pub script: Option<String>,
    /// Which script: `refund` (方案A), `exchange` (方案B), `explain`, `private`, `suggested`;
    /// for `resolve`, the outcome: `refund`, `exchange` or `other`.
    pub choice: Option<String>,
}

/// What the floor manager sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Monotonic sequence number (set by the hub).
    pub seq: u64,
    /// 1 when published, one more for each committed change: an `update` message names the
    /// version it brings a client to.
    #[serde(default = "first_version")]
    pub version: u32,
    /// What produced it.
    pub kind: AlertKind,
    /// Room id.
    pub room: String,
    /// The (first) writer.
    pub user: User,
    /// The first [`SAMPLE`] distinct user ids involved (brigades, merged repeats).
    pub users: Vec<String>,
    /// Their display names, in the same order (a brigade card lists people, not ids).
    #[serde(default)]
    pub user_names: Vec<String>,
    /// How many distinct users the alert stands for (`users` keeps the first [`SAMPLE`]).
    #[serde(default)]
    pub users_total: u32,
    /// The first [`SAMPLE`] platform message ids involved (deletions of later ones still
    /// retract: the store's writer indexes every id, see `store::writer`).
    pub msg_ids: Vec<String>,
    /// How many message ids the alert stands for (`msg_ids` keeps the first [`SAMPLE`]).
    #[serde(default)]
    pub msg_ids_total: u32,
    /// The comment text (for split messages: the joined texts).
    pub text: String,
    /// class, topic, score, evidence (spans in `text`), action, script, lang: serialized
    /// inline, as fields of the alert.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Product, when the event named one.
    pub product: Option<String>,
    /// How many comments this alert stands for.
    pub count: u32,
    /// The writer is a known buyer (ranks higher).
    pub buyer: bool,
    /// The writer's account is less than 7 days old (an attack ranks higher).
    pub new_account: bool,
    /// From the platform's backlog on connect: not live.
    pub backlog: bool,
    /// Retracted by a platform deletion.
    pub retracted: bool,
    /// Where it stands with the floor manager.
    pub status: AlertStatus,
    /// What floor managers did with it, oldest first.
    pub actions: Vec<ActionRecord>,
    /// Platform timestamp of the (first) comment, ms.
    pub ts_ms: u64,
    /// When the frame arrived, ms since the epoch.
    pub received_ms: u64,
    /// When it was classified, ms since the epoch.
    pub classified_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_ms: u64,
    /// An ops alert about several silent rooms of one source (`room` is `*`): the first
    /// [`SAMPLE`] of them, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<String>,
    /// How many rooms that ops alert is about.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rooms_total: u32,
    /// The complaint's ticket (complaints only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
}

impl Alert {
    /// A new alert (sequence number 0 until the hub publishes it) for one comment by `user`.
    pub fn new(
        kind: AlertKind,
        room: String,
        user: User,
        text: String,
        verdict: Verdict,
        now_ms: u64,
    ) -> Self {
        Self {
            seq: 0,
            version: 1,
            kind,
            room,
            users: vec![user.id.clone()],
            user_names: vec![user.display().to_string()],
            users_total: 1,
            user,
            msg_ids: Vec::new(),
            msg_ids_total: 0,
            text,
            verdict,
            product: None,
            count: 1,
            buyer: false,
            new_account: false,
            backlog: false,
            retracted: false,
            status: AlertStatus::Open,
            actions: Vec::new(),
            ts_ms: now_ms,
            received_ms: now_ms,
            classified_ms: now_ms,
            updated_ms: now_ms,
            rooms: Vec::new(),
            rooms_total: 0,
            ticket: None,
        }
    }

    /// An operational alert about `room` (`*`: every room of a source): the watcher may be
    /// blind, or sees again.
    pub fn ops(room: String, text: String, now_ms: u64) -> Self {
        let user = User {
            id: "liveguard".into(),
            handle: None,
            name: Some("liveguard".into()),
        };
        let verdict = Verdict {
            class: Class::Neutral,
            topic: None,
            score: 1.0,
            evidence: Vec::new(),
            action: crate::taxonomy::Action::None,
            script: None,
            lang: crate::taxonomy::Lang::En,
            purchase: false,
            source: Default::default(),
        };
        let mut a = Self::new(AlertKind::Ops, room, user, text, verdict, now_ms);
        a.users.clear();
        a.user_names.clear();
        a.users_total = 0;
        a
    }

    /// Counts one more message id; keeps it while the sample has room.
    pub fn add_msg_id(&mut self, id: String) {
        // Alerts stored before totals were kept have none: the list is the count.
        self.msg_ids_total = self
            .msg_ids_total
            .max(self.msg_ids.len() as u32)
            .saturating_add(1);
        if self.msg_ids.len() < SAMPLE {
            self.msg_ids.push(id);
        }
    }

    /// Counts user `id` (named `name`); `distinct` is the number of distinct users so far when
    /// the caller knows it (the room's cluster does). Keeps the user while the sample has room.
    pub fn add_user(&mut self, id: &str, name: String, distinct: Option<usize>) {
        // Alerts stored before names were kept have none: pad with ids.
        while self.user_names.len() < self.users.len() {
            self.user_names.push(self.users[self.user_names.len()].clone());
        }
        let known = self.users.iter().any(|u| u == id);
        if !known && self.users.len() < SAMPLE {
            self.users.push(id.to_string());
            self.user_names.push(name);
        }
        let at_least = self.users_total.max(self.users.len() as u32);
        self.users_total = match distinct {
            Some(n) => at_least.max(u32::try_from(n).unwrap_or(u32::MAX)),
            None if !known && self.users.len() >= SAMPLE => at_least.saturating_add(1),
            None => at_least,
        };
    }

    /// Shrinks what a client could make grow (the text, evidence, scripts, the action log,
    /// follow-ups, the samples) until the JSON body is at most [`MAX_ALERT_BYTES`]; returns
    /// the body. Cheap when the alert already fits (one serialization).
    pub fn fit_body(&mut self) -> String {
        let body = serde_json::to_string(&*self).unwrap_or_default();
        if body.len() <= MAX_ALERT_BYTES {
            return body;
        }
        // Tighter each round; the last round leaves only short fields and short lists.
        for chars in [1_000usize, 300, 80, 20] {
            self.users.truncate(SAMPLE);
            self.user_names.truncate(SAMPLE);
            self.msg_ids.truncate(SAMPLE);
            let cut = |s: &mut String| *s = crate::limits::cut(s, chars).0;
            let (text, was_cut) = crate::limits::cut(&self.text, chars);
            if was_cut {
                let kept = text.len() - '…'.len_utf8();
                self.verdict.evidence.retain(|e| e.end <= kept);
                self.text = text;
            }
            self.verdict.evidence.truncate(chars / 10);
            for e in &mut self.verdict.evidence {
                cut(&mut e.text);
            }
            if let Some(s) = &mut self.verdict.script {
                cut(s);
            }
            self.rooms.truncate(SAMPLE);
            for n in self
                .user_names
                .iter_mut()
                .chain(self.users.iter_mut())
                .chain(self.msg_ids.iter_mut())
                .chain(self.rooms.iter_mut())
            {
                cut(n);
            }
            for n in [&mut self.user.name, &mut self.user.handle, &mut self.product]
                .into_iter()
                .flatten()
            {
                cut(n);
            }
            cut(&mut self.user.id);
            // Actions are few (each state allows one), but a script is as long as typed.
            for r in &mut self.actions {
                for s in [&mut r.script, &mut r.choice].into_iter().flatten() {
                    cut(s);
                }
                cut(&mut r.by);
            }
            if let Some(t) = &mut self.ticket {
                for f in &mut t.followups {
                    cut(&mut f.text);
                    cut(&mut f.msg_id);
                }
            }
            let body = serde_json::to_string(&*self).unwrap_or_default();
            if body.len() <= MAX_ALERT_BYTES {
                return body;
            }
        }
        serde_json::to_string(&*self).unwrap_or_default()
    }

    /// Whether this alert opens a ticket: a buyer's complaint (not a signal or ops alert).
    pub fn wants_ticket(&self) -> bool {
        self.verdict.class == Class::Complaint
            && matches!(
                self.kind,
                AlertKind::Comment | AlertKind::Split | AlertKind::Reported
            )
    }
}

/// What a message on the alert socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgKind {
    /// A new alert.
    Alert,
    /// A change to an alert sent before (same `seq`).
    Update,
    /// A ticket nearing or past a deadline.
    Reminder,
}

/// One message on the alert socket, serialized once.
#[derive(Debug)]
pub struct HubMsg {
    /// Room, for per-subscriber filtering.
    pub room: Arc<str>,
    /// Sequence number of the alert.
    pub seq: u64,
    /// New, update or reminder.
    pub kind: MsgKind,
    /// The alert as committed.
    pub alert: Arc<Alert>,
    /// `{"type":"alert"|"update"|"reminder", …}`.
    pub json: Arc<str>,
}

/// Wraps a stored alert body (`{…}`) as a socket message of `kind` (`alert`, `update`).
pub fn wire(kind: &str, body: &str) -> String {
    let rest = body.strip_prefix('{').unwrap_or(body);
    let sep = if rest.starts_with('}') { "" } else { "," };
    format!(r#"{{"type":"{kind}"{sep}{rest}"#)
}

/// Why [`Hub::try_update`] changed nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TryUpdate<E> {
    /// No such alert (never published, or pruned).
    NotFound,
    /// The change refused itself.
    Refused(E),
    /// The store could not be reached (shutting down).
    Unavailable,
}

struct Submit {
    next_seq: u64,
    tx: Option<mpsc::SyncSender<Cmd>>,
}

/// State the writer thread shares with the hub.
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
    pub store_failure: Mutex<Option<crate::health::StoreFailure>>,
}

/// The key of a (room, user) pair in the open-ticket map.
pub fn room_user_key(room: &str, user: &str) -> u64 {
    crate::fasthash::key((room, user))
}

/// Sequence numbers, the way into the store and the fan-out.
///
/// `publish` and `update` never wait for the disk: they queue the change for the writer (in
/// sequence order, under a short lock) and return. When the writer's queue is full they wait,
/// which slows the workers, which makes the intake shed neutral comments: alerts are not lost.
pub struct Hub {
    submit: Mutex<Submit>,
    shared: Arc<Shared>,
    tickets: TicketConfig,
    path: PathBuf,
    reader: Mutex<Option<rusqlite::Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<std::thread::JoinHandle<()>>>,
    stop_checkpoints: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens (or creates) the store, loads what is still live (recent alerts, active tickets),
    /// and starts the writer thread. `fanout_cap` messages are buffered per subscriber before a
    /// slow one is told it lagged.
    pub fn open(
        store: &StoreConfig,
        tickets: TicketConfig,
        fanout_cap: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, StoreError> {
        let path = store.db_path();
        let conn = crate::store::open_writer(&path, store.durability)?;
        let last = crate::store::max_seq(&conn)?;
        let (tx, _) = broadcast::channel(fanout_cap.max(1));
        let shared = Arc::new(Shared {
            committed: AtomicU64::new(last),
            open_tickets: Default::default(),
            tx,
            metrics,
            store_failure: Mutex::new(None),
        });
        let (cmd_tx, cmd_rx) = mpsc::sync_channel(store.queue.max(1));
        let writer = crate::store::writer::Writer::new(conn, shared.clone(), tickets.clone(), store)?;
        let handle = std::thread::Builder::new()
            .name("liveguard-store".into())
            .spawn(move || writer.run(&cmd_rx))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        let stop_checkpoints = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let commits = shared.metrics.store_commits.clone();
        let checkpointer =
            crate::store::spawn_checkpointer(&path, stop_checkpoints.clone(), move || commits.get())?;
        tracing::info!(path = %path.display(), last_seq = last, "state database open");
        Ok(Arc::new(Self {
            submit: Mutex::new(Submit {
                next_seq: last + 1,
                tx: Some(cmd_tx),
            }),
            shared,
            tickets,
            path,
            reader: Mutex::new(None),
            writer: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(Some(checkpointer)),
            stop_checkpoints,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, make: impl FnOnce(&mut u64) -> Cmd) -> bool {
        // A panic under this lock leaves a consistent counter, so a poisoned lock is usable.
        let mut s = self.submit.lock().unwrap_or_else(|p| p.into_inner());
        let cmd = make(&mut s.next_seq);
        // Sent under the lock so the writer sees changes in sequence order; waits when the
        // writer is behind (back-pressure, see the type's doc).
        match s.tx.as_ref().map(|tx| tx.send(cmd)) {
            Some(Ok(())) => true,
            _ => {
                self.shared.metrics.store_rejected.inc();
                tracing::error!("alert store closed: change dropped");
                false
            }
        }
    }

    /// Gives `alert` the next sequence number (and a ticket, for a complaint) and queues it;
    /// subscribers hear of it once it is committed.
    pub fn publish(&self, mut alert: Alert) -> u64 {
        let mut seq = 0;
        if alert.wants_ticket() && alert.ticket.is_none() {
            alert.ticket = Some(Ticket::open(
                alert.classified_ms,
                self.tickets.for_room(&alert.room),
            ));
        }
        self.send(|next| {
            seq = *next;
            *next += 1;
            alert.seq = seq;
            if alert.ticket.is_some() {
                self.shared
                    .open_tickets
                    .insert(room_user_key(&alert.room, &alert.user.id), seq);
            }
            Cmd::Publish(Box::new(alert))
        });
        seq
    }

    /// Queues a change to alert `seq`.
    pub fn update(&self, seq: u64, now_ms: u64, change: impl FnOnce(&mut Alert) + Send + 'static) {
        self.update_if(seq, now_ms, move |a| {
            change(a);
            true
        });
    }

    /// Queues a change to alert `seq` that adds message `msg_id` to it: the writer indexes
    /// the id, so a deletion of it retracts the alert even when the id is past the sample.
    pub fn update_msg(
        &self,
        seq: u64,
        now_ms: u64,
        msg_id: String,
        change: impl FnOnce(&mut Alert) + Send + 'static,
    ) {
        self.send(|_| Cmd::Update {
            seq,
            now_ms,
            change: Box::new(move |a| {
                change(a);
                true
            }),
            msg_id: Some(msg_id),
            reply: None,
        });
    }

    /// Queues a change to alert `seq` that may decline (returns false): then nothing is
    /// written or sent.
    pub fn update_if(&self, seq: u64, now_ms: u64, change: impl FnOnce(&mut Alert) -> bool + Send + 'static) {
        self.send(|_| Cmd::Update {
            seq,
            now_ms,
            change: Box::new(change),
            msg_id: None,
            reply: None,
        });
    }

    /// Changes alert `seq` only if `change` accepts it (the writer applies changes one at a
    /// time, so two consoles acting at once cannot both pass a check). Resolves once the change
    /// is committed and sent out.
    pub async fn try_update<E: Send + 'static>(
        &self,
        seq: u64,
        now_ms: u64,
        change: impl FnOnce(&mut Alert) -> Result<(), E> + Send + 'static,
    ) -> Result<Arc<Alert>, TryUpdate<E>> {
        let refusal: Arc<Mutex<Option<E>>> = Arc::new(Mutex::new(None));
        let slot = refusal.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.send(|_| Cmd::Update {
            seq,
            now_ms,
            change: Box::new(move |a| match change(a) {
                Ok(()) => true,
                Err(e) => {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    false
                }
            }),
            msg_id: None,
            reply: Some(tx),
        });
        if !sent {
            return Err(TryUpdate::Unavailable);
        }
        match rx.await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(Failed::NotFound)) => Err(TryUpdate::NotFound),
            Ok(Err(Failed::Refused)) => refusal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .map_or(Err(TryUpdate::Unavailable), |e| Err(TryUpdate::Refused(e))),
            Err(_) => Err(TryUpdate::Unavailable),
        }
    }

    /// Marks retracted every recent alert that involves one of `msg_ids` (in any room: message
    /// ids are unique), or any user of `user_ids` (in `room`, when given).
    pub fn retract(&self, room: Option<String>, msg_ids: Vec<String>, user_ids: Vec<String>, now_ms: u64) {
        self.send(|_| Cmd::Retract {
            room,
            msg_ids,
            user_ids,
            now_ms,
        });
    }

    /// Checks ticket deadlines as of `now_ms`: reminders go out, breaches are recorded.
    pub fn tick(&self, now_ms: u64) {
        self.send(|_| Cmd::Tick(now_ms));
    }

    /// Resolves once everything queued before it is committed and sent out.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.send(|_| Cmd::Flush(tx)) {
            let _ = rx.await;
        }
    }

    /// Stops the writer after it has committed everything queued, and waits for it.
    /// Blocking: call it from a blocking context.
    pub fn close(&self) {
        self.submit.lock().unwrap_or_else(|p| p.into_inner()).tx = None;
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if h.join().is_err() {
                tracing::error!("alert store writer panicked");
            }
        }
        self.stop_checkpoints.store(true, Ordering::SeqCst);
        if let Some(h) = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if h.join().is_err() {
                tracing::error!("WAL checkpointer panicked");
            }
        }
    }

    /// The active ticket of `user` in `room`, if any.
    pub fn open_ticket(&self, room: &str, user: &str) -> Option<u64> {
        self.shared
            .open_tickets
            .get(&room_user_key(room, user))
            .map(|s| *s)
    }

    /// Runs `f` on the store's read connection (opened on first use). Blocking.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(crate::store::open_reader(&self.path)?);
        }
        match guard.as_ref() {
            Some(conn) => f(conn),
            None => Err(StoreError::Open {
                path: self.path.display().to_string(),
                detail: "no read connection".into(),
            }),
        }
    }

    /// Committed alerts after `since` (in `room`, when given), oldest first, at most `limit`,
    /// as `(seq, stored JSON)`. Blocking.
    pub fn since(
        &self,
        since: u64,
        room: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.read(|c| crate::store::since(c, since, room, limit))
    }

    /// The newest `limit` committed alerts (in `room`, when given), newest first. Blocking.
    pub fn recent(&self, limit: usize, room: Option<&str>) -> Result<Vec<(u64, String)>, StoreError> {
        self.read(|c| crate::store::recent(c, limit, room))
    }

    /// One committed alert. Blocking.
    pub fn get(&self, seq: u64) -> Result<Option<Alert>, StoreError> {
        self.read(|c| crate::store::get(c, seq))
    }

    /// Why commits fail, while they do (the writer keeps retrying).
    pub fn store_failure(&self) -> Option<crate::health::StoreFailure> {
        self.shared
            .store_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last sequence number committed and announced (0 before the first alert).
    pub fn last_seq(&self) -> u64 {
        self.shared.committed.load(Ordering::SeqCst)
    }

    /// A receiver of every message sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubMsg>> {
        self.shared.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::{Action, Lang, Topic};

    fn alert(room: &str, msg: &str) -> Alert {
        let verdict = Verdict {
            class: Class::Attack,
            topic: Some(Topic::Smear),
            score: 0.6,
            evidence: vec![],
            action: Action::PrivateResolution,
            script: None,
            lang: Lang::Zh,
            purchase: false,
            source: Default::default(),
        };
        let user = User {
            id: "u1".into(),
            ..User::default()
        };
        let mut a = Alert::new(AlertKind::Comment, room.into(), user, "t".into(), verdict, 0);
        a.msg_ids.push(msg.into());
        a
    }

    #[test]
    fn samples_are_capped_and_a_body_stays_under_16_kb_whatever_grows() {
        let mut a = alert("r", "m0");
        for i in 1..5_000 {
            a.add_msg_id(format!("m{i}"));
            a.add_user(&format!("u{i}"), format!("name{i}"), None);
        }
        assert_eq!((a.msg_ids.len(), a.msg_ids_total), (SAMPLE, 5_000));
        assert_eq!(
            (a.users.len(), a.user_names.len(), a.users_total),
            (SAMPLE, SAMPLE, 5_000)
        );
        let long = "骗".repeat(20_000);
        a.text = long.clone();
        a.verdict.script = Some(long.clone());
        a.verdict.evidence = (0..100)
            .map(|i| crate::classify::Evidence {
                rule: Arc::from("r"),
                start: i,
                end: i + 3,
                text: long.clone(),
                context: false,
            })
            .collect();
        for i in 0..6 {
            a.actions.push(ActionRecord {
                action: "send_script".into(),
                by: long.clone(),
                at_ms: i,
                script: Some(long.clone()),
                choice: None,
            });
        }
        let mut t = Ticket::open(0, TicketConfig::default().for_room("r"));
        for i in 0..crate::tickets::MAX_FOLLOWUPS {
            t.follow(crate::tickets::Followup {
                msg_id: format!("f{i}"),
                text: long.clone(),
                at_ms: 0,
            });
        }
        a.ticket = Some(t);
        let body = a.fit_body();
        assert!(body.len() <= MAX_ALERT_BYTES, "{} bytes", body.len());
        let back: Alert = serde_json::from_str(&body).expect("still an alert");
        assert_eq!(back.actions.len(), 6, "actions are cut, never dropped");
        assert!(back.verdict.evidence.iter().all(|e| e.end <= back.text.len()));
    }

    fn open(dir: &std::path::Path) -> Arc<Hub> {
        let cfg = StoreConfig {
            path: Some(dir.join("t.db")),
            hot_alerts: 2,
            ..StoreConfig::default()
        };
        Hub::open(&cfg, TicketConfig::default(), 16, Arc::new(Metrics::new())).expect("store opens")
    }

    #[tokio::test]
    async fn committed_before_announced_updates_in_order_and_seq_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = open(dir.path());
        let mut rx = hub.subscribe();
        for i in 0..4 {
            hub.publish(alert(if i % 2 == 0 { "a" } else { "b" }, &format!("m{i}")));
        }
        // Seq 1 is no longer in the writer's memory (2 hot alerts): read back to update.
        hub.update(1, 9, |a| a.count = 5);
        hub.retract(Some("b".into()), vec!["m3".into()], vec![], 10);
        hub.flush().await;
        assert_eq!(hub.last_seq(), 4);
        let first = rx.try_recv().expect("published");
        assert_eq!(first.seq, 1);
        assert!(
            first.json.starts_with(r#"{"type":"alert","seq":1"#),
            "{}",
            first.json
        );
        // Every message a subscriber hears is already readable from the store.
        let stored = hub.since(0, None, 100).expect("reads");
        assert_eq!(stored.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let room_a: Vec<u64> = hub
            .since(2, Some("a"), 100)
            .expect("reads")
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(room_a, [3]);
        assert_eq!(hub.get(1).expect("reads").map(|a| a.count), Some(5));
        assert_eq!(hub.get(4).expect("reads").map(|a| a.retracted), Some(true));
        let kinds: Vec<(u64, MsgKind)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| (m.seq, m.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (2, MsgKind::Alert),
                (3, MsgKind::Alert),
                (4, MsgKind::Alert),
                (1, MsgKind::Update),
                (4, MsgKind::Update)
            ]
        );
        let refused = hub.try_update(2, 11, |_| Err::<(), _>("no")).await;
        assert_eq!(refused.err(), Some(TryUpdate::Refused("no")));
        let missing = hub.try_update(99, 11, |_| Ok::<(), ()>(())).await;
        assert_eq!(missing.err(), Some(TryUpdate::NotFound));
        hub.close();
        drop(hub);

        let hub = open(dir.path());
        assert_eq!(hub.last_seq(), 4, "a restart knows where it was");
        assert_eq!(hub.publish(alert("a", "m5")), 5, "and numbering continues");
        hub.flush().await;
        assert_eq!(hub.recent(1, None).expect("reads")[0].0, 5);
        hub.close();
    }

    #[tokio::test]
    async fn a_deletion_retracts_its_message_in_any_room_and_users_only_in_its_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = open(dir.path());
        // A v1 chat carries no room: its alert sits in the source's room.
        hub.publish(alert("source-room", "m1"));
        hub.publish(alert("other-room", "m2"));
        hub.retract(Some("live-room".into()), vec!["m1".into()], vec![], 10);
        hub.retract(Some("live-room".into()), vec![], vec!["u1".into()], 11);
        hub.flush().await;
        assert_eq!(hub.get(1).expect("reads").map(|a| a.retracted), Some(true));
        assert_eq!(
            hub.get(2).expect("reads").map(|a| a.retracted),
            Some(false),
            "a user's deletion in one room leaves their alerts in another"
        );
        hub.close();
    }
}
