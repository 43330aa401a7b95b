//! The daemon over real sockets on 127.0.0.1: a fake firehose upstream, a real subscriber
//! downstream. Every wait is bounded; nothing sleeps to let something happen.

use std::time::Duration;

use liveguard::history::SignalConfig;
use liveguard::ingest::Format;

use crate::util::live::{
    canonical, daemon, fold, get, metric, test_signals, wait_metric, watched, Firehose, Subscriber,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_and_attacks_reach_the_subscriber_neutrals_do_not() {
    let (fh, d) = watched().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    fh.send(canonical("r1", "m1", "amy", "主播晚上好"));
    fh.send(canonical("r1", "m2", "bob", "上次买的手链戴了两天就断了"));
    fh.send(canonical("r1", "m3", "cat", "wow so pretty"));
    fh.send(canonical("r1", "m4", "dan", "加我vx便宜一半"));
    fh.send(canonical(
        "r2",
        "m5",
        "eve",
        "the ring I got last week is cracked",
    ));
    // Rooms are processed in parallel: order is kept within a room, not across rooms.
    let mut by_user = std::collections::HashMap::new();
    for _ in 0..3 {
        let a = sub.next_alert().await;
        by_user.insert(a["user"]["id"].as_str().expect("user").to_string(), a);
    }
    let (a, b, c) = (&by_user["bob"], &by_user["dan"], &by_user["eve"]);
    assert_eq!(
        (a["class"].as_str(), a["topic"].as_str()),
        (Some("complaint"), Some("defect"))
    );
    assert_eq!(a["action"], "invite_costream");
    assert!(a["script"].as_str().is_some_and(|s| s.contains("bob")), "{a}");
    assert_eq!(
        (b["class"].as_str(), b["topic"].as_str()),
        (Some("attack"), Some("diversion"))
    );
    assert_eq!(
        (c["room"].as_str(), c["topic"].as_str()),
        (Some("r2"), Some("defect"))
    );
    assert!(
        b["seq"].as_u64() > a["seq"].as_u64(),
        "order within room r1 is kept"
    );
    assert_eq!(
        sub.try_next(Duration::from_millis(300)).await,
        None,
        "neutral comments raise nothing"
    );
    wait_metric(d.addr, "liveguard_comments_total{room=\"r1\"", 4.0).await;
    assert_eq!(
        metric(d.addr, "liveguard_verdicts_total{class=\"neutral\"").await,
        2.0
    );
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiktok_relay_shapes_are_ingested() {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d = daemon(&fh.url(), Format::Tiktok, test_signals()).await;
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    // Legacy flat shape: no room, so the source's room.
    fh.send(r#"{"comment":"你们就是骗子","userId":"6501","uniqueId":"troll","nickname":"T","msgId":"71","createTime":"0"}"#);
    // Nested shape in a bundle, from a moderator: exempt.
    fh.send(r#"{"timestamp":1,"messages":[{"type":"chat","data":{"common":{"msgId":"72","roomId":"live-9"},"user":{"userId":"6502","uniqueId":"mod"},"comment":"你们就是骗子","userIdentity":{"isModeratorOfAnchor":true}}}]}"#);
    fh.send(r#"{"common":{"msgId":"73","roomId":"live-9"},"user":{"userId":"6503","uniqueId":"buyer","nickname":"Bea"},"comment":"收到的项链颜色和直播完全不一样"}"#);
    let mut by_room = std::collections::HashMap::new();
    for _ in 0..2 {
        let a = sub.next_alert().await;
        by_room.insert(a["room"].as_str().expect("room").to_string(), a);
    }
    let (a, b) = (&by_room["flat-room"], &by_room["live-9"]);
    assert_eq!(
        (a["topic"].as_str(), a["user"]["handle"].as_str()),
        (Some("smear"), Some("troll")),
        "flat: the source's room"
    );
    assert_eq!(
        (b["topic"].as_str(), b["user"]["name"].as_str()),
        (Some("not_as_shown"), Some("Bea"))
    );
    assert_eq!(
        metric(d.addr, "liveguard_exempt_total").await,
        1.0,
        "the moderator is exempt"
    );
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brigade_becomes_one_alert_with_the_users_listed() {
    let (fh, d) = watched().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    for (i, u) in ["b1", "b2", "b3", "b4", "b5"].iter().enumerate() {
        // Near-identical: punctuation and handle digits differ.
        fh.send(canonical(
            "r1",
            &format!("bm{i}"),
            u,
            &format!("骗子直播间{i}！！大家快跑"),
        ));
    }
    fh.send(canonical("r1", "after", "zed", "垃圾主播滚"));
    let first = sub.next_msg().await;
    assert_eq!(first["type"], "alert");
    let seq = first["seq"].clone();
    let mut held = std::collections::HashMap::new();
    let mut last_update = fold(&mut held, &first);
    // Updates to one alert are coalesced (a few a second): the latest may come after the
    // unrelated alert.
    let mut other = false;
    while !other || last_update["count"] != 5 {
        let m = sub.next_msg().await;
        if m["type"] == "update" {
            assert_eq!(m["seq"], seq, "updates go to the same alert");
            assert!(m.get("text").is_none(), "an update carries what changed: {m}");
            last_update = fold(&mut held, &m);
        } else {
            assert!(!other, "one other alert only: {m}");
            assert_eq!(
                m["user"]["id"], "zed",
                "the only other alert is the unrelated one"
            );
            other = true;
        }
    }
    assert_eq!(last_update["kind"], "brigade");
    assert_eq!(last_update["count"], 5);
    assert_eq!(
        last_update["users"],
        serde_json::json!(["b1", "b2", "b3", "b4", "b5"])
    );
    let alerts: serde_json::Value =
        serde_json::from_str(&get(d.addr, "/api/alerts?room=r1").await).expect("json");
    assert_eq!(alerts.as_array().map(Vec::len), Some(2), "{alerts}");
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_restart_reconnects_without_duplicate_alerts() {
    let (fh, d) = watched().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    fh.send(canonical("r1", "k1", "amy", "上次买的宝石有裂"));
    assert_eq!(sub.next_alert().await["msg_ids"][0], "k1");
    let addr = fh.kill();
    let mut fh = Firehose::start(&addr.to_string()).await;
    fh.connected().await;
    // The relay resends its backlog after the reconnect: the same msg_id must not alert again.
    fh.send(canonical("r1", "k1", "amy", "上次买的宝石有裂"));
    fh.send(canonical("r1", "k2", "bob", "你们就是骗子"));
    let next = sub.next_alert().await;
    assert_eq!(next["msg_ids"][0], "k2", "{next}");
    assert!(metric(d.addr, "liveguard_reconnects_total").await >= 1.0);
    assert_eq!(metric(d.addr, "liveguard_duplicates_total").await, 1.0);
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_counted_and_the_daemon_keeps_going() {
    let (fh, d) = watched().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    fh.send("this is not json {");
    fh.send(r#"{"type":"someone.elses.v3","x":1}"#);
    fh.send(format!(
        r#"{{"type":"liveguard.comment.v1","text":"{}"}}"#,
        "x".repeat(100_000)
    ));
    fh.send(r#"{"type":"liveguard.comment.v1","room":{"id":"r"}}"#);
    fh.send_binary(vec![0, 159, 146, 150]);
    fh.send(canonical("r1", "ok", "amy", "你们就是骗子"));
    assert_eq!(
        sub.next_alert().await["msg_ids"][0],
        "ok",
        "the connection stayed up"
    );
    wait_metric(d.addr, "liveguard_parse_errors_total", 5.0).await;
    for reason in ["not_json", "unknown_shape", "oversized", "binary"] {
        let v = metric(
            d.addr,
            &format!(
                "liveguard_parse_errors_total{{source=\"{}\",reason=\"{reason}\"}}",
                fh.url()
            ),
        )
        .await;
        assert!(v >= 1.0, "{reason}: {v}");
    }
    assert_eq!(metric(d.addr, "liveguard_reconnects_total").await, 0.0);
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_replays_exactly_the_missed_alerts() {
    let (fh, d) = watched().await;
    let mut first = Subscriber::connect(d.addr, "").await;
    let texts = [
        "上次买的宝石有裂",
        "你们就是骗子",
        "my order still hasn't arrived after 2 weeks",
        "加我vx便宜一半",
    ];
    for (i, t) in texts.iter().enumerate() {
        fh.send(canonical(
            if i % 2 == 0 { "r1" } else { "r2" },
            &format!("s{i}"),
            &format!("u{i}"),
            t,
        ));
    }
    let (seqs, r2): (Vec<u64>, Vec<u64>) = {
        let (mut all, mut r2) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            let a = first.next_alert().await;
            let seq = a["seq"].as_u64().expect("seq");
            all.push(seq);
            if a["room"] == "r2" {
                r2.push(seq);
            }
        }
        (all, r2)
    };
    // A console that saw only the first alert comes back with since = that seq.
    let mut late = Subscriber::connect(d.addr, &format!("since={}", seqs[0])).await;
    let replayed: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(late.next_alert().await["seq"].as_u64().expect("seq"));
        }
        v
    };
    assert_eq!(replayed, seqs[1..]);
    assert_eq!(
        late.try_next(Duration::from_millis(200)).await,
        None,
        "nothing twice"
    );
    let mut room = Subscriber::connect(d.addr, "since=0&room=r2").await;
    assert_eq!(room.next_alert().await["seq"].as_u64(), Some(r2[0]));
    assert_eq!(room.next_alert().await["seq"].as_u64(), Some(r2[1]));
    // Live alerts continue after the replay without a gap.
    fh.send(canonical("r2", "s9", "u9", "垃圾主播滚"));
    assert_eq!(room.next_alert().await["msg_ids"][0], "s9");
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_stall_ingest() {
    let (fh, d) = watched().await;
    // A raw client that upgrades and then never reads a byte.
    let stuck = {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(d.addr).await.expect("connect");
        let req = "GET /ws/alerts HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        s.write_all(req.as_bytes()).await.expect("upgrade");
        s
    };
    let mut live = Subscriber::connect(d.addr, "").await;
    // Long attack texts, so the stuck socket's buffers fill quickly.
    let n: u32 = 3000;
    for i in 0..n {
        // Distinct texts (a letter code per comment), so no two cluster into one alert.
        let code: String = [i % 26, i / 26 % 26, i / 676]
            .iter()
            .map(|&d| char::from(b'a' + d as u8))
            .collect();
        let text = format!("加我vx便宜一半 {code} {}", "很".repeat(600));
        fh.send(canonical(
            &format!("room{}", i % 50),
            &format!("f{i}"),
            &format!("user{i}"),
            &text,
        ));
    }
    // The reading subscriber sees them all: ingest was not held up by the stuck one.
    wait_metric(d.addr, "liveguard_alerts_total", f64::from(n)).await;
    let mut got = 0;
    while got < 100 {
        let m = live.next_msg().await;
        if m["type"] == "alert" || m["type"] == "update" {
            got += 1;
        }
    }
    // The stuck one was told it lagged or cut off: its backlog is bounded, not buffered forever.
    let deadline = tokio::time::Instant::now() + crate::util::live::WAIT;
    loop {
        let missed = metric(d.addr, "liveguard_subscriber_missed_total").await;
        let dropped = metric(d.addr, "liveguard_subscriber_dropped_total").await;
        if missed > 0.0 || dropped > 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck subscriber was neither lagged nor dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stuck);
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_retract_and_backlog_is_flagged() {
    let (fh, d) = watched().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    let old = serde_json::json!({"type":"liveguard.comment.v1","platform":"t","room":{"id":"r1"},"msg_id":"old1",
        "ts_ms": liveguard::clock::now_ms() - 3_600_000, "user":{"id":"u0"},"text":"你们就是骗子"});
    fh.send(old.to_string());
    let a = sub.next_alert().await;
    assert_eq!(
        a["backlog"], true,
        "a comment from before the connection is backlog"
    );
    fh.send(canonical("r1", "d1", "u1", "加我vx便宜一半"));
    let b = sub.next_alert().await;
    assert_eq!(b["backlog"], false);
    fh.send(r#"{"type":"liveguard.delete.v1","room":{"id":"r1"},"msg_ids":["d1"]}"#);
    let u = sub.next_msg().await;
    assert_eq!(
        (u["type"].as_str(), u["seq"].clone(), u["retracted"].as_bool()),
        (Some("update"), b["seq"].clone(), Some(true))
    );
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_words_repeats_and_silence() {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let signals = SignalConfig {
        silence_after_ms: 300,
        ..SignalConfig::default()
    };
    let d = daemon(&fh.url(), Format::Canonical, signals).await;
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    fh.send(canonical("r1", "p1", "sly", "骗"));
    fh.send(canonical("r1", "p2", "sly", "子"));
    let a = sub.next_alert().await;
    assert_eq!(
        (a["kind"].as_str(), a["text"].as_str(), a["topic"].as_str()),
        (Some("split"), Some("骗子"), Some("smear"))
    );
    for i in 0..3 {
        fh.send(canonical("r1", &format!("rep{i}"), "spammy", "主播看我这里"));
    }
    let r = sub.next_alert().await;
    assert_eq!(
        (r["kind"].as_str(), r["topic"].as_str()),
        (Some("repetition"), Some("spam"))
    );
    // Same user and topic again: the open alert's count goes up, no new alert.
    fh.send(canonical("r1", "p3", "sly", "你们是骗子"));
    let u = sub.next_msg().await;
    assert_eq!(
        (u["type"].as_str(), u["seq"].clone(), u["count"].as_u64()),
        (Some("update"), a["seq"].clone(), Some(2))
    );
    // Only what changed, named by the version it brings the alert to.
    assert_eq!((a["version"].as_u64(), u["version"].as_u64()), (Some(1), Some(2)));
    let mut fields: Vec<&str> = u
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "count",
            "msg_ids",
            "msg_ids_total",
            "seq",
            "type",
            "updated_ms",
            "version"
        ],
        "{u}"
    );
    // Then the room goes quiet: an ops alert says the watcher may be blind.
    let ops = sub.next_alert().await;
    assert_eq!(
        (ops["kind"].as_str(), ops["room"].as_str()),
        (Some("ops"), Some("r1"))
    );
    d.stop(Duration::from_secs(5)).await;
}

/// Polls `/healthz` until `ok` accepts (status, body), bounded by WAIT.
async fn health_until(
    addr: std::net::SocketAddr,
    ok: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + crate::util::live::WAIT;
    loop {
        let (code, body) = crate::util::live::get_status(addr, "/healthz").await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
        if ok(code, &v) {
            return (code, v);
        }
        assert!(tokio::time::Instant::now() < deadline, "health stayed {code} {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Loud when blind: a source refusing connections, then connected but silent, turns
/// `/healthz` 503 with the source and since when, raises an ops alert and a metric, once it
/// has lasted `source_down_ms`; all of it clears when the source sends again. A store that
/// cannot commit is a reason too. (A dead firehose used to look healthy.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_source_or_a_failing_store_turns_healthz_503_until_it_recovers() {
    const DOWN_MS: u64 = 1_000;
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let mut cfg = crate::util::live::test_config(&fh.url(), Format::Canonical, test_signals());
    cfg.source_down_ms = DOWN_MS;
    let source = fh.url();
    let d = liveguard::daemon::start(cfg).await.expect("daemon starts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    fh.send(canonical("r1", "h1", "amy", "你们就是骗子"));
    sub.next_alert().await;
    let (code, v) = crate::util::live::get_status(d.addr, "/healthz").await;
    assert_eq!(code, 200, "{v}");

    // Down: the firehose dies and refuses reconnects.
    let killed = std::time::Instant::now();
    let addr = fh.kill();
    let (_, v) = health_until(d.addr, |code, _| code == 503).await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(DOWN_MS - 100),
        "degraded after {took:?}, before source_down_ms"
    );
    assert_eq!(v["status"], "degraded");
    let reason = &v["reasons"][0];
    assert_eq!(
        (reason["source"].as_str(), reason["state"].as_str()),
        (Some(source.as_str()), Some("disconnected")),
        "{v}"
    );
    assert!(reason["since_ms"].as_u64().is_some_and(|s| s > 0), "{v}");
    let ops = sub.next_alert().await;
    assert_eq!(ops["kind"], "ops");
    assert!(
        ops["text"]
            .as_str()
            .is_some_and(|t| t.contains(&source) && t.contains("disconnected")),
        "{ops}"
    );
    assert_eq!(metric(d.addr, "liveguard_source_down{").await, 1.0);
    assert!(metric(d.addr, "liveguard_source_down_since_seconds{").await > 1e9);
    assert_eq!(metric(d.addr, "liveguard_degraded ").await, 1.0);
    eprintln!("healthz 503 {took:?} after the firehose died (source_down_ms {DOWN_MS})");

    // Back: it reconnects; health clears and an ops alert says so.
    let mut fh = Firehose::start(&addr.to_string()).await;
    fh.connected().await;
    fh.send(canonical("r1", "h2", "bob", "hello"));
    health_until(d.addr, |code, _| code == 200).await;
    let back = sub.next_alert().await;
    assert!(
        back["text"].as_str().is_some_and(|t| t.contains("is back")),
        "{back}"
    );
    assert_eq!(metric(d.addr, "liveguard_source_down{").await, 0.0);

    // Connected but silent is blind too; a frame clears it.
    let (_, v) = health_until(d.addr, |code, _| code == 503).await;
    assert_eq!(v["reasons"][0]["state"], "silent", "{v}");
    fh.send(canonical("r1", "h3", "bob", "hello again"));
    health_until(d.addr, |code, _| code == 200).await;

    // The store cannot commit: a reason while the writer retries, gone once it commits.
    let db = rusqlite::Connection::open(d.hub.path()).expect("open the database");
    db.execute_batch("ALTER TABLE alerts RENAME TO alerts_away")
        .expect("rename");
    fh.send(canonical("r1", "h4", "cat", "上次买的手链戴了两天就断了"));
    let failing = |v: &serde_json::Value| {
        v["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["state"] == "failing"))
    };
    let (code, v) = health_until(d.addr, |_, v| failing(v)).await;
    assert_eq!(code, 503, "{v}");
    wait_metric(d.addr, "liveguard_store_failing_since_seconds", 1e9).await;
    db.execute_batch("ALTER TABLE alerts_away RENAME TO alerts")
        .expect("rename back");
    health_until(d.addr, |_, v| !failing(v)).await;
    // (The source may have gone quiet meanwhile: skip its ops alerts.)
    let alert = loop {
        let a = sub.next_alert().await;
        if a["kind"] != "ops" {
            break a;
        }
    };
    assert_eq!(alert["msg_ids"][0], "h4", "the alert waited, it was not lost");
    d.stop(Duration::from_secs(5)).await;
}

/// The installed binary, run from a directory with no rules in it and no `--rules`: it
/// classifies with the packs built into it (or `/etc/liveguard/rules` when that exists) and
/// says which set is live. It used to exit 2 with "cannot read rules directory".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_from_an_empty_directory_uses_the_built_in_rules() {
    use std::io::BufReader;
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let empty = tempfile::tempdir().expect("tmp");
    let state = crate::util::state_dir();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
        .args(["run", "--source", &fh.url(), "--listen", "127.0.0.1:0"])
        .current_dir(empty.path())
        .env_remove("LIVEGUARD_RULES")
        .env_remove("LIVEGUARD_CONFIG")
        .env("LIVEGUARD_STATE_DIR", &state)
        .env("RUST_LOG", "liveguard=info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start liveguard run");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (addr, log) = tokio::task::spawn_blocking(move || {
        let found = crate::util::listening_addr_and_log(&mut stderr);
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        found
    })
    .await
    .expect("join");
    let system = std::path::Path::new(liveguard::rules::source::SYSTEM_DIR);
    let live = if system.is_dir() {
        system.display().to_string()
    } else {
        "the packs built into this binary".to_string()
    };
    assert!(
        log.lines()
            .any(|l| l.contains("rules loaded") && l.contains(&live)),
        "the log says which rules are live ({live}):\n{log}"
    );
    fh.connected().await;
    let mut sub = Subscriber::connect(addr, "").await;
    fh.send(canonical("r1", "e1", "amy", "上次买的手链戴了两天就断了，能退吗"));
    let alert = sub.next_alert().await;
    assert_eq!(
        (alert["class"].as_str(), alert["msg_ids"][0].as_str()),
        (Some("complaint"), Some("e1"))
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).expect("ls").count(),
        0,
        "nothing written to the working directory"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_real_binary_gracefully() {
    use std::io::BufReader;
    use std::process::Command;
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let mut child = crate::util::run_command(&fh.url(), &crate::util::state_dir())
        .spawn()
        .expect("start liveguard run");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let addr = tokio::task::spawn_blocking(move || (crate::util::listening_addr(&mut stderr), stderr))
        .await
        .expect("join");
    let (addr, mut stderr) = addr;
    fh.connected().await;
    let mut sub = Subscriber::connect(addr, "").await;
    fh.send(canonical("r1", "t1", "amy", "你们就是骗子"));
    assert_eq!(sub.next_alert().await["msg_ids"][0], "t1");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("join");
    assert!(exit.success(), "exit status {exit}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("stderr");
    assert!(
        rest.contains("shutting down") && rest.contains("stopped"),
        "{rest}"
    );
    // The alert socket was closed by the daemon, not left hanging.
    sub.wait_closed().await;
}

#[test]
fn bad_config_and_missing_source_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("liveguard.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n\n[[source]]\nurl = \"ws://127.0.0.1:1/\"\nformat = \"telepathy\"\n",
    )
    .expect("write");
    let out = crate::util::run(dir.path(), &["run", "--config", "liveguard.toml"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("liveguard.toml:5:") && err.contains("telepathy"),
        "{err}"
    );
    let out = crate::util::run(dir.path(), &["run"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no firehose to watch"));
    let out = crate::util::run(
        dir.path(),
        &["run", "--source", "ws://127.0.0.1:1/", "--rules", "missing"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read rules directory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_signals_reach_the_decision() {
    let (fh, d) = watched().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    let now = liveguard::clock::now_ms();
    let event = |id: &str, user: &str, text: &str, signals: serde_json::Value| {
        // Each user in a room of their own, so identical texts do not cluster.
        serde_json::json!({"type":"liveguard.comment.v1","platform":"t","room":{"id":user},"msg_id":id,
            "ts_ms":now,"user":{"id":user},"text":text,"signals":signals})
        .to_string()
    };
    let text = "戴了一周就掉色了";
    fh.send(event("s1", "plain", text, serde_json::json!({})));
    fh.send(event("s2", "buyer", text, serde_json::json!({"order_id":"o-9"})));
    fh.send(event(
        "s3",
        "old",
        "你们就是骗子",
        serde_json::json!({"account_created_ms": now - 400 * 86_400_000u64}),
    ));
    fh.send(event(
        "s4",
        "fresh",
        "你们就是骗子",
        serde_json::json!({"account_created_ms": now - 3_600_000}),
    ));
    let mut by_user = std::collections::HashMap::new();
    while by_user.len() < 4 {
        let m = sub.next_alert().await;
        by_user.insert(m["user"]["id"].as_str().expect("user").to_string(), m);
    }
    let score = |u: &str| by_user[u]["score"].as_f64().expect("score");
    assert!(
        (score("buyer") - score("plain") - 0.1).abs() < 1e-3,
        "a buyer ranks 0.1 higher"
    );
    assert_eq!(by_user["buyer"]["buyer"], true);
    assert_eq!(
        (
            by_user["old"]["new_account"].as_bool(),
            by_user["fresh"]["new_account"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert!(
        (score("fresh") - score("old") - 0.1).abs() < 1e-3,
        "a new account's attack ranks 0.1 higher"
    );
    d.stop(Duration::from_secs(5)).await;
}
