//! The bus: NATS JetStream between the edge and the classifiers, for more rooms than one
//! machine holds and for surviving the loss of one. A [`bridge`] holds the firehoses and
//! publishes canonical events to the comment stream, partitioned by a stable hash of the room;
//! a classifier instance ([`consume`]) takes its partitions through durable pull consumers,
//! commits alerts to its own store, [`publish`]es every version to the alert stream (the
//! replicated truth) and only then acks; a new owner of a partition [`rebuild`]s it from that
//! stream first; a console [`gateway`] mirrors every partition and forwards console
//! [`actions`] to the owners. Without a `[bus]` everything runs in one process as before.
//!
//! Subjects: `liveguard.comments.<partition>.<room>` and
//! `liveguard.alerts.<partition>.<room>.<alert id>`; rooms are encoded as one subject token
//! ([`room_token`]).

pub mod actions;
pub mod bridge;
pub mod consume;
pub mod gateway;
pub mod publish;
pub mod rebuild;
pub mod streams;
pub mod wire;

use std::time::Duration;

use serde::Deserialize;

/// Waits out `backoff` after a failed attempt and doubles it (at most 5 s); false when
/// shutdown came first.
pub async fn back_off(backoff: &mut Duration, shutdown: &mut crate::shutdown::Shutdown) -> bool {
    tokio::select! {
        _ = shutdown.wait() => return false,
        _ = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    true
}

/// Subject prefix of the comment stream.
pub const COMMENTS: &str = "liveguard.comments";
/// Subject prefix of the alert stream.
pub const ALERTS: &str = "liveguard.alerts";

/// The `[bus]` table (and `--nats`, `--partitions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// NATS server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    pub url: String,
    /// How many partitions rooms are hashed over (the bridge's `--partitions P`). An instance
    /// reads it from the comment stream when unset here.
    pub partition_count: Option<u32>,
    /// The partitions this instance owns (`0-3`, `4,5,6,7`); empty for a bridge.
    pub partitions: String,
    /// Stream replicas: 1 on one server, 3 on a production cluster of three.
    pub replicas: usize,
    /// How long the server drops a re-sent comment (same `Nats-Msg-Id`), ms: covers a bridge's
    /// reconnect backlog and a second bridge on the same source.
    pub duplicate_window_ms: u64,
    /// How long comments stay in their stream, ms (consumers that fell behind longer lose them).
    pub comments_max_age_ms: u64,
    /// How long alert versions stay in the alert stream, ms: a takeover rebuilds what is younger.
    pub alerts_max_age_ms: u64,
    /// Events a bridge buffers while the server does not answer; past it the firehose waits.
    pub buffer: usize,
    /// Comments taken from a partition at once (one commit and one ack per batch).
    pub batch: usize,
    /// Unacknowledged comments a partition's consumer may hold; the server stops delivering past it.
    pub max_ack_pending: i64,
    /// A comment not acked within this long is delivered again (ms).
    pub ack_wait_ms: u64,
    /// How long start-up waits for the server (connect, streams, rebuild), ms.
    pub connect_timeout_ms: u64,
    /// A console gateway (`liveguard console`): mirrors every partition, consumes none.
    #[serde(skip)]
    pub console: bool,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            partition_count: None,
            partitions: String::new(),
            replicas: 1,
            duplicate_window_ms: 600_000,
            comments_max_age_ms: 24 * 3_600_000,
            alerts_max_age_ms: 7 * 24 * 3_600_000,
            buffer: 10_000,
            batch: 256,
            max_ack_pending: 4_096,
            ack_wait_ms: 30_000,
            connect_timeout_ms: 20_000,
            console: false,
        }
    }
}

impl BusConfig {
    /// Whether a bus is configured at all (else the single-process path).
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The owned partitions, parsed.
    pub fn owned(&self) -> Result<Vec<u32>, String> {
        parse_partitions(&self.partitions)
    }

    /// Problems `config check` reports for `[bus]`.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.enabled() {
            return out;
        }
        if !self.url.split(',').all(|u| {
            let u = u.trim();
            u.starts_with("nats://") || u.starts_with("tls://") || !u.contains("://")
        }) {
            out.push(("url", format!("{:?} is not a nats:// URL", self.url)));
        }
        if let Err(e) = self.owned() {
            out.push(("partitions", e));
        }
        if let (Some(p), Ok(owned)) = (self.partition_count, self.owned()) {
            if p == 0 {
                out.push(("partition_count", "must be at least 1".into()));
            } else if let Some(bad) = owned.iter().find(|&&o| o >= p) {
                out.push((
                    "partitions",
                    format!("partition {bad} is not below partition_count {p}"),
                ));
            }
        }
        for (name, v) in [
            ("buffer", self.buffer),
            ("batch", self.batch),
            ("replicas", self.replicas),
        ] {
            if v == 0 {
                out.push((name, "must be at least 1".into()));
            }
        }
        out
    }

    /// The duplicate window.
    pub fn duplicate_window(&self) -> Duration {
        Duration::from_millis(self.duplicate_window_ms)
    }
}

/// Parses `0-3`, `4,5,6,7`, `0-1,6`: sorted, without repeats; empty text is no partition.
pub fn parse_partitions(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{part:?} is not a partition number or range like 0-3"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("{part:?}: the range runs backwards"));
                }
                // A typo like 0-4000000000 would allocate for ever.
                if b - a > 65_535 {
                    return Err(format!("{part:?}: more than 65,536 partitions"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

pub use crate::fnv::fnv1a;

/// The partition of `room` among `count`.
pub fn partition_of(room: &str, count: u32) -> u32 {
    (fnv1a(room.as_bytes()) % u64::from(count.max(1))) as u32
}

/// A room as one subject token: `[A-Za-z0-9_-]` kept, every other byte as `~XX` (`.`, `*`,
/// `>` and spaces would change the subject's shape). A deletion naming no room is `~`.
pub fn room_token(room: Option<&str>) -> String {
    let Some(room) = room else { return "~".into() };
    let mut out = String::with_capacity(room.len());
    for b in room.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// `liveguard.comments.<p>.<room>`.
pub fn comment_subject(partition: u32, room: Option<&str>) -> String {
    format!("{COMMENTS}.{partition}.{}", room_token(room))
}

/// `liveguard.alerts.<p>.<room>.<id>`.
pub fn alert_subject(partition: u32, room: &str, id: &str) -> String {
    format!(
        "{ALERTS}.{partition}.{}.{}",
        room_token(Some(room)),
        room_token(Some(id))
    )
}

/// Why the bus could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No connection to the server within the start-up timeout.
    #[error("cannot reach NATS at {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A stream or consumer could not be created or read.
    #[error("JetStream {what}: {message}")]
    JetStream {
        /// What was being done.
        what: String,
        /// Why.
        message: String,
    },
    /// The configuration does not add up.
    #[error("bus configuration: {0}")]
    Config(String),
}

impl BusError {
    /// A JetStream failure while doing `what`.
    pub fn js(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::JetStream {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// Connects to `cfg.url`, retrying until `connect_timeout_ms`; the client reconnects by
/// itself afterwards (and buffers a little meanwhile).
pub async fn connect(cfg: &BusConfig, name: &str) -> Result<async_nats::Client, BusError> {
    let timeout = Duration::from_millis(cfg.connect_timeout_ms);
    let opts = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        // Keep trying for ever: a bus outage is degraded, not fatal.
        .max_reconnects(None);
    // A cluster is several URLs, comma-separated; the client fails over between them.
    let urls: Vec<&str> = cfg
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let fut = opts.connect(urls);
    match tokio::time::timeout(timeout, async {
        let client = fut.await?;
        // With retry_on_initial_connect the client returns before it is connected.
        let deadline = tokio::time::Instant::now() + timeout;
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, async_nats::ConnectError>(client)
    })
    .await
    {
        Ok(Ok(c)) if c.connection_state() == async_nats::connection::State::Connected => Ok(c),
        Ok(Ok(_)) | Err(_) => Err(BusError::Connect {
            url: cfg.url.clone(),
            message: format!("no answer within {} ms", cfg.connect_timeout_ms),
        }),
        Ok(Err(e)) => Err(BusError::Connect {
            url: cfg.url.clone(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_ranges_and_lists() {
        for (text, want) in [
            ("0-3", Ok(vec![0, 1, 2, 3])),
            ("4,5,6,7", Ok(vec![4, 5, 6, 7])),
            ("0-1, 6,1", Ok(vec![0, 1, 6])),
            ("", Ok(vec![])),
            ("3-1", Err(())),
            ("a", Err(())),
            ("0-99999999", Err(())),
        ] {
            assert_eq!(parse_partitions(text).map_err(|_| ()), want, "{text:?}");
        }
    }

    #[test]
    fn the_partition_is_fnv1a_of_the_room() {
        // Fixed values: a change here moves rooms between instances of a running deployment.
        let got: Vec<u32> = (0..4).map(|i| partition_of(&format!("room-{i}"), 8)).collect();
        assert_eq!(got, [7, 4, 5, 2]);
        assert_eq!(partition_of("room-1", 1), 0);
    }

    #[test]
    fn rooms_become_one_safe_subject_token() {
        assert_eq!(room_token(Some("room-1_A")), "room-1_A");
        assert_eq!(room_token(Some("a.b *>")), "a~2Eb~20~2A~3E");
        assert_eq!(room_token(Some("直播")), "~E7~9B~B4~E6~92~AD");
        assert_eq!(room_token(None), "~");
        assert_eq!(comment_subject(3, Some("r.1")), "liveguard.comments.3.r~2E1");
    }
}
