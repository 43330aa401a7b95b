//! The worklist: every ticket still waiting for an answer or a fix, nearest deadline first,
//! read from the database a page at a time. The console's live feed keeps only the newest
//! alerts; nothing that still needs an answer may leave this list, its counts or the overdue
//! badge, so they all come from here (`GET /api/tickets`).

use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use super::StoreError;
use crate::tickets::TicketStatus;

/// Largest page.
pub const MAX_LIMIT: usize = 500;

/// Which tickets, which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorklistQuery {
    /// Tickets in these statuses (default open and responding).
    pub statuses: Vec<TicketStatus>,
    /// Only this room.
    pub room: Option<String>,
    /// Only tickets past their running deadline.
    pub overdue: bool,
    /// Skip this many.
    pub offset: usize,
    /// At most this many (≤ [`MAX_LIMIT`]).
    pub limit: usize,
    /// Now, ms since the epoch (the daemon's clock): what "overdue" is measured against.
    pub now_ms: u64,
}

impl WorklistQuery {
    /// Reads `status` (`open,responding`), `room`, `overdue`, `offset` and `limit` as typed.
    pub fn parse(
        status: Option<&str>,
        room: Option<&str>,
        overdue: bool,
        offset: Option<usize>,
        limit: Option<usize>,
        now_ms: u64,
    ) -> Result<Self, String> {
        let statuses = match status.map(str::trim).filter(|s| !s.is_empty()) {
            None => vec![TicketStatus::Open, TicketStatus::Responding],
            Some(list) => list
                .split(',')
                .map(|s| {
                    TicketStatus::parse(s.trim()).ok_or_else(|| {
                        format!(
                            "unknown status {:?} (open, responding, resolved_refund, resolved_exchange, resolved_other, dismissed)",
                            s.trim()
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let limit = limit.unwrap_or(50);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(format!("limit must be 1..={MAX_LIMIT}"));
        }
        Ok(Self {
            statuses,
            room: room.filter(|r| !r.is_empty()).map(str::to_string),
            overdue,
            offset: offset.unwrap_or(0),
            limit,
            now_ms,
        })
    }
}

/// One page of the worklist, and the counts the console's header shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Worklist {
    /// The time the counts are for, ms since the epoch.
    pub now_ms: u64,
    /// Tickets matching the query (all pages).
    pub total: u64,
    /// Active tickets nobody has answered yet (in the room, when one is asked for).
    pub open: u64,
    /// Active tickets answered, not yet resolved.
    pub responding: u64,
    /// Active tickets past their running deadline (first response until answered, then the
    /// resolution).
    pub overdue: u64,
    /// This page starts here.
    pub offset: usize,
    /// Page size asked for.
    pub limit: usize,
    /// The page: stored alert bodies (JSON), nearest running deadline first.
    #[serde(skip)]
    pub bodies: Vec<String>,
}

/// The deadline still running on a ticket row: the first response until there was one.
const DUE: &str = "CASE WHEN t.responded_ms IS NULL THEN t.respond_by_ms ELSE t.resolve_by_ms END";
const ACTIVE: &str = "t.status IN ('open', 'responding')";

/// One page of tickets matching `q`, and the counts.
pub fn worklist(conn: &Connection, q: &WorklistQuery) -> Result<Worklist, StoreError> {
    use rusqlite::types::Value;
    let now = Value::Integer(q.now_ms.min(i64::MAX as u64) as i64);
    let room = q.room.as_ref().map(|r| Value::Text(r.clone()));
    let room_clause = if room.is_some() { " AND t.room = ?" } else { "" };

    let mut args = vec![now.clone()];
    args.extend(room.clone());
    let (open, responding, overdue): (i64, i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*) FILTER (WHERE t.status = 'open'), count(*) FILTER (WHERE t.status = 'responding'), \
             count(*) FILTER (WHERE {DUE} <= ?) FROM tickets t WHERE {ACTIVE}{room_clause}"
        ))?
        .query_row(params_from_iter(args.iter()), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;

    let marks = vec!["?"; q.statuses.len()].join(", ");
    let mut filter = format!("t.status IN ({marks}){room_clause}");
    let mut args: Vec<Value> = q
        .statuses
        .iter()
        .map(|s| Value::Text(s.as_str().into()))
        .collect();
    args.extend(room);
    if q.overdue {
        filter.push_str(&format!(" AND {ACTIVE} AND {DUE} <= ?"));
        args.push(now);
    }
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM tickets t WHERE {filter}"))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    args.push(Value::Integer(q.limit as i64));
    args.push(Value::Integer(q.offset.min(i64::MAX as usize) as i64));
    let bodies = conn
        .prepare_cached(&format!(
            "SELECT a.body FROM tickets t JOIN alerts a ON a.seq = t.seq WHERE {filter} \
             ORDER BY {DUE}, t.seq LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Worklist {
        now_ms: q.now_ms,
        total: total as u64,
        open: open as u64,
        responding: responding as u64,
        overdue: overdue as u64,
        offset: q.offset,
        limit: q.limit,
        bodies,
    })
}

impl Worklist {
    /// The JSON `GET /api/tickets` answers: the counts and `tickets`, the stored alerts as
    /// they are (no re-serialization).
    pub fn to_json(&self) -> String {
        let head = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        let mut out =
            String::with_capacity(head.len() + self.bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 16);
        out.push_str(head.strip_suffix('}').unwrap_or("{"));
        out.push_str(if out.len() > 1 {
            ",\"tickets\":["
        } else {
            "\"tickets\":["
        });
        for (i, b) in self.bodies.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(b);
        }
        out.push_str("]}");
        out
    }
}
