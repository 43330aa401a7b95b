//! The store's writer thread: the only place alerts change. It takes changes in sequence
//! order, applies them to the current version of each alert (kept in memory for recent ones,
//! read back from SQLite otherwise), writes a whole batch in one transaction, and only after
//! the commit sends the messages out and answers the consoles. A failed commit is retried:
//! nothing is announced that is not on disk, and nothing accepted is dropped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::delta::{self, Fields};
use super::handle::Shared;
use super::record::{room_user_key, wire, Alert, HubMsg, MsgKind};
use super::{StoreConfig, StoreError};
use crate::tickets::{Reminder, Stage, TicketConfig};

/// How long the writer gathers changes before a commit (bounds the latency it adds).
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_micros(500);

/// A batch this large is committed without waiting out the window.
pub const GROUP_ENOUGH: usize = 16;

/// Updates to one alert go out at most this often: a brigade changes its alert thousands of
/// times a second, and each subscriber needs only the latest version. The first update after
/// a quiet spell goes out at once; the latest of those that follow waits for the next slot,
/// carrying every field changed since the last update sent. The pipeline's changes inside a
/// slot (counts, samples, follow-ups) are written at the slot too, as one version row with
/// everything they changed: nothing unwritten is announced, and a brigade's alert is written a
/// few times a second instead of at every repeat. Console actions and deletions are written
/// at once (with what waited before them).
pub const UPDATE_EVERY: Duration = Duration::from_millis(250);

/// A change to an alert; false refuses it (nothing is written).
pub type Change = Box<dyn FnOnce(&mut Alert) -> bool + Send>;

/// Why an update was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// No such alert.
    NotFound,
    /// The change refused itself.
    Refused,
}

/// What the hub sends the writer.
pub enum Cmd {
    /// A new alert (its sequence number set).
    Publish(Box<Alert>),
    /// A change to alert `seq`; the reply (if any) comes after the commit.
    Update {
        /// The alert.
        seq: u64,
        /// When.
        now_ms: u64,
        /// The change.
        change: Change,
        /// A message id the change adds (indexed for deletions).
        msg_id: Option<String>,
        /// Who waits for the result.
        reply: Option<oneshot::Sender<Result<Arc<Alert>, Failed>>>,
    },
    /// A platform deletion.
    Retract {
        /// Only this room.
        room: Option<String>,
        /// Deleted messages.
        msg_ids: Vec<String>,
        /// Users whose messages were all deleted.
        user_ids: Vec<String>,
        /// When.
        now_ms: u64,
    },
    /// Check deadlines as of this time.
    Tick(u64),
    /// Answer once everything before is committed.
    Flush(oneshot::Sender<()>),
}

/// The pipeline's changes to one alert inside its update slot, written at the slot.
struct Deferred {
    /// The latest version.
    alert: Arc<Alert>,
    /// The version last written (or in the batch being written).
    prev: Arc<Alert>,
}

enum Out {
    Msg(HubMsg),
    /// A new version and the fields it changed.
    Update(Arc<Alert>, Fields),
    Reply(oneshot::Sender<Result<Arc<Alert>, Failed>>, Arc<Alert>),
    Flushed(oneshot::Sender<()>),
}

/// Recent alerts in memory, the least recently written dropped first, for updates without
/// a read. An alert that keeps changing (a repeat, a brigade) stays; by age alone it was
/// read back and parsed a second after it came, at 10,000 new alerts a second.
struct Hot {
    /// Each alert, and the stamp of its latest place in `order`.
    map: HashMap<u64, (Arc<Alert>, u64)>,
    /// (seq, stamp), oldest write first; a place whose stamp is not the alert's latest is
    /// stale (it was written again since).
    order: VecDeque<(u64, u64)>,
    stamp: u64,
    cap: usize,
}

impl Hot {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            stamp: 0,
            cap: cap.max(1),
        }
    }

    fn get(&self, seq: u64) -> Option<&Arc<Alert>> {
        self.map.get(&seq).map(|(a, _)| a)
    }

    fn insert(&mut self, a: Arc<Alert>) {
        self.stamp += 1;
        let seq = a.seq;
        self.map.insert(seq, (a, self.stamp));
        self.order.push_back((seq, self.stamp));
        while self.map.len() > self.cap {
            match self.order.pop_front() {
                Some((old, stamp)) => {
                    if self.map.get(&old).is_some_and(|(_, s)| *s == stamp) {
                        self.map.remove(&old);
                    }
                }
                None => break,
            }
        }
        // Stale places are bounded too: past twice the cap, keep only the latest ones.
        if self.order.len() > 2 * self.cap {
            let map = &self.map;
            self.order
                .retain(|(seq, stamp)| map.get(seq).is_some_and(|(_, s)| s == stamp));
        }
    }
}

/// Message ids the writer has seen, newest [`MSG_INDEX_CAP`] kept, to the alert holding each:
/// an alert's JSON keeps only a sample of its ids, and a deletion of any of them retracts it.
struct MsgIndex {
    map: HashMap<u64, u64>,
    order: VecDeque<u64>,
}

/// Message ids remembered for deletions (about 24 bytes each: 6 MiB at the cap). A brigade
/// of 20,000 fits many times over; a deletion of an id older than this finds only the sample.
pub const MSG_INDEX_CAP: usize = 262_144;

impl MsgIndex {
    fn key(msg_id: &str) -> u64 {
        crate::fasthash::key(msg_id)
    }

    fn insert(&mut self, msg_id: &str, seq: u64) {
        if msg_id.is_empty() {
            return;
        }
        let k = Self::key(msg_id);
        if self.map.insert(k, seq).is_none() {
            self.order.push_back(k);
        }
        while self.map.len() > MSG_INDEX_CAP {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    fn get(&self, msg_id: &str) -> Option<u64> {
        self.map.get(&Self::key(msg_id)).copied()
    }
}

/// The writer's state.
pub struct Writer {
    conn: Connection,
    /// The WAL's length after each commit, and its bound.
    wal: super::WalWatch,
    shared: Arc<Shared>,
    tickets: TicketConfig,
    batch_max: usize,
    hot: Hot,
    msg_index: MsgIndex,
    /// Active tickets: when each next needs a look.
    schedule: HashMap<u64, u64>,
    retention_ms: Option<u64>,
    last_prune_ms: u64,
    /// When a message about each recently changed alert last went out.
    sent: HashMap<u64, Instant>,
    /// The same, oldest first, to forget them once their slot has passed.
    sent_order: VecDeque<(Instant, u64)>,
    /// The latest version of each alert waiting for its slot (see [`UPDATE_EVERY`]), and the
    /// fields changed since the last update sent.
    pending: HashMap<u64, (Arc<Alert>, Fields)>,
    /// Versions to write at their alert's slot (see [`UPDATE_EVERY`]).
    deferred: HashMap<u64, Deferred>,
    /// The room index's marks, the entries held back per slice, and when each slice is due.
    marks: super::rooms::Marks,
    held: Vec<Vec<(String, u64)>>,
    slice_due: Vec<Instant>,
    /// The newest alert committed.
    committed_top: u64,
}

/// Each slice of rooms gets its held-back `alert_rooms` entries written this often (see
/// [`super::rooms`]); the slices take turns, a sixteenth of this apart.
pub const ROOM_PASS_EVERY: Duration = Duration::from_secs(1);

/// The `alert_rooms` entries held back for one commit's bulk pass.
#[derive(Debug)]
pub struct RoomPass<'a> {
    /// The marks this commit writes under (due slices raised to `through`).
    pub marks: super::rooms::Marks,
    /// The slices brought up to date: slice, its held entries.
    pub slices: Vec<(usize, &'a [(String, u64)])>,
    /// Their new mark: the newest alert committed before this commit.
    pub through: u64,
}

impl RoomPass<'_> {
    /// No slice due: every alert written at or below `marks` gets its entry at once.
    pub fn none(marks: super::rooms::Marks) -> Self {
        Self {
            marks,
            slices: Vec::new(),
            through: 0,
        }
    }
}

/// One version to write.
#[derive(Debug)]
pub struct Write {
    alert: Arc<Alert>,
    body: String,
    prev: Option<Arc<Alert>>,
    changed: Fields,
}

impl Write {
    /// Version `alert` (serialized as `body`) of an alert whose version before was `prev` (none:
    /// a new alert).
    pub fn new(alert: Arc<Alert>, body: String, prev: Option<Arc<Alert>>) -> Self {
        let changed = prev
            .as_deref()
            .map_or(Fields::NONE, |p| delta::changed(p, &alert));
        Self {
            alert,
            body,
            prev,
            changed,
        }
    }
}

impl Writer {
    /// Loads recent alerts and active tickets from `conn`.
    pub fn new(
        conn: Connection,
        shared: Arc<Shared>,
        tickets: TicketConfig,
        cfg: &StoreConfig,
    ) -> Result<Self, StoreError> {
        let mut hot = Hot::new(cfg.hot_alerts);
        for a in super::newest(&conn, cfg.hot_alerts)? {
            hot.insert(Arc::new(a));
        }
        let mut schedule = HashMap::new();
        for a in super::active_tickets(&conn)? {
            if let Some(t) = &a.ticket {
                if let Some(next) = t.next_check_ms(tickets.for_room(&a.room)) {
                    schedule.insert(a.seq, next);
                }
                shared
                    .open_tickets
                    .insert(room_user_key(&a.room, &a.user.id), a.seq);
            }
        }
        tracing::info!(active_tickets = schedule.len(), "tickets loaded");
        let mut conn = conn;
        let wal = super::WalWatch::install(&mut conn, super::WAL_HARD_BYTES)?;
        super::rooms::catch_up(&mut conn)?;
        let marks = super::rooms::Marks::load(&conn)?;
        let committed_top = super::max_seq(&conn)?;
        let start = Instant::now();
        let turn = ROOM_PASS_EVERY / super::rooms::SLICES as u32;
        Ok(Self {
            marks,
            held: vec![Vec::new(); super::rooms::SLICES],
            slice_due: (1..=super::rooms::SLICES as u32)
                .map(|i| start + turn * i)
                .collect(),
            committed_top,
            conn,
            wal,
            shared,
            tickets,
            batch_max: cfg.batch_max.max(1),
            msg_index: MsgIndex {
                map: HashMap::new(),
                order: VecDeque::new(),
            },
            hot,
            schedule,
            retention_ms: (cfg.retention_days > 0).then(|| u64::from(cfg.retention_days) * 86_400_000),
            last_prune_ms: 0,
            sent: HashMap::new(),
            sent_order: VecDeque::new(),
            pending: HashMap::new(),
            deferred: HashMap::new(),
        })
    }

    /// Takes changes until every sender is gone, then returns (everything committed).
    pub fn run(mut self, rx: &mpsc::Receiver<Cmd>) {
        loop {
            let first = match self.send_due() {
                None => rx.recv().ok(),
                Some(wait) => match rx.recv_timeout(wait) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // No batch to take the versions whose slot came: on their own.
                        let writes = self.take_deferred(Some(Instant::now()));
                        self.commit(&writes);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(first) = first else { break };
            // Group commit: a commit writes whole pages (~70 µs for one alert, ~18 µs each in
            // a batch of 1,024), so gather what arrives within a short window first. Asleep,
            // not parked on the channel: a sender then has no one to wake (a futex call on
            // both sides per change, at 10,000 changes a second).
            let mut batch = vec![first];
            let take = |batch: &mut Vec<Cmd>| {
                while batch.len() < self.batch_max {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
            };
            // Under load the last commit's duration already gathered a batch: commit it at
            // once (sleeping on top of it only made every batch wait longer).
            take(&mut batch);
            if batch.len() < GROUP_ENOUGH {
                std::thread::sleep(GROUP_COMMIT_WINDOW);
                take(&mut batch);
            }
            // Room in the queue: wake whoever waits to hand over more (see `Store::drain`).
            self.shared.space.notify_waiters();
            self.process(batch);
            // After the batch went out: its alerts do not wait on the restart.
            if self.wal.between_commits(&mut self.conn, &self.shared.restart_wal) {
                self.shared.metrics.store_wal_forced.inc();
            }
        }
        self.send_pending();
        tracing::debug!("store writer drained");
    }

    /// The latest version of alert `seq`: waiting for its slot, in memory, in this batch (not
    /// yet written, perhaps already out of memory), or read back from the database.
    fn current(&mut self, seq: u64, writes: &[Write]) -> Option<Arc<Alert>> {
        if let Some(d) = self.deferred.get(&seq) {
            return Some(d.alert.clone());
        }
        if let Some(a) = self.hot.get(seq) {
            return Some(a.clone());
        }
        if let Some(w) = writes.iter().rev().find(|w| w.alert.seq == seq) {
            return Some(w.alert.clone());
        }
        match super::get(&self.conn, seq) {
            Ok(Some(a)) => {
                let a = Arc::new(a);
                self.hot.insert(a.clone());
                Some(a)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(seq, error = %e, "cannot read an alert back");
                None
            }
        }
    }

    /// Keeps the open-ticket map and the reminder schedule in step with `a`.
    fn track(&mut self, a: &Alert) {
        let Some(t) = &a.ticket else { return };
        match t.next_check_ms(self.tickets.for_room(&a.room)) {
            Some(next) => {
                self.schedule.insert(a.seq, next);
            }
            None => {
                self.schedule.remove(&a.seq);
            }
        }
        if !t.status.is_active() {
            self.shared
                .open_tickets
                .remove_if(&room_user_key(&a.room, &a.user.id), |_, s| *s == a.seq);
        }
    }

    fn alert_msg(a: &Arc<Alert>, body: &str) -> HubMsg {
        HubMsg {
            room: Arc::from(a.room.as_str()),
            seq: a.seq,
            kind: MsgKind::Alert,
            alert: a.clone(),
            json: Arc::from(wire("alert", body)),
        }
    }

    /// An `update` carrying `fields` of `a` (the whole alert stays in `HubMsg::alert`).
    fn update_msg(a: Arc<Alert>, fields: Fields) -> HubMsg {
        HubMsg {
            room: Arc::from(a.room.as_str()),
            seq: a.seq,
            kind: MsgKind::Update,
            json: Arc::from(delta::update(&a, fields)),
            alert: a,
        }
    }

    /// Applies `change` to alert `seq`; queues the write and the update message. With `defer`
    /// (a change from the pipeline) inside the alert's update slot, both wait for the slot.
    fn change(
        &mut self,
        seq: u64,
        now_ms: u64,
        change: Change,
        defer: bool,
        writes: &mut Vec<Write>,
        out: &mut Vec<Out>,
    ) -> Result<Arc<Alert>, Failed> {
        let cur = self.current(seq, writes).ok_or(Failed::NotFound)?;
        let mut draft = Alert::clone(&cur);
        if !change(&mut draft) {
            return Err(Failed::Refused);
        }
        draft.updated_ms = now_ms;
        draft.version = cur.version.saturating_add(1);
        self.track(&draft);
        // What waited for the slot is written with this version, as one row.
        let held = self.deferred.remove(&seq);
        if defer && self.in_slot(seq, Instant::now()) {
            let new = Arc::new(draft);
            self.hot.insert(new.clone());
            let fields = delta::changed(&cur, &new);
            let waiting = self.pending.remove(&seq).map_or(Fields::NONE, |(_, f)| f);
            self.pending.insert(seq, (new.clone(), waiting | fields));
            let prev = held.map_or(cur, |d| d.prev);
            self.deferred.insert(
                seq,
                Deferred {
                    alert: new.clone(),
                    prev,
                },
            );
            return Ok(new);
        }
        let body = draft.fit_body();
        let new = Arc::new(draft);
        self.hot.insert(new.clone());
        let w = Write::new(new.clone(), body, Some(held.map_or(cur, |d| d.prev)));
        out.push(Out::Update(new.clone(), w.changed));
        writes.push(w);
        Ok(new)
    }

    /// The writes of the versions that waited for their slot: those of alerts whose slot
    /// has come (`due`), or all.
    fn take_deferred(&mut self, due: Option<Instant>) -> Vec<Write> {
        let seqs: Vec<u64> = match due {
            None => self.deferred.keys().copied().collect(),
            Some(now) => self
                .deferred
                .keys()
                .copied()
                .filter(|&seq| !self.in_slot(seq, now))
                .collect(),
        };
        let mut writes = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let Some(d) = self.deferred.remove(&seq) else {
                continue;
            };
            let mut alert = d.alert;
            let mut body = serde_json::to_string(&*alert).unwrap_or_default();
            if body.len() > super::record::MAX_ALERT_BYTES {
                // Cut down as every written version is; the message waiting carries the same.
                let mut fit = Alert::clone(&alert);
                body = fit.fit_body();
                alert = Arc::new(fit);
                self.hot.insert(alert.clone());
                if let Some(p) = self.pending.get_mut(&seq) {
                    p.0 = alert.clone();
                }
            }
            writes.push(Write::new(alert, body, Some(d.prev)));
        }
        writes
    }

    fn process(&mut self, batch: Vec<Cmd>) {
        let mut writes: Vec<Write> = Vec::with_capacity(batch.len());
        let mut out = Vec::with_capacity(batch.len());
        let mut top_seq = 0;
        let mut tick = None;
        for cmd in batch {
            match cmd {
                Cmd::Publish(a) => {
                    let mut a = *a;
                    let body = a.fit_body();
                    let a = Arc::new(a);
                    top_seq = top_seq.max(a.seq);
                    for m in &a.msg_ids {
                        self.msg_index.insert(m, a.seq);
                    }
                    self.track(&a);
                    self.hot.insert(a.clone());
                    out.push(Out::Msg(Self::alert_msg(&a, &body)));
                    writes.push(Write::new(a, body, None));
                }
                Cmd::Update {
                    seq,
                    now_ms,
                    change,
                    msg_id,
                    reply,
                } => match (
                    self.change(seq, now_ms, change, reply.is_none(), &mut writes, &mut out),
                    reply,
                ) {
                    (Ok(a), Some(r)) => out.push(Out::Reply(r, a)),
                    (Err(e), Some(r)) => {
                        let _ = r.send(Err(e));
                    }
                    (Ok(a), None) => {
                        if let Some(m) = msg_id {
                            self.msg_index.insert(&m, a.seq);
                        }
                    }
                    (Err(e), None) => tracing::debug!(seq, ?e, "update not applied"),
                },
                Cmd::Retract {
                    room,
                    msg_ids,
                    user_ids,
                    now_ms,
                } => {
                    let mut seqs: Vec<u64> = self
                        .hot
                        .map
                        .values()
                        .map(|(a, _)| a)
                        .filter(|a| !a.retracted)
                        .filter(|a| {
                            // Message ids are unique on the platform: they match in any room,
                            // so a deletion naming its room still finds an alert filed under
                            // the source's room (a chat shape that carried none).
                            a.msg_ids.iter().any(|m| msg_ids.contains(m))
                                || (room.as_deref().is_none_or(|r| r == a.room)
                                    && (user_ids.contains(&a.user.id)
                                        || (a.kind != super::record::AlertKind::Brigade
                                            && a.users.iter().any(|u| user_ids.contains(u)))))
                        })
                        .map(|a| a.seq)
                        .collect();
                    // Ids past an alert's sample, or of an alert no longer in memory.
                    for m in &msg_ids {
                        if let Some(seq) = self.msg_index.get(m) {
                            if !seqs.contains(&seq) {
                                seqs.push(seq);
                            }
                        }
                    }
                    for seq in seqs {
                        let done = self.change(
                            seq,
                            now_ms,
                            // Found by id and by user at once: retracted once.
                            Box::new(|a| !std::mem::replace(&mut a.retracted, true)),
                            false,
                            &mut writes,
                            &mut out,
                        );
                        if done.is_ok() {
                            self.shared.metrics.retracted.inc();
                        }
                    }
                }
                Cmd::Tick(now) => {
                    self.remind(now, &mut writes, &mut out);
                    tick = Some(now);
                }
                Cmd::Flush(tx) => out.push(Out::Flushed(tx)),
            }
        }
        // Versions whose slot came go with this commit (their messages right after it).
        writes.extend(self.take_deferred(Some(Instant::now())));
        self.commit(&writes);
        if top_seq > 0 {
            self.shared.committed.fetch_max(top_seq, Ordering::SeqCst);
        }
        let now = Instant::now();
        for o in out {
            match o {
                Out::Msg(m) => self.emit(m, now),
                Out::Update(a, fields) => self.emit_update(a, fields, now),
                Out::Reply(r, a) => {
                    let _ = r.send(Ok(a));
                }
                Out::Flushed(r) => {
                    // "Sent out" includes the updates waiting for their slot.
                    self.send_pending();
                    let _ = r.send(());
                }
            }
        }
        if let Some(now) = tick {
            self.prune(now);
        }
    }

    /// Whether a message about `seq` went out less than [`UPDATE_EVERY`] before `now`.
    fn in_slot(&self, seq: u64, now: Instant) -> bool {
        self.sent
            .get(&seq)
            .is_some_and(|t| now.duration_since(*t) < UPDATE_EVERY)
    }

    /// Notes that a message about `seq` went out at `now` (its update slot starts).
    fn mark_sent(&mut self, seq: u64, now: Instant) {
        self.sent.insert(seq, now);
        self.sent_order.push_back((now, seq));
    }

    /// Sends a new alert or a reminder.
    fn emit(&mut self, m: HubMsg, now: Instant) {
        match m.kind {
            MsgKind::Alert | MsgKind::Update => self.mark_sent(m.seq, now),
            MsgKind::Reminder => {
                // The version the reminder is about goes first (unless a later one waits
                // for its write: then the slot sends it).
                let waiting = if self.deferred.contains_key(&m.seq) {
                    None
                } else {
                    self.pending.remove(&m.seq)
                };
                if let Some((a, fields)) = waiting {
                    self.mark_sent(m.seq, now);
                    let _ = self.shared.tx.send(Arc::new(Self::update_msg(a, fields)));
                }
            }
        }
        let _ = self.shared.tx.send(Arc::new(m));
    }

    /// Sends version `a` (which changed `fields`) now, or keeps it as its alert's latest until
    /// the alert's next slot; either way the message carries every field changed since the
    /// last update sent.
    fn emit_update(&mut self, a: Arc<Alert>, fields: Fields, now: Instant) {
        let seq = a.seq;
        let (a, waiting) = match self.pending.remove(&seq) {
            // A later version waits already (deferred in the same batch): it goes out.
            Some((p, f)) if p.version > a.version => (p, f),
            Some((_, f)) => (a, f),
            None => (a, Fields::NONE),
        };
        // Inside the slot, or a later version not yet written (its slot may have passed
        // since the batch's commit took what was due): it waits for `send_due`.
        if self.deferred.contains_key(&seq) || self.in_slot(seq, now) {
            self.pending.insert(seq, (a, waiting | fields));
            return;
        }
        self.mark_sent(seq, now);
        let _ = self
            .shared
            .tx
            .send(Arc::new(Self::update_msg(a, waiting | fields)));
    }

    /// Sends the updates whose slot has come; returns how long until the next one is due.
    fn send_due(&mut self) -> Option<Duration> {
        let now = Instant::now();
        // Forget slots that have passed (an alert with an update waiting keeps its time).
        while let Some(&(t, seq)) = self.sent_order.front() {
            if now.duration_since(t) < UPDATE_EVERY {
                break;
            }
            self.sent_order.pop_front();
            if self.sent.get(&seq) == Some(&t) && !self.pending.contains_key(&seq) {
                self.sent.remove(&seq);
            }
        }
        if self.pending.is_empty() {
            return None;
        }
        let mut next: Option<Duration> = None;
        let mut due = Vec::new();
        for seq in self.pending.keys() {
            let left = self.sent.get(seq).map_or(Duration::ZERO, |t| {
                UPDATE_EVERY.saturating_sub(now.duration_since(*t))
            });
            if left.is_zero() {
                due.push(*seq);
            } else {
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        due.sort_unstable();
        for seq in due {
            // Nothing goes out before it is written: the next batch's commit takes it (or,
            // when none comes within a millisecond, a commit of its own; see `run`).
            if self.deferred.contains_key(&seq) {
                next = Some(Duration::ZERO);
                continue;
            }
            if let Some((a, fields)) = self.pending.remove(&seq) {
                self.mark_sent(seq, now);
                let _ = self.shared.tx.send(Arc::new(Self::update_msg(a, fields)));
            }
        }
        next.map(|d| d.max(Duration::from_millis(1)))
    }

    /// Sends every waiting update now (a flush, shutdown).
    fn send_pending(&mut self) {
        let writes = self.take_deferred(None);
        self.commit(&writes);
        let now = Instant::now();
        let mut waiting: Vec<(Arc<Alert>, Fields)> = self.pending.drain().map(|(_, p)| p).collect();
        waiting.sort_by_key(|(a, _)| a.seq);
        for (a, fields) in waiting {
            self.mark_sent(a.seq, now);
            let _ = self.shared.tx.send(Arc::new(Self::update_msg(a, fields)));
        }
    }

    /// Writes the batch in one transaction, retrying until it commits: an alert is announced
    /// only once it is on disk, and the workers wait (queue full) while the disk fails.
    fn commit(&mut self, writes: &[Write]) {
        if writes.is_empty() {
            return;
        }
        let mut wait = Duration::from_millis(50);
        let top = writes.iter().map(|w| w.alert.seq).max().unwrap_or(0);
        loop {
            let started = Instant::now();
            // Slices whose turn came (those with nothing held just move their mark).
            let due: Vec<usize> = (0..super::rooms::SLICES)
                .filter(|&s| started >= self.slice_due[s])
                .collect();
            let mut marks = self.marks;
            for &s in &due {
                marks.0[s] = marks.0[s].max(self.committed_top);
            }
            let pass = RoomPass {
                marks,
                slices: due.iter().map(|&s| (s, self.held[s].as_slice())).collect(),
                through: self.committed_top,
            };
            match write_batch(&mut self.conn, writes, &pass) {
                Ok(held) => {
                    self.marks = marks;
                    for &s in &due {
                        self.held[s].clear();
                        self.slice_due[s] = started + ROOM_PASS_EVERY;
                    }
                    for (room, seq) in held {
                        self.held[super::rooms::slice(&room)].push((room, seq));
                    }
                    self.committed_top = self.committed_top.max(top);
                    let m = &self.shared.metrics;
                    m.store_commits.inc();
                    m.store_writes.inc_by(writes.len() as u64);
                    m.store_commit_seconds.observe(started.elapsed().as_secs_f64());
                    let mut failure = self
                        .shared
                        .store_failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if failure.take().is_some() {
                        tracing::info!("the state database commits again");
                    }
                    return;
                }
                Err(e) => {
                    self.shared.metrics.store_errors.inc();
                    {
                        let mut failure = self
                            .shared
                            .store_failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        let since_ms = failure.as_ref().map_or_else(
                            || crate::clock::Clock::now_ms(&crate::clock::SystemClock),
                            |f| f.since_ms,
                        );
                        *failure = Some(crate::health::StoreFailure {
                            since_ms,
                            error: e.to_string(),
                        });
                    }
                    tracing::error!(error = %e, alerts = writes.len(), retry_in_ms = wait.as_millis() as u64, "cannot commit alerts; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Sends the reminders due at `now` and records them (an overdue one is a breach).
    fn remind(&mut self, now: u64, writes: &mut Vec<Write>, out: &mut Vec<Out>) {
        let due: Vec<u64> = self
            .schedule
            .iter()
            .filter(|&(_, &next)| next <= now)
            .map(|(&s, _)| s)
            .collect();
        for seq in due {
            let Some(cur) = self.current(seq, writes) else {
                self.schedule.remove(&seq);
                continue;
            };
            let reminders = match &cur.ticket {
                Some(t) => t.due_reminders(now, self.tickets.for_room(&cur.room)),
                None => Vec::new(),
            };
            if reminders.is_empty() {
                self.track(&cur);
                continue;
            }
            let sent = reminders.clone();
            let applied = self.change(
                seq,
                now,
                Box::new(move |a| {
                    if let Some(t) = &mut a.ticket {
                        t.reminders.extend(sent);
                    }
                    true
                }),
                false,
                writes,
                out,
            );
            if let Ok(a) = applied {
                for r in &reminders {
                    self.shared.metrics.reminder(r.stage.as_str());
                    if r.stage == Stage::Overdue {
                        tracing::warn!(seq, room = %crate::logsafe::Esc(&a.room), user = %crate::logsafe::Esc(&a.user.id), due = r.due.as_str(), "ticket deadline breached");
                    }
                    out.push(Out::Msg(reminder_msg(&a, r)));
                }
            }
        }
    }

    /// Once an hour: deletes closed history older than the retention.
    fn prune(&mut self, now: u64) {
        let Some(keep) = self.retention_ms else { return };
        if now.saturating_sub(self.last_prune_ms) < 3_600_000 {
            return;
        }
        self.last_prune_ms = now;
        match super::prune(&mut self.conn, now.saturating_sub(keep)) {
            Ok(0) => {}
            Ok(n) => {
                self.shared.metrics.store_pruned.inc_by(n as u64);
                tracing::info!(alerts = n, "pruned history past retention");
            }
            Err(e) => tracing::error!(error = %e, "cannot prune history"),
        }
    }
}

/// `{"type":"reminder", …}` for a ticket's reminder.
fn reminder_msg(a: &Arc<Alert>, r: &Reminder) -> HubMsg {
    let json = serde_json::json!({
        "type": "reminder",
        "seq": a.seq,
        "room": a.room,
        "user": a.user.display(),
        "topic": a.verdict.topic,
        "lang": a.verdict.lang,
        "due": r.due,
        "stage": r.stage,
        "due_ms": r.due_ms,
        "at_ms": r.at_ms,
    });
    HubMsg {
        room: Arc::from(a.room.as_str()),
        seq: a.seq,
        kind: MsgKind::Reminder,
        alert: a.clone(),
        json: Arc::from(json.to_string()),
    }
}

/// Writes `writes` in one transaction. Several versions of one alert in the batch are
/// written as one row, the last version (with the rows added since the version before the
/// first): a burst of repeats costs one row write, not one per repeat. Each version after
/// the first is also a small row of the fields it changed.
pub fn write_batch(
    conn: &mut Connection,
    writes: &[Write],
    rooms: &RoomPass<'_>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut slot: HashMap<u64, usize> = HashMap::with_capacity(writes.len());
    let mut merged: Vec<(&Alert, &str, Option<&Alert>)> = Vec::with_capacity(writes.len());
    for w in writes {
        match slot.get(&w.alert.seq) {
            Some(&i) => {
                merged[i].0 = &w.alert;
                merged[i].1 = &w.body;
            }
            None => {
                slot.insert(w.alert.seq, merged.len());
                merged.push((&w.alert, &w.body, w.prev.as_deref()));
            }
        }
    }
    let tx = conn.transaction()?;
    let mut held = Vec::new();
    for (a, body, prev) in merged {
        if super::write_alert(&tx, a, body, prev, &rooms.marks)? {
            held.push((a.room.clone(), a.seq));
        }
    }
    for w in writes.iter().filter(|w| w.prev.is_some()) {
        super::write_version(&tx, &w.alert, &delta::row(&w.alert, w.changed))?;
    }
    for (s, entries) in &rooms.slices {
        super::rooms::index(&tx, *s, entries, rooms.through)?;
    }
    tx.commit()?;
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Verdict;
    use crate::ingest::User;
    use crate::store::record::{ActionRecord, AlertKind};
    use crate::taxonomy::{Action, Class, Lang, Topic};

    fn action(n: u64) -> ActionRecord {
        ActionRecord {
            action: "send_script".into(),
            by: format!("fm{n}"),
            at_ms: n,
            script: Some("s".into()),
            choice: None,
        }
    }

    /// A defect complaint in room `r` (sequence number 0).
    fn complaint() -> Alert {
        let v = Verdict {
            class: Class::Complaint,
            topic: Some(Topic::Defect),
            score: 0.9,
            evidence: vec![],
            action: Action::InviteCostream,
            script: None,
            lang: Lang::Zh,
            purchase: true,
            source: Default::default(),
        };
        Alert::new(AlertKind::Comment, "r".into(), User::default(), "t".into(), v, 1)
    }

    #[test]
    fn versions_of_one_alert_in_a_batch_are_written_once_with_every_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = super::super::open_writer(&dir.path().join("w.db"), super::super::Durability::Normal)
            .expect("opens");
        let mut a = complaint();
        a.seq = 7;
        let v1 = Arc::new(a.clone());
        a.version = 2;
        a.count = 2;
        a.actions.push(action(1));
        let v2 = Arc::new(a.clone());
        a.version = 3;
        a.count = 3;
        a.actions.push(action(2));
        let v3 = Arc::new(a);
        let w =
            |x: &Arc<Alert>, p: Option<&Arc<Alert>>| Write::new(x.clone(), super::super::body(x), p.cloned());
        write_batch(
            &mut conn,
            &[w(&v1, None), w(&v2, Some(&v1)), w(&v3, Some(&v2))],
            &RoomPass::none(crate::store::rooms::Marks::all()),
        )
        .expect("writes");
        let stored = super::super::get(&conn, 7).expect("reads").expect("stored");
        assert_eq!(stored.count, 3);
        let actions: i64 = conn
            .query_row("SELECT count(*) FROM actions WHERE seq = 7", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            actions, 2,
            "both actions, though only the last version was written"
        );
        let versions: Vec<(i64, String)> = conn
            .prepare("SELECT version, fields FROM alert_versions WHERE seq = 7 ORDER BY id")
            .expect("prepares")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("reads")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(versions.len(), 2, "one small row per version after the first");
        assert_eq!(versions[1].0, 3);
        let fields: serde_json::Value = serde_json::from_str(&versions[1].1).expect("JSON");
        assert_eq!(fields["count"], 3);
        assert_eq!(fields["actions"].as_array().map(Vec::len), Some(2));
        assert!(fields.get("text").is_none(), "only what changed: {fields}");
    }

    #[test]
    fn a_later_version_updates_the_row_and_the_ticket_row_only_when_the_ticket_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = super::super::open_writer(&dir.path().join("w.db"), super::super::Durability::Normal)
            .expect("opens");
        let mut a = complaint();
        a.seq = 3;
        a.ticket = Some(crate::tickets::Ticket::open(
            1,
            &crate::tickets::Deadlines::default(),
        ));
        let v1 = Arc::new(a.clone());
        let w =
            |x: &Arc<Alert>, p: Option<&Arc<Alert>>| Write::new(x.clone(), super::super::body(x), p.cloned());
        write_batch(
            &mut conn,
            &[w(&v1, None)],
            &RoomPass::none(crate::store::rooms::Marks::all()),
        )
        .expect("writes");
        // Marks the ticket row: a version that does not change the ticket leaves the mark.
        conn.execute("UPDATE tickets SET product = 'mark' WHERE seq = 3", [])
            .expect("marks");
        a.version = 2;
        a.count = 2;
        let v2 = Arc::new(a.clone());
        write_batch(
            &mut conn,
            &[w(&v2, Some(&v1))],
            &RoomPass::none(crate::store::rooms::Marks::all()),
        )
        .expect("writes");
        let product = |conn: &Connection| -> Option<String> {
            conn.query_row("SELECT product FROM tickets WHERE seq = 3", [], |r| r.get(0))
                .expect("ticket row")
        };
        assert_eq!(
            product(&conn).as_deref(),
            Some("mark"),
            "ticket row not rewritten"
        );
        let (count, body): (i64, String) = conn
            .query_row("SELECT count, body FROM alerts WHERE seq = 3", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("alert row");
        assert_eq!(count, 2);
        assert!(body.contains(r#""version":2"#), "{body}");
        a.version = 3;
        if let Some(t) = &mut a.ticket {
            t.respond(5);
        }
        let v3 = Arc::new(a);
        write_batch(
            &mut conn,
            &[w(&v3, Some(&v2))],
            &RoomPass::none(crate::store::rooms::Marks::all()),
        )
        .expect("writes");
        assert_eq!(product(&conn), None, "a changed ticket is written");
        let status: String = conn
            .query_row("SELECT status FROM tickets WHERE seq = 3", [], |r| r.get(0))
            .expect("ticket row");
        assert_eq!(status, "responding");
    }
}
