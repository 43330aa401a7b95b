//! Insights: what the stored alerts and tickets say about a time window, for the floor
//! manager's boss (`GET /api/stats`, `liveguard report`). Read-only queries over the store;
//! the numbers are defined here once so the API, the CLI and the console agree.
//!
//! # Definitions
//! - **Window**: alerts with `created_ms` (the classified time) in `[since_ms, until_ms)`;
//!   tickets with `opened_ms` in the window. `room`, when given, filters everything.
//! - **Complaints**: alerts of class `complaint`; **attacks**: class `attack`. `brigades` counts
//!   the `brigade` alerts, `brigade_users` the users they list.
//! - Lists are sorted by `n` descending, then key ascending. `by_hour` buckets are UTC hours
//!   (`hour_ms` is the start), ascending, empty hours left out. `by_status` always has all six
//!   ticket statuses.
//! - **Response time**: `responded_ms − opened_ms` over tickets that got a response (dismissed
//!   ones excluded); **resolution time**: `resolved_ms − opened_ms` over tickets resolved with a
//!   refund, an exchange or otherwise. Percentiles by nearest rank (the p-th is
//!   `sorted[ceil(p·n) − 1]`); `null` when there is none.
//! - **Breaches** (dismissed tickets excluded): responded after `respond_by_ms`, or not yet and
//!   `until_ms` is past `respond_by_ms`; likewise resolved after `resolve_by_ms`, or not yet
//!   and `until_ms` is past it.
//! - **Rules**: over every alert in the window except ops alerts, each distinct evidence rule
//!   of an alert (context such as a purchase word left out: it decides nothing) counts `fired`, and `dismissed` when the alert was dismissed as a false
//!   positive; `fp_rate = dismissed / fired` to 3 decimals. Sorted by `fp_rate` descending,
//!   `fired` descending, rule ascending: the rules most worth fixing first.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One hour in ms (the `by_hour` bucket).
pub const HOUR_MS: u64 = 3_600_000;

/// Which alerts and tickets to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// Window start, ms since the epoch (inclusive).
    pub since_ms: u64,
    /// Window end, ms since the epoch (exclusive).
    pub until_ms: u64,
    /// Only this room.
    pub room: Option<String>,
}

impl StatsQuery {
    /// The query as typed at the edges (`/api/stats`, `liveguard report`): `since` and `until`
    /// in the forms [`parse_since`] takes (`until` defaults to `now_ms`), an empty `room`
    /// meaning every room. The error names the bad parameter.
    pub fn parse(since: &str, until: Option<&str>, room: Option<&str>, now_ms: u64) -> Result<Self, String> {
        let since_ms = parse_since(since, now_ms).map_err(|e| format!("since: {e}"))?;
        let until_ms = match until {
            Some(u) => parse_since(u, now_ms).map_err(|e| format!("until: {e}"))?,
            None => now_ms,
        };
        if until_ms <= since_ms {
            return Err(format!(
                "empty window: until ({until_ms}) is not after since ({since_ms}); durations count \
                 back from now, so since 2h and until 1h is the hour before last"
            ));
        }
        Ok(Self {
            since_ms,
            until_ms,
            room: room.filter(|r| !r.is_empty()).map(str::to_string),
        })
    }
}

/// Everything `GET /api/stats` answers (see the module doc for the definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Window start (inclusive).
    pub since_ms: u64,
    /// Window end (exclusive).
    pub until_ms: u64,
    /// The room filter, if any.
    pub room: Option<String>,
    /// Complaint alerts.
    pub complaints: Complaints,
    /// Attack alerts.
    pub attacks: Attacks,
    /// Complaint tickets opened in the window.
    pub tickets: Tickets,
    /// Per evidence rule: how often it fired and was dismissed.
    pub rules: Vec<RuleStat>,
}

/// A count under a name (a topic, a product, a room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    /// The name.
    pub key: String,
    /// How many.
    pub n: u64,
}

/// Complaint alerts in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaints {
    /// How many.
    pub total: u64,
    /// Per topic.
    pub by_topic: Vec<KeyCount>,
    /// Per product named (alerts without one are left out).
    pub by_product: Vec<KeyCount>,
    /// Per room.
    pub by_room: Vec<KeyCount>,
    /// Per UTC hour, oldest first.
    pub by_hour: Vec<HourTopics>,
}

/// Complaints in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourTopics {
    /// Start of the hour, ms since the epoch.
    pub hour_ms: u64,
    /// How many.
    pub n: u64,
    /// Per topic.
    pub by_topic: BTreeMap<String, u64>,
}

/// Attack alerts in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attacks {
    /// How many.
    pub total: u64,
    /// Per topic.
    pub by_topic: Vec<KeyCount>,
    /// Brigade alerts.
    pub brigades: u64,
    /// Users listed by the brigade alerts, summed.
    pub brigade_users: u64,
}

/// Tickets opened in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tickets {
    /// How many.
    pub opened: u64,
    /// Where they stand now.
    pub by_status: ByStatus,
    /// First public response times.
    pub response: Timing,
    /// Resolution times.
    pub resolution: Timing,
    /// Response times per UTC hour the ticket was opened in, oldest first.
    pub response_by_hour: Vec<HourTiming>,
}

/// Tickets per status (every status, zeros included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByStatus {
    /// Nobody has answered yet.
    pub open: u64,
    /// Answered, not resolved.
    pub responding: u64,
    /// Refunded (方案A).
    pub resolved_refund: u64,
    /// Exchanged (方案B).
    pub resolved_exchange: u64,
    /// Resolved another way.
    pub resolved_other: u64,
    /// Dismissed as false positives.
    pub dismissed: u64,
}

impl ByStatus {
    /// `(status, count)` for every status, in lifecycle order.
    pub fn pairs(&self) -> [(&'static str, u64); 6] {
        [
            ("open", self.open),
            ("responding", self.responding),
            ("resolved_refund", self.resolved_refund),
            ("resolved_exchange", self.resolved_exchange),
            ("resolved_other", self.resolved_other),
            ("dismissed", self.dismissed),
        ]
    }
}

/// How long a promise took to keep, and how often it was broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Tickets measured.
    pub n: u64,
    /// Median, ms (nearest rank); null when `n` is 0.
    pub median_ms: Option<u64>,
    /// 90th percentile, ms (nearest rank); null when `n` is 0.
    pub p90_ms: Option<u64>,
    /// Deadlines missed (see the module doc).
    pub breaches: u64,
}

/// Response times of the tickets opened in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourTiming {
    /// Start of the hour, ms since the epoch.
    pub hour_ms: u64,
    /// Tickets measured.
    pub n: u64,
    /// Median, ms.
    pub median_ms: Option<u64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<u64>,
}

/// How one evidence rule fared with the floor managers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStat {
    /// Rule or group id (`detector:phone` for built-ins).
    pub rule: String,
    /// Alerts it was evidence for.
    pub fired: u64,
    /// Of those, dismissed as false positives.
    pub dismissed: u64,
    /// `dismissed / fired`, to 3 decimals.
    pub fp_rate: f64,
}

/// Computes the insights for `q` from the store behind `conn`.
pub fn stats(conn: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
    // Stored as INTEGER (i64); a window end past i64 only means "no end".
    let since = i64::try_from(q.since_ms).unwrap_or(i64::MAX);
    let until = i64::try_from(q.until_ms).unwrap_or(i64::MAX);
    let room = q.room.as_deref();
    let (complaints, attacks) = alerts(conn, since, until, room)?;
    Ok(Stats {
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        room: q.room.clone(),
        complaints,
        attacks,
        tickets: tickets(conn, since, until, room)?,
        rules: rules(conn, since, until, room)?,
    })
}

/// Parses `--since`/`since=`: a duration back from `now_ms` (`90s`, `30m`, `24h`, `7d`) or an
/// absolute time in ms since the epoch.
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    let bad = || {
        format!("bad time {s:?}: expected a duration back from now (90s, 30m, 24h, 7d) or ms since the epoch")
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if digits(s) {
        return s.parse::<u64>().map_err(|_| bad());
    }
    let unit = s.chars().last().ok_or_else(bad)?;
    let unit_ms: u64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => HOUR_MS,
        'd' => 24 * HOUR_MS,
        _ => return Err(bad()),
    };
    let n = s.strip_suffix(unit).filter(|n| digits(n)).ok_or_else(bad)?;
    let ms = n
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(bad)?;
    Ok(now_ms.saturating_sub(ms))
}

/// `counts` as a list, by count descending then key ascending.
fn sorted(counts: HashMap<String, u64>) -> Vec<KeyCount> {
    let mut v: Vec<KeyCount> = counts.into_iter().map(|(key, n)| KeyCount { key, n }).collect();
    v.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
    v
}

/// Nearest-rank percentile `pct` (0..=100) of `sorted` (ascending).
fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn as_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn hour_of(ms: i64) -> u64 {
    let ms = as_u64(ms);
    ms - ms % HOUR_MS
}

fn alerts(
    conn: &Connection,
    since: i64,
    until: i64,
    room: Option<&str>,
) -> Result<(Complaints, Attacks), StoreError> {
    // Grouped in SQL (a week can hold many alerts; the groups are few), folded here.
    let mut st = conn.prepare_cached(
        "SELECT class, kind, topic, product, room, created_ms / 3600000, count(*), sum(users) FROM alerts \
         WHERE created_ms >= ?1 AND created_ms < ?2 AND (?3 IS NULL OR room = ?3) \
           AND (class IN ('complaint', 'attack') OR kind = 'brigade') \
         GROUP BY 1, 2, 3, 4, 5, 6",
    )?;
    let rows = st.query_map(params![since, until, room], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
        ))
    })?;
    let (mut c_topic, mut c_product, mut c_room) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut c_hour: BTreeMap<u64, HourTopics> = BTreeMap::new();
    let mut a_topic = HashMap::new();
    let (mut c_total, mut a_total, mut brigades, mut brigade_users) = (0, 0, 0, 0);
    for row in rows {
        let (class, kind, topic, product, room, hour, n, users) = row?;
        let n = as_u64(n);
        if kind == "brigade" {
            brigades += n;
            brigade_users += as_u64(users);
        }
        match class.as_str() {
            "complaint" => {
                c_total += n;
                if let Some(t) = &topic {
                    *c_topic.entry(t.clone()).or_insert(0) += n;
                }
                if let Some(p) = product {
                    *c_product.entry(p).or_insert(0) += n;
                }
                *c_room.entry(room).or_insert(0) += n;
                let hour_ms = as_u64(hour) * HOUR_MS;
                let h = c_hour.entry(hour_ms).or_insert_with(|| HourTopics {
                    hour_ms,
                    n: 0,
                    by_topic: BTreeMap::new(),
                });
                h.n += n;
                if let Some(t) = topic {
                    *h.by_topic.entry(t).or_insert(0) += n;
                }
            }
            "attack" => {
                a_total += n;
                if let Some(t) = topic {
                    *a_topic.entry(t).or_insert(0) += n;
                }
            }
            _ => {}
        }
    }
    Ok((
        Complaints {
            total: c_total,
            by_topic: sorted(c_topic),
            by_product: sorted(c_product),
            by_room: sorted(c_room),
            by_hour: c_hour.into_values().collect(),
        },
        Attacks {
            total: a_total,
            by_topic: sorted(a_topic),
            brigades,
            brigade_users,
        },
    ))
}

fn timing(mut ms: Vec<u64>, breaches: u64) -> Timing {
    ms.sort_unstable();
    Timing {
        n: ms.len() as u64,
        median_ms: percentile(&ms, 50),
        p90_ms: percentile(&ms, 90),
        breaches,
    }
}

fn tickets(conn: &Connection, since: i64, until: i64, room: Option<&str>) -> Result<Tickets, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT status, opened_ms, respond_by_ms, resolve_by_ms, responded_ms, resolved_ms FROM tickets \
         WHERE opened_ms >= ?1 AND opened_ms < ?2 AND (?3 IS NULL OR room = ?3)",
    )?;
    let rows = st.query_map(params![since, until, room], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
        ))
    })?;
    let mut opened = 0;
    let mut by_status = ByStatus::default();
    let (mut response, mut resolution) = (Vec::new(), Vec::new());
    let (mut response_breaches, mut resolution_breaches) = (0, 0);
    let mut by_hour: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for row in rows {
        let (status, opened_ms, respond_by, resolve_by, responded, resolved) = row?;
        opened += 1;
        match status.as_str() {
            "open" => by_status.open += 1,
            "responding" => by_status.responding += 1,
            "resolved_refund" => by_status.resolved_refund += 1,
            "resolved_exchange" => by_status.resolved_exchange += 1,
            "resolved_other" => by_status.resolved_other += 1,
            "dismissed" => by_status.dismissed += 1,
            _ => {}
        }
        // A dismissed ticket was a false positive: no promise was made, none can be broken.
        if status == "dismissed" {
            continue;
        }
        match responded {
            Some(r) => {
                let ms = as_u64(r - opened_ms);
                response.push(ms);
                by_hour.entry(hour_of(opened_ms)).or_default().push(ms);
                if r > respond_by {
                    response_breaches += 1;
                }
            }
            None if until > respond_by => response_breaches += 1,
            None => {}
        }
        if let (true, Some(r)) = (status.starts_with("resolved_"), resolved) {
            resolution.push(as_u64(r - opened_ms));
        }
        match resolved {
            Some(r) if r > resolve_by => resolution_breaches += 1,
            None if until > resolve_by => resolution_breaches += 1,
            _ => {}
        }
    }
    let response_by_hour = by_hour
        .into_iter()
        .map(|(hour_ms, mut ms)| {
            ms.sort_unstable();
            HourTiming {
                hour_ms,
                n: ms.len() as u64,
                median_ms: percentile(&ms, 50),
                p90_ms: percentile(&ms, 90),
            }
        })
        .collect();
    Ok(Tickets {
        opened,
        by_status,
        response: timing(response, response_breaches),
        resolution: timing(resolution, resolution_breaches),
        response_by_hour,
    })
}

fn rules(conn: &Connection, since: i64, until: i64, room: Option<&str>) -> Result<Vec<RuleStat>, StoreError> {
    // DISTINCT per alert: a rule matching twice in one comment is still one verdict to judge.
    let mut st = conn.prepare_cached(
        "SELECT rule, count(*), sum(dismissed) FROM ( \
           SELECT DISTINCT a.seq, json_extract(e.value, '$.rule') AS rule, a.status = 'dismissed' AS dismissed \
           FROM alerts a, json_each(a.body, '$.evidence') e \
           WHERE a.created_ms >= ?1 AND a.created_ms < ?2 AND (?3 IS NULL OR a.room = ?3) AND a.kind != 'ops' \
             AND coalesce(json_extract(e.value, '$.context'), 0) = 0 \
         ) WHERE rule IS NOT NULL GROUP BY rule",
    )?;
    let rows = st.query_map(params![since, until, room], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (rule, fired, dismissed) = row?;
        let (fired, dismissed) = (as_u64(fired), as_u64(dismissed));
        let fp_rate = if fired == 0 {
            0.0
        } else {
            (dismissed as f64 / fired as f64 * 1000.0).round() / 1000.0
        };
        out.push(RuleStat {
            rule,
            fired,
            dismissed,
            fp_rate,
        });
    }
    out.sort_by(|a, b| {
        b.fp_rate
            .total_cmp(&a.fp_rate)
            .then_with(|| b.fired.cmp(&a.fired))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_absolute_ms() {
        let now = 10 * 86_400_000;
        for (input, want) in [
            ("90s", Ok(now - 90_000)),
            ("30m", Ok(now - 1_800_000)),
            ("24h", Ok(now - 86_400_000)),
            ("7d", Ok(now - 7 * 86_400_000)),
            ("11d", Ok(0)),
            ("1764043200000", Ok(1_764_043_200_000)),
            (" 5m ", Ok(now - 300_000)),
        ] {
            assert_eq!(parse_since(input, now), want, "{input}");
        }
        for bad in [
            "",
            "d",
            "7w",
            "-7d",
            "7.5h",
            "bogus",
            "h7",
            "99999999999999999999d",
            "7 d",
        ] {
            let e = parse_since(bad, now).expect_err(bad);
            assert!(e.contains("30m"), "{e}");
        }
    }

    #[test]
    fn an_empty_or_inverted_window_is_refused() {
        let now = 10 * 86_400_000;
        let e = StatsQuery::parse("1h", Some("2h"), None, now).expect_err("inverted");
        assert!(e.starts_with("empty window"), "{e}");
        assert!(
            StatsQuery::parse("5000", Some("5000"), None, now).is_err(),
            "empty"
        );
        let q = StatsQuery::parse("2h", Some("1h"), Some(""), now).expect("the hour before last");
        assert_eq!(
            (q.since_ms, q.until_ms, q.room),
            (now - 7_200_000, now - 3_600_000, None)
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let v = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!((percentile(&v, 50), percentile(&v, 90)), (Some(4), Some(8)));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!((percentile(&ten, 50), percentile(&ten, 90)), (Some(5), Some(9)));
    }
}
