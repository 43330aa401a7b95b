//! What the store keeps: an [`Alert`] (a classified comment worth attention, or a signal
//! about a room or a user) with its kind, status, console actions and ticket, and the
//! [`HubMsg`] the writer sends out once a version of it is committed. Bounded by design: a
//! brigade keeps a sample of users and ids with totals, and a body fits in 16 KB.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::classify::Verdict;
use crate::ingest::User;
use crate::taxonomy::Class;
use crate::tickets::Ticket;

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
    /// version it brings a client to; `id` and `version` name one version on the alert stream
    /// (`Nats-Msg-Id`), and the highest version wins on a rebuild.
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
    /// Stable id derived from what raised the alert ([`Alert::derive_id`]), not from a local
    /// counter: every instance that handles the same comment gives its alert the same id, so
    /// the alert stream and a takeover agree on it. Empty in bodies stored before it existed.
    #[serde(default)]
    pub id: String,
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
            id: String::new(),
        }
    }

    /// The alert's stable id: FNV-1a of its kind, room and first message id (of its text and
    /// time when it has none: ops alerts, reports), as 16 hex digits.
    pub fn derive_id(&self) -> String {
        let mut key = format!("{}\u{1f}{}\u{1f}", self.kind.as_str(), self.room);
        match self.msg_ids.first() {
            Some(m) => key.push_str(m),
            None => key.push_str(&format!("{}\u{1f}{}", self.text, self.classified_ms)),
        }
        format!("{:016x}", crate::fnv::fnv1a(key.as_bytes()))
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

/// The key of a (room, user) pair in the open-ticket map.
pub fn room_user_key(room: &str, user: &str) -> u64 {
    crate::fasthash::key((room, user))
}

/// An attack alert on message `msg` in `room`, for unit tests here and in the hub.
#[cfg(test)]
pub(crate) fn test_alert(room: &str, msg: &str) -> Alert {
    use crate::taxonomy::{Action, Lang, Topic};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::TicketConfig;

    #[test]
    fn samples_are_capped_and_a_body_stays_under_16_kb_whatever_grows() {
        let mut a = test_alert("r", "m0");
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
}
