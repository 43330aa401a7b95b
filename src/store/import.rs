//! Alerts that come from elsewhere (the bus's alert stream, on a takeover) written into the
//! local database before the writer starts, so the writer loads their tickets and reminds on
//! time like for its own. Alerts are matched by their stable id (in the JSON body; no schema
//! change): a known id keeps its local sequence number and takes the newer version, an unknown
//! one gets the next number. Blocking.

use std::collections::HashMap;

use rusqlite::params;

use super::record::Alert;
use super::{StoreConfig, StoreError};

/// What an import found and did.
#[derive(Debug, Default)]
pub struct Imported {
    /// Every alert id in the database (after the import) with its local sequence number,
    /// newest `cap` of them.
    pub ids: HashMap<String, u64>,
    /// Versions written (new alerts, or newer versions of known ones).
    pub written: usize,
    /// Local alerts newer than what was imported for them, or absent from it: committed here
    /// but perhaps never published (a crash in between). The caller publishes them again.
    pub ahead: Vec<Alert>,
}

/// Writes `alerts` (the newest version of each, any order) into the database of `cfg`.
/// Local alerts changed since `since_ms` in rooms `owned` says the caller answers for, and not
/// matched by an import at least as new, come back in [`Imported::ahead`]. At most `cap` ids
/// are indexed.
pub fn import(
    cfg: &StoreConfig,
    alerts: Vec<Alert>,
    owned: impl Fn(&str) -> bool,
    since_ms: u64,
    cap: usize,
) -> Result<Imported, StoreError> {
    let path = cfg.db_path();
    let mut conn = super::open_writer(&path, cfg.durability)?;
    // id -> (seq, version, room, updated_ms)
    let mut local: HashMap<String, (u64, u32, String, u64)> = HashMap::new();
    {
        let mut st = conn.prepare(
            "SELECT seq, json_extract(body, '$.id'), coalesce(json_extract(body, '$.version'), 0), room, updated_ms \
             FROM alerts WHERE json_extract(body, '$.id') IS NOT NULL ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = st.query_map(params![cap as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)? as u64,
            ))
        })?;
        for row in rows {
            let (seq, id, version, room, updated) = row?;
            local.entry(id).or_insert((seq, version, room, updated));
        }
    }
    let mut next = super::max_seq(&conn)? + 1;
    let mut out = Imported::default();
    let mut imported: HashMap<String, u32> = HashMap::new();
    let tx = conn.transaction()?;
    for mut a in alerts {
        if a.id.is_empty() {
            continue;
        }
        imported.insert(a.id.clone(), a.version);
        let prev = match local.get(&a.id) {
            Some((_, version, ..)) if *version >= a.version => continue,
            Some((seq, ..)) => {
                a.seq = *seq;
                super::get(&tx, *seq)?
            }
            None => {
                a.seq = next;
                next += 1;
                None
            }
        };
        let body = super::body(&a);
        // Not the hot path: every imported alert gets its room entry at once.
        super::write_alert(&tx, &a, &body, prev.as_ref(), &super::rooms::Marks::all())?;
        local.insert(a.id.clone(), (a.seq, a.version, a.room.clone(), a.updated_ms));
        out.written += 1;
    }
    tx.commit()?;
    for (id, (seq, version, room, updated)) in &local {
        let covered = imported.get(id).is_some_and(|v| v >= version);
        if covered || *updated < since_ms || !owned(room) {
            continue;
        }
        if let Some(a) = super::get(&conn, *seq)? {
            out.ahead.push(a);
        }
    }
    out.ahead.sort_by_key(|a| a.seq);
    out.ids = local.into_iter().map(|(id, (seq, ..))| (id, seq)).collect();
    Ok(out)
}
