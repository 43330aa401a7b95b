//! The bus with a real `nats-server -js` on loopback: a bridge publishing 200 rooms once (a
//! second bridge on the same source adds nothing), two instances each owning half the
//! partitions classifying every complaint exactly once, `kill -9` of an instance and a
//! replacement that loses and repeats nothing and still reminds on time, and the server
//! killed and restarted mid-stream.

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

async fn start_bridge(nats: &Nats, fh: &Firehose) -> Bridge {
    let mut source = SourceConfig::new(&fh.url(), Format::Canonical);
    source.backoff_base_ms = 20;
    source.backoff_max_ms = 200;
    bridge::start(BridgeConfig {
        sources: vec![source],
        bus: bus(nats),
        partitions: PARTITIONS,
        source_down_ms: 120_000,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_publishes_200_rooms_by_partition_and_a_second_bridge_adds_nothing() {
    let nats = Nats::start();
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let b1 = start_bridge(&nats, &fh).await;
    fh.connected().await;
    let b2 = start_bridge(&nats, &fh).await;
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
    let m = (b1.metrics.clone(), b2.metrics.clone());
    wait_until(
        "both bridges published 600 comments",
        Duration::from_secs(30),
        || {
            let m = m.clone();
            async move {
                let done = |x: &liveguard::metrics::Metrics| x.bus.published.get() + x.bus.duplicates.get();
                done(&m.0) == 600 && done(&m.1) == 600
            }
        },
    )
    .await;
    assert_eq!(stream_messages(&js, streams::COMMENT_STREAM).await, 600);
    assert_eq!(
        m.0.bus.published.get() + m.1.bus.published.get(),
        600,
        "the server dropped every second copy"
    );
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
    b1.stop(Duration::from_secs(5)).await;
    b2.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_owning_half_the_partitions_each_raise_every_complaint_exactly_once() {
    let nats = Nats::start();
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let b = start_bridge(&nats, &fh).await;
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
    b.stop(Duration::from_secs(5)).await;
    d1.stop(Duration::from_secs(5)).await;
    d2.stop(Duration::from_secs(5)).await;
}
