//! `[limits]`: every bound on what a client or a relay can make the daemon hold or do, in one
//! table, each counted in `liveguard_limited_total{limit}` or `liveguard_refused_total{reason}`
//! when it bites; and the token bucket the per-token request rate and the overlay use.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

/// The limits (README "Security" explains each).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (bytes): 413 beyond.
    pub max_body_bytes: usize,
    /// Largest message a client may send on a served WebSocket (bytes).
    pub max_ws_message_bytes: usize,
    /// A comment's text is kept (stored, shown, sent) up to this many characters; it is
    /// classified whole.
    pub comment_chars: usize,
    /// An overlay prompt is cut to this many characters.
    pub overlay_prompt_chars: usize,
    /// A viewer's name on air is cut to this many characters (links stripped).
    pub overlay_name_chars: usize,
    /// Automatic overlay prompts per room per minute (`overlay_auto_rooms`); more are dropped.
    pub overlay_auto_per_minute: u32,
    /// Alert sockets open at once for manager tokens (the console).
    pub subscribers_manager: usize,
    /// Overlay sockets open at once.
    pub subscribers_overlay: usize,
    /// Requests per second per token (a burst of twice as many is allowed); 429 beyond.
    pub requests_per_second: u32,
    /// Served connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// A new connection must finish its TLS handshake and send its request headers within
    /// this time (ms).
    pub handshake_timeout_ms: u64,
    /// A served WebSocket from which nothing (not even a pong) arrives for this long is
    /// closed (ms); the daemon pings at a third of it.
    pub ws_idle_timeout_ms: u64,
    /// Distinct `kind` labels on `liveguard_events_ignored_total`; other kinds count as `other`.
    pub max_label_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_ws_message_bytes: 4 * 1024,
            comment_chars: 2_000,
            overlay_prompt_chars: 120,
            overlay_name_chars: 24,
            overlay_auto_per_minute: 6,
            subscribers_manager: 64,
            subscribers_overlay: 32,
            requests_per_second: 50,
            max_connections: 4_096,
            handshake_timeout_ms: 10_000,
            ws_idle_timeout_ms: 60_000,
            max_label_values: crate::metrics::MAX_KIND_LABELS,
        }
    }
}

impl Limits {
    /// Names of limits that are 0 (each must be at least 1).
    pub fn zeros(&self) -> Vec<&'static str> {
        let all = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_ws_message_bytes", self.max_ws_message_bytes as u64),
            ("comment_chars", self.comment_chars as u64),
            ("overlay_prompt_chars", self.overlay_prompt_chars as u64),
            ("overlay_name_chars", self.overlay_name_chars as u64),
            ("overlay_auto_per_minute", u64::from(self.overlay_auto_per_minute)),
            ("subscribers_manager", self.subscribers_manager as u64),
            ("subscribers_overlay", self.subscribers_overlay as u64),
            ("requests_per_second", u64::from(self.requests_per_second)),
            ("max_connections", self.max_connections as u64),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("ws_idle_timeout_ms", self.ws_idle_timeout_ms),
            ("max_label_values", self.max_label_values as u64),
        ];
        all.iter().filter(|(_, v)| *v == 0).map(|(n, _)| *n).collect()
    }
}

/// Token buckets by key: `rate` per `per_ms`, holding at most `burst`. At most `max_keys`
/// keys are tracked (full buckets are forgotten first), so memory stays bounded.
#[derive(Debug)]
pub struct Buckets {
    rate: f64,
    per_ms: f64,
    burst: f64,
    max_keys: usize,
    map: Mutex<HashMap<String, (f64, u64)>>,
}

impl Buckets {
    /// `rate` tokens every `per_ms`, `burst` at most.
    pub fn new(rate: u32, per_ms: u64, burst: u32, max_keys: usize) -> Self {
        Self {
            rate: f64::from(rate),
            per_ms: per_ms.max(1) as f64,
            burst: f64::from(burst.max(1)),
            max_keys,
            map: Mutex::default(),
        }
    }

    /// Takes one token for `key` at `now_ms`; false when its bucket is empty.
    pub fn take(&self, key: &str, now_ms: u64) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            let (rate, per, burst) = (self.rate, self.per_ms, self.burst);
            map.retain(|_, (level, at)| *level + now_ms.saturating_sub(*at) as f64 * rate / per < burst);
            if map.len() >= self.max_keys {
                return false;
            }
        }
        let (level, at) = map.entry(key.to_string()).or_insert((self.burst, now_ms));
        let refill = now_ms.saturating_sub(*at) as f64 * self.rate / self.per_ms;
        *level = (*level + refill).min(self.burst);
        *at = now_ms.max(*at);
        if *level >= 1.0 {
            *level -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `s` cut to `max` characters (on a character boundary), with `…` when cut.
pub fn cut(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        None => (s.to_string(), false),
        Some((i, _)) => {
            let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
            let _ = i;
            out.push('…');
            (out, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let b = Buckets::new(2, 1_000, 4, 10);
        let taken = (0..10).filter(|_| b.take("li", 0)).count();
        assert_eq!(taken, 4, "the burst");
        assert!(!b.take("li", 100));
        assert!(b.take("li", 500), "one token back after half a second at 2/s");
        assert!(b.take("other", 500), "keys are separate");
    }

    #[test]
    fn cutting_keeps_characters_whole() {
        assert_eq!(cut("阿珍阿珍阿珍", 4), ("阿珍阿…".to_string(), true));
        assert_eq!(cut("amy", 4), ("amy".to_string(), false));
    }
}
