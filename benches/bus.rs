//! Bridge → NATS JetStream → two instances, on this machine: comments/s and alert latency,
//! next to the single-process figures of `benches/pipeline.rs`. A firehose written here
//! streams canonical frames from `liveguard::simulate` (1,000 rooms, the busy mix) at a paced
//! rate to one bridge (in-process), which publishes to a real `nats-server -js` (started here
//! on a free loopback port, file store in a temp dir); two instances (in-process, default
//! settings, 8 partitions: 0-3 and 4-7) consume, commit, publish their alerts to the alert
//! stream and ack. Each `alert` is timed at its instance's hub broadcast against the moment its
//! comment was written to the firehose socket. Everything shares one 2-worker tokio runtime and
//! the machine's 2 cores with the server.
//!
//! `cargo bench --bench bus` runs each rate for 5 s; `-- --quick` for 2 s; `-- --rates 1000,5000`.
//! Needs `nats-server` on the PATH (Debian's package); says so and exits 0 without it.
//! Figures go to BENCHMARKS.md.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use liveguard::alerts::{HubMsg, MsgKind};
use liveguard::bus::bridge::{self, BridgeConfig};
use liveguard::bus::BusConfig;
use liveguard::clock::now_ms;
use liveguard::config::Config;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::Format;
use liveguard::simulate::{Generator, SimConfig};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

/// Rooms the comments spread over.
const ROOMS: u32 = 1_000;
/// Partitions rooms are hashed over (two instances, four each).
const PARTITIONS: u32 = 8;

/// The server, and its store directory (removed after the server is killed).
struct Server {
    child: Child,
    _store: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server() -> Option<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server { child, _store: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, format!("nats://127.0.0.1:{port}")))
}

/// `n` canonical frames; frame `i` has generator sequence `i + 1`.
fn generate(seed: u64, n: usize) -> Vec<String> {
    let mut g = Generator::new(SimConfig {
        rate: 0,
        rooms: ROOMS,
        seconds: None,
        format: Format::Canonical,
        seed,
        mix: liveguard::simulate::Mix::Busy,
    });
    let ts = now_ms();
    (0..n).map(|_| g.next_frame(ts)).collect()
}

/// The generator sequence in the alert's first message id (`sim-SEED-SEQ`).
fn first_msg_seq(a: &liveguard::alerts::Alert) -> Option<u64> {
    a.msg_ids.first()?.rsplit('-').next()?.parse().ok()
}

#[derive(Debug)]
struct Outcome {
    rate: u32,
    sent: u64,
    send_secs: f64,
    consumed: u64,
    drain_secs: f64,
    alerts: Vec<u64>,
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rates: Vec<u32> = args
        .iter()
        .position(|a| a == "--rates")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 5_000, 10_000, 20_000]);
    let secs = if quick { 2 } else { 5 };
    println!("bus bench: bridge -> nats-server -js -> 2 instances, {ROOMS} rooms, {PARTITIONS} partitions, {secs} s per rate");
    println!(
        "| target/s | sent/s | consumed / sent | all consumed after (s) | comments/s end to end | alerts timed | p50 ms | p99 ms | max ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for rate in rates {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let Some(o) = rt.block_on(run(rate, secs)) else {
            println!("nats-server is not installed (apt-get install nats-server): skipped");
            return;
        };
        let mut lat = o.alerts.clone();
        lat.sort_unstable();
        println!(
            "| {} | {:.0} | {} / {} | {:.2} | {:.0} | {} | {:.2} | {:.2} | {:.2} |",
            o.rate,
            o.sent as f64 / o.send_secs,
            o.consumed,
            o.sent,
            o.drain_secs,
            o.consumed as f64 / o.drain_secs,
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0),
        );
        rt.shutdown_timeout(Duration::from_secs(5));
    }
}

fn bus(url: &str, partitions: &str) -> BusConfig {
    BusConfig {
        url: url.to_string(),
        partitions: partitions.to_string(),
        ..BusConfig::default()
    }
}

async fn run(rate: u32, secs: u64) -> Option<Outcome> {
    let (_server, url) = nats_server()?;
    let n = rate as usize * secs as usize;
    let frames = generate(u64::from(rate), n);
    let stamps: Arc<Vec<AtomicU64>> = Arc::new((0..=n).map(|_| AtomicU64::new(0)).collect());
    let base = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let b = bridge::start(BridgeConfig {
        sources: vec![SourceConfig::new(&format!("ws://{addr}/"), Format::Canonical)],
        bus: bus(&url, ""),
        partitions: PARTITIONS,
        source_down_ms: 60_000,
        listen: None,
    })
    .await
    .expect("bridge");
    let state = tempfile::tempdir().expect("state");
    let mut instances = Vec::new();
    for (i, parts) in ["0-3", "4-7"].iter().enumerate() {
        let cfg = Config {
            listen: "127.0.0.1:0".into(),
            bus: bus(&url, parts),
            store: liveguard::store::StoreConfig {
                path: Some(state.path().join(format!("i{i}.db"))),
                ..Default::default()
            },
            ..Config::default()
        };
        instances.push(liveguard::daemon::start(cfg).await.expect("instance"));
    }
    let timed = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n / 10)));
    let mut subs = Vec::new();
    for d in &instances {
        let rx = d.hub.subscribe();
        subs.push(tokio::spawn(time_alerts(rx, stamps.clone(), base, timed.clone())));
    }
    // The firehose: the bridge connects, then frames go out paced in 1 ms ticks.
    let (stream, _) = listener.accept().await.expect("the bridge connects");
    stream.set_nodelay(true).expect("nodelay");
    let ws = tokio_tungstenite::accept_async(stream).await.expect("handshake");
    let (mut sink, mut source) = ws.split();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = source.next().await {} });
    let start = Instant::now();
    let mut sent = 0usize;
    let mut frames = frames.into_iter();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < n {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * f64::from(rate)) as usize).min(n);
        if due <= sent {
            continue;
        }
        let now = base.elapsed().as_nanos() as u64 + 1;
        for i in sent..due {
            stamps[i + 1].store(now, Ordering::Relaxed);
        }
        for f in frames.by_ref().take(due - sent) {
            let _ = sink.feed(Message::Text(f.into())).await;
        }
        let _ = sink.flush().await;
        sent = due;
    }
    let send_secs = start.elapsed().as_secs_f64();
    let consumed = || {
        instances
            .iter()
            .map(|d| d.metrics.bus.consumed.get())
            .sum::<u64>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed() < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = start.elapsed().as_secs_f64();
    // Alerts of the last comments are committed and broadcast right after they are consumed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = consumed();
    for s in subs {
        s.abort();
    }
    let alerts = std::mem::take(&mut *timed.lock().unwrap_or_else(|p| p.into_inner()));
    drop(sink);
    reader.abort();
    b.stop(Duration::from_secs(2)).await;
    for d in instances {
        d.stop(Duration::from_secs(2)).await;
    }
    Some(Outcome {
        rate,
        sent: n as u64,
        send_secs,
        consumed: got,
        drain_secs,
        alerts,
    })
}

async fn time_alerts(
    mut rx: broadcast::Receiver<Arc<HubMsg>>,
    stamps: Arc<Vec<AtomicU64>>,
    base: Instant,
    out: Arc<std::sync::Mutex<Vec<u64>>>,
) {
    loop {
        match rx.recv().await {
            Ok(m) if m.kind == MsgKind::Alert => {
                let now = base.elapsed().as_nanos() as u64 + 1;
                let Some(seq) = first_msg_seq(&m.alert) else {
                    continue;
                };
                let sent = stamps.get(seq as usize).map_or(0, |s| s.load(Ordering::Relaxed));
                if sent > 0 {
                    out.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(now.saturating_sub(sent));
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
