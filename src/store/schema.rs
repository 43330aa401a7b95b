//! Versioned schema migrations, tracked in SQLite's `user_version`. Each step runs once, in
//! its own transaction; a database newer than this binary is refused rather than guessed at.

/// Migration steps: index `i` takes the schema from version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: alerts, tickets, actions, follow-ups, reminders.
    r"
    CREATE TABLE alerts (
        seq INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        kind TEXT NOT NULL,
        class TEXT NOT NULL,
        topic TEXT,
        user_id TEXT NOT NULL,
        product TEXT,
        status TEXT NOT NULL,
        users INTEGER NOT NULL,
        count INTEGER NOT NULL,
        backlog INTEGER NOT NULL,
        retracted INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        body TEXT NOT NULL
    ) STRICT;
    CREATE INDEX alerts_room_seq ON alerts(room, seq);
    CREATE INDEX alerts_created ON alerts(created_ms);

    CREATE TABLE tickets (
        seq INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        user_id TEXT NOT NULL,
        topic TEXT,
        product TEXT,
        status TEXT NOT NULL,
        opened_ms INTEGER NOT NULL,
        respond_by_ms INTEGER NOT NULL,
        resolve_by_ms INTEGER NOT NULL,
        responded_ms INTEGER,
        resolved_ms INTEGER
    ) STRICT;
    CREATE INDEX tickets_status ON tickets(status);
    CREATE INDEX tickets_opened ON tickets(opened_ms);

    CREATE TABLE actions (
        seq INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        action TEXT NOT NULL,
        by TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        script TEXT,
        choice TEXT,
        PRIMARY KEY (seq, idx)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE followups (
        seq INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        text TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (seq, idx)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE reminders (
        seq INTEGER NOT NULL,
        due TEXT NOT NULL,
        stage TEXT NOT NULL,
        due_ms INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (seq, due, stage)
    ) STRICT, WITHOUT ROWID;
    ",
    // 2: each committed change to an alert as a small row, the top-level fields it changed
    // (`{"count":3,…}`); the alert's row keeps its current body. Appended in commit order (no
    // index on seq), so a batch of changes to scattered alerts fills one page, not one each.
    r"
    CREATE TABLE alert_versions (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        version INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        fields TEXT NOT NULL
    ) STRICT;
    ",
    // 3: alerts by room in a table the writer fills in bulk, a slice of rooms at a time (see
    // `store::rooms`), not an index on `alerts`: each new alert's entry went to its room's
    // last leaf, 43% of the pages written at 150k comments/s. One mark per slice: every alert
    // of the slice up to it has its entry.
    r"
    CREATE TABLE alert_rooms (
        room TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (room, seq)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO alert_rooms (room, seq) SELECT room, seq FROM alerts;
    DROP INDEX alerts_room_seq;
    CREATE TABLE alert_room_marks (
        slice INTEGER PRIMARY KEY,
        through INTEGER NOT NULL
    ) STRICT;
    INSERT INTO alert_room_marks (slice, through)
        WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 15)
        SELECT n, (SELECT coalesce(max(seq), 0) FROM alerts) FROM s;
    ",
];

/// The schema version this binary writes.
pub fn current() -> u32 {
    MIGRATIONS.len() as u32
}
