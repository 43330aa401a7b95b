//! Alerts by room: the `alert_rooms` table, filled by the writer in bulk, one slice of rooms
//! at a time, instead of an index on `alerts`. A new alert's entry lands on its room's last
//! leaf; with an entry per alert, every commit wrote one such page per room it touched (43%
//! of all pages written at 150k comments/s over 1,000 rooms). Held back and written a slice
//! at a time, each leaf takes a second's entries in one write.
//!
//! Rooms fall into [`SLICES`] slices by FNV-1a of their name (readers in other processes
//! compute the same). `alert_room_marks` keeps one mark per slice: every alert of that slice
//! up to the mark has its entry. Newer ones are found by a scan of `alerts` above the mark
//! (a second's alerts at most, by seq).

use rusqlite::{params, Connection, Transaction};

use super::StoreError;

/// Slices of rooms, each brought up to date on its own (fixed: the marks table has one row
/// per slice).
pub const SLICES: usize = 16;

/// One room entry, written with its alert or in a slice's pass.
pub const INSERT_ENTRY: &str = "INSERT OR IGNORE INTO alert_rooms (room, seq) VALUES (?1, ?2)";

/// The slice `room` belongs to.
pub fn slice(room: &str) -> usize {
    (crate::fnv::fnv1a(room.as_bytes()) % SLICES as u64) as usize
}

/// The marks as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks(pub [u64; SLICES]);

impl Marks {
    /// Reads them (all 0 before the first alert).
    pub fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut marks = [0u64; SLICES];
        let mut st = conn.prepare_cached("SELECT slice, through FROM alert_room_marks")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (s, through) = row?;
            if let Some(m) = usize::try_from(s).ok().and_then(|s| marks.get_mut(s)) {
                *m = through as u64;
            }
        }
        Ok(Self(marks))
    }

    /// Every mark at `u64::MAX`: each alert written gets its entry at once (imports).
    pub fn all() -> Self {
        Self([u64::MAX; SLICES])
    }

    /// Whether alert `seq` of `room` is at or below its slice's mark (so its entry must be
    /// written with it: a bulk pass starts above the mark).
    pub fn covers(&self, room: &str, seq: u64) -> bool {
        seq <= self.0[slice(room)]
    }
}

/// Writes the entries `(room, seq)` of slice `s` and moves its mark to `through`, in the
/// caller's transaction.
pub fn index(
    tx: &Transaction<'_>,
    s: usize,
    entries: &[(String, u64)],
    through: u64,
) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(INSERT_ENTRY)?;
    for (room, seq) in entries {
        st.execute(params![room, *seq as i64])?;
    }
    tx.prepare_cached("UPDATE alert_room_marks SET through = max(through, ?2) WHERE slice = ?1")?
        .execute(params![s as i64, through as i64])?;
    Ok(())
}

/// At start-up: entries for every alert above its slice's mark (what the last run held back
/// when it stopped), and all marks to the newest alert.
pub fn catch_up(conn: &mut Connection) -> Result<(), StoreError> {
    let marks = Marks::load(conn)?;
    let low = marks.0.iter().copied().min().unwrap_or(0);
    let tx = conn.transaction()?;
    let top: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM alerts", [], |r| r.get(0))?;
    if top as u64 > low {
        let rows = tx
            .prepare("SELECT room, seq FROM alerts WHERE seq > ?1 ORDER BY room, seq")?
            .query_map([low as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = tx.prepare(INSERT_ENTRY)?;
        for (room, seq) in rows.iter().filter(|(room, seq)| !marks.covers(room, *seq)) {
            st.execute(params![room, *seq as i64])?;
        }
        drop(st);
        tx.execute("UPDATE alert_room_marks SET through = max(through, ?1)", [top])?;
    }
    tx.commit()?;
    Ok(())
}

/// The mark of `room`'s slice.
fn mark_of(conn: &Connection, room: &str) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT through FROM alert_room_marks WHERE slice = ?1")?
        .query_row([slice(room) as i64], |r| r.get::<_, i64>(0))? as u64)
}

type Rows = Vec<(u64, String)>;

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(u64, String)> {
    Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
}

/// Alerts of `room` after `since`, oldest first, at most `limit`, as `(seq, body)`.
pub fn since(conn: &Connection, room: &str, since: u64, limit: i64) -> Result<Rows, StoreError> {
    // The mark first: what the writer indexes meanwhile shows up twice at most, never not.
    let through = mark_of(conn, room)?;
    let mut rows = conn
        .prepare_cached(
            "SELECT a.seq, a.body FROM alert_rooms r JOIN alerts a ON a.seq = r.seq \
             WHERE r.room = ?1 AND r.seq > ?2 AND a.room = ?1 ORDER BY r.seq LIMIT ?3",
        )?
        .query_map(params![room, since as i64, limit], row)?
        .collect::<Result<Rows, _>>()?;
    rows.extend(
        conn.prepare_cached(
            "SELECT seq, body FROM alerts WHERE seq > max(?2, ?4) AND room = ?1 ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![room, since as i64, limit, through as i64], row)?
        .collect::<Result<Rows, _>>()?,
    );
    rows.sort_by_key(|(seq, _)| *seq);
    rows.dedup_by_key(|(seq, _)| *seq);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}

/// The newest `limit` alerts of `room`, newest first, as `(seq, body)`.
pub fn recent(conn: &Connection, room: &str, limit: i64) -> Result<Rows, StoreError> {
    let through = mark_of(conn, room)?;
    let mut rows = conn
        .prepare_cached(
            "SELECT seq, body FROM alerts WHERE seq > ?3 AND room = ?1 ORDER BY seq DESC LIMIT ?2",
        )?
        .query_map(params![room, limit, through as i64], row)?
        .collect::<Result<Rows, _>>()?;
    rows.extend(
        conn.prepare_cached(
            "SELECT a.seq, a.body FROM alert_rooms r JOIN alerts a ON a.seq = r.seq \
             WHERE r.room = ?1 AND a.room = ?1 ORDER BY r.seq DESC LIMIT ?2",
        )?
        .query_map(params![room, limit], row)?
        .collect::<Result<Rows, _>>()?,
    );
    rows.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    rows.dedup_by_key(|(seq, _)| *seq);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}
