//! liveguard: watches live-commerce comment firehoses and tells the people running the room
//! which comments are genuine complaints (invite on mic), which are malicious attacks (keep
//! off mic), and which are neutral.
//!
//! # Layout
//! The pipeline, one module per stage, data flowing one way:
//! - [`normalize`]: comment text → normalized text with a map back to original offsets.
//! - [`rules`]: TOML rule packs (a directory, or the set built into the binary) → raw rules (with
//!   `file:line` errors) → compiled [`rules::RuleSet`].
//! - [`classify`]: normalized text + rule set → matches → [`classify::Verdict`].
//! - [`pipeline`] and [`signals`]: per comment, with room and user history → alerts.
//! - [`alerts`]: sequence numbers and the fan-out; [`store`]: SQLite, where every alert is
//!   committed before it is announced, with [`tickets`] (deadlines, reminders) and insights.
//! - [`server`]: the sockets, the API and the two pages; [`daemon`] wires it all; [`health`]
//!   says when a source or the store fails (`/healthz` 503, an ops alert, the console banner).
//! - [`auth`], [`limits`], [`tls`]: who may use the server (tokens, roles, sessions), the
//!   bounds on what any client or relay can make it hold, HTTPS; [`logsafe`] escapes viewer
//!   text in logs.
//! - [`fasthash`]: the hasher of in-process maps and keys on the per-comment path.
//! - [`fuzzing`]: the fuzz targets' bodies (`fuzz/`, and replayed by `cargo test`).
//! - [`cli`]: the `classify`, `rules` and `report` commands, over readers and writers so tests
//!   feed strings.

pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fasthash;
pub mod fuzzing;
pub mod health;

pub mod alerts;
pub mod auth;
pub mod ingest;
pub mod limits;
pub mod logsafe;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod server;
pub mod shutdown;
pub mod signals;
pub mod simulate;
pub mod store;
pub mod taxonomy;
pub mod tickets;
pub mod tls;
pub mod train;
