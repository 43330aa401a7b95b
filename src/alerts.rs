//! Stage 6, alerts: a classified comment worth attention becomes an [`Alert`]; the [`Hub`]
//! gives it a monotonic sequence number, keeps the recent ones in a ring for replay
//! (`since=SEQ`), and fans it out to subscribers over a bounded broadcast. Each alert is
//! serialized once, whatever the number of subscribers. Updates (a repeat counted, a brigade
//! grown, a platform deletion) go out as `update` messages with the same sequence number.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::classify::Verdict;
use crate::ingest::User;

/// What produced an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
        }
    }
}

/// Where an alert stands with the floor manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// One thing a floor manager did with an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// `invite`, `send_script`, `mute` or `dismiss`.
    pub action: String,
    /// Who (the console's operator name).
    pub by: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// The script used (send_script), as edited.
    pub script: Option<String>,
    /// Which script: `refund` (方案A), `exchange` (方案B), `explain`, `private`, `suggested`.
    pub choice: Option<String>,
}

/// What the floor manager sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Monotonic sequence number (set by the hub).
    pub seq: u64,
    /// What produced it.
    pub kind: AlertKind,
    /// Room id.
    pub room: String,
    /// The (first) writer.
    pub user: User,
    /// Every distinct user id involved (brigades, merged repeats).
    pub users: Vec<String>,
    /// Platform message ids involved (for deletions).
    pub msg_ids: Vec<String>,
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
            kind,
            room,
            users: vec![user.id.clone()],
            user,
            msg_ids: Vec::new(),
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
        }
    }
}

/// One message on the alert socket, serialized once.
#[derive(Debug)]
pub struct HubMsg {
    /// Room, for per-subscriber filtering.
    pub room: Arc<str>,
    /// Sequence number of the alert.
    pub seq: u64,
    /// An update of an alert sent before (same `seq`).
    pub update: bool,
    /// The alert as sent.
    pub alert: Arc<Alert>,
    /// `{"type":"alert"|"update", …alert}`.
    pub json: Arc<str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire<'a> {
    Alert(&'a Alert),
    Update(&'a Alert),
}

/// Serializes an alert as an `alert` message (for replay).
pub fn alert_json(a: &Alert) -> String {
    serde_json::to_string(&Wire::Alert(a)).unwrap_or_default()
}

struct Ring {
    next_seq: u64,
    alerts: VecDeque<Arc<Alert>>,
}

/// Why [`Hub::try_update`] changed nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TryUpdate<E> {
    /// No such alert in memory (never published, or evicted from the ring).
    NotFound,
    /// The change refused itself.
    Refused(E),
}

/// Sequence numbers, the replay ring and the fan-out.
///
/// A `std::sync::Mutex` guards the ring: every section is short and never awaits.
pub struct Hub {
    ring: Mutex<Ring>,
    cap: usize,
    tx: broadcast::Sender<Arc<HubMsg>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub keeping `ring_cap` recent alerts for replay and buffering `fanout_cap` messages
    /// per subscriber before a slow one is told it lagged.
    pub fn new(ring_cap: usize, fanout_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(fanout_cap.max(1));
        Self {
            ring: Mutex::new(Ring {
                next_seq: 1,
                alerts: VecDeque::with_capacity(ring_cap.min(1 << 16)),
            }),
            cap: ring_cap.max(1),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent (every section
        // is a push, a pop or a replace), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives `alert` the next sequence number, keeps it for replay and sends it out.
    pub fn publish(&self, mut alert: Alert) -> u64 {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        alert.seq = seq;
        let json: Arc<str> = Arc::from(serde_json::to_string(&Wire::Alert(&alert)).unwrap_or_default());
        let room: Arc<str> = Arc::from(alert.room.as_str());
        let alert = Arc::new(alert);
        ring.alerts.push_back(alert.clone());
        while ring.alerts.len() > self.cap {
            ring.alerts.pop_front();
        }
        // Sent under the lock so subscribers see sequence numbers in order.
        let _ = self.tx.send(Arc::new(HubMsg {
            room,
            seq,
            update: false,
            alert,
            json,
        }));
        seq
    }

    /// Changes alert `seq` (if still in the ring) and sends an `update`.
    pub fn update(&self, seq: u64, now_ms: u64, change: impl FnOnce(&mut Alert)) -> bool {
        self.try_update::<std::convert::Infallible>(seq, now_ms, |a| {
            change(a);
            Ok(())
        })
        .is_ok()
    }

    /// Changes alert `seq` only if `change` accepts it (it sees the alert under the hub's lock,
    /// so two consoles acting at once cannot both pass a check); sends an `update` on success.
    pub fn try_update<E>(
        &self,
        seq: u64,
        now_ms: u64,
        change: impl FnOnce(&mut Alert) -> Result<(), E>,
    ) -> Result<Arc<Alert>, TryUpdate<E>> {
        let mut ring = self.lock();
        let first = ring.alerts.front().map(|a| a.seq).ok_or(TryUpdate::NotFound)?;
        let idx = seq.checked_sub(first).ok_or(TryUpdate::NotFound)? as usize;
        let slot = ring.alerts.get_mut(idx).ok_or(TryUpdate::NotFound)?;
        let mut draft = Alert::clone(slot);
        change(&mut draft).map_err(TryUpdate::Refused)?;
        draft.updated_ms = now_ms;
        let json: Arc<str> = Arc::from(serde_json::to_string(&Wire::Update(&draft)).unwrap_or_default());
        let room: Arc<str> = Arc::from(draft.room.as_str());
        let updated = Arc::new(draft);
        *slot = updated.clone();
        let _ = self.tx.send(Arc::new(HubMsg {
            room,
            seq,
            update: true,
            alert: updated.clone(),
            json,
        }));
        Ok(updated)
    }

    /// Marks retracted every alert in the ring that involves one of `msg_ids`, or any user of
    /// `user_ids` (in `room`, when given). Returns how many were retracted.
    pub fn retract(&self, room: Option<&str>, msg_ids: &[String], user_ids: &[String], now_ms: u64) -> usize {
        let seqs: Vec<u64> = self
            .lock()
            .alerts
            .iter()
            .filter(|a| !a.retracted && room.is_none_or(|r| r == a.room))
            .filter(|a| {
                a.msg_ids.iter().any(|m| msg_ids.contains(m))
                    || user_ids.contains(&a.user.id)
                    || (a.kind != AlertKind::Brigade && a.users.iter().any(|u| user_ids.contains(u)))
            })
            .map(|a| a.seq)
            .collect();
        seqs.iter()
            .filter(|&&s| self.update(s, now_ms, |a| a.retracted = true))
            .count()
    }

    /// Alerts after `since` (in `room`, when given), oldest first, as kept in the ring.
    pub fn since(&self, since: u64, room: Option<&str>) -> Vec<Arc<Alert>> {
        self.lock()
            .alerts
            .iter()
            .filter(|a| a.seq > since && room.is_none_or(|r| r == a.room))
            .cloned()
            .collect()
    }

    /// The newest `limit` alerts (in `room`, when given), newest first.
    pub fn recent(&self, limit: usize, room: Option<&str>) -> Vec<Arc<Alert>> {
        self.lock()
            .alerts
            .iter()
            .rev()
            .filter(|a| room.is_none_or(|r| r == a.room))
            .take(limit)
            .cloned()
            .collect()
    }

    /// One alert by sequence number, if still in the ring.
    pub fn get(&self, seq: u64) -> Option<Arc<Alert>> {
        let ring = self.lock();
        let first = ring.alerts.front()?.seq;
        ring.alerts.get(seq.checked_sub(first)? as usize).cloned()
    }

    /// The last sequence number handed out (0 before the first alert).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// A receiver of every message published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubMsg>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::{Action, Class, Lang, Topic};

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
    fn sequence_replay_update_retract() {
        let hub = Hub::new(3, 16);
        let mut rx = hub.subscribe();
        for i in 0..4 {
            hub.publish(alert(if i % 2 == 0 { "a" } else { "b" }, &format!("m{i}")));
        }
        assert_eq!(hub.last_seq(), 4);
        let seqs: Vec<u64> = hub.since(0, None).iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [2, 3, 4], "the ring keeps the newest three");
        let room_a: Vec<u64> = hub.since(2, Some("a")).iter().map(|a| a.seq).collect();
        assert_eq!(room_a, [3]);
        assert!(hub.update(3, 9, |a| a.count = 5));
        assert_eq!(hub.get(3).map(|a| a.count), Some(5));
        assert!(
            !hub.update(1, 9, |a| a.count = 5),
            "evicted alerts cannot be updated"
        );
        assert_eq!(hub.retract(Some("b"), &["m3".into()], &[], 10), 1);
        assert_eq!(hub.get(4).map(|a| a.retracted), Some(true));
        let first = rx.try_recv().expect("published");
        assert_eq!(first.seq, 1);
        assert!(
            first.json.starts_with(r#"{"type":"alert","seq":1"#),
            "{}",
            first.json
        );
    }
}
