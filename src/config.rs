//! `liveguard.toml`: where to listen, which rules, which firehoses, and the signal thresholds.
//! Flags and `LIVEGUARD_*` environment variables override the file (see `main.rs`). Errors
//! name the file and line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ingest::client::SourceConfig;
use crate::rules::file::line_of;
use crate::signals::SignalConfig;
use crate::store::StoreConfig;
use crate::tickets::TicketConfig;

/// The daemon's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address (alerts socket, API, metrics).
    pub listen: String,
    /// Rule packs directory.
    pub rules: PathBuf,
    /// Classifier workers (a room always goes to the same one).
    pub workers: usize,
    /// Comments queued per worker before neutrals are shed.
    pub queue_capacity: usize,
    /// Messages buffered per alert subscriber before it is told it lagged.
    pub fanout_capacity: usize,
    /// Message ids remembered for de-duplication (ms).
    pub dedupe_window_ms: u64,
    /// At most this many message ids remembered (all workers); at very high rates the cap
    /// shortens the window.
    pub dedupe_max_ids: usize,
    /// How often idle state is swept and silence checked (ms).
    pub sweep_interval_ms: u64,
    /// Reload rules when files under the rules directory change (SIGHUP always reloads).
    pub watch_rules: bool,
    /// Rooms whose overlay shows invite prompts for strong complaints without a click.
    pub overlay_auto_rooms: Vec<String>,
    /// Upstream firehoses.
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Room and user signal thresholds.
    pub signals: SignalConfig,
    /// The alert store (`[store]`).
    pub store: StoreConfig,
    /// Ticket deadlines (`[tickets]`, `[tickets.rooms.ROOM]`).
    pub tickets: TicketConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8787".into(),
            rules: PathBuf::from("rules"),
            workers: 2,
            queue_capacity: 8192,
            fanout_capacity: 1024,
            dedupe_window_ms: 600_000,
            dedupe_max_ids: 2_000_000,
            sweep_interval_ms: 1_000,
            watch_rules: true,
            overlay_auto_rooms: Vec::new(),
            sources: Vec::new(),
            signals: SignalConfig::default(),
            store: StoreConfig::default(),
            tickets: TicketConfig::default(),
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// 1-based line (0: the whole file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            path: path.display().to_string(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        })
    }

    /// Every problem a parse cannot see: bad addresses, URLs, zero sizes.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(format!(
                "listen: {:?} is not an address like 127.0.0.1:8787",
                self.listen
            ));
        }
        for (i, s) in self.sources.iter().enumerate() {
            if !(s.url.starts_with("ws://") || s.url.starts_with("wss://")) {
                out.push(format!(
                    "source[{i}].url: {:?} is not a ws:// or wss:// URL",
                    s.url
                ));
            }
        }
        for (name, v) in [
            ("workers", self.workers),
            ("queue_capacity", self.queue_capacity),
            ("fanout_capacity", self.fanout_capacity),
            ("store.batch_max", self.store.batch_max),
            ("store.hot_alerts", self.store.hot_alerts),
            ("store.queue", self.store.queue),
        ] {
            if v == 0 {
                out.push(format!("{name}: must be at least 1"));
            }
        }
        out.extend(self.tickets.check());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_checks() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/liveguard.toml"))
            .expect("example config in the repo");
        let cfg = Config::parse(&text, Path::new("liveguard.toml")).expect("parses");
        assert!(cfg.check().is_empty(), "{:?}", cfg.check());
        assert_eq!(cfg.sources.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let e = Config::parse(
            "listen = \"x\"\n\n[[source]]\nurl = \"ws://a\"\nformat = \"telepathy\"\n",
            Path::new("c.toml"),
        )
        .expect_err("bad format");
        assert_eq!(e.line, 5, "{e}");
        let e = Config::parse("colour = 1\n", Path::new("c.toml")).expect_err("unknown key");
        assert!(
            e.to_string().starts_with("c.toml:1: unknown field `colour`"),
            "{e}"
        );
        let bad = Config {
            listen: "nowhere".into(),
            workers: 0,
            ..Config::default()
        };
        assert_eq!(bad.check().len(), 2);
    }
}
