//! One integration test binary. Modules:
//! - `engine`: decisions on a small fixture pack (purchase, question, negation, allow-lists,
//!   detectors, spans in the original text).
//! - `shipped`: the shipped packs in `rules/`: per-topic decisions in zh and en, evasions, and
//!   `rules check` passing.
//! - `browser`: the console and overlay pages in real headless Chromium.
//! - `console`: the console's labels from the daemon's vocabulary (zh, en, and the overlay's
//!   alike); updates carrying only what changed merged into the cards.
//! - `shift`: a floor manager's shift in Chromium: the worklist with 600 buyers, a steady feed,
//!   a blind source turning the console red, copy over plain HTTP.
//! - `bursts`: a 20,000-user brigade and a 20,000-times repeater through the real binary:
//!   one small alert, bounded memory, bytes to a subscriber and WAL.
//! - `bus`: NATS JetStream with a real `nats-server -js`: a bridge publishing once, two
//!   instances raising every complaint once, kill -9 and takeover, the server restarted, the
//!   console gateway and its actions, `/healthz` without the server.
//! - `cli`: the real `liveguard` binary: classify exit codes and malformed lines, `rules check`
//!   on broken packs, `rules explain`.
//! - `daemon`: the daemon over real sockets: alerts, brigades, reconnects, bad frames,
//!   replay, slow subscribers, deletions, backlog, split words, repeats, silence.
//! - `disk`: the state directory on a small tmpfs that fills up: health and metrics answer,
//!   actions are refused at once, every complaint is committed once space returns.
//! - `faults`: stalled, half-closed and garbage upstreams; Close answered; idle sockets and
//!   1,000 idle connections closed; SIGTERM under load losing no accepted alert.
//! - `fuzz_corpus`: the fuzz targets' kept corpus replayed, plus random bytes, on stable.
//! - `model`: the learned second opinion: what it raises and says, byte-for-byte retraining,
//!   a damaged model file, and the floor's decisions retraining it.
//! - `layout`: the module graph has no cycle and each stage names only earlier ones.
//! - `reload`: hot reload under live traffic; a broken change keeps the old rules.
//! - `security`: the route table walked with no, wrong and wrong-role tokens; protected mode;
//!   Host and Origin checks; console login; overlay tokens; SIGHUP token reload; TLS.
//! - `service`: the systemd unit (verify, security score) and sd_notify on a fake socket.
//! - `properties`: proptest invariants (normalizer and classifier never panic, spans valid).
//! - `tls`: HTTPS from `[tls]`, a renewed certificate on SIGHUP; a `wss://` upstream through
//!   the system roots.
//! - `store`: alerts and announced updates survive kill -9; replay after reconnect is exact;
//!   ticket reminders on an injected clock, across a restart; bad databases fail start-up
//!   clearly.
//! - `relays`: frames made by the real relay libraries (`tests/fixtures/relays/`): what
//!   `--format tiktok` reads from each, and each through the real binary.

mod util;

mod browser;
mod bursts;
mod bus;
mod cli;
mod console;
mod daemon;
mod disk;
mod engine;
mod faults;
mod fuzz_corpus;
mod insights;
mod layout;
mod model;
mod properties;
mod relays;
mod reload;
mod security;
mod service;
mod shift;
mod shipped;
mod store;
mod tls;
