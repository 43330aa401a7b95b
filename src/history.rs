//! Stage 5, signals: room and user history that amends a verdict. Per user: repetition
//! (same text again and again), flood (too many comments too fast), split messages (a word
//! broken across consecutive comments) and alert de-duplication (same topic again updates the
//! open alert). Per room: brigades (many users posting near-identical attack texts become ONE
//! alert) and silence (a firehose gone quiet). State lives in dashmaps keyed by hashes (no
//! allocation per lookup), expires when idle and is capped.
//!
//! Time is passed in (`now_ms`) rather than read here, so tests drive it without sleeping.

use std::collections::VecDeque;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

use crate::fasthash::{DashMap, HashMap, HashSet};
use crate::taxonomy::Topic;

/// Thresholds and windows; all can be set in `liveguard.toml` under `[signals]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalConfig {
    /// Same normalized text this many times …
    pub repeat_count: usize,
    /// … within this many ms is repetition.
    pub repeat_window_ms: u64,
    /// More than this many comments from one user …
    pub flood_count: usize,
    /// … within this many ms is a flood.
    pub flood_window_ms: u64,
    /// This many distinct users posting near-identical attack texts …
    pub brigade_users: usize,
    /// … within this many ms in one room is a brigade.
    pub brigade_window_ms: u64,
    /// A user's previous comment is joined with the next one within this many ms …
    pub split_window_ms: u64,
    /// … when both are at most this many chars.
    pub split_max_chars: usize,
    /// Same user and topic again within this many ms updates the open alert's count.
    pub dedupe_window_ms: u64,
    /// A room with no comment for this long raises an operational alert.
    pub silence_after_ms: u64,
    /// Users idle this long are forgotten.
    pub user_ttl_ms: u64,
    /// Rooms idle this long are forgotten.
    pub room_ttl_ms: u64,
    /// At most this many users are tracked; new ones past the cap are not (counted).
    pub max_users: usize,
    /// At most this many rooms are tracked.
    pub max_rooms: usize,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            repeat_count: 3,
            repeat_window_ms: 60_000,
            flood_count: 10,
            flood_window_ms: 10_000,
            brigade_users: 3,
            brigade_window_ms: 60_000,
            split_window_ms: 15_000,
            split_max_chars: 6,
            dedupe_window_ms: 120_000,
            silence_after_ms: 60_000,
            user_ttl_ms: 600_000,
            room_ttl_ms: 3_600_000,
            max_users: 200_000,
            max_rooms: 20_000,
        }
    }
}

/// A hash of room and user, the key of per-user state (no allocation per lookup).
pub fn user_key(room: &str, user: &str) -> u64 {
    crate::fasthash::key((room, user))
}

/// A hash of a normalized text with digits dropped, so `加v123` and `加v456` from a brigade
/// cluster together.
pub fn text_key(normalized: &str) -> u64 {
    let mut h = crate::fasthash::hasher();
    for c in normalized.chars().filter(|c| !c.is_ascii_digit() && *c != ' ') {
        h.write_u32(u32::from(c));
    }
    h.finish()
}

#[derive(Debug, Default)]
struct UserState {
    last_ms: u64,
    /// Comment times inside the flood window.
    times: VecDeque<u64>,
    /// (time, text key) inside the repetition window.
    texts: VecDeque<(u64, u64)>,
    /// The previous short comment, for split messages.
    prev: Option<(u64, String)>,
    flood_quiet_until: u64,
    repeat_alerted: Option<u64>,
    /// Open alerts per topic: (topic, seq, time).
    open: Vec<(Topic, u64, u64)>,
}

#[derive(Debug)]
struct Cluster {
    first_ms: u64,
    /// Distinct users by hash: a 20,000-user brigade is 20,000 lookups, not 200 million
    /// string comparisons.
    users: HashSet<u64>,
    seq: Option<u64>,
}

#[derive(Debug)]
struct RoomState {
    /// The source the room's comments come from (silent rooms are reported per source).
    source: String,
    last_ms: u64,
    silent: bool,
    comments: Counter,
    /// Attack texts seen recently, by text key.
    clusters: HashMap<u64, Cluster>,
}

/// What the history says about one comment.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// The user just crossed the flood threshold.
    pub flood: bool,
    /// The user just posted the same text for the `repeat_count`-th time.
    pub repetition: bool,
    /// The user's previous short comment, to classify joined with this one.
    pub split_prev: Option<String>,
}

/// Where an alert should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Publish a new alert.
    New,
    /// Fold into open alert `seq` (same user and topic again): count it.
    Repeat(u64),
    /// Fold into open alert `seq` of another user's identical attack; `brigade` once enough
    /// distinct users joined.
    Cluster {
        /// The alert the cluster shares.
        seq: u64,
        /// The cluster reached the brigade threshold.
        brigade: bool,
        /// Distinct users so far (this one included).
        users: usize,
    },
}

/// Room and user state.
#[derive(Debug)]
pub struct Signals {
    cfg: SignalConfig,
    /// Boxed: the map fills to `max_users` while comments wait on its shards, and each of
    /// its rehashes moved every ~150-byte state (tens of ms at 100k comments/s).
    users: DashMap<u64, Box<UserState>>,
    /// `users.len()` without a lock on every shard: counted up on each new user, set again
    /// after each sweep.
    user_count: AtomicUsize,
    /// When the users were last swept.
    users_swept_ms: AtomicU64,
    rooms: DashMap<String, RoomState>,
}

/// Shards per map. The sweep write-locks one shard at a time while a worker may wait on it,
/// and a shard's rehash moves only its own entries: with DashMap's default (8 on 2 cores) a
/// sweep of 200,000 users held each shard about 1 ms.
const SHARDS: usize = 64;

impl Signals {
    /// Empty state with `cfg`.
    pub fn new(cfg: SignalConfig) -> Self {
        Self {
            cfg,
            users: DashMap::with_hasher_and_shard_amount(Default::default(), SHARDS),
            user_count: AtomicUsize::new(0),
            users_swept_ms: AtomicU64::new(0),
            rooms: DashMap::with_hasher_and_shard_amount(Default::default(), SHARDS),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SignalConfig {
        &self.cfg
    }

    /// Records a comment (counted on its room's counter) and reports what its history says.
    /// `make_counter` is called once per new room, for its metrics counter. Returns `None` for the user part when the user state
    /// is at its cap (the room part still counts).
    #[allow(clippy::too_many_arguments)] // one call site per comment; each is a field of it
    pub fn observe(
        &self,
        source: &str,
        room: &str,
        user: &str,
        text: &str,
        normalized: &str,
        now_ms: u64,
        make_counter: impl FnOnce() -> Counter,
    ) -> (Observed, bool) {
        let mut out = Observed::default();
        if let Some(mut r) = self.rooms.get_mut(room) {
            r.last_ms = now_ms;
            r.silent = false;
            // Counted here, under the room's entry: a clone of the counter to count it outside
            // cost two more atomic operations per comment.
            r.comments.inc();
        } else if self.rooms.len() < self.cfg.max_rooms {
            let comments = make_counter();
            comments.inc();
            self.rooms.insert(
                room.to_string(),
                RoomState {
                    source: source.to_string(),
                    last_ms: now_ms,
                    silent: false,
                    comments,
                    clusters: HashMap::default(),
                },
            );
        }
        let key = user_key(room, user);
        let known = self.users.get_mut(&key);
        let mut u = match known {
            Some(u) => u,
            None if self.user_count.load(Ordering::Relaxed) < self.cfg.max_users => {
                self.users.entry(key).or_insert_with(|| {
                    self.user_count.fetch_add(1, Ordering::Relaxed);
                    Box::default()
                })
            }
            None => return (out, false),
        };
        u.last_ms = now_ms;
        // Flood: comment times inside the window.
        u.times.push_back(now_ms);
        while u
            .times
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) > self.cfg.flood_window_ms)
        {
            u.times.pop_front();
        }
        if u.times.len() > self.cfg.flood_count && now_ms >= u.flood_quiet_until {
            out.flood = true;
            u.flood_quiet_until = now_ms + self.cfg.flood_window_ms;
        }
        // Repetition: the same text key inside the window.
        let tk = text_key(normalized);
        u.texts.push_back((now_ms, tk));
        while u
            .texts
            .front()
            .is_some_and(|&(t, _)| now_ms.saturating_sub(t) > self.cfg.repeat_window_ms)
        {
            u.texts.pop_front();
        }
        let same = u.texts.iter().filter(|&&(_, k)| k == tk).count();
        if same >= self.cfg.repeat_count && u.repeat_alerted != Some(tk) && !normalized.is_empty() {
            out.repetition = true;
            u.repeat_alerted = Some(tk);
        }
        // Split messages: remember short comments; offer the previous one if recent.
        let short = text.chars().count() <= self.cfg.split_max_chars;
        if short {
            if let Some((t, prev)) = u.prev.take() {
                if now_ms.saturating_sub(t) <= self.cfg.split_window_ms {
                    out.split_prev = Some(prev);
                }
            }
            u.prev = Some((now_ms, text.to_string()));
        } else {
            u.prev = None;
        }
        (out, true)
    }

    /// Decides where an alert of `topic` by `user` goes: into the user's open alert of the same
    /// topic, into the room's cluster of identical attack texts, or a new alert.
    pub fn route(
        &self,
        room: &str,
        user: &str,
        topic: Topic,
        attack_text: Option<&str>,
        now_ms: u64,
    ) -> Route {
        let key = user_key(room, user);
        if let Some(u) = self.users.get(&key) {
            if let Some(&(_, seq, _)) = u
                .open
                .iter()
                .find(|(t, _, at)| *t == topic && now_ms.saturating_sub(*at) <= self.cfg.dedupe_window_ms)
            {
                return Route::Repeat(seq);
            }
        }
        let Some(normalized) = attack_text else {
            return Route::New;
        };
        let Some(mut r) = self.rooms.get_mut(room) else {
            return Route::New;
        };
        let tk = text_key(normalized);
        let window = self.cfg.brigade_window_ms;
        match r.clusters.get_mut(&tk) {
            Some(c) if now_ms.saturating_sub(c.first_ms) <= window => {
                c.users.insert(user_key("", user));
                match c.seq {
                    Some(seq) => Route::Cluster {
                        seq,
                        brigade: c.users.len() >= self.cfg.brigade_users,
                        users: c.users.len(),
                    },
                    None => Route::New,
                }
            }
            _ => {
                r.clusters.insert(
                    tk,
                    Cluster {
                        first_ms: now_ms,
                        users: std::iter::once(user_key("", user)).collect(),
                        seq: None,
                    },
                );
                Route::New
            }
        }
    }

    /// Records that a new alert `seq` was published for `user`'s `topic` (and for the room's
    /// cluster of `attack_text`, when it is an attack).
    pub fn published(
        &self,
        room: &str,
        user: &str,
        topic: Topic,
        attack_text: Option<&str>,
        seq: u64,
        now_ms: u64,
    ) {
        if let Some(mut u) = self.users.get_mut(&user_key(room, user)) {
            u.open
                .retain(|(t, _, at)| *t != topic && now_ms.saturating_sub(*at) <= self.cfg.dedupe_window_ms);
            u.open.push((topic, seq, now_ms));
        }
        if let (Some(normalized), Some(mut r)) = (attack_text, self.rooms.get_mut(room)) {
            if let Some(c) = r.clusters.get_mut(&text_key(normalized)) {
                c.seq.get_or_insert(seq);
            }
        }
    }

    /// Refreshes the time of the user's open alert `seq` (a repeat keeps it open).
    pub fn touched(&self, room: &str, user: &str, seq: u64, now_ms: u64) {
        if let Some(mut u) = self.users.get_mut(&user_key(room, user)) {
            for o in u.open.iter_mut().filter(|o| o.1 == seq) {
                o.2 = now_ms;
            }
        }
    }

    /// Periodic upkeep: returns rooms that just went silent, and forgets idle users, rooms
    /// and old clusters. Returns (newly silent (source, room) pairs, silent room count, rooms,
    /// users).
    pub fn sweep(&self, now_ms: u64) -> (Vec<(String, String)>, usize, usize, usize) {
        let cfg = &self.cfg;
        // Walking every user (up to 200,000) is the costly part: done a sixtieth of the TTL
        // apart (10 s by default), a user is forgotten at most that late.
        let last = self.users_swept_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= cfg.user_ttl_ms / 60 || now_ms < last {
            self.users_swept_ms.store(now_ms, Ordering::Relaxed);
            self.users
                .retain(|_, u| now_ms.saturating_sub(u.last_ms) <= cfg.user_ttl_ms);
            self.user_count.store(self.users.len(), Ordering::Relaxed);
        }
        self.rooms
            .retain(|_, r| now_ms.saturating_sub(r.last_ms) <= cfg.room_ttl_ms);
        let mut newly = Vec::new();
        let mut silent = 0;
        for mut r in self.rooms.iter_mut() {
            r.clusters
                .retain(|_, c| now_ms.saturating_sub(c.first_ms) <= cfg.brigade_window_ms);
            if now_ms.saturating_sub(r.last_ms) > cfg.silence_after_ms {
                silent += 1;
                if !r.silent {
                    r.silent = true;
                    newly.push((r.source.clone(), r.key().clone()));
                }
            }
        }
        (
            newly,
            silent,
            self.rooms.len(),
            self.user_count.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signals {
        Signals::new(SignalConfig {
            max_users: 3,
            ..SignalConfig::default()
        })
    }

    fn observe(s: &Signals, user: &str, text: &str, at: u64) -> Observed {
        s.observe("src", "r", user, text, text, at, Counter::default).0
    }

    #[test]
    fn repetition_fires_once_at_the_threshold() {
        let s = sig();
        assert!(!observe(&s, "u", "买买买", 0).repetition);
        assert!(!observe(&s, "u", "买买买", 1_000).repetition);
        assert!(observe(&s, "u", "买买买", 2_000).repetition);
        assert!(!observe(&s, "u", "买买买", 3_000).repetition, "once per text");
    }

    #[test]
    fn flood_fires_past_the_count_then_stays_quiet_for_a_window() {
        let s = sig();
        let fired: Vec<bool> = (0..12)
            .map(|i| observe(&s, "u", &format!("m{i}"), i * 100).flood)
            .collect();
        assert_eq!(fired.iter().filter(|f| **f).count(), 1);
        assert!(fired[10]);
    }

    #[test]
    fn split_offers_the_previous_short_comment() {
        let s = sig();
        assert_eq!(observe(&s, "u", "骗", 0).split_prev, None);
        assert_eq!(observe(&s, "u", "子", 2_000).split_prev.as_deref(), Some("骗"));
        assert_eq!(
            observe(&s, "u", "这是一条很长很长的评论内容", 3_000).split_prev,
            None
        );
        observe(&s, "u", "sc", 4_000);
        assert_eq!(
            observe(&s, "u", "am", 60_000).split_prev,
            None,
            "too late to join"
        );
    }

    #[test]
    fn brigade_clusters_into_one_alert() {
        let s = sig();
        for u in ["a", "b", "c"] {
            observe(&s, u, "骗子", 0);
        }
        assert_eq!(s.route("r", "a", Topic::Smear, Some("骗子"), 0), Route::New);
        s.published("r", "a", Topic::Smear, Some("骗子"), 7, 0);
        assert_eq!(
            s.route("r", "b", Topic::Smear, Some("骗子"), 10),
            Route::Cluster {
                seq: 7,
                brigade: false,
                users: 2
            }
        );
        assert_eq!(
            s.route("r", "c", Topic::Smear, Some("骗子"), 20),
            Route::Cluster {
                seq: 7,
                brigade: true,
                users: 3
            }
        );
        assert_eq!(
            s.route("r", "a", Topic::Smear, Some("骗子"), 30),
            Route::Repeat(7),
            "same user: a repeat"
        );
    }

    #[test]
    fn state_is_capped_and_expires() {
        let s = sig();
        for u in ["a", "b", "c"] {
            assert!(s.observe("src", "r", u, "x", "x", 0, Counter::default).1);
        }
        assert!(
            !s.observe("src", "r", "d", "x", "x", 0, Counter::default).1,
            "over the cap: not tracked"
        );
        let (newly, silent, rooms, users) = s.sweep(61_000);
        assert_eq!(
            (newly, silent, rooms, users),
            (vec![("src".to_string(), "r".to_string())], 1, 1, 3)
        );
        let (newly, ..) = s.sweep(62_000);
        assert!(newly.is_empty(), "silence is reported once");
        let (_, _, rooms, users) = s.sweep(10_000_000);
        assert_eq!((rooms, users), (0, 0));
    }
}
