//! Is the daemon seeing anything? Each source reports its connection and its frames here (an
//! atomic store per frame); [`Health::check`] turns that, and the store's last commit, into
//! [`Problem`]s: a source disconnected, or connected but sending no frame, for longer than
//! `source_down_ms`, or a store that cannot commit. `/healthz` answers 503 while there is any;
//! the daemon raises an ops alert when one starts and when it ends ([`Watch`]).
//!
//! Durations are measured on a monotonic clock (a wall clock moved by a test, or by NTP, must
//! not make a live source look dead); `since_ms` is reported as wall time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

/// One source's connection, as its client task reports it.
#[derive(Debug)]
pub struct SourceHealth {
    name: Arc<str>,
    room: Option<String>,
    started: Instant,
    connected: AtomicBool,
    /// When `connected` last changed, ms since `started`.
    changed: AtomicU64,
    /// When the last frame arrived (or the connection opened), ms since `started`.
    last_frame: AtomicU64,
}

impl SourceHealth {
    fn mono(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The connection opened (`true`) or ended (`false`).
    pub fn set_connected(&self, up: bool) {
        let now = self.mono();
        self.connected.store(up, Ordering::SeqCst);
        self.changed.store(now, Ordering::SeqCst);
        if up {
            self.last_frame.store(now, Ordering::SeqCst);
        }
    }

    /// A frame arrived.
    pub fn frame(&self) {
        self.last_frame.store(self.mono(), Ordering::Relaxed);
    }

    /// The source's name (logs, metrics).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A source is not connected.
    Disconnected,
    /// A source is connected but sends nothing.
    Silent,
    /// The store cannot commit.
    Failing,
}

impl State {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Silent => "silent",
            Self::Failing => "failing",
        }
    }
}

/// One reason the daemon is degraded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The source's name; `None` for the store.
    pub source: Option<String>,
    /// The room a source is configured for, if any.
    pub room: Option<String>,
    /// What is wrong.
    pub state: State,
    /// Since when, ms since the epoch.
    pub since_ms: u64,
    /// For how long, ms.
    pub for_ms: u64,
    /// The same in words, for logs and curl.
    pub message: String,
}

impl Problem {
    /// Two reports of the same problem (same source and state) are one problem going on.
    pub fn same(&self, other: &Self) -> bool {
        self.source == other.source && self.state == other.state
    }
}

/// The store's last commit failure, as the writer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    /// The first failed commit in the current run of failures, ms since the epoch.
    pub since_ms: u64,
    /// What SQLite said last.
    pub error: String,
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "commits fail: {}", self.error)
    }
}

/// Every source's health and the threshold.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    started_wall_ms: u64,
    down_after_ms: u64,
    sources: Vec<Arc<SourceHealth>>,
}

impl Health {
    /// Health for `sources` (name, configured room), each counted as disconnected since now
    /// until its client connects; a source is down after `down_after_ms`.
    pub fn new(sources: &[(String, Option<String>)], down_after_ms: u64, now_wall_ms: u64) -> Arc<Self> {
        let started = Instant::now();
        Arc::new(Self {
            started,
            started_wall_ms: now_wall_ms,
            down_after_ms,
            sources: sources
                .iter()
                .map(|(name, room)| {
                    Arc::new(SourceHealth {
                        name: Arc::from(name.as_str()),
                        room: room.clone(),
                        started,
                        connected: AtomicBool::new(false),
                        changed: AtomicU64::new(0),
                        last_frame: AtomicU64::new(0),
                    })
                })
                .collect(),
        })
    }

    /// The handle source `i` reports through.
    pub fn source(&self, i: usize) -> Option<Arc<SourceHealth>> {
        self.sources.get(i).cloned()
    }

    /// How long a source may be disconnected or silent (ms).
    pub fn down_after_ms(&self) -> u64 {
        self.down_after_ms
    }

    /// What is wrong now, given the store's state.
    pub fn check(&self, store: Option<&StoreFailure>, now_wall_ms: u64) -> Vec<Problem> {
        let now = self.started.elapsed().as_millis() as u64;
        let wall = |mono: u64| self.started_wall_ms + mono;
        let mut out = Vec::new();
        for s in &self.sources {
            let (state, since) = if s.connected.load(Ordering::SeqCst) {
                (State::Silent, s.last_frame.load(Ordering::Relaxed))
            } else {
                (State::Disconnected, s.changed.load(Ordering::SeqCst))
            };
            let for_ms = now.saturating_sub(since);
            if for_ms < self.down_after_ms {
                continue;
            }
            let what = match state {
                State::Silent => "connected but silent",
                _ => "disconnected",
            };
            out.push(Problem {
                source: Some(s.name.to_string()),
                room: s.room.clone(),
                state,
                since_ms: wall(since),
                for_ms,
                message: format!(
                    "source {} {what} for {} s (since {} UTC): the watcher is blind",
                    s.name,
                    (for_ms + 500) / 1000,
                    hms_utc(wall(since))
                ),
            });
        }
        if let Some(f) = store {
            let for_ms = now_wall_ms.saturating_sub(f.since_ms);
            out.push(Problem {
                source: None,
                room: None,
                state: State::Failing,
                since_ms: f.since_ms,
                for_ms,
                message: format!(
                    "the state database cannot commit (since {} UTC, retrying): {}",
                    hms_utc(f.since_ms),
                    f.error
                ),
            });
        }
        out
    }
}

/// `HH:MM:SS` of a wall time, UTC.
pub fn hms_utc(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// Follows [`Health::check`] from one evaluation to the next: what started, what ended.
#[derive(Debug, Default)]
pub struct Watch {
    current: Vec<Problem>,
}

impl Watch {
    /// Takes the problems now; returns those that started and those that ended since the last
    /// call.
    pub fn update(&mut self, now: Vec<Problem>) -> (Vec<Problem>, Vec<Problem>) {
        let started = now
            .iter()
            .filter(|p| !self.current.iter().any(|c| c.same(p)))
            .cloned()
            .collect();
        let ended = self
            .current
            .iter()
            .filter(|c| !now.iter().any(|p| p.same(c)))
            .cloned()
            .collect();
        self.current = now;
        (started, ended)
    }
}

/// The outcome of the last reload, for `/api/console` and ops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// Rule sets swapped in since start (0: the one loaded at start).
    pub generation: u64,
    /// The last attempt's errors (`file:line: id: message`), when it failed.
    pub error: Option<String>,
    /// When the last attempt finished, ms since the epoch.
    pub at_ms: u64,
}

/// Shared reload status.
pub type SharedStatus = Arc<std::sync::Mutex<ReloadStatus>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_down_past_the_threshold_and_the_watch_sees_it_start_and_end() {
        // Threshold 0: a source not connected is down at once (no sleeping in tests).
        let h = Health::new(&[("relay".into(), Some("r1".into()))], 0, 1_000_000);
        let s = h.source(0).expect("one source");
        let p = h.check(None, 1_000_000);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].state, p[0].source.as_deref(), p[0].room.as_deref()),
            (State::Disconnected, Some("relay"), Some("r1"))
        );
        assert!(
            p[0].message
                .starts_with("source relay disconnected for 0 s (since 00:16:40 UTC)"),
            "{}",
            p[0].message
        );
        let mut w = Watch::default();
        let (started, ended) = w.update(p.clone());
        assert_eq!((started.len(), ended.len()), (1, 0));
        assert_eq!(w.update(p), (vec![], vec![]), "a problem going on is not news");
        s.set_connected(true);
        let p = h.check(None, 1_000_000);
        assert!(
            p.iter().all(|p| p.state == State::Silent),
            "connected, no frame: silent {p:?}"
        );
        let (started, ended) = w.update(p);
        assert_eq!(
            (started.len(), ended.len()),
            (1, 1),
            "disconnected ended, silent started"
        );

        let h60 = Health::new(&[("relay".into(), None)], 60_000, 0);
        assert!(h60.check(None, 0).is_empty(), "not down before 60 s");
        let failing = StoreFailure {
            since_ms: 3_600_000,
            error: "disk I/O error".into(),
        };
        let p = h60.check(Some(&failing), 3_605_000);
        assert_eq!(
            (p[0].state, p[0].for_ms, p[0].source.as_deref()),
            (State::Failing, 5_000, None)
        );
        assert!(p[0].message.contains("01:00:00 UTC") && p[0].message.contains("disk I/O error"));
    }
}
