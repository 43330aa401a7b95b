//! `liveguard.toml`: where to listen, which rules, which firehoses, and the signal thresholds.
//! Flags and `LIVEGUARD_*` environment variables override the file (see `main.rs`). Loading
//! reports every problem at once, each as `file:line: message`: what serde refuses (unknown
//! keys, wrong types) and what only makes sense as a whole (addresses, URLs, sizes, deadlines),
//! so `liveguard config check` and `liveguard run` say the same thing.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::history::SignalConfig;
use crate::ingest::client::SourceConfig;
use crate::rules::file::line_of;
use crate::store::StoreConfig;
use crate::tickets::TicketConfig;

/// The daemon's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address (alerts socket, API, metrics).
    pub listen: String,
    /// Rule packs directory; `None`: `/etc/liveguard/rules` when it exists, else the packs
    /// built into the binary (see [`crate::rules::RuleSource::resolve`]).
    pub rules: Option<PathBuf>,
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
    /// A source disconnected, or connected but sending nothing, this long makes the daemon
    /// degraded: `/healthz` 503, an ops alert, the console's red banner (ms).
    pub source_down_ms: u64,
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
    /// Tokens, roles and the browser checks (`[auth]`, `[[auth.token]]`).
    pub auth: crate::auth::AuthConfig,
    /// HTTPS for the server (`[tls]`); absent: plain HTTP.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Sizes, rates and timeouts (`[limits]`).
    pub limits: crate::limits::Limits,
    /// NATS JetStream between bridges and instances (`[bus]`); absent: one process.
    pub bus: crate::bus::BusConfig,
    /// The file this was loaded from (SIGHUP re-reads its `[auth]` and `[tls]`).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Default of [`Config::source_down_ms`]: 15 s.
pub const SOURCE_DOWN_MS: u64 = 15_000;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8787".into(),
            rules: None,
            workers: 2,
            queue_capacity: 8192,
            fanout_capacity: 1024,
            dedupe_window_ms: 600_000,
            dedupe_max_ids: 2_000_000,
            sweep_interval_ms: 1_000,
            source_down_ms: SOURCE_DOWN_MS,
            watch_rules: true,
            overlay_auto_rooms: Vec::new(),
            sources: Vec::new(),
            signals: SignalConfig::default(),
            store: StoreConfig::default(),
            tickets: TicketConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            tls: None,
            limits: crate::limits::Limits::default(),
            bus: crate::bus::BusConfig::default(),
            path: None,
        }
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a configuration file, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A key in a table.
    Name(String),
    /// An element of an array (`[[source]]` number i, from 0).
    Index(usize),
}

/// A problem found by [`Config::check`], with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `["source", 1, "url"]`; empty for the file as a whole.
    pub key: Vec<Key>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for k in &self.key {
            match k {
                Key::Name(n) if first => write!(f, "{n}")?,
                Key::Name(n) => write!(f, ".{n}")?,
                Key::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        if !self.key.is_empty() {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

fn problem(key: &[&str], message: String) -> Problem {
    Problem {
        key: key.iter().map(|k| Key::Name((*k).to_string())).collect(),
        message,
    }
}

impl Config {
    /// Reads, parses and checks a configuration file: every problem, each with its line.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.display().to_string(),
                line: 1,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let mut cfg = Self::parse(&text, path)?;
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses and checks configuration text (`path` only names it in errors): every syntax
    /// error, every key serde refuses, then every [`check`](Self::check) problem.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigErrors> {
        let shown = path.display().to_string();
        let error = |offset: Option<usize>, message: String| ConfigError {
            path: shown.clone(),
            line: offset.map_or(1, |o| line_of(text, o)),
            message,
        };
        let (doc, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            return Err(ConfigErrors(
                syntax
                    .iter()
                    .map(|e| error(e.span().map(|s| s.start), e.message().trim().to_string()))
                    .collect(),
            ));
        }
        // serde stops at the first refusal: take the offending entry out and try again, until
        // what is left parses. A `[[source]]` goes as a whole (its `url` and `format` are
        // required, so taking one key out would only add a "missing field").
        let mut errors = Vec::new();
        let mut rest = doc.clone();
        // Which `[[source]]` of the file each source left in `rest` is.
        let mut sources: Vec<usize> = (0..doc
            .get_ref()
            .get("source")
            .and_then(|s| s.get_ref().as_array())
            .map_or(0, |a| a.len()))
            .collect();
        let parsed = loop {
            match Config::deserialize(toml::de::Deserializer::from(rest.clone())) {
                Ok(cfg) => break Some(cfg),
                Err(e) => {
                    let at = e.span().map(|s| s.start);
                    errors.push(error(at, plain(e.message())));
                    let removed = at.and_then(|pos| remove_containing(rest.get_mut(), pos));
                    match removed.as_deref() {
                        Some([Key::Name(n), Key::Index(i)]) if n == "source" && *i < sources.len() => {
                            sources.remove(*i);
                        }
                        Some(_) => {}
                        None => break None,
                    }
                    if errors.len() >= 100 {
                        break None;
                    }
                }
            }
        };
        if let Some(cfg) = &parsed {
            for mut p in cfg.check() {
                if let [Key::Name(n), Key::Index(i), ..] = p.key.as_mut_slice() {
                    if n == "source" {
                        *i = sources.get(*i).copied().unwrap_or(*i);
                    }
                }
                errors.push(ConfigError {
                    path: shown.clone(),
                    line: line_of_key(&doc, &p.key).map_or(1, |o| line_of(text, o)),
                    message: p.to_string(),
                });
            }
        }
        match parsed {
            Some(cfg) if errors.is_empty() => Ok(cfg),
            _ => {
                errors.sort_by_key(|e| e.line);
                Err(ConfigErrors(errors))
            }
        }
    }

    /// Every problem a parse cannot see: bad addresses, URLs, zero sizes, deadlines.
    pub fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(problem(
                &["listen"],
                format!("{:?} is not an address like 127.0.0.1:8787", self.listen),
            ));
        }
        for (i, s) in self.sources.iter().enumerate() {
            let at = |k: &str| vec![Key::Name("source".into()), Key::Index(i), Key::Name(k.into())];
            if !(s.url.starts_with("ws://") || s.url.starts_with("wss://")) {
                out.push(Problem {
                    key: at("url"),
                    message: format!("{:?} is not a ws:// or wss:// URL", s.url),
                });
            }
            let name = s.display_name();
            if self.sources[..i].iter().any(|o| o.display_name() == name) {
                out.push(Problem {
                    key: at(if s.name.is_some() { "name" } else { "url" }),
                    message: format!("a second source named {name:?}: give each a distinct name"),
                });
            }
        }
        for (name, v) in [
            ("workers", self.workers),
            ("queue_capacity", self.queue_capacity),
            ("fanout_capacity", self.fanout_capacity),
        ] {
            if v == 0 {
                out.push(problem(&[name], "must be at least 1".into()));
            }
        }
        for (name, v) in [
            ("batch_max", self.store.batch_max),
            ("hot_alerts", self.store.hot_alerts),
            ("queue", self.store.queue),
        ] {
            if v == 0 {
                out.push(problem(&["store", name], "must be at least 1".into()));
            }
        }
        match crate::auth::Keyring::build(&self.auth) {
            Ok(ring) => {
                if let Some(p) = self.unprotected(&ring) {
                    out.push(p);
                }
            }
            Err(errors) => {
                for e in errors {
                    let crate::auth::AuthError::Token { index, message, .. } = e;
                    out.push(Problem {
                        key: vec![
                            Key::Name("auth".into()),
                            Key::Name("token".into()),
                            Key::Index(index),
                        ],
                        message,
                    });
                }
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
                out.push(problem(&["tls"], "needs both cert and key".into()));
            }
        }
        for name in self.limits.zeros() {
            out.push(problem(&["limits", name], "must be at least 1".into()));
        }
        if self.source_down_ms == 0 {
            out.push(problem(&["source_down_ms"], "must be above 0 ms".into()));
        }
        for (name, message) in self.bus.check() {
            out.push(problem(&["bus", name], message));
        }
        for (room, message) in self.tickets.check() {
            let mut key = vec![Key::Name("tickets".into())];
            if let Some(r) = room {
                key.extend([Key::Name("rooms".into()), Key::Name(r)]);
            }
            out.push(Problem { key, message });
        }
        out
    }
}

impl Config {
    /// Protected mode: without tokens only a loopback address may be served. The problem
    /// names the fix.
    pub fn unprotected(&self, ring: &crate::auth::Keyring) -> Option<Problem> {
        let addr = self.listen.parse::<std::net::SocketAddr>().ok()?;
        if !ring.is_open() || addr.ip().is_loopback() {
            return None;
        }
        Some(problem(
            &["listen"],
            format!(
                "{addr} is reachable from other machines and no [[auth.token]] is configured, so \
                 anyone on the network could act on air: add a token (`[[auth.token]]` with name, \
                 role = \"manager\" and token_file; see README \"Security\") or listen on \
                 127.0.0.1:{}",
                addr.port()
            ),
        ))
    }
}

/// serde's wording without Rust type names: `expected usize` → `expected a whole number`.
pub fn plain(message: &str) -> String {
    let mut s = message.trim().replace("invalid type: ", "wrong type: ");
    for (rust, said) in [
        ("u8", "a whole number"),
        ("u16", "a whole number"),
        ("u32", "a whole number"),
        ("u64", "a whole number"),
        ("usize", "a whole number"),
        ("i64", "a whole number"),
        ("f32", "a number"),
        ("f64", "a number"),
        ("a sequence", "a list"),
        ("a map", "a table"),
    ] {
        s = s.replace(&format!("expected {rust}"), &format!("expected {said}"));
    }
    // `expected struct SourceConfig` / `… with 5 elements`: a table is what the user writes.
    if let Some(i) = s.find("expected struct ") {
        s.truncate(i);
        s.push_str("expected a table");
    }
    s
}

fn contains(span: &std::ops::Range<usize>, pos: usize) -> bool {
    span.contains(&pos) || (span.is_empty() && span.start == pos)
}

/// Whether `v` or anything inside it spans `pos`.
fn spans(v: &Spanned<DeValue<'_>>, pos: usize) -> bool {
    contains(&v.span(), pos)
        || match v.get_ref() {
            DeValue::Table(t) => t.iter().any(|(k, v)| contains(&k.span(), pos) || spans(v, pos)),
            DeValue::Array(a) => a.iter().any(|e| spans(e, pos)),
            _ => false,
        }
}

/// Removes the innermost entry of `table` that spans `pos` (a whole element of an array);
/// returns its key path, or None when no entry spans `pos`.
fn remove_containing(table: &mut DeTable<'_>, pos: usize) -> Option<Vec<Key>> {
    let key = table
        .iter()
        .find(|(k, v)| contains(&k.span(), pos) || spans(v, pos))
        .map(|(k, _)| k.clone())?;
    let name = Key::Name(key.get_ref().to_string());
    if let Some(v) = table.get_mut(&key) {
        match v.get_mut() {
            DeValue::Table(inner)
                if inner
                    .iter()
                    .any(|(k, v)| contains(&k.span(), pos) || spans(v, pos)) =>
            {
                let mut path = remove_containing(inner, pos)?;
                path.insert(0, name);
                return Some(path);
            }
            DeValue::Array(items) => {
                if let Some(i) = items.iter().position(|e| spans(e, pos)) {
                    let mut kept = toml::de::DeArray::new();
                    for (j, e) in items.iter().enumerate() {
                        if j != i {
                            kept.push(e.clone());
                        }
                    }
                    *items = kept;
                    return Some(vec![name, Key::Index(i)]);
                }
            }
            _ => {}
        }
    }
    table.remove(&key);
    Some(vec![name])
}

/// The 1-based line of `key` (e.g. `rules`) in configuration text, if it is there.
pub fn line_of_key_in(text: &str, key: &[Key]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    line_of_key(&doc, key).map(|o| line_of(text, o))
}

/// The offset of the deepest part of `key` present in `doc`.
fn line_of_key(doc: &Spanned<DeTable<'_>>, key: &[Key]) -> Option<usize> {
    let mut at = None;
    let mut cur: Option<&DeValue<'_>> = None;
    for (i, k) in key.iter().enumerate() {
        let next = match (k, i, cur) {
            (Key::Name(n), 0, _) => doc.get_ref().get_key_value(n.as_str()),
            (Key::Name(n), _, Some(DeValue::Table(t))) => t.get_key_value(n.as_str()),
            (Key::Index(j), _, Some(DeValue::Array(a))) => {
                let Some(e) = a.get(*j) else { break };
                at = Some(e.span().start);
                cur = Some(e.get_ref());
                continue;
            }
            _ => None,
        };
        let Some((k, v)) = next else { break };
        at = Some(k.span().start);
        cur = Some(v.get_ref());
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text, Path::new("c.toml")) {
            Ok(_) => Vec::new(),
            Err(ConfigErrors(es)) => es.iter().map(ToString::to_string).collect(),
        }
    }

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
        assert_eq!(
            errors("listen = \"x\"\n\n[[source]]\nurl = \"ws://a\"\nformat = \"telepathy\"\n"),
            [
                "c.toml:1: listen: \"x\" is not an address like 127.0.0.1:8787",
                "c.toml:5: unknown variant `telepathy`, expected `canonical` or `tiktok`"
            ]
        );
        let e = errors("colour = 1\n");
        assert!(e[0].starts_with("c.toml:1: unknown field `colour`"), "{e:?}");
        let bad = Config {
            listen: "nowhere".into(),
            workers: 0,
            ..Config::default()
        };
        assert_eq!(bad.check().len(), 2);
    }

    #[test]
    fn every_problem_is_reported_each_with_its_line() {
        let text = "colour = 1\n\
                    workers = \"two\"\n\
                    listen = \"nowhere\"\n\
                    [[source]]\n\
                    url = \"ws://a/\"\n\
                    format = \"telepathy\"\n\
                    [[source]]\n\
                    url = \"http://b/\"\n\
                    format = \"canonical\"\n\
                    [store]\n\
                    batch_max = 0\n\
                    durability = \"sometimes\"\n\
                    [tickets]\n\
                    respond_ms = 10\n\
                    resolve_ms = 5\n";
        let got = errors(text);
        let want = [
            "c.toml:1: unknown field `colour`",
            "c.toml:2: wrong type: string \"two\", expected a whole number",
            "c.toml:6: unknown variant `telepathy`",
            "c.toml:12: unknown variant `sometimes`",
        ];
        for w in want {
            assert!(got.iter().any(|e| e.starts_with(w)), "{w:?} not in {got:#?}");
        }
        // Checks run on what parsed, and name the right `[[source]]` though one was dropped.
        assert!(
            got.contains(&"c.toml:8: source[1].url: \"http://b/\" is not a ws:// or wss:// URL".to_string()),
            "{got:#?}"
        );
        assert!(
            got.contains(&"c.toml:11: store.batch_max: must be at least 1".to_string()),
            "{got:#?}"
        );
        let fixed = "listen = \"nowhere\"\n[[source]]\nurl = \"http://b/\"\nformat = \"canonical\"\n\
                     [store]\nbatch_max = 0\n[tickets]\nrespond_ms = 10\nresolve_ms = 5\n";
        assert_eq!(
            errors(fixed),
            [
                "c.toml:1: listen: \"nowhere\" is not an address like 127.0.0.1:8787",
                "c.toml:3: source[0].url: \"http://b/\" is not a ws:// or wss:// URL",
                "c.toml:6: store.batch_max: must be at least 1",
                "c.toml:7: tickets: resolve_ms (5) is shorter than respond_ms (10)",
            ]
        );
    }

    #[test]
    fn syntax_errors_have_lines_and_partial_tables_take_defaults() {
        let e = errors("listen = \n[store\n");
        assert!(
            !e.is_empty() && e.iter().all(|e| e.starts_with("c.toml:")),
            "{e:?}"
        );
        let cfg = Config::parse(
            "[tickets]\nrespond_ms = 600000\n[store]\nretention_days = 7\n",
            Path::new("c.toml"),
        )
        .expect("partial tables parse");
        assert_eq!(cfg.tickets.default.respond_ms, 600_000);
        assert_eq!(cfg.tickets.default.resolve_ms, 86_400_000);
        assert_eq!(cfg.store.batch_max, StoreConfig::default().batch_max);
    }

    #[test]
    fn bus_keys_parse_and_bad_partitions_are_reported() {
        let ok = Config::parse(
            "[bus]\nurl = \"nats://127.0.0.1:4222\"\npartitions = \"0-3\"\npartition_count = 8\n",
            Path::new("t.toml"),
        )
        .expect("parses");
        assert_eq!(ok.bus.owned(), Ok(vec![0, 1, 2, 3]));
        assert!(ok.check().is_empty(), "{:?}", ok.check());
        let errs = errors("[bus]\nurl = \"nats://127.0.0.1:4222\"\npartitions = \"3-1\"\n");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("c.toml:3:") && e.contains("backwards")),
            "{errs:?}"
        );
        let errs =
            errors("[bus]\nurl = \"nats://127.0.0.1:4222\"\npartitions = \"9\"\npartition_count = 8\n");
        assert!(
            errs.iter().any(|e| e.contains("not below partition_count 8")),
            "{errs:?}"
        );
    }
}
