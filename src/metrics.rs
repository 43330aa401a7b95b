//! Every metric liveguard exports, registered in one place and rendered as Prometheus text at
//! `GET /metrics`. Hot-path counters are created once (per room, per topic) and cloned, so
//! counting a comment never allocates label strings.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::taxonomy::{Source, Topic};

/// Per-room labels get this many rooms at most; the rest count under `room="other"`, so a
/// relay carrying endless rooms cannot blow up the metrics' cardinality.
pub const MAX_ROOM_LABELS: usize = 2_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoomFormat {
    room: String,
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassTopic {
    class: String,
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceReason {
    source: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: String,
}

/// Default cap on distinct `kind` labels of `events_ignored_total`.
pub const MAX_KIND_LABELS: usize = 50;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

/// The registry and every metric handle.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    comments: Family<RoomFormat, Counter>,
    room_labels: Mutex<usize>,
    topic_counters: Vec<Counter>,
    neutral_counter: Counter,
    source_counters: Vec<Counter>,
    parse_errors: Family<SourceReason, Counter>,
    reconnects: Family<SourceLabel, Counter>,
    connected: Family<SourceLabel, Gauge>,
    alerts: Family<Kind, Counter>,
    ignored: Family<Kind, Counter>,
    /// Event kinds given their own `events_ignored_total` label so far (then `other`).
    ignored_kinds: Mutex<std::collections::HashSet<String>>,
    /// At most this many distinct `kind` labels on `events_ignored_total`.
    label_cap: std::sync::atomic::AtomicUsize,
    refused: Family<ReasonLabel, Counter>,
    limited: Family<LimitLabel, Counter>,
    auth_reloads: Family<Kind, Counter>,
    /// Comments whose handling panicked (the worker went on with the next one).
    pub worker_panics: Counter,
    /// Served connections open (HTTP and upgraded sockets).
    pub connections: Gauge,
    console_actions: Family<ActionLabel, Counter>,
    reloads: Family<Kind, Counter>,
    /// 1 when the last rules reload succeeded (or none was tried), 0 when it failed.
    pub rules_reload_ok: Gauge,
    /// Rule sets swapped in since start.
    pub rules_generation: Gauge,
    dismissed: Family<RuleLabel, Counter>,
    /// Comments dropped as duplicate `msg_id`s.
    pub duplicates: Counter,
    /// Neutral comments shed because the pipeline queue was full.
    pub shed_neutral: Counter,
    /// Comments from before the connection (platform backlog), classified but not announced live.
    pub backlog: Counter,
    /// Comments from moderators, exempt from alerts.
    pub exempt: Counter,
    /// Alerts retracted by platform deletions.
    pub retracted: Counter,
    /// Depth of the ingest → classify queue.
    pub queue_depth: Gauge,
    /// Alert subscribers connected.
    pub subscribers: Gauge,
    /// Alerts a slow subscriber missed (told to resync).
    pub subscriber_missed: Counter,
    /// Subscribers disconnected for not reading.
    pub subscriber_dropped: Counter,
    /// Rooms currently silent longer than expected.
    pub rooms_silent: Gauge,
    /// Rooms and users tracked by the signals state.
    pub tracked_rooms: Gauge,
    /// Users tracked by the signals state.
    pub tracked_users: Gauge,
    /// New users not tracked because the signals state was at its cap.
    pub untracked_users: Counter,
    /// Time to classify one comment (normalize + match + decide + signals), seconds.
    pub classify_seconds: Histogram,
    /// Time from a frame's arrival to its alert's publication, seconds.
    pub alert_latency_seconds: Histogram,
    /// Store transactions committed.
    pub store_commits: Counter,
    /// Alert versions written to the store.
    pub store_writes: Counter,
    /// Store transactions that failed (retried).
    pub store_errors: Counter,
    /// Changes refused because the store was closed or (for a handler) its queue was full.
    pub store_rejected: Counter,
    /// Changes that found the writer's queue full and waited (the disk was slow or full).
    pub store_waits: Counter,
    /// Times the writer stopped to empty a WAL past its bound (commits faster than the disk).
    pub store_wal_forced: Counter,
    /// Changes waiting for room in the writer's queue right now.
    pub store_overflow: Gauge,
    /// Time to write and commit one batch, seconds.
    pub store_commit_seconds: Histogram,
    /// Alerts pruned by retention.
    pub store_pruned: Counter,
    /// Ticket reminders sent, per stage (`nearing`, `overdue`: a breach).
    reminders: Family<Kind, Counter>,
    source_down: Family<SourceLabel, Gauge>,
    source_down_since: Family<SourceLabel, Gauge>,
    /// When commits started failing, seconds since the epoch; 0 while they succeed.
    pub store_failing_since_seconds: Gauge,
    /// 1 while `/healthz` answers 503 (a source down, the store failing).
    pub degraded: Gauge,
    /// The bus (NATS JetStream), when one is configured.
    pub bus: BusMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("liveguard");
        let comments = Family::<RoomFormat, Counter>::default();
        registry.register(
            "comments",
            "Comments received, per room and input format",
            comments.clone(),
        );
        let verdicts = Family::<ClassTopic, Counter>::default();
        registry.register("verdicts", "Verdicts per class and topic", verdicts.clone());
        let parse_errors = Family::<SourceReason, Counter>::default();
        registry.register(
            "parse_errors",
            "Frames that did not parse, per source and reason",
            parse_errors.clone(),
        );
        let reconnects = Family::<SourceLabel, Counter>::default();
        registry.register("reconnects", "Upstream reconnects per source", reconnects.clone());
        let connected = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "source_connected",
            "1 while a source is connected",
            connected.clone(),
        );
        let alerts = Family::<Kind, Counter>::default();
        registry.register("alerts", "Alerts published, per kind", alerts.clone());
        let ignored = Family::<Kind, Counter>::default();
        let reloads = Family::<Kind, Counter>::default();
        registry.register(
            "rules_reloads",
            "Rules reloads, per result (kind=ok|failed)",
            reloads.clone(),
        );
        let rules_reload_ok = Gauge::default();
        registry.register(
            "rules_reload_ok",
            "1 when the last rules reload succeeded, 0 when it failed",
            rules_reload_ok.clone(),
        );
        rules_reload_ok.set(1);
        let rules_generation = Gauge::default();
        registry.register(
            "rules_generation",
            "Rule sets swapped in since start",
            rules_generation.clone(),
        );
        let console_actions = Family::<ActionLabel, Counter>::default();
        registry.register(
            "console_actions",
            "Floor-manager actions taken, per action",
            console_actions.clone(),
        );
        let dismissed = Family::<RuleLabel, Counter>::default();
        registry.register(
            "dismissed",
            "Alerts dismissed as false positives, per rule that fired (feedback for ops)",
            dismissed.clone(),
        );
        registry.register(
            "events_ignored",
            "Upstream events of kinds liveguard does not use",
            ignored.clone(),
        );
        let mk = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let duplicates = mk(
            &mut registry,
            "duplicates",
            "Comments dropped as duplicate msg_id",
        );
        let shed_neutral = mk(
            &mut registry,
            "shed_neutral",
            "Neutral comments shed under overload",
        );
        let backlog = mk(
            &mut registry,
            "backlog",
            "Comments older than their connection (backlog)",
        );
        let exempt = mk(
            &mut registry,
            "exempt",
            "Comments from moderators, exempt from alerts",
        );
        let retracted = mk(
            &mut registry,
            "retracted",
            "Alerts retracted by platform deletions",
        );
        let subscriber_missed = mk(
            &mut registry,
            "subscriber_missed",
            "Alerts slow subscribers missed",
        );
        let subscriber_dropped = mk(
            &mut registry,
            "subscriber_dropped",
            "Subscribers dropped for not reading",
        );
        let untracked_users = mk(
            &mut registry,
            "untracked_users",
            "Users not tracked: signals state at cap",
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let queue_depth = gauge(
            &mut registry,
            "queue_depth",
            "Comments waiting between ingest and classify",
        );
        let subscribers = gauge(&mut registry, "subscribers", "Alert subscribers connected");
        let rooms_silent = gauge(&mut registry, "rooms_silent", "Rooms silent longer than expected");
        let tracked_rooms = gauge(&mut registry, "tracked_rooms", "Rooms in the signals state");
        let tracked_users = gauge(&mut registry, "tracked_users", "Users in the signals state");
        // 1 µs .. ~0.5 s
        let classify_seconds = Histogram::new(exponential_buckets(1e-6, 2.0, 20));
        registry.register(
            "classify_seconds",
            "Time to classify one comment",
            classify_seconds.clone(),
        );
        // 10 µs .. ~5 s
        let alert_latency_seconds = Histogram::new(exponential_buckets(1e-5, 2.0, 20));
        registry.register(
            "alert_latency_seconds",
            "Frame arrival to alert publication",
            alert_latency_seconds.clone(),
        );
        let store_commits = mk(&mut registry, "store_commits", "Store transactions committed");
        let store_writes = mk(
            &mut registry,
            "store_writes",
            "Alert versions written to the store",
        );
        let store_errors = mk(
            &mut registry,
            "store_errors",
            "Store transactions that failed (retried)",
        );
        let store_rejected = mk(
            &mut registry,
            "store_rejected",
            "Changes refused: store closed, or its queue full for a request that cannot wait",
        );
        let store_waits = mk(
            &mut registry,
            "store_waits",
            "Changes that found the store's queue full and waited",
        );
        let store_wal_forced = mk(
            &mut registry,
            "store_wal_forced",
            "Times the writer stopped to empty a WAL past its bound (commits faster than the disk)",
        );
        let store_overflow = Gauge::default();
        registry.register(
            "store_overflow",
            "Changes waiting for room in the store's queue",
            store_overflow.clone(),
        );
        let store_pruned = mk(&mut registry, "store_pruned", "Alerts pruned by retention");
        // 10 µs .. ~5 s
        let store_commit_seconds = Histogram::new(exponential_buckets(1e-5, 2.0, 20));
        registry.register(
            "store_commit_seconds",
            "Time to write and commit one batch of alert changes",
            store_commit_seconds.clone(),
        );
        let refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "refused",
            "Requests and connections refused, per reason (no_token, bad_token, role, room, host, origin, rate, body, subscribers, connections, handshake, login)",
            refused.clone(),
        );
        let limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "limited",
            "Things cut or dropped by a configured limit, per limit",
            limited.clone(),
        );
        let auth_reloads = Family::<Kind, Counter>::default();
        registry.register(
            "auth_reloads",
            "Token and TLS reloads on SIGHUP, per result (kind=ok|failed)",
            auth_reloads.clone(),
        );
        let worker_panics = Counter::default();
        registry.register(
            "worker_panics",
            "Comments whose handling panicked; the worker went on with the next",
            worker_panics.clone(),
        );
        let connections = Gauge::default();
        registry.register("connections", "Served connections open", connections.clone());
        let reminders = Family::<Kind, Counter>::default();
        registry.register(
            "ticket_reminders",
            "Ticket reminders sent, per stage (overdue = a breached promise)",
            reminders.clone(),
        );
        let source_down = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "source_down",
            "1 while a source is disconnected or silent past source_down_ms",
            source_down.clone(),
        );
        let source_down_since = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "source_down_since_seconds",
            "When a down source was last heard from (epoch seconds); 0 while it is up",
            source_down_since.clone(),
        );
        let store_failing_since_seconds = Gauge::default();
        registry.register(
            "store_failing_since_seconds",
            "When the state database started failing to commit (epoch seconds); 0 while it commits",
            store_failing_since_seconds.clone(),
        );
        let degraded = Gauge::default();
        registry.register(
            "degraded",
            "1 while /healthz answers 503: a source is down or the store cannot commit",
            degraded.clone(),
        );
        let topic_counters = Topic::ALL
            .iter()
            .map(|t| {
                verdicts
                    .get_or_create(&ClassTopic {
                        class: t.class().as_str().into(),
                        topic: t.as_str().into(),
                    })
                    .clone()
            })
            .collect();
        let neutral_counter = verdicts
            .get_or_create(&ClassTopic {
                class: "neutral".into(),
                topic: "none".into(),
            })
            .clone();
        let sources = Family::<SourceLabel, Counter>::default();
        registry.register(
            "verdict_sources",
            "Verdicts per decider: rules, model (raised what the rules missed, or dropped a weak rule hit), both (the model agreed)",
            sources.clone(),
        );
        let source_counters = Source::ALL
            .iter()
            .map(|s| {
                sources
                    .get_or_create(&SourceLabel {
                        source: s.as_str().into(),
                    })
                    .clone()
            })
            .collect();
        let bus = BusMetrics::register(&mut registry);
        Self {
            registry,
            comments,
            room_labels: Mutex::new(0),
            topic_counters,
            neutral_counter,
            source_counters,
            parse_errors,
            reconnects,
            connected,
            alerts,
            ignored,
            ignored_kinds: Mutex::default(),
            label_cap: std::sync::atomic::AtomicUsize::new(MAX_KIND_LABELS),
            refused,
            limited,
            auth_reloads,
            worker_panics,
            connections,
            console_actions,
            reloads,
            rules_reload_ok,
            rules_generation,
            dismissed,
            duplicates,
            shed_neutral,
            backlog,
            exempt,
            retracted,
            queue_depth,
            subscribers,
            subscriber_missed,
            subscriber_dropped,
            rooms_silent,
            tracked_rooms,
            tracked_users,
            untracked_users,
            classify_seconds,
            alert_latency_seconds,
            store_commits,
            store_writes,
            store_errors,
            store_rejected,
            store_waits,
            store_wal_forced,
            store_overflow,
            store_commit_seconds,
            store_pruned,
            reminders,
            source_down,
            source_down_since,
            store_failing_since_seconds,
            degraded,
            bus,
        }
    }

    /// The comments counter for a room and format; call once per room and keep it.
    pub fn room_counter(&self, room: &str, format: &str) -> Counter {
        let mut n = self.room_labels.lock().unwrap_or_else(|p| p.into_inner());
        let room = if *n < MAX_ROOM_LABELS {
            *n += 1;
            room
        } else {
            "other"
        };
        self.comments
            .get_or_create(&RoomFormat {
                room: room.into(),
                format: format.into(),
            })
            .clone()
    }

    /// Counts one verdict, by topic and by who decided it.
    pub fn verdict(&self, topic: Option<Topic>, source: Source) {
        match topic {
            Some(t) => self.topic_counters.get(t as usize).map(Counter::inc),
            None => Some(self.neutral_counter.inc()),
        };
        if let Some(c) = self.source_counters.get(source as usize) {
            c.inc();
        }
    }

    /// Counts a frame that did not parse.
    pub fn parse_error(&self, source: &str, reason: &str) {
        self.parse_errors
            .get_or_create(&SourceReason {
                source: source.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts an upstream reconnect.
    pub fn reconnect(&self, source: &str) {
        self.reconnects
            .get_or_create(&SourceLabel {
                source: source.into(),
            })
            .inc();
    }

    /// Sets whether a source is connected.
    pub fn set_connected(&self, source: &str, up: bool) {
        self.connected
            .get_or_create(&SourceLabel {
                source: source.into(),
            })
            .set(i64::from(up));
    }

    /// Marks a source down since `since_ms` (epoch ms), or up (`None`).
    pub fn set_source_down(&self, source: &str, since_ms: Option<u64>) {
        let label = SourceLabel {
            source: source.into(),
        };
        self.source_down
            .get_or_create(&label)
            .set(i64::from(since_ms.is_some()));
        self.source_down_since
            .get_or_create(&label)
            .set(since_ms.map_or(0, |ms| (ms / 1000) as i64));
    }

    /// Counts a published alert of `kind`.
    pub fn alert(&self, kind: &str) {
        self.alerts.get_or_create(&Kind { kind: kind.into() }).inc();
    }

    /// Counts an ignored upstream event. The relay names the kind: only the first
    /// [`set_label_cap`](Self::set_label_cap) kinds get a label of their own, the rest count as
    /// `other`, so a relay inventing kinds cannot grow `/metrics` without bound.
    pub fn ignored(&self, kind: &str) {
        let cap = self.label_cap.load(std::sync::atomic::Ordering::Relaxed);
        let label = {
            let mut seen = self.ignored_kinds.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(kind) {
                kind
            } else if seen.len() < cap && kind.len() <= 64 {
                seen.insert(kind.to_string());
                kind
            } else {
                "other"
            }
        };
        self.ignored.get_or_create(&Kind { kind: label.into() }).inc();
    }

    /// At most `n` distinct kinds on `events_ignored_total` (then `other`).
    pub fn set_label_cap(&self, n: usize) {
        self.label_cap.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a refused request or connection.
    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts something a limit cut or dropped.
    pub fn limited(&self, limit: &str) {
        self.limited
            .get_or_create(&LimitLabel { limit: limit.into() })
            .inc();
    }

    /// Records a token/TLS reload.
    pub fn auth_reload(&self, ok: bool) {
        self.auth_reloads
            .get_or_create(&Kind {
                kind: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
    }

    /// Records a rules reload.
    pub fn reload(&self, ok: bool, generation: u64) {
        self.reloads
            .get_or_create(&Kind {
                kind: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
        self.rules_reload_ok.set(i64::from(ok));
        self.rules_generation.set(generation as i64);
    }

    /// Counts a console action.
    pub fn console_action(&self, action: &str) {
        self.console_actions
            .get_or_create(&ActionLabel {
                action: action.into(),
            })
            .inc();
    }

    /// Counts a rule that fired on an alert dismissed as a false positive.
    pub fn dismissed(&self, rule: &str) {
        self.dismissed
            .get_or_create(&RuleLabel { rule: rule.into() })
            .inc();
    }

    /// Counts a ticket reminder of `stage`.
    pub fn reminder(&self, stage: &str) {
        self.reminders.get_or_create(&Kind { kind: stage.into() }).inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_kinds_fold_into_other_past_the_cap() {
        let m = Metrics::new();
        m.set_label_cap(3);
        for i in 0..5_000 {
            m.ignored(&format!("kind-{}", i % 1_000));
        }
        m.ignored("kind-0");
        let text = m.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("liveguard_events_ignored_total{"))
            .count();
        assert_eq!(series, 4, "three kinds and other:\n{text}");
        assert!(
            text.contains("liveguard_events_ignored_total{kind=\"kind-0\"} 6"),
            "{text}"
        );
        assert!(
            text.contains("liveguard_events_ignored_total{kind=\"other\"} 4985"),
            "{text}"
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: String,
}

/// The bus's counters (`liveguard_bus_*`), registered with the rest; zero without a bus.
#[derive(Debug)]
pub struct BusMetrics {
    /// 1 while connected to NATS.
    pub connected: Gauge,
    /// Events a bridge published (acknowledged by the stream).
    pub published: Counter,
    /// Publications the server dropped as duplicates (`Nats-Msg-Id` seen in the window).
    pub duplicates: Counter,
    /// Publications that failed (timed out, refused) and were retried.
    pub publish_errors: Counter,
    /// Events or alert versions buffered locally waiting for the server.
    pub buffered: Gauge,
    /// Alert versions published to the alert stream.
    pub alerts_published: Counter,
    /// Comments delivered again (a previous delivery was not acked in time, or its owner died).
    pub redeliveries: Counter,
    /// Comments taken from the bus and handled.
    pub consumed: Counter,
    /// Alert versions imported from the alert stream by a takeover or a console.
    pub imported: Counter,
    /// Comments waiting in each owned partition's consumer.
    lag: Family<PartitionLabel, Gauge>,
}

impl BusMetrics {
    fn register(registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("bus");
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let lag = Family::<PartitionLabel, Gauge>::default();
        r.register(
            "consumer_lag",
            "Comments waiting in an owned partition's durable consumer",
            lag.clone(),
        );
        Self {
            connected: gauge(r, "connected", "1 while connected to NATS"),
            published: counter(
                r,
                "published",
                "Events published to the comment stream and acknowledged",
            ),
            duplicates: counter(r, "duplicates", "Publications the server dropped as duplicates"),
            publish_errors: counter(r, "publish_errors", "Publications that failed and were retried"),
            buffered: gauge(
                r,
                "buffered",
                "Events or alert versions waiting locally for the server",
            ),
            alerts_published: counter(
                r,
                "alerts_published",
                "Alert versions published to the alert stream",
            ),
            redeliveries: counter(r, "redeliveries", "Comments delivered more than once"),
            consumed: counter(r, "consumed", "Comments taken from the bus and handled"),
            imported: counter(r, "imported", "Alert versions imported from the alert stream"),
            lag,
        }
    }

    /// Sets the comments waiting in `partition`.
    pub fn set_lag(&self, partition: u32, pending: u64) {
        self.lag
            .get_or_create(&PartitionLabel {
                partition: partition.to_string(),
            })
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}
