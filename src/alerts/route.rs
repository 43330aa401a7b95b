//! Alert routing, one call per comment ([`handle`]: drop a message id already seen, then
//! [`Router::comment`], or a deletion's retraction): classify it, consult the room's
//! and the user's history, and decide what it does to the alerts: a new alert, a repeat
//! counted on an open one, a brigade grown, a follow-up on the buyer's open ticket. The hub
//! queues each change (it never waits); the worker that called awaits [`Hub::drain`] before
//! its next comment. [`Router::sweep`] turns silent rooms into ops alerts.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::alerts::{Alert, AlertKind, Hub};
use crate::classify::{classify, classify_with, Evidence, Input, Scratch, Verdict};
use crate::history::{Route, Signals};
use crate::ingest::{Comment, Event, Format, Ingested};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::taxonomy::{Action, Class, Lang, Topic};
use crate::tickets::Followup;

/// A comment whose platform time is this much older than its connection is backlog.
pub const BACKLOG_GRACE_MS: u64 = 2_000;
/// A known buyer's complaint ranks this much higher.
pub const BUYER_BOOST: f32 = 0.1;
/// A complaint from a follower, subscriber or fan-club member ranks this much higher.
pub const FAN_BOOST: f32 = 0.05;
/// An attack from an account younger than [`NEW_ACCOUNT_MS`] ranks this much higher.
pub const NEW_ACCOUNT_BOOST: f32 = 0.1;
/// Accounts younger than this (7 days) are new: throwaway accounts carry most trolling.
pub const NEW_ACCOUNT_MS: u64 = 7 * 24 * 3_600_000;

/// Everything the per-comment path needs, shared by the workers.
#[derive(Debug)]
pub struct Router {
    /// The live rules; a reload swaps them, comments in flight finish on the old set.
    pub rules: Arc<ArcSwap<RuleSet>>,
    /// Room and user history.
    pub signals: Signals,
    /// Where alerts go.
    pub hub: Arc<Hub>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// A comment's text is kept up to this many characters on its alert (classified whole).
    pub comment_chars: usize,
}

impl Router {
    /// Keep at most `n` characters of a comment on its alert.
    pub fn with_comment_chars(mut self, n: usize) -> Self {
        self.comment_chars = n.max(1);
        self
    }

    /// A router over `rules`.
    pub fn new(rules: Arc<ArcSwap<RuleSet>>, signals: Signals, hub: Arc<Hub>, metrics: Arc<Metrics>) -> Self {
        Self {
            rules,
            signals,
            hub,
            metrics,
            comment_chars: crate::limits::Limits::default().comment_chars,
        }
    }

    /// Periodic upkeep: forget idle state, raise silence alerts.
    pub fn sweep(&self, now_ms: u64) {
        let (newly_silent, silent, rooms, users) = self.signals.sweep(now_ms);
        self.metrics.rooms_silent.set(silent as i64);
        self.metrics.tracked_rooms.set(rooms as i64);
        self.metrics.tracked_users.set(users as i64);
        let after_s = self.signals.config().silence_after_ms / 1000;
        // One ops alert per source, however many of its rooms went quiet at once (10,000
        // rooms going quiet together is one event, not 10,000 alerts).
        let mut by_source: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (source, room) in newly_silent {
            by_source.entry(source).or_default().push(room);
        }
        for (source, mut rooms) in by_source {
            rooms.sort();
            let total = rooms.len();
            let alert = if total == 1 {
                let room = rooms.remove(0);
                tracing::warn!(room = %crate::logsafe::Esc(&room), after_s, "room firehose silent");
                let text = format!("no comments from room {room} for {after_s} s: the watcher may be blind");
                Alert::ops(room, text, now_ms)
            } else {
                tracing::warn!(source = %crate::logsafe::Esc(&source), rooms = total, after_s, "room firehoses silent");
                rooms.truncate(crate::alerts::SAMPLE);
                let more = if total > rooms.len() {
                    format!(" and {} more", total - rooms.len())
                } else {
                    String::new()
                };
                let text = format!(
                    "no comments from {total} rooms of {source} for {after_s} s ({}{more}): the watcher may be blind",
                    rooms.join(", ")
                );
                let mut a = Alert::ops("*".into(), text, now_ms);
                a.rooms = rooms;
                a.rooms_total = u32::try_from(total).unwrap_or(u32::MAX);
                a
            };
            self.metrics.alert(AlertKind::Ops.as_str());
            self.hub.publish(alert);
        }
    }

    /// Routes one comment (already de-duplicated) into the alerts.
    #[allow(clippy::too_many_arguments)] // one call site; the fields come from one Ingested
    pub fn comment(
        &self,
        scratch: &mut Scratch,
        source: &str,
        c: &Comment,
        received_at: &Instant,
        received_ms: u64,
        connected_ms: u64,
        format: Format,
        now_ms: u64,
    ) {
        // Debug level: free at the default filter, and `RUST_LOG=liveguard=debug` puts room,
        // user and msg_id on everything logged while this comment is handled.
        let _span =
            tracing::debug_span!("comment", room = %crate::logsafe::Esc(&c.room), user = %crate::logsafe::Esc(&c.user.id), msg_id = %crate::logsafe::Esc(&c.msg_id)).entered();
        // The buyer of an active ticket: every later comment in the room goes on the ticket.
        if let Some(seq) = self.hub.open_ticket(&c.room, &c.user.id) {
            let f = Followup {
                msg_id: c.msg_id.clone(),
                text: c.text.clone(),
                at_ms: now_ms,
            };
            // A full ticket changes nothing: no write, no message.
            self.hub.update_if(seq, now_ms, move |a| {
                a.ticket.as_mut().is_some_and(|t| t.follow(f))
            });
        }
        let rules = self.rules.load();
        let started = Instant::now();
        let input = Input {
            text: &c.text,
            user: Some(c.user.display()),
            product: c.product.as_deref(),
        };
        let mut verdict = classify(&rules, scratch, input);
        let (observed, tracked) = self.signals.observe(
            source,
            &c.room,
            &c.user.id,
            &c.text,
            &scratch.norm.text,
            now_ms,
            || self.metrics.room_counter(&c.room, format.as_str()),
        );
        if !tracked {
            self.metrics.untracked_users.inc();
        }
        if c.signals.is_moderator == Some(true) {
            self.metrics.exempt.inc();
            self.metrics.verdict(verdict.topic, verdict.source);
            return;
        }
        let mut kind = AlertKind::Comment;
        let mut text = None;
        if verdict.class == Class::Neutral {
            if let Some(prev) = &observed.split_prev {
                let joined = format!("{prev}{}", c.text);
                // Rules only: split words are evasions of rule terms, and the model's n-grams
                // across two unrelated comments would see shapes no one wrote.
                let v = classify_with(
                    &rules,
                    None,
                    scratch,
                    Input {
                        text: &joined,
                        ..input
                    },
                );
                if v.class != Class::Neutral {
                    verdict = v;
                    kind = AlertKind::Split;
                    text = Some(joined);
                }
            }
        }
        self.metrics.verdict(verdict.topic, verdict.source);
        self.metrics
            .classify_seconds
            .observe(started.elapsed().as_secs_f64());
        let backlog = c.ts_ms != 0 && c.ts_ms.saturating_add(BACKLOG_GRACE_MS) < connected_ms;
        if backlog {
            self.metrics.backlog.inc();
        }
        let base = AlertBase {
            c,
            comment_chars: self.comment_chars,
            metrics: &self.metrics,
            received_ms,
            backlog,
            now_ms,
            received_at,
        };
        if verdict.class != Class::Neutral {
            let attack_text = (verdict.class == Class::Attack).then(|| scratch.norm.text.clone());
            let alert = base.alert(kind, text.as_deref().unwrap_or(&c.text), verdict);
            self.route(alert, attack_text.as_deref(), &base);
        } else if observed.repetition {
            let v = self.signal_verdict(
                &rules,
                c,
                Topic::Spam,
                "signal:repetition",
                Action::PrivateResolution,
            );
            self.route(base.alert(AlertKind::Repetition, &c.text, v), None, &base);
        }
        if observed.flood {
            let v = self.signal_verdict(&rules, c, Topic::Spam, "signal:flood", Action::MuteReview);
            self.route(base.alert(AlertKind::Flood, &c.text, v), None, &base);
        }
    }

    /// A verdict made by a signal rather than by rules (repetition, flood).
    fn signal_verdict(
        &self,
        rules: &RuleSet,
        c: &Comment,
        topic: Topic,
        rule: &str,
        action: Action,
    ) -> Verdict {
        let lang = if c.text.chars().any(crate::normalize::is_han) {
            Lang::Zh
        } else {
            Lang::En
        };
        let input = Input {
            text: &c.text,
            user: Some(c.user.display()),
            product: c.product.as_deref(),
        };
        Verdict {
            class: Class::Attack,
            topic: Some(topic),
            score: 0.6,
            evidence: vec![Evidence {
                rule: Arc::from(rule),
                start: 0,
                end: c.text.len(),
                text: c.text.clone(),
                context: false,
            }],
            action,
            script: rules
                .script(lang, Some(topic), Class::Attack, action)
                .map(|s| crate::classify::fill_script(s, input, lang)),
            lang,
            purchase: false,
            source: Default::default(),
        }
    }

    /// New alert, repeat on an open one, or a cluster/brigade update.
    fn route(&self, alert: Alert, attack_text: Option<&str>, base: &AlertBase<'_>) {
        let Some(topic) = alert.verdict.topic else { return };
        let (room, user) = (alert.room.clone(), alert.user.id.clone());
        let now = base.now_ms;
        let msg_id = base.c.msg_id.clone();
        let routed = match self.signals.route(&room, &user, topic, attack_text, now) {
            Route::New => false,
            Route::Repeat(seq) => {
                self.hub.update_msg(seq, now, msg_id.clone(), move |a| {
                    a.count = a.count.saturating_add(1);
                    a.add_msg_id(msg_id);
                });
                self.signals.touched(&room, &user, seq, now);
                true
            }
            Route::Cluster { seq, brigade, users } => {
                let user = user.clone();
                let name = alert.user.display().to_string();
                self.hub.update_msg(seq, now, msg_id.clone(), move |a| {
                    a.count = a.count.saturating_add(1);
                    a.add_msg_id(msg_id);
                    a.add_user(&user, name, Some(users));
                    if brigade && a.kind != AlertKind::Brigade {
                        a.kind = AlertKind::Brigade;
                        a.verdict.action = Action::MuteReview;
                        tracing::info!(room = %crate::logsafe::Esc(&a.room), user = %crate::logsafe::Esc(&user), users = a.users_total, "brigade");
                    }
                });
                true
            }
        };
        if !routed {
            let kind = alert.kind;
            let seq = self.hub.publish(alert);
            self.signals.published(&room, &user, topic, attack_text, seq, now);
            self.metrics.alert(kind.as_str());
            self.metrics
                .alert_latency_seconds
                .observe(base.received_at.elapsed().as_secs_f64());
        }
    }
}

/// A viewer's display name or handle is kept up to this many characters.
pub const MAX_NAME_CHARS: usize = 64;

struct AlertBase<'a> {
    c: &'a Comment,
    comment_chars: usize,
    metrics: &'a Metrics,
    received_ms: u64,
    backlog: bool,
    now_ms: u64,
    received_at: &'a Instant,
}

impl AlertBase<'_> {
    fn alert(&self, kind: AlertKind, text: &str, mut v: Verdict) -> Alert {
        let c = self.c;
        let sig = &c.signals;
        let buyer = sig.buyer();
        let fan = sig.is_follower == Some(true)
            || sig.is_subscriber == Some(true)
            || sig.fans_club_level.is_some_and(|l| l > 0);
        let new_account = sig
            .account_created_ms
            .is_some_and(|t| self.now_ms.saturating_sub(t) < NEW_ACCOUNT_MS);
        let boost = match v.class {
            Class::Complaint => {
                f32::from(u8::from(buyer)) * BUYER_BOOST + f32::from(u8::from(fan && !buyer)) * FAN_BOOST
            }
            Class::Attack => f32::from(u8::from(new_account)) * NEW_ACCOUNT_BOOST,
            Class::Neutral => 0.0,
        };
        v.score = (v.score + boost).min(1.0);
        if v.class == Class::Complaint && v.score >= crate::classify::INVITE_THRESHOLD {
            v.action = Action::InviteCostream;
        }
        v.score = (v.score * 1000.0).round() / 1000.0;
        // Kept for display within the limit; evidence past the cut goes with it.
        let (text, cut) = crate::limits::cut(text, self.comment_chars);
        if cut {
            self.metrics.limited("comment_chars");
            let kept = text.len() - '…'.len_utf8();
            v.evidence.retain(|e| e.end <= kept);
        }
        let mut user = c.user.clone();
        for name in [&mut user.name, &mut user.handle] {
            if let Some(n) = name.as_mut() {
                *n = crate::limits::cut(n, MAX_NAME_CHARS).0;
            }
        }
        let mut a = Alert::new(kind, c.room.clone(), user, text, v, self.now_ms);
        a.add_msg_id(c.msg_id.clone());
        a.product = c.product.clone();
        a.buyer = buyer;
        a.new_account = new_account;
        a.backlog = self.backlog;
        a.ts_ms = c.ts_ms;
        a.received_ms = self.received_ms;
        a
    }
}

/// Recently seen message ids, per worker (rooms are sharded to workers, so a room's ids always
/// meet the same one): two generations of a plain set, the older dropped when the newer is
/// `window/2` old or full. Memory stays bounded and nothing sweeps a shared map while the
/// workers wait (a shared map with a periodic sweep stalled them at 100k comments/s).
#[derive(Debug)]
pub struct Dedupe {
    current: crate::fasthash::HashSet<u64>,
    previous: crate::fasthash::HashSet<u64>,
    started_ms: u64,
    half_window_ms: u64,
    per_generation: usize,
}

impl Dedupe {
    /// Remembers ids for about `window_ms` (at least half of it), at most `max_ids` in all; at
    /// very high rates the cap shortens the window.
    pub fn new(window_ms: u64, max_ids: usize) -> Self {
        Self {
            current: Default::default(),
            previous: Default::default(),
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
            let key = crate::fasthash::key((&c.platform, &c.room, &c.msg_id));
            if !c.msg_id.is_empty() && worker.dedupe.seen(key, now_ms) {
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
