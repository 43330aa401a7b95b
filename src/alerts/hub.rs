//! The alert hub: gives each new alert the next sequence number (and a complaint its
//! [`Ticket`]), queues alerts and changes to the store's writer, which commits them to SQLite
//! and only then fans them out over a bounded broadcast (each message serialized once). Updates
//! (a repeat counted, a brigade grown, a deletion, a console action, a reminder) take the same
//! path, in order, as `update` messages with the same sequence number. Nothing here waits on
//! a thread: workers await [`Hub::drain`] between comments, handlers get a refusal.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::store::handle::{Busy, Store};
use crate::store::record::{room_user_key, Alert, HubMsg};
use crate::store::writer::{Cmd, Failed};
use crate::store::{StoreConfig, StoreError};
use crate::tickets::{Ticket, TicketConfig};

/// A console waits at most this long for its change to be committed before it is told the
/// store is unavailable (the disk is failing; the change still lands when it recovers).
pub const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// Why [`Hub::try_update`] changed nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TryUpdate<E> {
    /// No such alert (never published, or pruned).
    NotFound,
    /// The change refused itself.
    Refused(E),
    /// The store cannot take it now (its queue is full, commits fail, or it is closing).
    Unavailable(String),
}

/// Sequence numbers, tickets, and the way into the store and the fan-out.
#[derive(Debug)]
pub struct Hub {
    store: Store,
    tickets: TicketConfig,
    /// With a bus only: alert ids already here (published, or imported from the alert stream),
    /// so a comment delivered again after a takeover does not raise its alert twice.
    known: std::sync::OnceLock<KnownIds>,
}

/// Alert ids to local sequence numbers, the newest [`KNOWN_IDS_CAP`] kept (redeliveries come
/// within minutes of the first delivery).
#[derive(Debug, Default)]
pub struct KnownIds {
    inner: Mutex<(
        std::collections::HashMap<String, u64>,
        std::collections::VecDeque<String>,
    )>,
}

/// Alert ids remembered for redeliveries (about 60 bytes each).
pub const KNOWN_IDS_CAP: usize = 262_144;

impl KnownIds {
    /// An index holding `ids`.
    pub fn new(ids: impl IntoIterator<Item = (String, u64)>) -> Self {
        let k = Self::default();
        for (id, seq) in ids {
            k.insert(id, seq);
        }
        k
    }

    fn get(&self, id: &str) -> Option<u64> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(id)
            .copied()
    }

    fn insert(&self, id: String, seq: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        if map.insert(id.clone(), seq).is_none() {
            order.push_back(id);
        }
        while map.len() > KNOWN_IDS_CAP {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }
}

impl Hub {
    /// Opens the store (see [`Store::open`]). Blocking.
    pub fn open(
        store: &StoreConfig,
        tickets: TicketConfig,
        fanout_cap: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, StoreError> {
        let store = Store::open(store, tickets.clone(), fanout_cap, metrics)?;
        Ok(Arc::new(Self {
            store,
            tickets,
            known: std::sync::OnceLock::new(),
        }))
    }

    /// From now on, an alert whose id is in `ids` (or was published since) is not published
    /// again: [`Hub::publish`] returns the sequence number it has. Set once, by the bus.
    pub fn dedupe_ids(&self, ids: KnownIds) {
        let _ = self.known.set(ids);
    }

    /// Applies a version of an alert owned elsewhere (a gateway's mirror): a new id is
    /// published with the next local number, a known one replaced when `incoming` is newer.
    pub fn mirror(&self, incoming: Alert) {
        let Some(seq) = self.known_seq(&incoming.id) else {
            self.publish(incoming);
            return;
        };
        let at = incoming.updated_ms;
        self.update_if(seq, at, move |a| {
            if incoming.version <= a.version {
                return false;
            }
            *a = incoming;
            a.seq = seq;
            // The writer counts one version per change: land on the owner's number.
            a.version = a.version.saturating_sub(1);
            true
        });
    }

    /// The local sequence number of alert `id`, when ids are tracked and it is known.
    pub fn known_seq(&self, id: &str) -> Option<u64> {
        self.known.get()?.get(id)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The store underneath (reads, failure state).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn ticketed(&self, mut alert: Alert) -> Alert {
        if alert.id.is_empty() {
            alert.id = alert.derive_id();
        }
        if alert.wants_ticket() && alert.ticket.is_none() {
            alert.ticket = Some(Ticket::open(
                alert.classified_ms,
                self.tickets.for_room(&alert.room),
            ));
        }
        alert
    }

    fn numbered(&self, next: &mut u64, mut alert: Alert) -> Cmd {
        alert.seq = *next;
        *next += 1;
        if alert.ticket.is_some() {
            self.store
                .shared()
                .open_tickets
                .insert(room_user_key(&alert.room, &alert.user.id), alert.seq);
        }
        Cmd::Publish(Box::new(alert))
    }

    /// Gives `alert` the next sequence number (and a ticket, for a complaint) and queues it;
    /// subscribers hear of it once it is committed. Never waits (see [`Hub::drain`]).
    pub fn publish(&self, alert: Alert) -> u64 {
        let alert = self.ticketed(alert);
        if let Some(seq) = self.known_seq(&alert.id) {
            return seq;
        }
        let id = self.known.get().map(|_| alert.id.clone());
        let mut seq = 0;
        self.store.submit(|next| {
            seq = *next;
            self.numbered(next, alert)
        });
        if let (Some(k), Some(id)) = (self.known.get(), id) {
            k.insert(id, seq);
        }
        seq
    }

    /// Like [`Hub::publish`], for a request that must answer now: refused when the store's
    /// queue is full.
    pub fn try_publish(&self, alert: Alert) -> Result<u64, Busy> {
        let alert = self.ticketed(alert);
        if let Some(seq) = self.known_seq(&alert.id) {
            return Ok(seq);
        }
        let mut seq = 0;
        self.store.try_submit(|next| {
            seq = *next;
            self.numbered(next, alert)
        })?;
        Ok(seq)
    }

    /// Resolves once every change queued so far is in the writer's queue. Workers await it
    /// between comments: that is how they slow down while the disk is slow or full.
    pub async fn drain(&self) {
        self.store.drain().await;
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
        self.store.submit(|_| Cmd::Update {
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
        self.store.submit(|_| Cmd::Update {
            seq,
            now_ms,
            change: Box::new(change),
            msg_id: None,
            reply: None,
        });
    }

    /// Changes alert `seq` only if `change` accepts it (the writer applies changes one at a
    /// time, so two consoles acting at once cannot both pass a check). Resolves once the change
    /// is committed and sent out; refused at once when the store cannot take it, and given
    /// up after [`COMMIT_WAIT`] when commits fail.
    pub async fn try_update<E: Send + 'static>(
        &self,
        seq: u64,
        now_ms: u64,
        change: impl FnOnce(&mut Alert) -> Result<(), E> + Send + 'static,
    ) -> Result<Arc<Alert>, TryUpdate<E>> {
        if let Some(f) = self.store.failure() {
            return Err(TryUpdate::Unavailable(f.to_string()));
        }
        let refusal: Arc<Mutex<Option<E>>> = Arc::new(Mutex::new(None));
        let slot = refusal.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store
            .try_submit(|_| Cmd::Update {
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
            })
            .map_err(|b| TryUpdate::Unavailable(b.to_string()))?;
        let gone = || TryUpdate::Unavailable("the alert store is closing".to_string());
        match tokio::time::timeout(COMMIT_WAIT, rx).await {
            Ok(Ok(Ok(a))) => Ok(a),
            Ok(Ok(Err(Failed::NotFound))) => Err(TryUpdate::NotFound),
            Ok(Ok(Err(Failed::Refused))) => refusal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .map_or_else(|| Err(gone()), |e| Err(TryUpdate::Refused(e))),
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(TryUpdate::Unavailable(self.store.failure().map_or_else(
                || "the alert store did not commit in time; the change is queued".to_string(),
                |f| format!("{f}; the change is queued and lands when the store recovers"),
            ))),
        }
    }

    /// Marks retracted every recent alert that involves one of `msg_ids` (in any room: message
    /// ids are unique), or any user of `user_ids` (in `room`, when given).
    pub fn retract(&self, room: Option<String>, msg_ids: Vec<String>, user_ids: Vec<String>, now_ms: u64) {
        self.store.submit(|_| Cmd::Retract {
            room,
            msg_ids,
            user_ids,
            now_ms,
        });
    }

    /// Checks ticket deadlines as of `now_ms`: reminders go out, breaches are recorded.
    pub fn tick(&self, now_ms: u64) {
        self.store.submit(|_| Cmd::Tick(now_ms));
    }

    /// Resolves once everything queued before it is committed and sent out.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.store.submit(|_| Cmd::Flush(tx)) {
            self.store.drain().await;
            let _ = rx.await;
        }
    }

    /// Stops the writer after it has committed everything queued, and waits for it.
    /// Blocking: call it from a blocking context.
    pub fn close(&self) {
        self.store.close();
    }

    /// The active ticket of `user` in `room`, if any.
    pub fn open_ticket(&self, room: &str, user: &str) -> Option<u64> {
        self.store
            .shared()
            .open_tickets
            .get(&room_user_key(room, user))
            .map(|s| *s)
    }

    /// Runs `f` on the store's read connection. Blocking.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.store.read(f)
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
        self.store.failure()
    }

    /// The last sequence number committed and announced (0 before the first alert).
    pub fn last_seq(&self) -> u64 {
        self.store.shared().committed.load(Ordering::SeqCst)
    }

    /// A receiver of every message sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubMsg>> {
        self.store.shared().tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{test_alert as alert, MsgKind};

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

    /// A repeat or a brigade changes its alert at every comment: inside the alert's update
    /// slot those versions are written once, at the slot, and no message announces a version
    /// before it is written.
    #[tokio::test]
    async fn changes_inside_a_slot_are_written_once_and_never_announced_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = open(dir.path());
        let mut rx = hub.subscribe();
        let seq = hub.publish(alert("a", "m0"));
        hub.flush().await;
        for i in 0..200 {
            hub.update(seq, 10 + i, |a| a.count += 1);
            if i % 20 == 0 {
                // Several batches, not one.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        // Each message is readable from the store when it arrives.
        let mut seen = 0;
        while seen < 201 {
            let m = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("the last version comes within its slot")
                .expect("received");
            let stored = hub.get(seq).expect("reads").expect("stored");
            assert!(
                stored.version >= m.alert.version,
                "version {} announced, {} written",
                m.alert.version,
                stored.version
            );
            seen = m.alert.count;
        }
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).expect("opens");
        // The only alert here: every row is one of its versions.
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM alert_versions", [], |r| r.get(0))
            .expect("counts");
        assert!(rows <= 4, "{rows} version rows for 200 changes inside one slot");
        assert_eq!(hub.get(seq).expect("reads").map(|a| a.count), Some(201));
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

    /// Alerts by room come back whole and in order whether their `alert_rooms` entries are
    /// still held back (found by the scan above the mark), written by a slice's pass, or
    /// written at start-up after a stop.
    #[tokio::test]
    async fn alerts_by_room_are_found_before_and_after_their_room_entries_are_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rooms: Vec<String> = (0..40).map(|r| format!("room-{r}")).collect();
        let ids = |hub: &Hub, room: &str, after: u64, limit: usize| -> Vec<u64> {
            hub.since(after, Some(room), limit)
                .expect("reads")
                .iter()
                .map(|r| r.0)
                .collect()
        };
        let newest = |hub: &Hub, room: &str, limit: usize| -> Vec<u64> {
            hub.recent(limit, Some(room))
                .expect("reads")
                .iter()
                .map(|r| r.0)
                .collect()
        };
        let entries = |dir: &std::path::Path| -> i64 {
            let c = rusqlite::Connection::open(dir.join("t.db")).expect("opens");
            c.query_row("SELECT count(*) FROM alert_rooms", [], |r| r.get(0))
                .expect("counts")
        };
        let hub = open(dir.path());
        // Seqs 1..=40 one per room, then 41..=80 again.
        for round in 0..2 {
            for r in &rooms {
                hub.publish(alert(r, &format!("{r}-{round}")));
            }
        }
        hub.flush().await;
        assert_eq!(entries(dir.path()), 0, "held back: no slice's turn yet");
        assert_eq!(ids(&hub, "room-3", 0, 10), [4, 44]);
        assert_eq!(newest(&hub, "room-3", 1), [44]);
        // Every slice's turn comes within a second; the next commits write their entries.
        tokio::time::sleep(crate::store::writer::ROOM_PASS_EVERY + std::time::Duration::from_millis(100))
            .await;
        hub.publish(alert("room-3", "late"));
        hub.flush().await;
        assert_eq!(
            entries(dir.path()),
            80,
            "every alert committed before the pass has its entry"
        );
        // 81 is above its slice's mark: the scan finds it, the entries the rest.
        assert_eq!(ids(&hub, "room-3", 0, 10), [4, 44, 81]);
        assert_eq!(ids(&hub, "room-3", 4, 1), [44], "after a seq, with a limit");
        assert_eq!(
            newest(&hub, "room-3", 2),
            [81, 44],
            "newest first, across both parts"
        );
        assert_eq!(ids(&hub, "room-39", 0, 10), [40, 80]);
        assert!(ids(&hub, "room-x", 0, 10).is_empty());
        hub.close();
        drop(hub);

        let hub = open(dir.path());
        assert_eq!(
            entries(dir.path()),
            81,
            "a restart writes what the last run held back"
        );
        assert_eq!(ids(&hub, "room-3", 0, 10), [4, 44, 81]);
        hub.close();
    }
}
