//! Bursts through the real binary: a 20,000-user brigade and a 20,000-times repeater stay one
//! small alert, within bounded memory, bytes to one subscriber and WAL.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::util::live::{canonical, fold, Firehose, Subscriber};

const ATTACK: &str = "你们就是骗子";
const COMPLAINT: &str = "收到的手镯有裂纹，要退货";
const N: usize = 20_000;
const MB: usize = 1024 * 1024;

/// Peak resident memory of process `pid`, bytes (`VmHWM`).
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// What one subscriber heard: bytes, the largest message, new alerts and each alert's latest
/// version.
#[derive(Default)]
struct Heard {
    bytes: usize,
    largest: usize,
    messages: usize,
    alerts: Vec<u64>,
    /// Each alert as a client holding it would have it, its updates folded in.
    latest: HashMap<u64, Value>,
    /// The last `update` message as sent.
    last_update: Option<Value>,
}

/// Reads `sub` until `done` says the latest versions are complete (or 60 s pass).
async fn listen(
    sub: &mut Subscriber,
    held: HashMap<u64, Value>,
    done: impl Fn(&HashMap<u64, Value>) -> bool,
) -> Heard {
    let mut h = Heard {
        latest: held,
        ..Heard::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&h.latest) && tokio::time::Instant::now() < deadline {
        let Some(raw) = sub.try_next_raw(Duration::from_secs(5)).await else {
            break;
        };
        h.bytes += raw.len();
        h.largest = h.largest.max(raw.len());
        h.messages += 1;
        let m: Value = serde_json::from_str(&raw).expect("JSON");
        assert_ne!(m["type"], "lagged", "the subscriber fell behind");
        let seq = m["seq"].as_u64().unwrap_or(0);
        if m["type"] == "alert" {
            h.alerts.push(seq);
        }
        if m["type"] == "alert" || m["type"] == "update" {
            fold(&mut h.latest, &m);
        }
        if m["type"] == "update" {
            h.last_update = Some(m);
        }
    }
    h
}

/// Sends `N` frames made by `frame(i)`, listens until one alert counts all of them, and says
/// what the burst (`name`) cost: what the subscriber heard, and the daemon's peak RSS.
async fn burst(
    name: &str,
    fh: &Firehose,
    sub: &mut Subscriber,
    pid: u32,
    frame: impl Fn(usize) -> String,
) -> (Heard, usize) {
    for i in 0..N {
        fh.send(frame(i));
    }
    let heard = listen(sub, HashMap::new(), |l| {
        l.values().any(|a| a["count"] == N as u64)
    })
    .await;
    let rss = peak_rss(pid);
    eprintln!(
        "{name}: peak RSS {} MB, {} messages, {} bytes to the subscriber, largest {} bytes",
        rss / MB,
        heard.messages,
        heard.bytes,
        heard.largest
    );
    (heard, rss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_user_brigade_is_one_small_alert_in_bounded_memory() {
    let crate::util::Spawned {
        state,
        fh,
        mut child,
        addr,
        mut sub,
    } = crate::util::spawned().await;
    let (heard, rss) = burst("brigade", &fh, &mut sub, child.id(), |i| {
        canonical("r1", &format!("b{i}"), &format!("u{i}"), ATTACK)
    })
    .await;
    assert_eq!(heard.alerts.len(), 1, "one alert: {:?}", heard.alerts);
    let a = &heard.latest[&heard.alerts[0]];
    assert_eq!(a["kind"], "brigade");
    assert_eq!(a["count"], N as u64);
    assert_eq!(a["users_total"], N as u64);
    assert_eq!(a["msg_ids_total"], N as u64);
    assert_eq!(a["users"].as_array().map(Vec::len), Some(20));
    assert_eq!(a["user_names"].as_array().map(Vec::len), Some(20));
    assert_eq!(a["msg_ids"].as_array().map(Vec::len), Some(20));
    assert!(heard.largest < 16 * 1024, "{} bytes", heard.largest);
    assert!(rss <= 250 * MB, "peak RSS {} MB", rss / MB);
    assert!(heard.bytes <= 20 * MB, "{} bytes to one subscriber", heard.bytes);
    // Updates carry what changed: the counts, not the text again.
    let last = heard.last_update.as_ref().expect("updates");
    assert_eq!(last["count"], N as u64);
    for unchanged in ["text", "room", "user", "ts_ms"] {
        assert!(last.get(unchanged).is_none(), "{unchanged} in {last}");
    }

    // Versions inside the alert's 250 ms update slot are written at the slot, as one row:
    // the disk sees a few versions a second, not one per comment.
    let (_, metrics) = crate::util::live::get_status(addr, "/metrics").await;
    let written = metrics
        .lines()
        .find_map(|l| l.strip_prefix("liveguard_store_writes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("store_writes_total");
    eprintln!("brigade: {written} alert versions written for {N} comments");
    assert!(written <= (N / 10) as f64, "{written} versions written");

    // The WAL is bounded: cut back to 64 MiB by a checkpoint, truncated once the writer is quiet.
    let wal = state.join("liveguard.db-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let after_burst = wal_len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while wal_len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "brigade: WAL {after_burst} bytes after the burst, {} once quiet",
        wal_len()
    );
    assert!(after_burst <= 64 * MB as u64, "WAL {after_burst} bytes");
    assert_eq!(wal_len(), 0, "a quiet writer's WAL is truncated");

    // A deletion of a message past the sample still retracts the alert.
    fh.send(r#"{"type":"liveguard.delete.v1","room":{"id":"r1"},"msg_ids":["b19999"]}"#);
    let seq = heard.alerts[0];
    let retracted = listen(&mut sub, heard.latest.clone(), |l| {
        l.get(&seq).is_some_and(|a| a["retracted"] == true)
    })
    .await;
    assert_eq!(
        retracted.latest.get(&seq).map(|a| a["retracted"].clone()),
        Some(Value::Bool(true))
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_repeating_a_complaint_20000_times_stays_in_bounded_memory() {
    let crate::util::Spawned {
        fh,
        mut child,
        mut sub,
        ..
    } = crate::util::spawned().await;
    let (heard, rss) = burst("repeater", &fh, &mut sub, child.id(), |i| {
        canonical("r2", &format!("c{i}"), "buyer", COMPLAINT)
    })
    .await;
    let a = heard
        .latest
        .values()
        .find(|a| a["class"] == "complaint")
        .expect("the complaint's alert");
    assert_eq!(a["count"], N as u64);
    assert_eq!(a["msg_ids_total"], N as u64);
    assert_eq!(a["msg_ids"].as_array().map(Vec::len), Some(20));
    assert!(heard.largest < 16 * 1024, "{} bytes", heard.largest);
    assert!(rss <= 250 * MB, "peak RSS {} MB", rss / MB);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_going_silent_at_once_are_one_ops_alert_per_source() {
    use crate::util::live::daemon;
    use liveguard::history::SignalConfig;
    use liveguard::ingest::Format;
    const ROOMS: usize = 500;
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let signals = SignalConfig {
        silence_after_ms: 1_000,
        ..SignalConfig::default()
    };
    let d = daemon(&fh.url(), Format::Canonical, signals).await;
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    for i in 0..ROOMS {
        fh.send(canonical(
            &format!("room{i:04}"),
            &format!("s{i}"),
            "viewer",
            "你好",
        ));
    }
    // Usually one sweep sees them all; a loaded machine may spread the comments over a few.
    let mut total = 0;
    let mut alerts = 0;
    let mut widest = 0;
    while total < ROOMS as u64 {
        let ops = sub.next_alert().await;
        assert_eq!(ops["kind"], "ops", "{ops}");
        let n = ops["rooms_total"].as_u64().unwrap_or(1);
        if n > 1 {
            assert_eq!(ops["room"], "*");
            let rooms: Vec<&str> = ops["rooms"]
                .as_array()
                .expect("rooms")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(rooms.len() as u64, n.min(20), "a capped list: {ops}");
            assert!(rooms.windows(2).all(|w| w[0] < w[1]), "sorted: {rooms:?}");
            if n > 20 {
                let text = format!("and {} more", n - 20);
                assert!(ops["text"].as_str().is_some_and(|t| t.contains(&text)), "{ops}");
            }
        }
        widest = widest.max(n);
        total += n;
        alerts += 1;
    }
    assert_eq!(total, ROOMS as u64);
    assert!(alerts <= 4, "{alerts} ops alerts for one source");
    assert!(widest > 20, "one alert covers most rooms (widest {widest})");
    // No per-room ops alert follows.
    let more = sub.try_next(Duration::from_secs(1)).await;
    assert!(more.is_none(), "another message: {more:?}");
    d.stop(Duration::from_secs(5)).await;
}
