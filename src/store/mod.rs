//! Stage 7, persist: the embedded SQLite store (WAL) behind the alert hub. Every alert is
//! written here before anyone is told about it; complaint tickets, console actions, the
//! buyer's follow-ups and reminders get their own tables so reports can query them. The
//! [`writer`] thread owns the only write connection; readers (replay, the API, `report`) open
//! their own, which WAL lets run beside it.

pub mod delta;
pub mod feedback;
pub mod handle;
pub mod import;
pub mod insights;
pub mod record;
pub mod rooms;
pub mod schema;
pub mod worklist;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use record::Alert;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or file cannot be created, opened or written.
    #[error("cannot open the state database {path}: {detail}")]
    Open {
        /// The database file.
        path: String,
        /// What the OS or SQLite said.
        detail: String,
    },
    /// The file is not a SQLite database, or is damaged.
    #[error("the state database {path} is corrupt or not a liveguard database ({detail}); move it aside to start afresh")]
    Corrupt {
        /// The database file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// Written by a newer liveguard.
    #[error(
        "the state database {path} has schema version {found}, newer than this liveguard knows ({known})"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its version.
        found: u32,
        /// Ours.
        known: u32,
    },
    /// A query failed.
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored alert does not parse.
    #[error("state database: stored alert {seq} does not parse: {source}")]
    Json {
        /// Its sequence number.
        seq: u64,
        /// Why.
        source: serde_json::Error,
    },
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives the process dying (kill -9, panic);
    /// the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is on disk before anyone hears of the alert.
    Full,
}

/// `[store]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The database file; default `liveguard.db` in the state directory (see [`state_dir`]).
    pub path: Option<PathBuf>,
    /// Commit durability.
    pub durability: Durability,
    /// Keep closed history this many days (0: forever). Open tickets are never pruned.
    pub retention_days: u32,
    /// At most this many changes per transaction.
    pub batch_max: usize,
    /// Alerts the writer keeps in memory for updates (repeats, brigades, deletions, actions).
    pub hot_alerts: usize,
    /// Changes queued for the writer before the workers wait for it.
    pub queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: None,
            durability: Durability::Normal,
            retention_days: 90,
            batch_max: 1024,
            hot_alerts: 20_000,
            queue: 8192,
        }
    }
}

impl StoreConfig {
    /// The database file: `path`, else `liveguard.db` in the state directory.
    pub fn db_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| state_dir().join("liveguard.db"))
    }
}

/// The demo's database (`liveguard demo`, read by `liveguard report --demo`): simulated alerts
/// stay out of the real history.
pub fn demo_db_path() -> PathBuf {
    state_dir().join("demo.db")
}

/// The state directory: `$LIVEGUARD_STATE_DIR`, else systemd's `$STATE_DIRECTORY` (its first
/// entry), else `$XDG_STATE_HOME/liveguard`, else `~/.local/state/liveguard`, else `./state`.
pub fn state_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("LIVEGUARD_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = var("STATE_DIRECTORY") {
        if let Some(first) = d.to_string_lossy().split(':').next().filter(|s| !s.is_empty()) {
            return PathBuf::from(first);
        }
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return PathBuf::from(d).join("liveguard");
    }
    if let Some(h) = var("HOME") {
        return PathBuf::from(h).join(".local/state/liveguard");
    }
    PathBuf::from("state")
}

fn open_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn classify_err(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.display().to_string(),
            detail: e.to_string(),
        },
        _ => open_err(path, e),
    }
}

/// Opens (creating it and its directory if needed) the database for writing, checks it and
/// brings its schema up to date.
pub fn open_writer(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| open_err(path, format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open(path).map_err(|e| classify_err(path, e))?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| classify_err(path, e))?;
    conn.pragma_update(None, "synchronous", sync)
        .map_err(|e| classify_err(path, e))?;
    // SQLite's own busy timeout sleeps 1, 2, 5, 10 ms between tries.
    conn.busy_handler(Some(writer_busy))
        .map_err(|e| classify_err(path, e))?;
    // Checkpoints (which fsync) run on their own thread, see `spawn_checkpointer`: done at
    // commit time they stalled the writer, and every alert behind it, for milliseconds.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|e| classify_err(path, e))?;
    // A checkpoint that empties the WAL leaves the file at most this long (bounded disk).
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(|e| classify_err(path, e))?;
    // With SQLite's default 2 MB cache the writer read pages back from the OS for most
    // updates and spilled dirty pages to the WAL mid-transaction.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|e| classify_err(path, e))?;
    // Damage in the header or the schema shows here, at start-up, not at the first alert.
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| classify_err(path, e))?;
    if check != "ok" {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            detail: check,
        });
    }
    migrate(&mut conn, path)?;
    // A read-only file opens fine; find out now rather than at the first commit.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|e| open_err(path, e))?;
    Ok(conn)
}

/// Opens an existing database for reading (replay, the API, `report`).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(open_err(path, "no such file"));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| classify_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| classify_err(path, e))?;
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| classify_err(path, e))?;
    if version > schema::current() {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: version,
            known: schema::current(),
        });
    }
    Ok(conn)
}

/// Applies the migrations the database has not seen yet.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<u32, StoreError> {
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| classify_err(path, e))?;
    let known = schema::current();
    if version > known {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: version,
            known,
        });
    }
    for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(|e| open_err(path, e))?;
        tx.execute_batch(step).map_err(|e| open_err(path, e))?;
        tx.pragma_update(None, "user_version", i as u32 + 1)
            .map_err(|e| open_err(path, e))?;
        tx.commit().map_err(|e| open_err(path, e))?;
        tracing::info!(path = %path.display(), version = i + 1, "state database migrated");
    }
    Ok(known)
}

/// Serializes an alert as stored (and served by `/api/alerts`).
pub fn body(a: &Alert) -> String {
    serde_json::to_string(a).unwrap_or_default()
}

/// What follows `INSERT` in a new alert's statement.
macro_rules! insert_alert_sql {
    () => {
        " INTO alerts (seq, room, kind, class, topic, user_id, product, status, users, count, backlog, \
         retracted, created_ms, updated_ms, body) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
    };
}

/// Writes an alert as of version `a`: its row (inserted when `prev`, the version last written,
/// is none; else updated in place), its ticket row when that changed, and the actions,
/// follow-ups and reminders added since `prev`. True when the row was inserted and its
/// `alert_rooms` entry is left to the caller's next bulk pass (see [`rooms`]).
pub fn write_alert(
    tx: &Transaction<'_>,
    a: &Alert,
    body: &str,
    prev: Option<&Alert>,
    marks: &rooms::Marks,
) -> Result<bool, StoreError> {
    // One parameter list, numbered as the INSERT's columns, serves both statements.
    let write = |sql: &str| -> Result<usize, rusqlite::Error> {
        tx.prepare_cached(sql)?.execute(params![
            a.seq as i64,
            a.room,
            a.kind.as_str(),
            a.verdict.class.as_str(),
            a.verdict.topic.map(|t| t.as_str()),
            a.user.id,
            a.product,
            a.status.as_str(),
            i64::from(a.users_total).max(a.users.len() as i64),
            i64::from(a.count),
            a.backlog,
            a.retracted,
            a.classified_ms as i64,
            a.updated_ms as i64,
            body,
        ])
    };
    // An UPDATE that leaves room and created_ms alone touches no index; INSERT OR REPLACE
    // deleted and re-inserted the row and both index entries on every change.
    let mut held = false;
    let in_place = prev.is_some_and(|p| p.room == a.room && p.classified_ms == a.classified_ms)
        && write(
            "UPDATE alerts SET kind = ?3, class = ?4, topic = ?5, user_id = ?6, product = ?7, status = ?8, \
             users = ?9, count = ?10, backlog = ?11, retracted = ?12, updated_ms = ?14, body = ?15 WHERE seq = ?1",
        )? == 1;
    if !in_place {
        // A plain INSERT: OR REPLACE made SQLite keep a statement journal for every new alert.
        // A seq already stored (never expected) is replaced rather than failing the batch.
        match write(concat!("INSERT", insert_alert_sql!())) {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                write(concat!("INSERT OR REPLACE", insert_alert_sql!()))?;
            }
            r => {
                r?;
            }
        }
        // At or below its slice's mark (an import, a late or moved alert): its entry now, as
        // the next bulk pass starts above the mark. Else the caller holds it back for one.
        if !marks.covers(&a.room, a.seq) {
            held = true;
        } else {
            tx.prepare_cached(rooms::INSERT_ENTRY)?
                .execute(params![a.room, a.seq as i64])?;
        }
    }
    let prev_actions = prev.map_or(0, |p| p.actions.len());
    if a.actions.len() > prev_actions {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO actions (seq, idx, action, by, at_ms, script, choice) VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        for (i, r) in a.actions.iter().enumerate().skip(prev_actions) {
            st.execute(params![
                a.seq as i64,
                i as i64,
                r.action,
                r.by,
                r.at_ms as i64,
                r.script,
                r.choice
            ])?;
        }
    }
    let Some(t) = &a.ticket else { return Ok(held) };
    let prev_t = prev.and_then(|p| p.ticket.as_ref());
    // Most versions (a repeat counted, a follow-up) leave the ticket's row as it was.
    let row_changed = !in_place
        || prev_t.is_none_or(|p| {
            (
                p.status,
                p.opened_ms,
                p.respond_by_ms,
                p.resolve_by_ms,
                p.responded_ms,
                p.resolved_ms,
            ) != (
                t.status,
                t.opened_ms,
                t.respond_by_ms,
                t.resolve_by_ms,
                t.responded_ms,
                t.resolved_ms,
            )
        })
        || prev.is_some_and(|p| {
            (p.verdict.topic, &p.product, &p.user.id) != (a.verdict.topic, &a.product, &a.user.id)
        });
    if row_changed {
        let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO tickets (seq, room, user_id, topic, product, status, opened_ms, respond_by_ms, \
         resolve_by_ms, responded_ms, resolved_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    )?;
        st.execute(params![
            a.seq as i64,
            a.room,
            a.user.id,
            a.verdict.topic.map(|t| t.as_str()),
            a.product,
            t.status.as_str(),
            t.opened_ms as i64,
            t.respond_by_ms as i64,
            t.resolve_by_ms as i64,
            t.responded_ms.map(|v| v as i64),
            t.resolved_ms.map(|v| v as i64),
        ])?;
    }
    let prev_f = prev_t.map_or(0, |p| p.followups.len());
    if t.followups.len() > prev_f {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO followups (seq, idx, msg_id, text, at_ms) VALUES (?1,?2,?3,?4,?5)",
        )?;
        for (i, f) in t.followups.iter().enumerate().skip(prev_f) {
            st.execute(params![a.seq as i64, i as i64, f.msg_id, f.text, f.at_ms as i64])?;
        }
    }
    let prev_r = prev_t.map_or(0, |p| p.reminders.len());
    if t.reminders.len() > prev_r {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO reminders (seq, due, stage, due_ms, at_ms) VALUES (?1,?2,?3,?4,?5)",
        )?;
        for r in t.reminders.iter().skip(prev_r) {
            st.execute(params![
                a.seq as i64,
                r.due.as_str(),
                r.stage.as_str(),
                r.due_ms as i64,
                r.at_ms as i64
            ])?;
        }
    }
    Ok(held)
}

/// Records version `a.version` of alert `a.seq` as the fields that changed (`fields`, a JSON
/// object from [`delta::row`]).
pub fn write_version(tx: &Transaction<'_>, a: &Alert, fields: &str) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO alert_versions (seq, version, at_ms, fields) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            a.seq as i64,
            i64::from(a.version),
            a.updated_ms as i64,
            fields
        ])?;
    Ok(())
}

fn parse(seq: i64, body: &str) -> Result<Alert, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Json {
        seq: seq as u64,
        source,
    })
}

/// The stored alert `seq`.
pub fn get(conn: &Connection, seq: u64) -> Result<Option<Alert>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM alerts WHERE seq = ?1")?
        .query_row([seq as i64], |r| r.get(0))
        .optional()?;
    body.map(|b| parse(seq as i64, &b)).transpose()
}

/// Stored alerts after `since` (in `room`, when given), oldest first, at most `limit`, as
/// `(seq, body)`.
pub fn since(
    conn: &Connection,
    since: u64,
    room: Option<&str>,
    limit: usize,
) -> Result<Vec<(u64, String)>, StoreError> {
    let limit = limit.min(i64::MAX as usize) as i64;
    if let Some(room) = room {
        return rooms::since(conn, room, since, limit);
    }
    Ok(conn
        .prepare_cached("SELECT seq, body FROM alerts WHERE seq > ?1 ORDER BY seq LIMIT ?2")?
        .query_map(params![since as i64, limit], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The newest `limit` stored alerts (in `room`, when given), newest first, as `(seq, body)`.
pub fn recent(conn: &Connection, limit: usize, room: Option<&str>) -> Result<Vec<(u64, String)>, StoreError> {
    let limit = limit.min(i64::MAX as usize) as i64;
    if let Some(room) = room {
        return rooms::recent(conn, room, limit);
    }
    Ok(conn
        .prepare_cached("SELECT seq, body FROM alerts ORDER BY seq DESC LIMIT ?1")?
        .query_map(params![limit], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The highest stored sequence number (0 when empty).
pub fn max_seq(conn: &Connection) -> Result<u64, StoreError> {
    Ok(
        conn.query_row("SELECT coalesce(max(seq), 0) FROM alerts", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

/// The newest `limit` stored alerts, oldest first (to warm the writer's memory).
pub fn newest(conn: &Connection, limit: usize) -> Result<Vec<Alert>, StoreError> {
    let mut rows = recent(conn, limit, None)?;
    rows.reverse();
    rows.iter().map(|(s, b)| parse(*s as i64, b)).collect()
}

/// Alerts whose tickets are still open or responding (their promises are still running).
pub fn active_tickets(conn: &Connection) -> Result<Vec<Alert>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT a.seq, a.body FROM tickets t JOIN alerts a ON a.seq = t.seq \
         WHERE t.status IN ('open', 'responding') ORDER BY a.seq",
    )?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter().map(|(s, b)| parse(*s, b)).collect()
}

/// Deletes closed history created before `before_ms` (alerts without an active ticket, and
/// their rows). Returns how many alerts went.
pub fn prune(conn: &mut Connection, before_ms: u64) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let doomed = "SELECT a.seq FROM alerts a LEFT JOIN tickets t ON t.seq = a.seq \
                  WHERE a.created_ms < ?1 AND (t.status IS NULL OR t.status NOT IN ('open', 'responding'))";
    tx.execute(
        &format!("DELETE FROM alert_rooms WHERE (room, seq) IN (SELECT room, seq FROM alerts WHERE seq IN ({doomed}))"),
        [before_ms as i64],
    )?;
    for table in ["actions", "followups", "reminders", "alert_versions", "tickets"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE seq IN ({doomed})"),
            [before_ms as i64],
        )?;
    }
    let n = tx.execute(
        &format!("DELETE FROM alerts WHERE seq IN ({doomed})"),
        [before_ms as i64],
    )?;
    tx.commit()?;
    Ok(n)
}

/// How often the checkpointer moves the WAL into the database file. Often, so each pass's
/// `fsync` has little to write: the writer's appends wait on pages that one holds (at 100k
/// comments/s, passes every 500 ms moved ~48 MB each and made the alert p99).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// This long with no commit and the WAL file is truncated.
const QUIET_BEFORE_TRUNCATE: std::time::Duration = std::time::Duration::from_millis(500);

/// Once the WAL is past the restart size, at most this many more passes before the writer is
/// asked to restart it (see `spawn_checkpointer`).
const LARGE_EXTRA_PASSES: usize = 2;

/// Back-to-back PASSIVE passes per tick at most, chasing the writer.
const CATCH_UP_PASSES: usize = 6;

/// A pass that found at most this many new frames has caught up with the writer.
const CAUGHT_UP_FRAMES: i64 = 64;

/// Past this many bytes the WAL is started over (see [`spawn_checkpointer`]); below
/// [`JOURNAL_SIZE_LIMIT`], so a restarted WAL keeps its blocks.
pub const WAL_RESTART_BYTES: i64 = 48 * 1024 * 1024;

/// Past this many bytes the writer empties the WAL itself, waiting for the disk
/// ([`WalWatch`]): the bound on its size however slow the disk.
pub const WAL_HARD_BYTES: i64 = 96 * 1024 * 1024;

/// One wait between tries for a lock another connection holds.
const BUSY_NAP: std::time::Duration = std::time::Duration::from_micros(50);

/// The writer waits up to 5 s for a lock (as SQLite's busy timeout did).
const WRITER_BUSY_TRIES: i32 = 100_000;

/// The writer's busy handler: short naps.
fn writer_busy(tries: i32) -> bool {
    std::thread::sleep(BUSY_NAP);
    tries < WRITER_BUSY_TRIES
}

/// The writer's page cache, KiB (recent alerts' pages, the indexes' hot leaves).
pub const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The WAL is cut back to this many bytes when a checkpoint empties it (`journal_size_limit`).
pub const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// What one `wal_checkpoint` pass reported.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Frames in the WAL when the pass began.
    log: i64,
    /// A lock could not be had (the pass did part of its work or none).
    busy: bool,
}

/// Runs one `wal_checkpoint(mode)` pass on `conn`.
fn checkpoint(conn: &Connection, mode: &str) -> Result<Pass, rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(Pass {
            busy: r.get::<_, i64>(0)? != 0,
            log: r.get::<_, i64>(1)?,
        })
    })
}

/// The writer's part of keeping the WAL bounded, between two of its commits, when the
/// checkpointer asked for it: a RESTART pass copies the last few frames (the checkpointer's
/// passes copied the rest) and makes the next commit write the WAL from its beginning.
/// Never waits for a lock: a checkpointer pass or a reader in the way means not this time
/// (the checkpointer asks again while the WAL stays large).
pub fn restart_wal(conn: &mut Connection) {
    let _ = conn.busy_handler(None::<fn(i32) -> bool>);
    restart_pass(conn);
    if let Err(e) = conn.busy_handler(Some(writer_busy)) {
        tracing::warn!(error = %e, "cannot set the writer's busy handler back");
    }
}

/// One RESTART pass: false when a lock was in the way (try again), true when it is over
/// (done, or failed: logged).
fn restart_pass(conn: &Connection) -> bool {
    match checkpoint(conn, "RESTART") {
        Ok(pass) => !pass.busy,
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => false,
        Err(e) => {
            tracing::warn!(error = %e, "WAL restart failed");
            true
        }
    }
}

/// How long the writer keeps trying to empty a WAL past its bound before it gives up (a
/// reader that never ends) and commits on, telling the log.
const FORCED_RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The writer's watch on the WAL's length: SQLite reports the frames in it after every commit
/// (`sqlite3_wal_hook`). The checkpointer's passes and the restarts they ask for keep it
/// near [`WAL_RESTART_BYTES`] while the disk keeps up; when commits come faster than the
/// disk copies them back, this is the bound that still holds: past `hard_bytes` the writer
/// empties the WAL itself before its next commit, waiting for the disk.
pub struct WalWatch {
    frames: std::sync::Arc<std::sync::atomic::AtomicI64>,
    hard_frames: i64,
}

impl WalWatch {
    /// Installs the hook on the writer's connection (after `wal_autocheckpoint`, which
    /// would replace it).
    pub fn install(conn: &mut Connection, hard_bytes: i64) -> Result<Self, rusqlite::Error> {
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let frames = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let seen = frames.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, n: std::ffi::c_int| {
            seen.store(i64::from(n), std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }))?;
        Ok(Self {
            frames,
            // A frame is a page and its 24-byte header.
            hard_frames: hard_bytes / (page.max(512) + 24),
        })
    }

    /// Between two commits: the restart the checkpointer asked for (`restart_due`), which
    /// never waits, or, with the WAL past its bound, one that does. True when it waited.
    pub fn between_commits(
        &self,
        conn: &mut Connection,
        restart_due: &std::sync::atomic::AtomicBool,
    ) -> bool {
        use std::sync::atomic::Ordering;
        if restart_due.swap(false, Ordering::SeqCst) {
            restart_wal(conn);
        }
        if self.frames.load(Ordering::Relaxed) <= self.hard_frames {
            return false;
        }
        let started = std::time::Instant::now();
        // Not over while the checkpointer's pass holds the checkpoint lock or a reader is slow.
        while !restart_pass(conn) {
            if started.elapsed() >= FORCED_RESTART_WAIT {
                tracing::warn!(
                    frames = self.frames.load(Ordering::Relaxed),
                    "the WAL is past its bound and could not be emptied; committing on"
                );
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Whatever happened, the next commit reports the length again.
        self.frames.store(0, Ordering::Relaxed);
        tracing::debug!(took = ?started.elapsed(), "WAL emptied at its bound");
        true
    }
}

/// Starts the thread that checkpoints the WAL beside the writer until `stop` is set, then
/// truncates the WAL once. While commits come (`commits` counts them) it checkpoints PASSIVE
/// (never blocking the writer), a few passes back to back, each copying what came during
/// the last. A PASSIVE pass never finds the WAL empty while commits keep coming, so SQLite
/// never starts it over and it would grow without end (220 MB in 2.5 s at 100k comments/s):
/// once a pass finds it past `restart_bytes`, it sets `restart_due`, and the writer calls
/// [`restart_wal`] between two commits. After [`QUIET_BEFORE_TRUNCATE`] with no commit it
/// checkpoints TRUNCATE once, so a burst's WAL does not stay on disk until shutdown. (At the
/// lowest CPU priority its passes were slower and the tail worse: the writer's appends wait
/// on WAL pages the pass's `fsync` holds.)
pub fn spawn_checkpointer(
    path: &Path,
    restart_bytes: i64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    restart_due: std::sync::Arc<std::sync::atomic::AtomicBool>,
    commits: impl Fn() -> u64 + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let conn = Connection::open(path).map_err(|e| classify_err(path, e))?;
    // Only TRUNCATE waits (once nothing is written): a second at most.
    conn.busy_timeout(std::time::Duration::from_secs(1))
        .map_err(|e| classify_err(path, e))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(|e| classify_err(path, e))?;
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|e| classify_err(path, e))?;
    let restart_frames = restart_bytes / page.max(512);
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("liveguard-checkpoint".into())
        .spawn(move || {
            let run = |mode: &str| {
                checkpoint(&conn, mode)
                    .map_err(|e| tracing::warn!(path = %shown, error = %e, "WAL checkpoint failed"))
                    .ok()
            };
            let mut seen = commits();
            let mut last_commit = std::time::Instant::now();
            let mut truncated = true;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(CHECKPOINT_EVERY);
                let now = commits();
                if now != seen {
                    seen = now;
                    last_commit = std::time::Instant::now();
                    truncated = false;
                    let mut last: Option<(Pass, std::time::Duration)> = None;
                    let mut extra = 0;
                    for _ in 0..CATCH_UP_PASSES {
                        let started = std::time::Instant::now();
                        let Some(pass) = run("PASSIVE") else { break };
                        let took = started.elapsed();
                        let caught_up = last.is_some_and(|(l, _)| pass.log - l.log <= CAUGHT_UP_FRAMES);
                        // Each pass copies what came during the one before: while they get
                        // quicker, one or two more leave the writer's restart (which copies
                        // the rest and waits for its `fsync`) little to do: 1-2 ms instead
                        // of 4-7 at 150k comments/s. When they do not (commits as fast as the
                        // disk), waiting only lets the WAL grow: the restart, now.
                        let converging = last.is_none_or(|(_, t)| took < t / 2);
                        last = Some((pass, took));
                        if pass.log > restart_frames {
                            if !caught_up
                                && !pass.busy
                                && extra < LARGE_EXTRA_PASSES
                                && (extra == 0 || converging)
                            {
                                extra += 1;
                                continue;
                            }
                            restart_due.store(true, std::sync::atomic::Ordering::SeqCst);
                            break;
                        }
                        if caught_up || pass.busy {
                            break;
                        }
                    }
                } else if !truncated && last_commit.elapsed() >= QUIET_BEFORE_TRUNCATE {
                    // A reader in the way: try again next tick.
                    truncated = run("TRUNCATE").is_some_and(|p| !p.busy);
                }
            }
            let _ = run("TRUNCATE");
        })
        .map_err(|e| open_err(path, format!("cannot start the checkpoint thread: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One commit of 64 version rows (seq from `first`), ~64 KiB with 1,000-byte `fields`.
    fn commit_rows(conn: &mut Connection, first: i64, fields: &str) {
        let tx = conn.transaction().expect("begins");
        for i in first..first + 64 {
            tx.execute(
                "INSERT INTO alert_versions (seq, version, at_ms, fields) VALUES (?1, 1, 0, ?2)",
                params![i, fields],
            )
            .expect("inserts");
        }
        tx.commit().expect("commits");
    }

    /// Commits as fast as the writer would for a while, beside the real checkpointer: the WAL
    /// is started over and stays near the restart size, instead of growing by everything
    /// written (a PASSIVE pass alone never finds it empty while commits keep coming).
    #[test]
    fn the_wal_stays_bounded_under_commits_that_never_pause() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        const RESTART: i64 = 2 * 1024 * 1024;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("busy.db");
        let wal = dir.path().join("busy.db-wal");
        let mut conn = open_writer(&path, Durability::Normal).expect("opens");
        let watch = WalWatch::install(&mut conn, WAL_HARD_BYTES).expect("hook");
        let commits = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let restart_due = Arc::new(AtomicBool::new(false));
        let checkpointer = spawn_checkpointer(&path, RESTART, stop.clone(), restart_due.clone(), {
            let commits = commits.clone();
            move || commits.load(Ordering::SeqCst)
        })
        .expect("checkpointer");
        let fields = "x".repeat(1000);
        let (mut written, mut largest, mut forced) = (0u64, 0u64, 0u64);
        let started = std::time::Instant::now();
        // Several times the bound below, however fast or slow the machine.
        while written < 384 * 1024 * 1024 || started.elapsed() < std::time::Duration::from_secs(1) {
            commit_rows(&mut conn, 0, &fields);
            commits.fetch_add(1, Ordering::SeqCst);
            // As the writer does between commits.
            forced += u64::from(watch.between_commits(&mut conn, &restart_due));
            written += 64 * 1024;
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "too slow to say"
            );
        }
        stop.store(true, Ordering::SeqCst);
        checkpointer.join().expect("checkpointer ends");
        // These commits come far faster than the writer's (~250 MB/s). When the disk keeps
        // up, the peak is what they add during one checkpoint cycle (4.5 MB measured); when
        // it does not (43-233 MB seen in CI before the bound), the writer waits at the bound,
        // so a commit past it at most. Without the restarts it is everything written.
        assert!(
            largest <= WAL_HARD_BYTES as u64 + 1024 * 1024,
            "the WAL grew to {largest} bytes while {written} were written"
        );
        eprintln!("WAL peak {largest} bytes, {forced} waits at the bound, {written} written");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM alert_versions", [], |r| r.get(0))
            .expect("counts");
        assert_eq!(rows as u64, written / 1024, "every committed row is there");
    }

    /// With no checkpointer at all (as when its passes never finish on a slow disk), the
    /// writer's own bound keeps the WAL near it, and every row is still there.
    #[test]
    fn past_its_bound_the_writer_empties_the_wal_itself() {
        use std::sync::atomic::AtomicBool;
        const HARD: i64 = 1024 * 1024;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bound.db");
        let wal = dir.path().join("bound.db-wal");
        let mut conn = open_writer(&path, Durability::Normal).expect("opens");
        conn.pragma_update(None, "journal_size_limit", HARD)
            .expect("limit");
        let watch = WalWatch::install(&mut conn, HARD).expect("hook");
        let never = AtomicBool::new(false);
        let fields = "y".repeat(1000);
        let (mut largest, mut forced) = (0u64, 0u64);
        for batch in 0..160 {
            commit_rows(&mut conn, batch * 64, &fields);
            forced += u64::from(watch.between_commits(&mut conn, &never));
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        // ~10 MiB written; a 64-row commit adds ~70 KiB past the bound.
        assert!(forced >= 5, "the writer emptied the WAL {forced} times");
        assert!(
            largest <= HARD as u64 + 256 * 1024,
            "the WAL grew to {largest} bytes"
        );
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM alert_versions", [], |r| r.get(0))
            .expect("counts");
        assert_eq!(rows, 160 * 64, "every committed row is there");
    }

    #[test]
    fn a_version_1_database_migrates_and_keeps_its_alerts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).expect("creates");
            conn.execute_batch(schema::MIGRATIONS[0]).expect("schema 1");
            conn.pragma_update(None, "user_version", 1).expect("version 1");
            // A body as liveguard wrote it before versions were counted.
            let mut a = Alert::ops("r".into(), "quiet".into(), 5);
            a.seq = 1;
            let mut body: serde_json::Value = serde_json::to_value(&a).expect("serializes");
            body.as_object_mut().expect("object").remove("version");
            conn.execute(
                "INSERT INTO alerts (seq, room, kind, class, user_id, status, users, count, backlog, retracted, \
                 created_ms, updated_ms, body) VALUES (1, 'r', 'ops', 'neutral', 'liveguard', 'open', 0, 1, 0, 0, 5, 5, ?1)",
                [body.to_string()],
            )
            .expect("old alert");
        }
        let conn = open_writer(&path, Durability::Normal).expect("opens and migrates");
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, schema::current());
        let a = get(&conn, 1).expect("reads").expect("kept");
        assert_eq!((a.text.as_str(), a.version), ("quiet", 1));
        assert_eq!(max_seq(&conn).expect("reads"), 1);
    }
}
