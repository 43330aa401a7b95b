//! Tickets: every complaint alert carries one, with the promises the SOP makes to the buyer (a
//! public first response within 2 h, a resolution within 24 h; per room, configurable). This
//! module holds the ticket's state machine and decides which reminders are due; the store
//! persists tickets and the writer pushes reminders to consoles.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// At most this many later comments of the buyer are kept on a ticket.
pub const MAX_FOLLOWUPS: usize = 50;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Nobody has answered the buyer yet.
    Open,
    /// Invited on mic or scripted: answered, not yet resolved.
    Responding,
    /// Resolved with a refund (方案A).
    ResolvedRefund,
    /// Resolved with an exchange, shipping paid (方案B).
    ResolvedExchange,
    /// Resolved another way (explained, repaired, goodwill).
    ResolvedOther,
    /// Dismissed as a false positive: no promise to keep.
    Dismissed,
}

impl TicketStatus {
    /// The snake_case name (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Responding => "responding",
            Self::ResolvedRefund => "resolved_refund",
            Self::ResolvedExchange => "resolved_exchange",
            Self::ResolvedOther => "resolved_other",
            Self::Dismissed => "dismissed",
        }
    }

    /// The status named `s` (as stored), if any.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Open,
            Self::Responding,
            Self::ResolvedRefund,
            Self::ResolvedExchange,
            Self::ResolvedOther,
            Self::Dismissed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Open or responding: promises still running.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::Responding)
    }

    /// The resolved status for a console's `outcome` (`refund`, `exchange`, `other`).
    pub fn resolved(outcome: &str) -> Option<Self> {
        Some(match outcome {
            "refund" => Self::ResolvedRefund,
            "exchange" => Self::ResolvedExchange,
            "other" => Self::ResolvedOther,
            _ => return None,
        })
    }
}

/// Which promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    /// The first public response.
    Response,
    /// The resolution.
    Resolution,
}

impl Due {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Response => "response",
            Self::Resolution => "resolution",
        }
    }
}

/// How close to the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Due soon (within `remind_before`).
    Nearing,
    /// Past due: a breach, recorded.
    Overdue,
}

impl Stage {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nearing => "nearing",
            Self::Overdue => "overdue",
        }
    }
}

/// A reminder that was sent (an `overdue` one records a breach).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Which promise.
    pub due: Due,
    /// Nearing or overdue.
    pub stage: Stage,
    /// The deadline, ms since the epoch.
    pub due_ms: u64,
    /// When the reminder went out.
    pub at_ms: u64,
}

/// A later comment by the same buyer in the same room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followup {
    /// Platform message id.
    pub msg_id: String,
    /// The comment as typed.
    pub text: String,
    /// When it was seen, ms since the epoch.
    pub at_ms: u64,
}

/// A complaint's ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Where it stands.
    pub status: TicketStatus,
    /// When it was opened (the alert was classified).
    pub opened_ms: u64,
    /// First public response promised by.
    pub respond_by_ms: u64,
    /// Resolution promised by.
    pub resolve_by_ms: u64,
    /// First response (invite or script), if any.
    pub responded_ms: Option<u64>,
    /// Resolution or dismissal, if any.
    pub resolved_ms: Option<u64>,
    /// Reminders sent, oldest first.
    pub reminders: Vec<Reminder>,
    /// The buyer's later comments in the room, oldest first (at most [`MAX_FOLLOWUPS`]).
    pub followups: Vec<Followup>,
}

impl Ticket {
    /// A ticket opened at `now_ms` with `deadlines`.
    pub fn open(now_ms: u64, d: &Deadlines) -> Self {
        Self {
            status: TicketStatus::Open,
            opened_ms: now_ms,
            respond_by_ms: now_ms.saturating_add(d.respond_ms),
            resolve_by_ms: now_ms.saturating_add(d.resolve_ms),
            responded_ms: None,
            resolved_ms: None,
            reminders: Vec::new(),
            followups: Vec::new(),
        }
    }

    /// Records a first response (an invite or a script) at `now_ms`.
    pub fn respond(&mut self, now_ms: u64) {
        if self.responded_ms.is_none() {
            self.responded_ms = Some(now_ms);
        }
        if self.status == TicketStatus::Open {
            self.status = TicketStatus::Responding;
        }
    }

    /// Closes the ticket with `status` at `now_ms` (a resolution also counts as a response).
    pub fn close(&mut self, status: TicketStatus, now_ms: u64) {
        if status != TicketStatus::Dismissed && self.responded_ms.is_none() {
            self.responded_ms = Some(now_ms);
        }
        self.status = status;
        self.resolved_ms = Some(now_ms);
    }

    /// Adds a later comment, keeping at most [`MAX_FOLLOWUPS`]; false when full.
    pub fn follow(&mut self, f: Followup) -> bool {
        if self.followups.len() >= MAX_FOLLOWUPS {
            return false;
        }
        self.followups.push(f);
        true
    }

    /// The reminders due at `now_ms` that were not sent yet, given `remind_before` for each
    /// promise. Only the most advanced stage is returned per promise (a ticket found overdue
    /// after a restart is not first told it is "nearing").
    pub fn due_reminders(&self, now_ms: u64, d: &Deadlines) -> Vec<Reminder> {
        let mut out = Vec::new();
        if !self.status.is_active() {
            return out;
        }
        let mut check = |due: Due, due_ms: u64, before: u64| {
            let stage = if now_ms >= due_ms {
                Stage::Overdue
            } else if now_ms.saturating_add(before) >= due_ms {
                Stage::Nearing
            } else {
                return;
            };
            let sent = |s: Stage| self.reminders.iter().any(|r| r.due == due && r.stage == s);
            if sent(stage) || (stage == Stage::Nearing && sent(Stage::Overdue)) {
                return;
            }
            out.push(Reminder {
                due,
                stage,
                due_ms,
                at_ms: now_ms,
            });
        };
        if self.responded_ms.is_none() {
            check(Due::Response, self.respond_by_ms, d.remind_before(d.respond_ms));
        }
        check(Due::Resolution, self.resolve_by_ms, d.remind_before(d.resolve_ms));
        out
    }

    /// The earliest time a reminder not yet sent could become due (for scheduling), if any.
    pub fn next_check_ms(&self, d: &Deadlines) -> Option<u64> {
        if !self.status.is_active() {
            return None;
        }
        let sent = |due: Due, s: Stage| self.reminders.iter().any(|r| r.due == due && r.stage == s);
        let next = |due: Due, due_ms: u64, before: u64| {
            if sent(due, Stage::Overdue) {
                None
            } else if sent(due, Stage::Nearing) {
                Some(due_ms)
            } else {
                Some(due_ms.saturating_sub(before))
            }
        };
        let resolution = next(Due::Resolution, self.resolve_by_ms, d.remind_before(d.resolve_ms));
        let response = if self.responded_ms.is_none() {
            next(Due::Response, self.respond_by_ms, d.remind_before(d.respond_ms))
        } else {
            None
        };
        match (response, resolution) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Promised times for one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    /// First public response within this long (ms).
    pub respond_ms: u64,
    /// Resolution within this long (ms).
    pub resolve_ms: u64,
    /// Remind this long before a deadline (ms); absent: a quarter of the deadline.
    #[serde(default)]
    pub remind_before_ms: Option<u64>,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            respond_ms: 2 * 3_600_000,
            resolve_ms: 24 * 3_600_000,
            remind_before_ms: None,
        }
    }
}

impl Deadlines {
    /// How long before a deadline of length `deadline_ms` to remind.
    pub fn remind_before(&self, deadline_ms: u64) -> u64 {
        self.remind_before_ms.unwrap_or(deadline_ms / 4).min(deadline_ms)
    }
}

/// `[tickets]` in the configuration: default deadlines and per-room overrides. Every key may
/// be left out: `[tickets]` falls back to 2 h / 24 h, a room to the `[tickets]` values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawTickets", into = "RawTickets")]
pub struct TicketConfig {
    /// Deadlines for rooms not listed below.
    pub default: Deadlines,
    /// Per-room deadlines (`[tickets.rooms.ROOM]`); live rooms may promise minutes.
    pub rooms: HashMap<String, Deadlines>,
}

/// Deadlines as written: any key may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    respond_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolve_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remind_before_ms: Option<u64>,
}

impl RawDeadlines {
    fn over(self, base: &Deadlines) -> Deadlines {
        Deadlines {
            respond_ms: self.respond_ms.unwrap_or(base.respond_ms),
            resolve_ms: self.resolve_ms.unwrap_or(base.resolve_ms),
            remind_before_ms: self.remind_before_ms.or(base.remind_before_ms),
        }
    }
}

impl From<Deadlines> for RawDeadlines {
    fn from(d: Deadlines) -> Self {
        Self {
            respond_ms: Some(d.respond_ms),
            resolve_ms: Some(d.resolve_ms),
            remind_before_ms: d.remind_before_ms,
        }
    }
}

/// `[tickets]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTickets {
    // The three keys of `RawDeadlines`, spelled out: serde ignores `deny_unknown_fields`
    // around a flattened struct, and unknown keys must stay errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    respond_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolve_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remind_before_ms: Option<u64>,
    #[serde(default)]
    rooms: HashMap<String, RawDeadlines>,
}

impl From<RawTickets> for TicketConfig {
    fn from(raw: RawTickets) -> Self {
        let own = RawDeadlines {
            respond_ms: raw.respond_ms,
            resolve_ms: raw.resolve_ms,
            remind_before_ms: raw.remind_before_ms,
        };
        let default = own.over(&Deadlines::default());
        let rooms = raw
            .rooms
            .into_iter()
            .map(|(r, d)| (r, d.over(&default)))
            .collect();
        Self { default, rooms }
    }
}

impl From<TicketConfig> for RawTickets {
    fn from(c: TicketConfig) -> Self {
        Self {
            respond_ms: Some(c.default.respond_ms),
            resolve_ms: Some(c.default.resolve_ms),
            remind_before_ms: c.default.remind_before_ms,
            rooms: c.rooms.into_iter().map(|(r, d)| (r, d.into())).collect(),
        }
    }
}

impl TicketConfig {
    /// The deadlines for `room`.
    pub fn for_room(&self, room: &str) -> &Deadlines {
        self.rooms.get(room).unwrap_or(&self.default)
    }

    /// Problems a parse cannot see (zero deadlines, resolution before response), each with the
    /// room it is about (`None`: the `[tickets]` defaults).
    pub fn check(&self) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let mut one = |room: Option<&String>, d: &Deadlines| {
            if d.respond_ms == 0 || d.resolve_ms == 0 {
                out.push((room.cloned(), "deadlines must be above 0 ms".to_string()));
            }
            if d.resolve_ms < d.respond_ms {
                out.push((
                    room.cloned(),
                    format!(
                        "resolve_ms ({}) is shorter than respond_ms ({})",
                        d.resolve_ms, d.respond_ms
                    ),
                ));
            }
        };
        one(None, &self.default);
        let mut rooms: Vec<_> = self.rooms.iter().collect();
        rooms.sort_by(|a, b| a.0.cmp(b.0));
        for (room, d) in rooms {
            one(Some(room), d);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn reminders_come_once_per_stage_and_stop_when_answered() {
        let d = Deadlines::default();
        let mut t = Ticket::open(0, &d);
        assert!(t.due_reminders(H, &d).is_empty(), "1 h in: nothing due yet");
        let r = t.due_reminders(H + H / 2, &d);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].due, r[0].stage), (Due::Response, Stage::Nearing));
        t.reminders.extend(r);
        assert!(t.due_reminders(H + H / 2 + 1, &d).is_empty(), "sent once");
        let r = t.due_reminders(2 * H, &d);
        assert_eq!((r[0].due, r[0].stage), (Due::Response, Stage::Overdue));
        t.reminders.extend(r);
        t.respond(3 * H);
        assert_eq!(t.status, TicketStatus::Responding);
        assert!(t.due_reminders(10 * H, &d).is_empty());
        // Found 30 h later (the daemon was down): straight to overdue, no "nearing".
        let r = t.due_reminders(30 * H, &d);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].due, r[0].stage), (Due::Resolution, Stage::Overdue));
        t.close(TicketStatus::ResolvedRefund, 31 * H);
        assert!(t.due_reminders(40 * H, &d).is_empty());
        assert_eq!(t.next_check_ms(&d), None);
    }

    #[test]
    fn per_room_deadlines() {
        let cfg: TicketConfig = toml::from_str(
            "respond_ms = 7200000\nresolve_ms = 86400000\n[rooms.live-1]\nrespond_ms = 300000\nresolve_ms = 3600000\n",
        )
        .expect("parses");
        assert_eq!(cfg.for_room("live-1").respond_ms, 300_000);
        assert_eq!(cfg.for_room("other").respond_ms, 7_200_000);
        assert!(cfg.check().is_empty());
        let bad: TicketConfig = toml::from_str("respond_ms = 10\nresolve_ms = 5\n").expect("parses");
        assert_eq!(bad.check().len(), 1);
    }

    #[test]
    fn partial_tables_take_the_defaults() {
        let cfg: TicketConfig =
            toml::from_str("respond_ms = 600000\n[rooms.live-1]\nresolve_ms = 3600000\n").expect("parses");
        assert_eq!(cfg.default.respond_ms, 600_000);
        assert_eq!(cfg.default.resolve_ms, 24 * H, "README's default");
        assert_eq!(
            (
                cfg.for_room("live-1").respond_ms,
                cfg.for_room("live-1").resolve_ms
            ),
            (600_000, H),
            "a room takes what it leaves out from [tickets]"
        );
        let empty: TicketConfig = toml::from_str("").expect("parses");
        assert_eq!(empty, TicketConfig::default());
        assert!(
            toml::from_str::<TicketConfig>("respond_in = 5\n").is_err(),
            "unknown keys still fail"
        );
    }
}
