//! The bus with a real `nats-server -js` on loopback (started and killed by each test): a
//! bridge publishing 200 rooms once (a second bridge on the same source adds nothing), two
//! instances each owning half the partitions raising every complaint exactly once, `kill -9`
//! of an instance and a replacement that loses and repeats nothing and still reminds on time,
//! the server killed and restarted mid-stream, the console gateway and its actions, and
//! `/healthz` while the server is gone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use liveguard::bus::bridge::{self, Bridge, BridgeConfig};
use liveguard::bus::{partition_of, streams, BusConfig};
use liveguard::config::Config;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::Format;
use serde_json::Value;

use crate::util::live::{canonical, get, test_config, test_signals, Firehose};
use crate::util::nats::{stream_messages, wait_until, Nats};

const COMPLAINT: &str = "收到的手镯有裂纹，要退货";
const CHATTER: &str = "主播今天好漂亮";
const PARTITIONS: u32 = 4;

fn bus(nats: &Nats) -> BusConfig {
    BusConfig {
        url: nats.url(),
        // Quick redelivery after a kill; a batch takes far less on this machine.
        ack_wait_ms: 3_000,
        connect_timeout_ms: 10_000,
        ..BusConfig::default()
    }
}

/// A nats-server, a test firehose and one bridge reading it, connected.
async fn bridged() -> (Nats, Firehose, Bridge) {
    let nats = Nats::start();
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let b = start_bridge(&nats, &fh).await;
    fh.connected().await;
    (nats, fh, b)
}

async fn start_bridge(nats: &Nats, fh: &Firehose) -> Bridge {
    let mut source = SourceConfig::new(&fh.url(), Format::Canonical);
    source.backoff_base_ms = 20;
    source.backoff_max_ms = 200;
    bridge::start(BridgeConfig {
        sources: vec![source],
        bus: bus(nats),
        partitions: PARTITIONS,
        source_down_ms: 120_000,
        listen: Some("127.0.0.1:0".into()),
    })
    .await
    .expect("the bridge starts")
}

/// An instance's configuration: no firehose, its partitions from the bus, a fresh store.
fn instance(nats: &Nats, partitions: &str) -> Config {
    let mut cfg = test_config("ws://127.0.0.1:1/", Format::Canonical, test_signals());
    cfg.sources.clear();
    cfg.bus = BusConfig {
        partitions: partitions.into(),
        ..bus(nats)
    };
    cfg
}

fn room(i: usize) -> String {
    format!("room-{i}")
}

/// Every alert an instance serves, by id.
async fn alerts(addr: SocketAddr) -> Vec<Value> {
    serde_json::from_str(&get(addr, "/api/alerts?since=0&limit=10000").await).expect("JSON")
}

/// `(room, first msg_id)` of every complaint across `addrs`, with how often each appears.
async fn complaints(addrs: &[SocketAddr]) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    for a in addrs {
        for v in alerts(*a).await {
            if v["class"] == "complaint" {
                let key = (
                    v["room"].as_str().unwrap_or_default().to_string(),
                    v["msg_ids"][0].as_str().unwrap_or_default().to_string(),
                );
                *seen.entry(key).or_insert(0) += 1;
            }
        }
    }
    seen
}

/// [`complaints`] once 600 are served (within 60 s, `what` naming the wait) and the ack wait
/// (3 s) has passed, so any redelivery would have shown as a duplicate.
async fn settled_complaints(addrs: &[SocketAddr], what: &str) -> HashMap<(String, String), usize> {
    wait_until(what, Duration::from_secs(60), || async {
        complaints(addrs).await.len() >= 600
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    complaints(addrs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_publishes_200_rooms_by_partition_and_a_second_bridge_adds_nothing() {
    use crate::util::live::{get_status, metric};
    let (nats, mut fh, b1) = bridged().await;
    // The second bridge is the real binary, as ops run it.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"));
    cmd.args([
        "bridge",
        "--nats",
        &nats.url(),
        "--partitions",
        &PARTITIONS.to_string(),
    ])
    .args(["--source", &fh.url(), "--listen", "127.0.0.1:0"])
    .env("RUST_LOG", "liveguard=info")
    .env("NO_COLOR", "1")
    .stderr(std::process::Stdio::piped());
    let (mut b2, b2_addr) = crate::util::spawn(cmd);
    fh.connected().await;
    // Both bridges read every frame; each comment lands once.
    for i in 0..200 {
        for k in 0..3 {
            fh.send(canonical(
                &room(i),
                &format!("m{i}-{k}"),
                &format!("u{i}-{k}"),
                CHATTER,
            ));
        }
    }
    let js = nats.js().await;
    let m = b1.metrics.clone();
    wait_until(
        "both bridges published 600 comments",
        Duration::from_secs(30),
        || {
            let m = m.clone();
            async move {
                let other = metric(b2_addr, "liveguard_bus_published_total").await
                    + metric(b2_addr, "liveguard_bus_duplicates_total").await;
                m.bus.published.get() + m.bus.duplicates.get() == 600 && other == 600.0
            }
        },
    )
    .await;
    assert_eq!(stream_messages(&js, streams::COMMENT_STREAM).await, 600);
    let published = metric(b1.addr.expect("served"), "liveguard_bus_published_total").await
        + metric(b2_addr, "liveguard_bus_published_total").await;
    assert_eq!(published, 600.0, "the server dropped every second copy");
    assert_eq!(get_status(b2_addr, "/healthz").await.0, 200);
    // Each comment sits on its room's partition subject.
    for i in [0, 17, 199] {
        let p = partition_of(&room(i), PARTITIONS);
        let s = js.get_stream(streams::COMMENT_STREAM).await.expect("stream");
        let subject = format!("liveguard.comments.{p}.room-{i}");
        let last = s
            .get_last_raw_message_by_subject(&subject)
            .await
            .expect("a comment on the room's partition subject");
        assert!(String::from_utf8_lossy(&last.payload).contains(&format!("m{i}-2")));
    }
    let _ = b2.kill();
    let _ = b2.wait();
    b1.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_half_the_partitions_each_raise_every_complaint_once_through_two_bridges() {
    let (nats, mut fh, b) = bridged().await;
    // A second bridge on the same source: its copies add no alert.
    let b2 = start_bridge(&nats, &fh).await;
    fh.connected().await;
    let d1 = liveguard::daemon::start(instance(&nats, "0-1"))
        .await
        .expect("instance 1 starts");
    let d2 = liveguard::daemon::start(instance(&nats, "2,3"))
        .await
        .expect("instance 2 starts");
    let mut want = Vec::new();
    for i in 0..200 {
        let r = room(i);
        fh.send(canonical(&r, &format!("n{i}"), &format!("v{i}"), CHATTER));
        let id = format!("c{i}");
        fh.send(canonical(&r, &id, &format!("buyer{i}"), COMPLAINT));
        want.push((r, id));
    }
    let addrs = [d1.addr, d2.addr];
    wait_until("200 complaints served", Duration::from_secs(60), || async move {
        complaints(&addrs).await.len() >= 200
    })
    .await;
    let seen = complaints(&addrs).await;
    for w in &want {
        assert_eq!(seen.get(w), Some(&1), "{w:?} once across both instances");
    }
    assert_eq!(seen.len(), 200);
    // Each instance holds exactly its own partitions' rooms.
    for (addr, owned) in [(d1.addr, [0, 1]), (d2.addr, [2, 3])] {
        for a in alerts(addr).await {
            let p = partition_of(a["room"].as_str().unwrap_or_default(), PARTITIONS);
            assert!(
                owned.contains(&p),
                "room {} (partition {p}) on the wrong instance",
                a["room"]
            );
        }
    }
    assert!(b2.metrics.bus.duplicates.get() + b.metrics.bus.duplicates.get() > 0);
    b.stop(Duration::from_secs(5)).await;
    b2.stop(Duration::from_secs(5)).await;
    d1.stop(Duration::from_secs(5)).await;
    d2.stop(Duration::from_secs(5)).await;
}

/// `liveguard run --nats URL --partitions LIST` (the real binary), its state in `state`, the
/// bus settings of the tests from a config file; returns the child and its address.
fn spawn_instance(nats: &Nats, partitions: &str, state: &std::path::Path) -> (crate::util::Proc, SocketAddr) {
    let config = state.join("liveguard.toml");
    std::fs::write(&config, "[bus]\nack_wait_ms = 3000\nconnect_timeout_ms = 10000\n").expect("config");
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"));
    c.args(["run", "--config"])
        .arg(&config)
        .args([
            "--nats",
            &nats.url(),
            "--partitions",
            partitions,
            "--listen",
            "127.0.0.1:0",
            "--rules",
        ])
        .arg(crate::util::repo().join("rules"))
        .env("LIVEGUARD_STATE_DIR", state)
        .env("RUST_LOG", "liveguard=info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped());
    crate::util::spawn(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_instance_and_a_replacement_lose_no_alert_repeat_none_and_remind_on_time() {
    const H: u64 = 3_600_000;
    let (nats, fh, b) = bridged().await;
    let (mut doomed, doomed_addr) = spawn_instance(&nats, "0-1", &crate::util::state_dir());
    let survivor = liveguard::daemon::start(instance(&nats, "2-3"))
        .await
        .expect("instance 2 starts");
    let send = |from: usize, to: usize| {
        for i in from..to {
            let r = room(i % 200);
            fh.send(canonical(&r, &format!("n{i}"), &format!("v{i}"), CHATTER));
            fh.send(canonical(&r, &format!("c{i}"), &format!("buyer{i}"), COMPLAINT));
        }
    };
    let want: Vec<(String, String)> = (0..600).map(|i| (room(i % 200), format!("c{i}"))).collect();
    send(0, 200);
    // Mid-stream: the doomed instance has raised some of its share, not necessarily all.
    wait_until(
        "the doomed instance raised alerts",
        Duration::from_secs(30),
        || async move { complaints(&[doomed_addr]).await.len() >= 20 },
    )
    .await;
    let before_kill = alerts(doomed_addr).await;
    // Killed while a burst is on its way in: some comments delivered to it, not acked.
    send(200, 400);
    doomed.kill().expect("kill -9");
    let _ = doomed.wait();
    send(400, 600);
    // The replacement: a fresh machine (empty store) on the dead one's partitions, its clock
    // ours to move.
    let t0 = liveguard::clock::now_ms();
    let clock = liveguard::clock::ManualClock::at(t0);
    let mut cfg = instance(&nats, "0-1");
    cfg.bus.ack_wait_ms = 3_000;
    let replacement = liveguard::daemon::start_with_clock(cfg, clock.clone())
        .await
        .expect("the replacement starts");
    let addrs = [survivor.addr, replacement.addr];
    // Redeliveries of what the dead instance had not acked are over after the ack wait.
    let seen = settled_complaints(
        &addrs,
        "600 complaints served by the survivor and the replacement",
    )
    .await;
    for w in &want {
        assert_eq!(seen.get(w), Some(&1), "{w:?} exactly once after the kill");
    }
    assert_eq!(seen.len(), 600, "no alert that was never sent");
    // Each room's comments were handled in order across the takeover: what the dead owner held
    // unacked came back before what arrived since.
    let mut by_room: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for a in alerts(replacement.addr).await {
        let n = a["msg_ids"][0]
            .as_str()
            .and_then(|m| m.strip_prefix('c')?.parse().ok());
        if let (Some(n), Some(seq)) = (n, a["seq"].as_u64()) {
            by_room
                .entry(a["room"].as_str().unwrap_or_default().into())
                .or_default()
                .push((seq, n));
        }
    }
    for (room, mut v) in by_room {
        v.sort_unstable();
        assert!(
            v.windows(2).all(|w| w[0].1 < w[1].1),
            "room {room} out of order: {v:?}"
        );
    }
    eprintln!(
        "takeover: {} comments delivered again to the replacement",
        replacement.metrics.bus.redeliveries.get()
    );
    // The dead instance's open tickets keep their deadlines on the replacement: nothing
    // before the response deadline, the overdue reminder once it passes.
    let inherited: Vec<(String, u64)> = before_kill
        .iter()
        .filter(|a| a["class"] == "complaint")
        .map(|a| {
            let id = a["id"].as_str().expect("an id").to_string();
            (id, a["ticket"]["respond_by_ms"].as_u64().expect("a ticket"))
        })
        .collect();
    assert!(inherited.len() >= 20);
    let latest_due = inherited.iter().map(|(_, d)| *d).max().unwrap_or(t0);
    assert!(
        latest_due <= t0 + 2 * H,
        "deadlines are the dead instance's, not restarted"
    );
    clock.set(latest_due + 1_000);
    let addr = replacement.addr;
    let inherited_ref = &inherited;
    wait_until(
        "every inherited ticket reminded overdue",
        Duration::from_secs(20),
        || async move {
            let now: HashMap<String, Value> = alerts(addr)
                .await
                .into_iter()
                .map(|a| (a["id"].as_str().unwrap_or_default().to_string(), a))
                .collect();
            inherited_ref.iter().all(|(id, due)| {
                now.get(id).is_some_and(|a| {
                    a["ticket"]["reminders"].as_array().is_some_and(|rs| {
                        rs.iter()
                            .any(|r| r["stage"] == "overdue" && r["due_ms"].as_u64() == Some(*due))
                    })
                })
            })
        },
    )
    .await;
    b.stop(Duration::from_secs(5)).await;
    survivor.stop(Duration::from_secs(5)).await;
    replacement.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_nats_server_mid_stream_loses_and_repeats_nothing() {
    let mut nats = Nats::start();
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let b = start_bridge(&nats, &fh).await;
    fh.connected().await;
    let d1 = liveguard::daemon::start(instance(&nats, "0-1"))
        .await
        .expect("instance 1 starts");
    let d2 = liveguard::daemon::start(instance(&nats, "2-3"))
        .await
        .expect("instance 2 starts");
    let send = |from: usize, to: usize| {
        for i in from..to {
            let r = room(i % 200);
            fh.send(canonical(&r, &format!("n{i}"), &format!("v{i}"), CHATTER));
            fh.send(canonical(&r, &format!("c{i}"), &format!("buyer{i}"), COMPLAINT));
        }
    };
    let addrs = [d1.addr, d2.addr];
    send(0, 200);
    wait_until(
        "some alerts before the outage",
        Duration::from_secs(30),
        || async move { complaints(&addrs).await.len() >= 50 },
    )
    .await;
    // kill -9 of the server while comments, alerts and acks are in flight; the firehose
    // keeps talking to the bridge meanwhile.
    send(200, 300);
    nats.kill();
    send(300, 400);
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart();
    send(400, 600);
    // Acks lost in the outage come back as redeliveries within the ack wait.
    let seen = settled_complaints(&addrs, "600 complaints after the server came back").await;
    for i in 0..600 {
        let w = (room(i % 200), format!("c{i}"));
        assert_eq!(seen.get(&w), Some(&1), "{w:?} exactly once across the outage");
    }
    assert_eq!(seen.len(), 600);
    let js = nats.js().await;
    assert_eq!(
        stream_messages(&js, streams::COMMENT_STREAM).await,
        1_200,
        "every comment once on the stream"
    );
    b.stop(Duration::from_secs(5)).await;
    d1.stop(Duration::from_secs(5)).await;
    d2.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_gateway_shows_every_room_and_its_actions_are_applied_by_the_owner() {
    let (nats, fh, b) = bridged().await;
    let d1 = liveguard::daemon::start(instance(&nats, "0-1"))
        .await
        .expect("instance 1 starts");
    let d2 = liveguard::daemon::start(instance(&nats, "2-3"))
        .await
        .expect("instance 2 starts");
    let mut gw_cfg = instance(&nats, "");
    gw_cfg.bus.console = true;
    let gw = liveguard::daemon::start(gw_cfg)
        .await
        .expect("the gateway starts");
    for i in 0..50 {
        fh.send(canonical(
            &room(i),
            &format!("c{i}"),
            &format!("buyer{i}"),
            COMPLAINT,
        ));
    }
    let gw_addr = gw.addr;
    wait_until(
        "the gateway shows 50 complaints",
        Duration::from_secs(30),
        || async move { complaints(&[gw_addr]).await.len() >= 50 },
    )
    .await;
    let seen = complaints(&[gw.addr]).await;
    assert!(
        seen.values().all(|n| *n == 1),
        "each once on the gateway: {seen:?}"
    );
    assert_eq!(seen.len(), 50);
    // An action on the gateway's copy is applied by the owner, with today's answers.
    let copy = alerts(gw.addr).await.into_iter().next().expect("an alert");
    let (seq, id) = (
        copy["seq"].as_u64().expect("seq"),
        copy["id"].as_str().expect("id").to_string(),
    );
    let path = format!("/api/alerts/{seq}/actions");
    let (status, body) = crate::util::live::post(gw.addr, &path, r#"{"action":"invite","by":"amy"}"#).await;
    assert_eq!(status, 200, "{body}");
    let after: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (after["status"].as_str(), after["seq"].as_u64()),
        (Some("invited"), Some(seq))
    );
    let (status, body) = crate::util::live::post(gw.addr, &path, r#"{"action":"invite","by":"bob"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("invite by amy"), "{body}");
    let (status, _) = crate::util::live::post(gw.addr, &path, r#"{"action":"mute","by":"bob"}"#).await;
    assert_eq!(status, 422, "a complaint is not muted, wherever the console is");
    let (status, _) =
        crate::util::live::post(gw.addr, "/api/alerts/9999/actions", r#"{"action":"invite"}"#).await;
    assert_eq!(status, 404);
    // The owner has it, and the change flows back to the gateway through the alert stream.
    let owner = if [0, 1].contains(&partition_of(
        copy["room"].as_str().unwrap_or_default(),
        PARTITIONS,
    )) {
        d1.addr
    } else {
        d2.addr
    };
    let at_owner = alerts(owner)
        .await
        .into_iter()
        .find(|a| a["id"] == id.as_str())
        .expect("the owner has it");
    assert_eq!(at_owner["status"], "invited");
    assert_eq!(at_owner["actions"][0]["by"], "amy");
    let id_ref = &id;
    wait_until(
        "the gateway's copy is invited",
        Duration::from_secs(10),
        || async move {
            alerts(gw_addr)
                .await
                .iter()
                .any(|a| a["id"] == id_ref.as_str() && a["status"] == "invited")
        },
    )
    .await;
    assert_eq!(
        complaints(&[gw.addr]).await.len(),
        50,
        "an update is not a new alert"
    );
    b.stop(Duration::from_secs(5)).await;
    for d in [d1, d2, gw] {
        d.stop(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bus_makes_healthz_degraded_until_it_is_back() {
    use crate::util::live::get_status;
    let mut nats = Nats::start();
    let mut cfg = instance(&nats, "0-3");
    // No bridge yet: the instance makes the streams, told the partition count.
    cfg.bus.partition_count = Some(PARTITIONS);
    cfg.source_down_ms = 1_000;
    let d = liveguard::daemon::start(cfg).await.expect("starts");
    let addr = d.addr;
    wait_until(
        "healthy with the bus up",
        Duration::from_secs(10),
        || async move { get_status(addr, "/healthz").await.0 == 200 },
    )
    .await;
    nats.kill();
    wait_until("503 naming the bus", Duration::from_secs(10), || async move {
        let (status, body) = get_status(addr, "/healthz").await;
        status == 503 && body.contains("nats")
    })
    .await;
    assert!(crate::util::live::metric(addr, "liveguard_bus_connected").await < 0.5);
    nats.restart();
    wait_until(
        "healthy again once the server is back",
        Duration::from_secs(20),
        || async move { get_status(addr, "/healthz").await.0 == 200 },
    )
    .await;
    d.stop(Duration::from_secs(5)).await;
}

#[test]
fn bus_commands_refuse_what_cannot_work_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, says) in [
        (
            &["bridge", "--source", "ws://127.0.0.1:1/", "--partitions", "4"][..],
            "no bus",
        ),
        (
            &[
                "bridge",
                "--nats",
                "nats://127.0.0.1:1",
                "--source",
                "ws://127.0.0.1:1/",
            ][..],
            "no partition count",
        ),
        (&["run", "--nats", "nats://127.0.0.1:1"][..], "--partitions"),
    ] {
        let out = crate::util::run(dir.path(), args, "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
