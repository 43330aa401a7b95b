//! Insights over a hand-made store: every number of `insights::stats` computed by hand from the
//! fixture below, then the same numbers from the real `liveguard report` binary (json, csv,
//! table) and from `GET /api/stats` on a real daemon opened on the same database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use liveguard::alerts::{Alert, AlertKind, AlertStatus};
use liveguard::classify::{Evidence, Verdict};
use liveguard::config::Config;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::{Format, User};
use liveguard::store::insights::{self, StatsQuery};
use liveguard::store::StoreConfig;
use liveguard::taxonomy::{Action, Class, Lang, Topic};
use liveguard::tickets::{Ticket, TicketStatus};
use serde_json::{json, Value};

use crate::util;

/// 2025-11-25 04:00 UTC, the start of an hour.
const H0: u64 = 1_764_043_200_000;
const M: u64 = 60_000;
const H: u64 = 60 * M;
/// The window: six hours from H0.
const SINCE: u64 = H0;
const UNTIL: u64 = H0 + 6 * H;
/// Every fixture ticket promises a response within 1 h and a resolution within 3 h.
const RESPOND: u64 = H;
const RESOLVE: u64 = 3 * H;

/// One fixture alert: seq, room, kind, topic (None: neutral), minutes after H0 (negative:
/// before), product, status, users, evidence rules, ticket (status, responded and resolved
/// minutes after opening).
type Row = (
    u64,
    &'static str,
    AlertKind,
    Option<&'static str>,
    i64,
    Option<&'static str>,
    AlertStatus,
    usize,
    &'static [&'static str],
    Option<(TicketStatus, Option<u64>, Option<u64>)>,
);

const PRODUCT_QUOTED: &str = r#"ring "S", gold"#;

#[rustfmt::skip]
const FIXTURE: &[Row] = {
    use AlertKind::*;
    use AlertStatus as S;
    use TicketStatus as T;
    &[
        // Complaints with tickets (responded/resolved in minutes after opening).
        (1, "room-0", Comment, Some("defect"), 10, Some("jade bangle"), S::Invited, 1,
            &["zh-purchase", "zh-defect-crack", "zh-defect-crack"], Some((T::ResolvedRefund, Some(7), Some(90)))),
        // Responded late: a response breach.
        (2, "room-0", Comment, Some("logistics"), 30, Some("jade bangle"), S::Resolved, 1,
            &["zh-purchase", "zh-logistics-late"], Some((T::ResolvedExchange, Some(90), Some(120)))),
        // Never answered, both deadlines before UNTIL: a breach of each kind.
        (3, "room-1", Comment, Some("defect"), 65, Some("silver ring"), S::Open, 1,
            &["zh-defect-crack"], Some((T::Open, None, None))),
        // Answered, unresolved past its deadline: a resolution breach.
        (4, "room-0", Comment, Some("authenticity"), 80, None, S::Scripted, 1,
            &["zh-purchase", "zh-authenticity-fake"], Some((T::Responding, Some(5), None))),
        // Dismissed: counts for fp_rate; its overdue ticket is no breach.
        (5, "room-0", Comment, Some("defect"), 120, Some("jade bangle"), S::Dismissed, 1,
            &["zh-purchase", "zh-defect-crack"], Some((T::Dismissed, None, Some(1)))),
        // Resolved late: a resolution breach.
        (6, "room-1", Comment, Some("size_fit"), 130, Some(PRODUCT_QUOTED), S::Resolved, 1,
            &["en-size-small"], Some((T::ResolvedOther, Some(40), Some(200)))),
        // Open, deadlines after UNTIL: no breach yet.
        (7, "room-0", Comment, Some("defect"), 330, Some("jade bangle"), S::Open, 1,
            &["zh-defect-crack"], Some((T::Open, None, None))),
        // Outside the window: a minute before it, and exactly at its (exclusive) end.
        (8, "room-0", Comment, Some("defect"), -1, Some("jade bangle"), S::Dismissed, 1,
            &["zh-defect-crack"], Some((T::Open, None, None))),
        (9, "room-0", Comment, Some("insult"), 360, None, S::Dismissed, 1, &["zh-insult-trash"], None),
        // Attacks.
        (10, "room-0", Comment, Some("diversion"), 40, None, S::Muted, 1,
            &["zh-diversion-vx-id", "detector:phone"], None),
        (11, "room-1", Comment, Some("diversion"), 180, None, S::Dismissed, 1, &["zh-diversion-vx-id"], None),
        (12, "room-0", Brigade, Some("smear"), 195, None, S::Open, 5, &["zh-smear-scam", "zh-insult-trash"], None),
        (13, "room-1", Brigade, Some("insult"), 240, None, S::Open, 3, &["zh-insult-trash"], None),
        (14, "room-0", Comment, Some("insult"), 270, None, S::Dismissed, 1, &["zh-insult-trash"], None),
        // Ops alerts are no rule's verdict: left out of the rules.
        (15, "room-1", Ops, None, 300, None, S::Dismissed, 0, &["ops-silence"], None),
    ]
};

fn alert(row: &Row) -> Alert {
    let &(seq, room, kind, topic, minutes, product, status, users, rules, ticket) = row;
    let topic = topic.map(|t| Topic::parse(t).expect("a topic"));
    let verdict = Verdict {
        class: topic.map_or(Class::Neutral, Topic::class),
        topic,
        score: 0.9,
        evidence: rules
            .iter()
            .map(|r| Evidence {
                rule: Arc::from(*r),
                start: 0,
                end: 1,
                text: "x".into(),
                // Purchase context is shown on the card but decides nothing.
                context: r.ends_with("-purchase"),
            })
            .collect(),
        action: Action::None,
        script: None,
        lang: Lang::Zh,
        purchase: false,
        source: Default::default(),
    };
    let user = User {
        id: format!("u{seq}"),
        ..User::default()
    };
    let at = H0.checked_add_signed(minutes * M as i64).expect("a time");
    let mut a = Alert::new(kind, room.into(), user, "x".into(), verdict, at);
    a.seq = seq;
    a.product = product.map(str::to_string);
    a.status = status;
    a.users = (0..users).map(|i| format!("u{seq}-{i}")).collect();
    a.ticket = ticket.map(|(status, responded, resolved)| Ticket {
        status,
        opened_ms: at,
        respond_by_ms: at + RESPOND,
        resolve_by_ms: at + RESOLVE,
        responded_ms: responded.map(|m| at + m * M),
        resolved_ms: resolved.map(|m| at + m * M),
        reminders: Vec::new(),
        followups: Vec::new(),
    });
    a
}

/// A fresh database holding the fixture.
fn fixture_db() -> PathBuf {
    fixture_db_at(util::state_dir().join("liveguard.db"))
}

/// The fixture written to `path`.
fn fixture_db_at(path: PathBuf) -> PathBuf {
    let mut conn =
        liveguard::store::open_writer(&path, liveguard::store::Durability::Normal).expect("store opens");
    let writes: Vec<_> = FIXTURE
        .iter()
        .map(|row| {
            let a = alert(row);
            let body = liveguard::store::body(&a);
            liveguard::store::writer::Write::new(Arc::new(a), body, None)
        })
        .collect();
    liveguard::store::writer::write_batch(
        &mut conn,
        &writes,
        &liveguard::store::writer::RoomPass::none(liveguard::store::rooms::Marks::all()),
    )
    .expect("fixture written");
    path
}

/// The numbers for [SINCE, UNTIL), all rooms, worked out by hand from the fixture.
fn expected() -> Value {
    json!({
        "since_ms": SINCE, "until_ms": UNTIL, "room": null,
        "complaints": {
            "total": 7,
            // Ties by key ascending.
            "by_topic": [{"key": "defect", "n": 4}, {"key": "authenticity", "n": 1},
                         {"key": "logistics", "n": 1}, {"key": "size_fit", "n": 1}],
            // Seq 4 names no product.
            "by_product": [{"key": "jade bangle", "n": 4}, {"key": PRODUCT_QUOTED, "n": 1},
                           {"key": "silver ring", "n": 1}],
            "by_room": [{"key": "room-0", "n": 5}, {"key": "room-1", "n": 2}],
            // 04:00 seq 1, 2; 05:00 seq 3, 4; 06:00 seq 5, 6; 09:00 seq 7; 07:00 and 08:00 empty.
            "by_hour": [
                {"hour_ms": H0, "n": 2, "by_topic": {"defect": 1, "logistics": 1}},
                {"hour_ms": H0 + H, "n": 2, "by_topic": {"authenticity": 1, "defect": 1}},
                {"hour_ms": H0 + 2 * H, "n": 2, "by_topic": {"defect": 1, "size_fit": 1}},
                {"hour_ms": H0 + 5 * H, "n": 1, "by_topic": {"defect": 1}},
            ],
        },
        "attacks": {
            "total": 5,
            "by_topic": [{"key": "diversion", "n": 2}, {"key": "insult", "n": 2}, {"key": "smear", "n": 1}],
            "brigades": 2,
            "brigade_users": 8,
        },
        "tickets": {
            "opened": 7,
            "by_status": {"open": 2, "responding": 1, "resolved_refund": 1, "resolved_exchange": 1,
                          "resolved_other": 1, "dismissed": 1},
            // Responses (min): 7, 90, 5, 40 → sorted 5, 7, 40, 90: median the 2nd, p90 the 4th.
            // Breaches: seq 2 (late) and seq 3 (none, due 06:05 < UNTIL).
            "response": {"n": 4, "median_ms": 7 * M, "p90_ms": 90 * M, "breaches": 2},
            // Resolutions (min): 90, 120, 200: median the 2nd, p90 the 3rd.
            // Breaches: seq 6 (late), seq 3 and 4 (none, due before UNTIL).
            "resolution": {"n": 3, "median_ms": 120 * M, "p90_ms": 200 * M, "breaches": 3},
            "response_by_hour": [
                {"hour_ms": H0, "n": 2, "median_ms": 7 * M, "p90_ms": 90 * M},
                {"hour_ms": H0 + H, "n": 1, "median_ms": 5 * M, "p90_ms": 5 * M},
                {"hour_ms": H0 + 2 * H, "n": 1, "median_ms": 40 * M, "p90_ms": 40 * M},
            ],
        },
        // Context groups (zh-purchase, on four complaints, one dismissed) are no rule to fix.
        "rules": [
            {"rule": "zh-diversion-vx-id", "fired": 2, "dismissed": 1, "fp_rate": 0.5},
            {"rule": "zh-insult-trash", "fired": 3, "dismissed": 1, "fp_rate": 0.333},
            // Twice in seq 1's evidence, counted once.
            {"rule": "zh-defect-crack", "fired": 4, "dismissed": 1, "fp_rate": 0.25},
            {"rule": "detector:phone", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
            {"rule": "en-size-small", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
            {"rule": "zh-authenticity-fake", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
            {"rule": "zh-logistics-late", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
            {"rule": "zh-smear-scam", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
        ],
    })
}

/// The same window, room-1 only.
fn expected_room_1() -> Value {
    json!({
        "since_ms": SINCE, "until_ms": UNTIL, "room": "room-1",
        "complaints": {
            "total": 2,
            "by_topic": [{"key": "defect", "n": 1}, {"key": "size_fit", "n": 1}],
            "by_product": [{"key": PRODUCT_QUOTED, "n": 1}, {"key": "silver ring", "n": 1}],
            "by_room": [{"key": "room-1", "n": 2}],
            "by_hour": [
                {"hour_ms": H0 + H, "n": 1, "by_topic": {"defect": 1}},
                {"hour_ms": H0 + 2 * H, "n": 1, "by_topic": {"size_fit": 1}},
            ],
        },
        "attacks": {
            "total": 2,
            "by_topic": [{"key": "diversion", "n": 1}, {"key": "insult", "n": 1}],
            "brigades": 1,
            "brigade_users": 3,
        },
        "tickets": {
            "opened": 2,
            "by_status": {"open": 1, "responding": 0, "resolved_refund": 0, "resolved_exchange": 0,
                          "resolved_other": 1, "dismissed": 0},
            "response": {"n": 1, "median_ms": 40 * M, "p90_ms": 40 * M, "breaches": 1},
            "resolution": {"n": 1, "median_ms": 200 * M, "p90_ms": 200 * M, "breaches": 2},
            "response_by_hour": [{"hour_ms": H0 + 2 * H, "n": 1, "median_ms": 40 * M, "p90_ms": 40 * M}],
        },
        "rules": [
            {"rule": "zh-diversion-vx-id", "fired": 1, "dismissed": 1, "fp_rate": 1.0},
            {"rule": "en-size-small", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
            {"rule": "zh-defect-crack", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
            {"rule": "zh-insult-trash", "fired": 1, "dismissed": 0, "fp_rate": 0.0},
        ],
    })
}

fn stats(db: &Path, since_ms: u64, until_ms: u64, room: Option<&str>) -> Value {
    let conn = liveguard::store::open_reader(db).expect("reader opens");
    let q = StatsQuery {
        since_ms,
        until_ms,
        room: room.map(str::to_string),
    };
    serde_json::to_value(insights::stats(&conn, &q).expect("stats")).expect("serializes")
}

#[test]
fn insights_stats_match_the_hand_computed_numbers() {
    let db = fixture_db();
    assert_eq!(stats(&db, SINCE, UNTIL, None), expected());
    assert_eq!(stats(&db, SINCE, UNTIL, Some("room-1")), expected_room_1());

    // The window's end is exclusive: one ms more takes in seq 9 (an insult, dismissed), and
    // its rule, now tied at 0.5 with more firings, goes first.
    let wider = stats(&db, SINCE, UNTIL + 1, None);
    assert_eq!(wider["attacks"]["total"], 6);
    assert_eq!(
        wider["rules"][0],
        json!({"rule": "zh-insult-trash", "fired": 4, "dismissed": 2, "fp_rate": 0.5})
    );

    // An empty window: zeros, every status key, null percentiles, empty lists.
    let empty = stats(&db, UNTIL + H, UNTIL + 2 * H, None);
    assert_eq!(empty["complaints"]["total"], 0);
    assert_eq!(
        empty["tickets"]["by_status"],
        json!({"open": 0, "responding": 0, "resolved_refund": 0, "resolved_exchange": 0,
               "resolved_other": 0, "dismissed": 0})
    );
    assert_eq!(
        empty["tickets"]["response"],
        json!({"n": 0, "median_ms": null, "p90_ms": null, "breaches": 0})
    );
    assert_eq!(empty["rules"], json!([]));
}

fn report(db: &Path, extra: &[&str]) -> std::process::Output {
    let (since, until) = (SINCE.to_string(), UNTIL.to_string());
    let db = db.to_str().expect("utf-8 path");
    let mut args = vec!["report", "--db", db, "--since", &since, "--until", &until];
    args.extend_from_slice(extra);
    util::run(&util::repo(), &args, "")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn insights_report_binary_prints_json_csv_and_table() {
    let db = fixture_db();

    let json_out = stdout(&report(&db, &["--format", "json"]));
    let v: Value = serde_json::from_str(&json_out).expect("one JSON document");
    assert_eq!(v, expected());
    let room: Value =
        serde_json::from_str(&stdout(&report(&db, &["--format", "json", "--room", "room-1"]))).expect("JSON");
    assert_eq!(room, expected_room_1());

    let csv = stdout(&report(&db, &["--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "section,key,value");
    for want in [
        "complaints,total,7",
        "complaints_by_topic,defect,4",
        "complaints_by_product,jade bangle,4",
        r#"complaints_by_product,"ring ""S"", gold",1"#,
        "complaints_by_room,room-1,2",
        &format!("complaints_by_hour,{H0},2"),
        &format!("complaints_by_hour_topic,{H0}:logistics,1"),
        "attacks,total,5",
        "attacks,brigades,2",
        "attacks,brigade_users,8",
        "attacks_by_topic,diversion,2",
        "tickets,opened,7",
        "tickets_by_status,responding,1",
        "tickets_by_status,dismissed,1",
        "response,n,4",
        "response,median_ms,420000",
        "response,p90_ms,5400000",
        "response,breaches,2",
        "resolution,median_ms,7200000",
        "resolution,p90_ms,12000000",
        "resolution,breaches,3",
        &format!("response_by_hour_median_ms,{},300000", H0 + H),
        "rule_fired,zh-insult-trash,3",
        "rule_dismissed,zh-insult-trash,1",
        "rule_fp_rate,zh-insult-trash,0.333",
        "rule_fp_rate,zh-diversion-vx-id,0.5",
    ] {
        assert!(lines.contains(&want), "no row {want:?} in\n{csv}");
    }
    // One number per row: every row has exactly three fields.
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l.starts_with("complaints_by_product,\"") || l.split(',').count() == 3),
        "{csv}"
    );

    let table = stdout(&report(&db, &["--format", "table"]));
    for want in [
        "2025-11-25 04:00",
        "defect",
        "logistics",
        "diversion",
        "jade bangle",
        "420000 ms (7m)",
        "5400000 ms (1h 30m)",
        "12000000 ms (3h 20m)",
        "zh-insult-trash",
        "0.333",
        "resolved_exchange",
    ] {
        assert!(table.contains(want), "no {want:?} in\n{table}");
    }

    // The path comes from the config's [store] when there is no --db.
    let cfg = db.with_file_name("liveguard.toml");
    std::fs::write(&cfg, format!("[store]\npath = {:?}\n", db.display().to_string())).expect("write config");
    let (since, until) = (SINCE.to_string(), UNTIL.to_string());
    let cfg_arg = cfg.to_str().expect("utf-8 path");
    let out = util::run(
        &util::repo(),
        &[
            "report", "--config", cfg_arg, "--since", &since, "--until", &until, "--format", "json",
        ],
        "",
    );
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).expect("JSON"),
        expected()
    );
}

#[test]
fn insights_report_missing_db_and_bad_since_exit_2() {
    let missing = util::state_dir().join("nowhere").join("liveguard.db");
    let out = util::run(
        &util::repo(),
        &["report", "--db", missing.to_str().expect("utf-8 path")],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(!missing.exists(), "a report never creates the database");

    let db = fixture_db();
    let out = util::run(
        &util::repo(),
        &[
            "report",
            "--db",
            db.to_str().expect("utf-8 path"),
            "--since",
            "bogus",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("since"), "{out:?}");
}

/// Right after `liveguard demo`, `report` used to read `liveguard.db` (missing, or someone
/// else's); `--demo` reads the demo's database, and without it the error points there. An
/// empty or inverted window is refused rather than reported as all zeros.
#[test]
fn report_finds_the_demo_database_and_refuses_an_empty_window() {
    let state = util::state_dir();
    fixture_db_at(state.join("demo.db"));
    let report_in = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
            .args(args)
            .env("LIVEGUARD_STATE_DIR", &state)
            .output()
            .expect("liveguard report runs")
    };
    let (since, until) = (SINCE.to_string(), UNTIL.to_string());
    let out = report_in(&[
        "report", "--demo", "--since", &since, "--until", &until, "--format", "json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).expect("JSON"),
        expected()
    );
    let out = report_in(&["report"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--demo") && err.contains("demo.db"), "{err}");

    let out = report_in(&["report", "--demo", "--since", "1h", "--until", "2h"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty window"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_api_stats_on_a_running_daemon() {
    let db = fixture_db();
    let cfg = Config {
        listen: "127.0.0.1:0".into(),
        rules: Some(util::repo().join("rules")),
        store: StoreConfig {
            path: Some(db),
            // The fixture is a year old: keep the writer from pruning it.
            retention_days: 0,
            ..StoreConfig::default()
        },
        sources: vec![SourceConfig::new("ws://127.0.0.1:9/", Format::Canonical)],
        ..Config::default()
    };
    let daemon = liveguard::daemon::start(cfg).await.expect("daemon starts");

    let (code, body) =
        util::live::get_status(daemon.addr, &format!("/api/stats?since={SINCE}&until={UNTIL}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), expected());

    let (code, body) = util::live::get_status(
        daemon.addr,
        &format!("/api/stats?since={SINCE}&until={UNTIL}&room=room-1"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON"),
        expected_room_1()
    );

    // Defaults: the last 7 days up to now, which hold none of the year-old fixture.
    let (code, body) = util::live::get_status(daemon.addr, "/api/stats").await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let span = v["until_ms"].as_u64().unwrap() - v["since_ms"].as_u64().unwrap();
    assert_eq!(span, 7 * 24 * H);
    assert_eq!(v["complaints"]["total"], 0);

    for bad in ["/api/stats?since=bogus", "/api/stats?since=1d&until=soon"] {
        let (code, body) = util::live::get_status(daemon.addr, bad).await;
        assert_eq!(code, 400, "{bad}: {body}");
        let v: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("bogus") || e.contains("soon")),
            "{v}"
        );
    }

    daemon.stop(Duration::from_secs(5)).await;
}
