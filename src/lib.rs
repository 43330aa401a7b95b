//! liveguard: watches live-commerce comment firehoses and tells the people running the room
//! which comments are genuine complaints (invite on mic), which are malicious attacks (keep
//! off mic), and which are neutral.
//!
//! # Crate map
//! Data flows one way; each stage names only the ones before it (`tests/layout.rs` checks):
//! ingest → normalize → rules → classify (+ model) → history → alerts → store → server,
//! wired by daemon.
//! - [`ingest`]: firehose connections and frame formats → [`ingest::Ingested`] events into a [`ingest::Sink`].
//! - [`normalize`]: comment text → normalized text with a map back to original offsets.
//! - [`rules`]: TOML rule packs (a directory or the built-in set) → a compiled [`rules::RuleSet`].
//! - [`model`]: the learned second opinion (hashed n-grams, logistic regression) and its file.
//! - [`classify`]: normalized text + rules + model → [`classify::Verdict`] with evidence.
//! - [`history`]: per-room and per-user signals: repeats, floods, brigades, split words, silence.
//! - [`alerts`]: one routing call per comment ([`alerts::route`]) and the [`alerts::Hub`] (numbers, tickets).
//! - [`store`]: SQLite; the writer commits every alert before it is announced; reads, insights.
//! - [`tickets`]: response-time promises: deadlines, follow-ups, reminder stages.
//! - [`server`]: HTTP and WebSocket API, the console and the overlay.
//! - [`daemon`]: the wiring: intake, workers, reload, health watch, shutdown order.
//! - [`bus`]: NATS JetStream between a bridge holding the firehoses and classifier instances
//!   owning partitions of the rooms; the alert stream is the replicated truth (takeover).
//! - [`health`]: sources and store health behind `/healthz`; [`metrics`]: Prometheus counters.
//! - [`config`]: the TOML configuration with `file:line` errors; [`clock`]: the one wall clock.
//! - [`auth`], [`limits`], [`tls`], [`logsafe`]: who may call, bounds on what anyone can make it
//!   hold, HTTPS, viewer text escaped in logs.
//! - [`taxonomy`]: classes, topics, actions, languages shared by every stage; [`fasthash`]: the
//!   in-process hasher (seeded per process, never persisted).
//! - [`simulate`]: the demo's firehose; [`train`]: `liveguard train`; [`cli`]: the other
//!   commands over readers and writers; [`fuzzing`]: the fuzz targets' bodies; [`shutdown`]:
//!   the signal every task gets.

pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fasthash;
pub mod fnv;
pub mod fuzzing;
pub mod health;

pub mod alerts;
pub mod auth;
pub mod bus;
pub mod history;
pub mod ingest;
pub mod limits;
pub mod logsafe;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod rules;
pub mod server;
pub mod shutdown;
pub mod simulate;
pub mod store;
pub mod taxonomy;
pub mod tickets;
pub mod tls;
pub mod train;
