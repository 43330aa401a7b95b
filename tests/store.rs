//! The alert store: alerts and their announced updates survive `kill -9` of the real binary,
//! a console that was away catches up exactly, ticket deadlines remind (on an injected clock)
//! across a restart, and a bad database is a clear start-up error.

use std::collections::BTreeMap;
use std::time::Duration;

use liveguard::clock::ManualClock;
use liveguard::config::Config;
use liveguard::ingest::Format;
use serde_json::Value;

use crate::util::live::{canonical, fold, get, post, test_signals, Firehose, Subscriber};
use crate::util::{repo, spawn_daemon, state_dir};

const COMPLAINT: &str = "收到的手镯有裂纹，要退货";
const ATTACK: &str = "你们就是骗子";

/// What must not change about an alert between its announcement and a later read.
fn identity(a: &Value) -> (u64, String, String, String, String) {
    (
        a["seq"].as_u64().expect("seq"),
        a["room"].as_str().unwrap_or("").into(),
        a["user"]["id"].as_str().unwrap_or("").into(),
        a["text"].as_str().unwrap_or("").into(),
        a["msg_ids"][0].as_str().unwrap_or("").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_announced_alert_and_numbering_continues() {
    let crate::util::Spawned {
        state,
        fh,
        mut child,
        mut sub,
        ..
    } = crate::util::spawned().await;
    // Alerts keep coming while the process is killed: every user distinct, so each is new.
    let frames = (0..4_000).map(|i| {
        let text = if i % 2 == 0 { COMPLAINT } else { ATTACK };
        canonical(&format!("r{}", i % 3), &format!("k{i}"), &format!("u{i}"), text)
    });
    let sender = fh.send_paced(frames, Duration::from_micros(300));
    let announced = async {
        let mut seen = Vec::new();
        while seen.len() < 300 {
            seen.push(sub.next_alert().await);
        }
        // Mid-stream: no shutdown path runs.
        child.kill().expect("kill -9");
        let _ = child.wait();
        seen
    };
    let (_, announced) = tokio::join!(sender, announced);
    assert!(announced.len() >= 300);

    let mut fh2 = Firehose::start("127.0.0.1:0").await;
    let (mut child, addr) = spawn_daemon(&fh2.url(), &state);
    fh2.connected().await;
    let stored: Vec<Value> =
        serde_json::from_str(&get(addr, "/api/alerts?since=0&limit=10000").await).expect("JSON array");
    let stored: BTreeMap<u64, Value> = stored
        .into_iter()
        .map(|a| (a["seq"].as_u64().unwrap_or(0), a))
        .collect();
    for a in &announced {
        let seq = a["seq"].as_u64().expect("seq");
        let s = stored
            .get(&seq)
            .unwrap_or_else(|| panic!("announced alert {seq} lost in the crash"));
        assert_eq!(identity(s), identity(a));
    }
    let top = announced
        .iter()
        .filter_map(|a| a["seq"].as_u64())
        .max()
        .unwrap_or(0);
    let mut sub = Subscriber::connect(addr, "").await;
    fh2.send(canonical("r9", "after", "late", COMPLAINT));
    let next = sub.next_alert().await;
    assert!(
        next["seq"].as_u64().expect("seq") > top,
        "numbering continues after {top}: {next}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A buyer repeating her complaint: the alert's count grows in updates (written at their
/// 250 ms slot, with the message). `kill -9` mid-stream loses none of what was announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_announced_update() {
    let crate::util::Spawned {
        state,
        fh,
        mut child,
        mut sub,
        ..
    } = crate::util::spawned().await;
    let frames = (0..3_000).map(|i| canonical("r1", &format!("rep{i}"), "buyer", COMPLAINT));
    let sender = fh.send_paced(frames, Duration::from_micros(500));
    let announced = async {
        // The alert's newest version and count as announced.
        let (mut seq, mut version, mut count, mut updates) = (0, 0, 0, 0);
        while updates < 6 {
            let Some(raw) = sub.try_next_raw(Duration::from_secs(10)).await else {
                break;
            };
            let m: Value = serde_json::from_str(&raw).expect("JSON");
            if m["type"] == "alert" || m["type"] == "update" {
                seq = m["seq"].as_u64().unwrap_or(seq);
                version = version.max(m["version"].as_u64().unwrap_or(0));
                count = count.max(m["count"].as_u64().unwrap_or(0));
                updates += u32::from(m["type"] == "update");
            }
        }
        // Mid-stream: no shutdown path runs.
        child.kill().expect("kill -9");
        let _ = child.wait();
        (seq, version, count)
    };
    let (_, (seq, version, count)) = tokio::join!(sender, announced);
    assert!(
        seq > 0 && count > 1,
        "updates announced: seq {seq}, count {count}"
    );

    let fh2 = Firehose::start("127.0.0.1:0").await;
    let (_child, addr) = spawn_daemon(&fh2.url(), &state);
    let stored: Vec<Value> =
        serde_json::from_str(&get(addr, &format!("/api/alerts?since={}&limit=1", seq - 1)).await)
            .expect("JSON array");
    let a = stored.first().expect("the alert is stored");
    assert_eq!(a["seq"].as_u64(), Some(seq));
    assert!(
        a["version"].as_u64().unwrap_or(0) >= version && a["count"].as_u64().unwrap_or(0) >= count,
        "announced version {version} (count {count}), stored {} (count {})",
        a["version"],
        a["count"]
    );
    eprintln!(
        "kill -9 after version {version} (count {count}) announced: stored {} (count {})",
        a["version"], a["count"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_away_for_a_while_catches_up_exactly() {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d = crate::util::live::daemon(&fh.url(), Format::Canonical, test_signals()).await;
    fh.connected().await;
    let mut always = Subscriber::connect(d.addr, "since=0").await;
    let mut away = Subscriber::connect(d.addr, "since=0").await;
    // Complaints from distinct buyers: one alert each (the same attack from many users would
    // be one brigade alert).
    let alert = |i: u32| canonical("r1", &format!("m{i}"), &format!("u{i}"), COMPLAINT);
    for i in 0..20 {
        fh.send(alert(i));
    }
    let mut got: Vec<u64> = Vec::new();
    for _ in 0..20 {
        got.push(away.next_alert().await["seq"].as_u64().expect("seq"));
    }
    drop(away);
    // While it is away: more than one replay page, and updates to alerts it already has.
    for i in 20..1_250 {
        fh.send(alert(i));
    }
    fh.send(canonical("r1", "again", "u0", COMPLAINT));
    let mut all: Vec<u64> = Vec::new();
    let mut latest: std::collections::HashMap<u64, Value> = Default::default();
    while all.len() < 1_250 || latest.get(&all[0]).is_none_or(|a| a["count"] != 2) {
        let m = always.next_msg().await;
        let seq = m["seq"].as_u64().unwrap_or(0);
        if m["type"] == "alert" {
            all.push(seq);
        }
        if m["type"] == "alert" || m["type"] == "update" {
            fold(&mut latest, &m);
        }
    }
    let last = *got.last().expect("some");
    let mut back = Subscriber::connect(d.addr, &format!("since={last}")).await;
    let mut replayed = BTreeMap::new();
    while got.len() < all.len() {
        let a = back.next_alert().await;
        let seq = a["seq"].as_u64().expect("seq");
        got.push(seq);
        replayed.insert(seq, a);
    }
    assert_eq!(got, all, "every alert once, in order, nothing missing");
    assert!(
        back.try_next(Duration::from_millis(300)).await.is_none(),
        "no repeats after"
    );
    // What a live client folded from the alert and its updates is what the store replays.
    for (seq, a) in &replayed {
        assert_eq!(a, &latest[seq]);
    }
    // The API reads the same store: the first alert shows its repeat.
    let first: Vec<Value> =
        serde_json::from_str(&get(d.addr, "/api/alerts?since=0&limit=1").await).expect("JSON");
    assert_eq!(first[0]["count"], 2);
    d.stop(Duration::from_secs(5)).await;
}

fn clock_config(url: &str, store: &liveguard::store::StoreConfig) -> Config {
    Config {
        store: store.clone(),
        ..crate::util::live::test_config(url, Format::Canonical, test_signals())
    }
}

/// The next reminder message (skipping alerts and updates).
async fn next_reminder(sub: &mut Subscriber) -> Value {
    loop {
        let m = sub.next_msg().await;
        if m["type"] == "reminder" {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_deadlines_remind_record_breaches_and_survive_a_restart() {
    const H: u64 = 3_600_000;
    let store = crate::util::store();
    let t0 = liveguard::clock::now_ms();
    let clock = ManualClock::at(t0);
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d = liveguard::daemon::start_with_clock(clock_config(&fh.url(), &store), clock.clone())
        .await
        .expect("starts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    fh.send(canonical("shop", "c1", "amy", COMPLAINT));
    let a = sub.next_alert().await;
    let seq = a["seq"].as_u64().expect("seq");
    assert_eq!(a["ticket"]["status"], "open");
    assert_eq!(a["ticket"]["respond_by_ms"].as_u64(), Some(t0 + 2 * H));
    assert_eq!(a["ticket"]["resolve_by_ms"].as_u64(), Some(t0 + 24 * H));
    // Her later comments in the room go on the ticket.
    fh.send(canonical("shop", "c2", "amy", "好的，我等客服回复"));
    let u = sub.next_msg().await;
    assert_eq!(
        (u["type"].as_str(), u["seq"].as_u64()),
        (Some("update"), Some(seq))
    );
    assert_eq!(u["ticket"]["followups"][0]["text"], "好的，我等客服回复");
    assert!(
        sub.try_next(Duration::from_millis(300)).await.is_none(),
        "nothing due yet"
    );

    clock.advance(H + 31 * 60_000);
    let r = next_reminder(&mut sub).await;
    assert_eq!(
        (r["seq"].as_u64(), r["due"].as_str(), r["stage"].as_str()),
        (Some(seq), Some("response"), Some("nearing"))
    );
    clock.set(t0 + 2 * H + 1_000);
    let r = next_reminder(&mut sub).await;
    assert_eq!(
        (r["due"].as_str(), r["stage"].as_str()),
        (Some("response"), Some("overdue"))
    );
    assert_eq!(r["user"], "amy");
    assert!(
        sub.try_next(Duration::from_millis(300)).await.is_none(),
        "each reminder once"
    );
    d.stop(Duration::from_secs(5)).await;

    // Restarted 17 h in, then 20 h: the response breach is not told again; the resolution
    // nears (6 h before its deadline). The clock moves only once the subscriber listens, so a
    // reminder cannot go out before it does.
    clock.set(t0 + 17 * H);
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d = liveguard::daemon::start_with_clock(clock_config(&fh.url(), &store), clock.clone())
        .await
        .expect("restarts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    clock.set(t0 + 20 * H);
    let r = next_reminder(&mut sub).await;
    assert_eq!(
        (r["due"].as_str(), r["stage"].as_str()),
        (Some("resolution"), Some("nearing"))
    );
    let (status, body) = post(
        d.addr,
        &format!("/api/alerts/{seq}/actions"),
        r#"{"action":"resolve","choice":"exchange","by":"fm1"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    clock.set(t0 + 30 * H);
    while let Some(m) = sub.try_next(Duration::from_millis(400)).await {
        assert_ne!(m["type"], "reminder", "a resolved ticket is not chased: {m}");
    }
    d.stop(Duration::from_secs(5)).await;

    let path = store.path.expect("path");
    let db = rusqlite::Connection::open(&path).expect("open");
    let reminders: Vec<(String, String)> = db
        .prepare("SELECT due, stage FROM reminders WHERE seq = ?1 ORDER BY at_ms")
        .expect("prepare")
        .query_map([seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let want = [
        ("response", "nearing"),
        ("response", "overdue"),
        ("resolution", "nearing"),
    ];
    assert_eq!(reminders, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let (status, responded, resolved): (String, Option<i64>, Option<i64>) = db
        .query_row(
            "SELECT status, responded_ms, resolved_ms FROM tickets WHERE seq = ?1",
            [seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("ticket row");
    assert_eq!(status, "resolved_exchange");
    assert_eq!(
        (responded, resolved),
        (Some((t0 + 20 * H) as i64), Some((t0 + 20 * H) as i64))
    );
    let action: (String, String, Option<String>) = db
        .query_row(
            "SELECT action, by, choice FROM actions WHERE seq = ?1",
            [seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("action row");
    assert_eq!(action, ("resolve".into(), "fm1".into(), Some("exchange".into())));
    let followups: i64 = db
        .query_row(
            "SELECT count(*) FROM followups WHERE seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(followups, 1);
}

/// `GET /api/tickets` as a page of the worklist and its counts.
async fn worklist(addr: std::net::SocketAddr, query: &str) -> Value {
    let (code, body) = crate::util::live::get_status(addr, &format!("/api/tickets?{query}")).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn users(w: &Value) -> Vec<String> {
    w["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["user"]["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The worklist comes from the store: every active ticket, nearest running deadline first,
/// paged, with counts (open, responding, overdue on the daemon's clock) that match the
/// database, and filters by status, room and overdue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worklist_lists_active_tickets_by_nearest_deadline_with_counts() {
    const MIN: u64 = 60_000;
    const H: u64 = 60 * MIN;
    let t0 = liveguard::clock::now_ms();
    let clock = ManualClock::at(t0);
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d =
        liveguard::daemon::start_with_clock(clock_config(&fh.url(), &crate::util::store()), clock.clone())
            .await
            .expect("starts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    let mut seqs = Vec::new();
    for (i, (room, user)) in [
        ("shop", "amy"),
        ("shop", "bob"),
        ("live-2", "cat"),
        ("shop", "dan"),
    ]
    .iter()
    .enumerate()
    {
        fh.send(canonical(room, &format!("w{i}"), user, COMPLAINT));
        seqs.push(sub.next_alert().await["seq"].clone());
        clock.advance(MIN);
    }
    fh.send(canonical("shop", "w9", "troll", "你们就是骗子"));
    sub.next_alert().await;
    // bob is answered (his promise is now the 24 h resolution); dan's complaint is dismissed.
    for (seq, action) in [(&seqs[1], "invite"), (&seqs[3], "dismiss")] {
        let (code, body) = post(
            d.addr,
            &format!("/api/alerts/{seq}/actions"),
            &format!(r#"{{"action":"{action}"}}"#),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    let w = worklist(d.addr, "").await;
    assert_eq!(users(&w), ["amy", "cat", "bob"], "nearest deadline first");
    assert_eq!(
        (
            w["total"].as_u64(),
            w["open"].as_u64(),
            w["responding"].as_u64(),
            w["overdue"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(0))
    );
    assert_eq!(
        users(&worklist(d.addr, "limit=1&offset=1").await),
        ["cat"],
        "paged"
    );
    assert_eq!(users(&worklist(d.addr, "status=responding").await), ["bob"]);
    assert_eq!(users(&worklist(d.addr, "status=dismissed").await), ["dan"]);
    let room = worklist(d.addr, "room=shop").await;
    assert_eq!(
        (users(&room), room["open"].as_u64()),
        (vec!["amy".to_string(), "bob".to_string()], Some(1))
    );

    // Two hours after amy's complaint (not yet cat's): one overdue.
    clock.set(t0 + 2 * H + 30_000);
    let w = worklist(d.addr, "").await;
    assert_eq!(w["overdue"], 1);
    let late = worklist(d.addr, "overdue=1").await;
    assert_eq!(
        (users(&late), late["total"].as_u64()),
        (vec!["amy".to_string()], Some(1))
    );

    // The counts are the database's.
    let db = rusqlite::Connection::open(d.hub.path()).expect("open");
    let active: i64 = db
        .query_row(
            "SELECT count(*) FROM tickets WHERE status IN ('open', 'responding')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(w["total"].as_i64(), Some(active));
    let (code, body) = crate::util::live::get_status(d.addr, "/api/tickets?status=lost").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown status"), "{body}");
    d.stop(Duration::from_secs(5)).await;
}

#[test]
fn a_corrupt_unwritable_or_newer_database_is_a_clear_start_up_error() {
    let run = |state: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
            .args([
                "run",
                "--source",
                "ws://127.0.0.1:9/",
                "--listen",
                "127.0.0.1:0",
                "--rules",
            ])
            .arg(repo().join("rules"))
            .env("LIVEGUARD_STATE_DIR", state)
            .output()
            .expect("runs")
    };
    let check = |out: std::process::Output, want: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let corrupt = state_dir();
    std::fs::write(
        corrupt.join("liveguard.db"),
        "this is not a database, it is a shopping list\n".repeat(200),
    )
    .expect("write");
    check(run(&corrupt), "is corrupt or not a liveguard database");

    // A state "directory" under a regular file cannot be created, even as root.
    let blocked = state_dir().join("a-file");
    std::fs::write(&blocked, "x").expect("write");
    let out = run(&blocked.join("state"));
    check(out, "cannot open the state database");

    let newer = state_dir();
    let db = rusqlite::Connection::open(newer.join("liveguard.db")).expect("create");
    db.pragma_update(None, "user_version", 99).expect("set version");
    drop(db);
    check(run(&newer), "schema version 99, newer than this liveguard knows");
}
