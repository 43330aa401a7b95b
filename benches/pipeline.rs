//! Ingest → alert latency over loopback, end to end through real sockets: a firehose
//! WebSocket server written here streams canonical frames from `liveguard::simulate` across
//! 1,000 rooms at a paced rate; the daemon (started in-process, shipped rules and default
//! settings) reads it as its one source; a real WebSocket client of `/ws/alerts` times every
//! `alert` message against the moment its comment (`msg_ids[0]`) was written to the firehose
//! socket. Counters come from `GET /metrics`.
//!
//! Runs: 10k and 100k comments/s for 10 s each (after a 2 s warm-up), then a sweep for the
//! highest sustainable rate. `cargo bench --bench pipeline -- --quick` runs 2 s per rate.
//! Optional: `--rates 150000,200000` replaces the sweep ladder; `--only 100000` runs one rate. Figures go to BENCHMARKS.md.
//!
//! Threads: the daemon gets a 2-worker tokio runtime; the firehose sender and the alert
//! subscriber each get a current-thread runtime on their own OS thread. All of them share the
//! machine's cores, and the per-thread CPU they used is reported next to the latencies.
//!
//! Not criterion: this measures latency percentiles over a paced stream, not the throughput
//! of a closure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use liveguard::alerts::HubMsg;
use liveguard::clock::now_ms;
use liveguard::config::Config;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::Format;
use liveguard::simulate::{Generator, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::tungstenite::Message;

// The daemon binary's allocator (src/main.rs), so the daemon runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rooms the comments spread over.
const ROOMS: u32 = 1_000;
/// Alert p99 must stay below this for a rate to count as sustainable.
const P99_TARGET: Duration = Duration::from_millis(5);
/// Received / sent (and achieved / target send rate) must reach this.
const DELIVERY_TARGET: f64 = 0.995;
/// Sweep ladder for the highest sustainable rate (comments/s).
const LADDER: &[u32] = &[
    1_000, 2_000, 5_000, 20_000, 30_000, 40_000, 50_000, 75_000, 150_000, 200_000, 300_000, 400_000,
];

#[derive(Debug, Clone, Copy)]
struct Plan {
    rate: u32,
    warmup: Duration,
    measure: Duration,
    seed: u64,
}

/// What the firehose sender saw.
#[derive(Debug, Default)]
struct SendStats {
    /// Frames written, warm-up included.
    sent: u64,
    /// Frames written after the warm-up.
    measured: u64,
    /// Achieved rate after the warm-up (frames/s).
    achieved: f64,
}

/// Counters read from `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    comments: f64,
    shed: f64,
    parse_errors: f64,
    duplicates: f64,
    missed: f64,
    /// Frame in → `Hub::publish` (queue and classify), p50 and p99 in ms, from the daemon's
    /// histogram (bucket upper bounds, whole run).
    publish: (f64, f64),
    /// One store commit, p50 and p99 in ms (the same way).
    commit: (f64, f64),
    /// Store commits and versions written, whole run.
    commits: f64,
    writes: f64,
}

#[derive(Debug)]
struct Outcome {
    plan: Plan,
    send: SendStats,
    /// Comments classified when the last frame was written.
    at_end: Counters,
    /// After the queue drained (or 5 s).
    last: Counters,
    /// `alert` messages whose comment was sent after the warm-up.
    alerts: usize,
    /// `update` messages (repeats, brigades) and `lagged` notes seen, whole run.
    updates: usize,
    lagged: usize,
    /// In-process hub receiver fell behind by this many messages.
    hub_lagged: u64,
    /// Latencies of those alerts on the socket, sorted, ns.
    lat: Vec<u64>,
    /// Latencies of the same alerts at the hub (before server and socket), sorted, ns.
    hub_lat: Vec<u64>,
    /// CPU used over the run (% of one core): daemon runtime, sender, subscriber.
    cpu_daemon: f64,
    /// Seconds spent generating the frames before the run (not timed).
    gen_secs: f64,
    /// The same per daemon thread, busiest first.
    cpu_daemon_threads: Vec<f64>,
    cpu_sender: f64,
    cpu_subscriber: f64,
    /// The store's writer and WAL checkpointer threads (% of one core).
    cpu_store: f64,
    cpu_checkpoint: f64,
    /// The largest the WAL file grew during the run, MiB (sampled every 20 ms).
    wal_max_mib: f64,
    /// CPU used by other processes on the machine meanwhile (% of one core).
    cpu_others: f64,
}

impl Outcome {
    fn pct(&self, q: f64) -> f64 {
        pct(&self.lat, q)
    }

    fn received_share(&self) -> f64 {
        self.last.comments / self.send.sent.max(1) as f64
    }

    /// Sustainable as seen by the socket subscriber (the acceptance criterion).
    fn sustainable(&self) -> bool {
        self.delivered() && self.lagged == 0 && self.pct(0.99) < P99_TARGET.as_secs_f64() * 1e3
    }

    /// Sustainable up to the hub's broadcast (the pipeline without server and socket).
    fn sustainable_at_hub(&self) -> bool {
        self.delivered() && self.hub_lagged == 0 && pct(&self.hub_lat, 0.99) < P99_TARGET.as_secs_f64() * 1e3
    }

    /// Everything sent was sent on time and received, nothing shed or rejected.
    fn delivered(&self) -> bool {
        self.send.achieved >= DELIVERY_TARGET * f64::from(self.plan.rate)
            && self.received_share() >= DELIVERY_TARGET
            && self.last.shed == 0.0
            && self.last.parse_errors == 0.0
            && !self.lat.is_empty()
    }

    fn ok(&self, at: At) -> bool {
        match at {
            At::Socket => self.sustainable(),
            At::Hub => self.sustainable_at_hub(),
        }
    }
}

/// Where alert latency is judged.
#[derive(Debug, Clone, Copy)]
enum At {
    /// On the `/ws/alerts` socket: what a floor manager's client sees.
    Socket,
    /// At the hub's broadcast, in-process.
    Hub,
}

impl At {
    fn describe(self) -> &'static str {
        match self {
            At::Socket => "alerts on the /ws/alerts socket",
            At::Hub => "alerts at the hub (before server and socket)",
        }
    }
}

/// (highest rate sustainable at `at` below the lowest failing one, lowest failing rate).
fn bounds(all: &[Outcome], at: At) -> (u32, u32) {
    let bad = all
        .iter()
        .filter(|o| !o.ok(at))
        .map(|o| o.plan.rate)
        .min()
        .unwrap_or(u32::MAX);
    let good = all
        .iter()
        .filter(|o| o.ok(at) && o.plan.rate < bad)
        .map(|o| o.plan.rate)
        .max()
        .unwrap_or(0);
    (good, bad)
}

fn main() {
    // A subscriber, as the daemon has: without one, each span falls back to `log` (~1.6% of
    // the workers' time). Warnings only, so the table stays readable.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("liveguard=warn"))
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let ladder: Vec<u32> = args
        .iter()
        .position(|a| a == "--rates")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| LADDER.to_vec());
    let (warmup, measure, sweep_warmup, sweep_measure) = if quick {
        (
            Duration::from_millis(500),
            Duration::from_secs(2),
            Duration::from_millis(500),
            Duration::from_secs(2),
        )
    } else {
        (
            Duration::from_secs(2),
            Duration::from_secs(10),
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
    };
    // `--only RATE`: one run at RATE (warm-up and duration as above), for profiling.
    let only: Option<u32> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("daemon-rt")
        .enable_all()
        .build()
        .expect("daemon runtime");
    let started = Instant::now();
    println!(
        "pipeline bench: {ROOMS} rooms, canonical frames, loopback, {} cores{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick { " (--quick)" } else { "" }
    );
    let mut seed = 1;
    let mut run = |rate: u32, warmup: Duration, measure: Duration| {
        seed += 1000;
        let plan = Plan {
            rate,
            warmup,
            measure,
            seed,
        };
        let o = rt.block_on(run_once(plan));
        print_row(&o);
        o
    };

    if let Some(rate) = only {
        print_header();
        run(rate, warmup, measure);
        return;
    }
    println!(
        "\n## Target rates ({} s warm-up + {} s measured)",
        warmup.as_secs_f64(),
        measure.as_secs_f64()
    );
    print_header();
    let mut all = Vec::new();
    for rate in [10_000, 100_000] {
        all.push(run(rate, warmup, measure));
    }

    println!(
        "\n## Sweep for the highest sustainable rate ({} s warm-up + {} s measured)",
        sweep_warmup.as_secs_f64(),
        sweep_measure.as_secs_f64()
    );
    print_header();
    let mut bisections = 0;
    for at in [At::Socket, At::Hub] {
        loop {
            let (good, bad) = bounds(&all, at);
            let next = ladder
                .iter()
                .copied()
                .find(|&r| r > good && r < bad && !all.iter().any(|o| o.plan.rate == r));
            let next = next.or_else(|| {
                // Then bisect between the last good and the first bad rate, a few times.
                let step = if bad <= 20_000 { 1_000 } else { 5_000 };
                let mid = (good + bad) / 2 / step * step;
                (bad != u32::MAX && bisections < 4 && mid > good && mid < bad && bad - good > good / 8)
                    .then_some(mid)
            });
            let Some(rate) = next else { break };
            if !ladder.contains(&rate) {
                bisections += 1;
            }
            all.push(run(rate, sweep_warmup, sweep_measure));
        }
    }
    println!();
    for at in [At::Socket, At::Hub] {
        let (good, bad) = bounds(&all, at);
        println!(
            "highest sustainable rate, {}: {} comments/s (lowest failing rate above it: {})",
            at.describe(),
            good,
            if bad == u32::MAX {
                "none tried".to_string()
            } else {
                bad.to_string()
            },
        );
    }
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
    println!("CPU %: of one core, over the run; other = the rest of the machine (other processes) meanwhile");
    println!(
        "sustainable = achieved send rate and received/sent >= {:.1}%, nothing shed, no lag, alert p99 < {} ms \
         on the socket (ok = yes) or at the hub (ok = hub only)",
        DELIVERY_TARGET * 100.0,
        P99_TARGET.as_millis()
    );
}

/// The `q` quantile of sorted ns values, in ms.
fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e6
}

fn print_header() {
    println!(
        "| target/s | achieved/s | sent | received | shed | alerts | p50 ms | p99 ms | p99.9 ms | max ms | hub p50/p99 ms | CPU % daemon/send/sub/other | ok |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
}

fn print_row(o: &Outcome) {
    println!(
        "| {} | {:.0} | {} | {:.0} ({:.2}%) | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}/{:.2} | {:.0}/{:.0}/{:.0}/{:.0} | {} |",
        o.plan.rate,
        o.send.achieved,
        o.send.sent,
        o.last.comments,
        o.received_share() * 100.0,
        o.last.shed,
        o.alerts,
        o.pct(0.5),
        o.pct(0.99),
        o.pct(0.999),
        o.lat.last().map_or(f64::NAN, |&v| v as f64 / 1e6),
        pct(&o.hub_lat, 0.5),
        pct(&o.hub_lat, 0.99),
        o.cpu_daemon,
        o.cpu_sender,
        o.cpu_subscriber,
        o.cpu_others,
        match (o.sustainable(), o.sustainable_at_hub()) {
            (true, _) => "yes",
            (false, true) => "hub only",
            (false, false) => "no",
        },
    );
    let behind = o.send.sent as f64 - o.at_end.comments - o.at_end.shed;
    let mut notes = Vec::new();
    if behind > 0.0 {
        notes.push(format!(
            "{behind:.0} not yet classified when the last frame was written"
        ));
    }
    if o.last.parse_errors > 0.0 || o.last.duplicates > 0.0 {
        notes.push(format!(
            "parse errors {:.0}, duplicates {:.0}",
            o.last.parse_errors, o.last.duplicates
        ));
    }
    if o.lagged > 0 || o.last.missed > 0.0 || o.hub_lagged > 0 {
        notes.push(format!(
            "socket subscriber lagged {} times, missed {:.0}; in-process receiver missed {}",
            o.lagged, o.last.missed, o.hub_lagged
        ));
    }
    notes.push(format!(
        "{} frames after warm-up, {} updates",
        o.send.measured, o.updates
    ));
    let l = &o.last;
    notes.push(format!(
        "frame → publish p50/p99 <= {:.2}/{:.2} ms; {:.0} commits of {:.1} versions, commit p50/p99 <= {:.2}/{:.2} ms",
        l.publish.0,
        l.publish.1,
        l.commits,
        l.writes / l.commits.max(1.0),
        l.commit.0,
        l.commit.1
    ));
    let threads: Vec<String> = o.cpu_daemon_threads.iter().map(|p| format!("{p:.0}")).collect();
    notes.push(format!(
        "daemon threads CPU % {}; store writer {:.0}%, checkpointer {:.0}%; WAL at most {:.0} MiB; frames generated beforehand in {:.1} s",
        threads.join("/"),
        o.cpu_store,
        o.cpu_checkpoint,
        o.wal_max_mib,
        o.gen_secs
    ));
    eprintln!("    {} k/s: {}", o.plan.rate / 1000, notes.join("; "));
}

/// One rate: fresh daemon, fresh firehose, fresh subscriber.
async fn run_once(plan: Plan) -> Outcome {
    let warm_n = (f64::from(plan.rate) * plan.warmup.as_secs_f64()) as usize;
    let total = warm_n + (f64::from(plan.rate) * plan.measure.as_secs_f64()) as usize;
    // Frames are generated before the clock starts so the sender only writes.
    let gen_started = Instant::now();
    let frames = tokio::task::spawn_blocking(move || generate(plan.seed, total))
        .await
        .expect("generator");
    let gen_secs = gen_started.elapsed().as_secs_f64();
    // stamps[seq]: when the frame with generator sequence `seq` was written (ns after base, +1).
    let stamps: Arc<Vec<AtomicU64>> = Arc::new((0..=total).map(|_| AtomicU64::new(0)).collect());
    let base = Instant::now();
    let base_epoch_ms = now_ms();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind firehose");
    let fire_addr = listener.local_addr().expect("firehose addr");
    let (connected_tx, connected_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (stats_tx, stats_rx) = oneshot::channel();
    let sender = {
        let stamps = stamps.clone();
        std::thread::Builder::new()
            .name("firehose".into())
            .spawn(move || {
                current_thread().block_on(firehose(
                    listener,
                    frames,
                    plan.rate,
                    warm_n,
                    stamps,
                    base,
                    connected_tx,
                    go_rx,
                    stats_tx,
                ))
            })
            .expect("firehose thread")
    };

    // A fresh database per run, on the real disk (the store is part of the latency); removed
    // after the run (each holds tens of MB; hundreds filled the disk).
    let db = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-state")).join(format!(
        "pipeline-{}-{}.db",
        std::process::id(),
        pipeline_now_ns()
    ));
    let cfg = Config {
        listen: "127.0.0.1:0".into(),
        rules: Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))),
        sources: vec![SourceConfig::new(
            &format!("ws://{fire_addr}/"),
            Format::Canonical,
        )],
        store: liveguard::store::StoreConfig {
            path: Some(db.clone()),
            ..liveguard::store::StoreConfig::default()
        },
        ..Config::default()
    };
    let daemon = liveguard::daemon::start(cfg).await.expect("daemon starts");
    let addr = daemon.addr;
    let wal_watch = Arc::new(AtomicU64::new(0));
    let wal_watcher = {
        let (wal, stop) = (PathBuf::from(format!("{}-wal", db.display())), wal_watch.clone());
        std::thread::spawn(move || {
            let mut max = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                max = max.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                std::thread::sleep(Duration::from_millis(20));
            }
            max
        })
    };
    tokio::time::timeout(Duration::from_secs(10), connected_rx)
        .await
        .expect("the daemon connects to the firehose in time")
        .expect("firehose up");

    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let subscriber = {
        let stamps = stamps.clone();
        let hub = daemon.hub.subscribe();
        std::thread::Builder::new()
            .name("subscriber".into())
            .spawn(move || {
                current_thread().block_on(subscribe(
                    addr,
                    hub,
                    stamps,
                    base,
                    warm_n as u64,
                    ready_tx,
                    stop_rx,
                ))
            })
            .expect("subscriber thread")
    };
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("subscriber connects in time")
        .expect("subscriber up");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let cpu0 = thread_cpu();
    let (sys0, proc0) = (system_busy(), process_cpu());
    let t0 = Instant::now();
    let _ = go_tx.send(());
    let send = stats_rx.await.expect("sender finished");
    let at_end = counters(addr).await;
    // Let the queue drain: everything sent is either classified or shed.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    let mut last = at_end;
    while last.comments + last.shed < send.sent as f64 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = counters(addr).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu1 = thread_cpu();
    let (sys1, proc1) = (system_busy(), process_cpu());
    let wall = t0.elapsed().as_secs_f64();
    last = counters(addr).await;
    let _ = stop_tx.send(());
    let seen = subscriber.join().expect("subscriber thread");
    wal_watch.store(1, Ordering::Relaxed);
    let wal_max = wal_watcher.join().expect("WAL watcher");
    daemon.stop(Duration::from_secs(2)).await;
    sender.join().expect("firehose thread");
    // PIPELINE_BENCH_KEEP_DB=1 keeps the run's database (to look at what was written).
    if std::env::var_os("PIPELINE_BENCH_KEEP_DB").is_none() {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
    }
    // PIPELINE_BENCH_DUMP=DIR: one file per rate of "sent_ms latency_ms" lines (sent as Unix
    // ms, to line up with the daemon's logs), to look for
    // patterns over time.
    if let Some(dir) = std::env::var_os("PIPELINE_BENCH_DUMP") {
        let text: String = seen
            .socket
            .iter()
            .map(|(sent, lat)| {
                format!(
                    "{:.3} {:.3}\n",
                    base_epoch_ms as f64 + *sent as f64 / 1e6,
                    *lat as f64 / 1e6
                )
            })
            .collect();
        let path = PathBuf::from(dir).join(format!("latency-{}.txt", plan.rate));
        std::fs::write(&path, text).expect("write the latency dump");
    }
    let mut lat: Vec<u64> = seen.socket.iter().map(|&(_, l)| l).collect();
    lat.sort_unstable();
    let mut hub_lat = seen.hub;
    hub_lat.sort_unstable();
    // Per thread, % of one core, busiest first.
    let per_thread = |prefix: &str| -> Vec<f64> {
        let mut v: Vec<f64> = cpu1
            .iter()
            .filter(|(n, _, _)| n.starts_with(prefix))
            .map(|(_, tid, t)| {
                let t0 = cpu0
                    .iter()
                    .find(|(_, tid0, _)| tid0 == tid)
                    .map_or(0, |(_, _, t0)| *t0);
                (t - t0) as f64 / clock_ticks() / wall * 100.0
            })
            .filter(|&p| p > 0.0)
            .collect();
        v.sort_by(|a, b| b.total_cmp(a));
        v
    };
    let cpu = |prefix: &str| per_thread(prefix).iter().fold(0.0, |a, b| a + b);
    Outcome {
        plan,
        send,
        at_end,
        last,
        alerts: lat.len(),
        updates: seen.updates,
        lagged: seen.lagged,
        hub_lagged: seen.hub_lagged,
        lat,
        hub_lat,
        gen_secs,
        cpu_daemon: cpu("daemon-rt"),
        cpu_daemon_threads: per_thread("daemon-rt"),
        cpu_sender: cpu("firehose"),
        cpu_store: cpu("liveguard-store"),
        cpu_checkpoint: cpu("liveguard-check"),
        wal_max_mib: wal_max as f64 / 1_048_576.0,
        cpu_subscriber: cpu("subscriber"),
        cpu_others: (sys1.saturating_sub(sys0) as f64 - proc1.saturating_sub(proc0) as f64).max(0.0)
            / clock_ticks()
            / wall
            * 100.0,
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
}

/// `n` canonical frames from the simulator; frame `i` has generator sequence `i + 1`.
fn generate(seed: u64, n: usize) -> Vec<String> {
    let mut g = Generator::new(SimConfig {
        rate: 0,
        rooms: ROOMS,
        seconds: None,
        format: Format::Canonical,
        seed,
        mix: liveguard::simulate::Mix::Busy,
    });
    // ts_ms is the platform time; the daemon only compares it with the connection time
    // (backlog), so a stamp at generation is fine. Latency comes from `stamps`.
    let ts = now_ms();
    (0..n).map(|_| g.next_frame(ts)).collect()
}

/// The firehose: accepts the daemon, waits for `go`, then writes `frames` paced at `rate` in
/// 1 ms ticks (a batch per tick via feed + flush), stamping each batch just before writing.
#[allow(clippy::too_many_arguments)] // one call site
async fn firehose(
    listener: std::net::TcpListener,
    frames: Vec<String>,
    rate: u32,
    warm_n: usize,
    stamps: Arc<Vec<AtomicU64>>,
    base: Instant,
    connected: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
    done: oneshot::Sender<SendStats>,
) {
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let (stream, _) = listener.accept().await.expect("the daemon connects");
    stream.set_nodelay(true).expect("nodelay");
    let ws = tokio_tungstenite::accept_async(stream)
        .await
        .expect("WebSocket handshake");
    let (mut sink, mut source) = ws.split();
    // Reads (pings, close) until the daemon hangs up.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = source.next().await {} });
    let _ = connected.send(());
    if go.await.is_err() {
        return;
    }
    let total = frames.len();
    let mut frames = frames.into_iter();
    let mut sent = 0usize;
    let mut warm_at = None;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ok = true;
    // A daemon that cannot keep up pushes back through TCP; stop writing at 1.2x the planned
    // time (plus 1 s) so an overloaded run ends, and report the rate actually achieved.
    let planned = total as f64 / f64::from(rate.max(1));
    let deadline = start + Duration::from_secs_f64(planned * 1.2 + 1.0);
    while sent < total && ok && Instant::now() < deadline {
        tick.tick().await;
        // At most 20 ms worth per batch, so a stalled socket does not turn into one huge batch.
        let due = ((start.elapsed().as_secs_f64() * f64::from(rate)) as usize)
            .min(total)
            .min(sent + (rate as usize / 50).max(1_000));
        if due <= sent {
            continue;
        }
        let now = base.elapsed().as_nanos() as u64 + 1;
        if warm_at.is_none() && due > warm_n {
            warm_at = Some(Instant::now());
        }
        for i in sent..due {
            stamps[i + 1].store(now, Ordering::Relaxed);
        }
        for f in frames.by_ref().take(due - sent) {
            if sink.feed(Message::Text(f.into())).await.is_err() {
                ok = false;
                break;
            }
        }
        ok = ok && sink.flush().await.is_ok();
        sent = due;
    }
    let end = Instant::now();
    let measured = sent.saturating_sub(warm_n) as u64;
    let secs = warm_at.map_or(0.0, |w| end.duration_since(w).as_secs_f64());
    let _ = done.send(SendStats {
        sent: sent as u64,
        measured,
        // The first measured batch is stamped at `warm_at`; count from its first frame.
        achieved: if secs > 0.0 { measured as f64 / secs } else { 0.0 },
    });
    // Keep the connection open until the daemon stops.
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
}

/// What the subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    /// (sent, latency) in ns of `alert` messages on the socket, comment sent after the warm-up.
    socket: Vec<(u64, u64)>,
    /// Latency in ns of the same alerts at the hub's broadcast (in-process, no socket).
    hub: Vec<u64>,
    /// `update` messages on the socket.
    updates: usize,
    /// `lagged` notes on the socket, and lag on the in-process receiver.
    lagged: usize,
    hub_lagged: u64,
}

/// The latency of an alert whose JSON is `json`, received at `now`: (sent, latency), if its
/// comment was sent after the warm-up.
fn timing(json: &str, stamps: &[AtomicU64], now: u64, warm_n: u64) -> Option<(u64, u64)> {
    let seq = first_msg_seq(json)?;
    let sent = stamps.get(seq as usize)?.load(Ordering::Relaxed);
    (seq > warm_n && sent > 0).then(|| (sent, now.saturating_sub(sent)))
}

/// The alert subscriber: a real client of `/ws/alerts` timing every `alert` message by its
/// first comment, plus an in-process receiver of the hub's broadcast timing the same alerts
/// before the server and the socket.
async fn subscribe(
    addr: SocketAddr,
    mut hub: broadcast::Receiver<Arc<HubMsg>>,
    stamps: Arc<Vec<AtomicU64>>,
    base: Instant,
    warm_n: u64,
    ready: oneshot::Sender<()>,
    mut stop: oneshot::Receiver<()>,
) -> Seen {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/alerts"))
        .await
        .expect("subscribe");
    let (_sink, mut stream) = ws.split();
    let mut seen = Seen {
        socket: Vec::with_capacity(1 << 20),
        hub: Vec::with_capacity(1 << 20),
        ..Seen::default()
    };
    let mut ready = Some(ready);
    let mut hub_open = true;
    loop {
        let msg = tokio::select! {
            _ = &mut stop => break,
            m = hub.recv(), if hub_open => {
                match m {
                    Ok(m) if m.kind == liveguard::alerts::MsgKind::Alert => {
                        let now = base.elapsed().as_nanos() as u64 + 1;
                        if let Some((_, lat)) = timing(&m.json, &stamps, now, warm_n) {
                            seen.hub.push(lat);
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => seen.hub_lagged += n,
                    Err(broadcast::error::RecvError::Closed) => hub_open = false,
                }
                continue;
            }
            m = stream.next() => m,
        };
        let Some(Ok(Message::Text(t))) = msg else {
            if matches!(msg, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                break;
            }
            continue;
        };
        let now = base.elapsed().as_nanos() as u64 + 1;
        let t = t.as_str();
        if t.starts_with(r#"{"type":"alert""#) {
            seen.socket.extend(timing(t, &stamps, now, warm_n));
        } else if t.starts_with(r#"{"type":"update""#) {
            seen.updates += 1;
        } else if t.contains(r#""type":"lagged""#) {
            seen.lagged += 1;
        } else if let Some(r) = ready.take() {
            // The hello message.
            let _ = r.send(());
        }
    }
    seen
}

/// The generator sequence in the alert's first message id (`sim-SEED-SEQ`).
fn first_msg_seq(json: &str) -> Option<u64> {
    const KEY: &str = r#""msg_ids":[""#;
    let at = json.find(KEY)? + KEY.len();
    let rest = json.get(at..)?;
    let id = rest.get(..rest.find('"')?)?;
    id.rsplit('-').next()?.parse().ok()
}

async fn counters(addr: SocketAddr) -> Counters {
    let body = get(addr, "/metrics").await;
    let sum = |prefix: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Counters {
        comments: sum("liveguard_comments_total"),
        shed: sum("liveguard_shed_neutral_total"),
        parse_errors: sum("liveguard_parse_errors_total"),
        duplicates: sum("liveguard_duplicates_total"),
        missed: sum("liveguard_subscriber_missed_total"),
        publish: (
            quantile(&body, "liveguard_alert_latency_seconds", 0.5),
            quantile(&body, "liveguard_alert_latency_seconds", 0.99),
        ),
        commit: (
            quantile(&body, "liveguard_store_commit_seconds", 0.5),
            quantile(&body, "liveguard_store_commit_seconds", 0.99),
        ),
        commits: sum("liveguard_store_commits_total"),
        writes: sum("liveguard_store_writes_total"),
    }
}

/// The `q` quantile of Prometheus histogram `name` in `metrics`, in ms: the upper bound of
/// the first bucket holding it.
fn quantile(metrics: &str, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|b| b.1 >= q * total && total > 0.0)
        .map_or(f64::NAN, |b| b.0 * 1e3)
}

/// A plain HTTP/1.1 GET; returns the body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the daemon");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("response in time")
        .expect("read response");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// (thread name, tid, utime + stime in clock ticks) of every thread of this process.
fn thread_cpu() -> Vec<(String, u64, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u64 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after = stat.get(stat.rfind(')')? + 2..)?;
        let f: Vec<&str> = after.split(' ').collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some((name.trim().to_string(), tid, ticks))
    })
    .collect()
}

/// Clock ticks per second for /proc times (USER_HZ; 100 on Linux).
/// Busy clock ticks of the whole machine (all but idle and iowait), from /proc/stat.
fn system_busy() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    f.iter().take(8).sum::<u64>() - f.get(3).copied().unwrap_or(0) - f.get(4).copied().unwrap_or(0)
}

/// utime + stime of this process (all its threads, live or gone), clock ticks.
fn process_cpu() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return 0;
    };
    let f: Vec<&str> = after.split(' ').collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn clock_ticks() -> f64 {
    100.0
}

fn pipeline_now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
