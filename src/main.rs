//! The `liveguard` command line: parses flags, calls the library, maps outcomes to exit codes
//! (0 ok, 1 finished but a check failed, 2 error).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use liveguard::cli::report::ReportFormat;
use liveguard::cli::{self, InputFormat};
use liveguard::config::Config;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::Format;
use liveguard::rules::{self, RuleSet, RuleSource};
use liveguard::simulate::{self, SimConfig};
use liveguard::store::insights::StatsQuery;

// glibc's malloc spent a third of the workers' and the store writer's time at 100k comments/s
// (alerts are built on the workers and freed on the writer: arena locks, consolidation);
// mimalloc's thread-local free lists cut it (BENCHMARKS.md, pipeline). benches/pipeline.rs
// declares the same, so it measures what this binary runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "liveguard",
    version,
    about = "Flags genuine complaints and malicious attacks in live-commerce comments"
)]
struct Args {
    /// Log format on stderr (levels via RUST_LOG, default liveguard=info).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        global = true,
        env = "LIVEGUARD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Daemon flags; each overrides the config file and has a LIVEGUARD_* variable.
#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file.
    #[arg(long, env = "LIVEGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// Watch this firehose (replaces the file's sources).
    #[arg(long, env = "LIVEGUARD_SOURCE")]
    source: Option<String>,
    /// Input format of --source.
    #[arg(long, value_enum, default_value = "canonical", env = "LIVEGUARD_FORMAT")]
    format: Format,
    /// Rule packs directory [default: the config's `rules`, else /etc/liveguard/rules when it
    /// exists, else the packs built into the binary].
    #[arg(long, env = "LIVEGUARD_RULES")]
    rules: Option<PathBuf>,
    /// HTTP listen address [default: the config's `listen`, else 127.0.0.1:8787].
    #[arg(long, env = "LIVEGUARD_LISTEN")]
    listen: Option<String>,
    /// Consume comments from this NATS server (JetStream) instead of reading firehoses.
    #[arg(long, env = "LIVEGUARD_NATS", requires = "partitions")]
    nats: Option<String>,
    /// The partitions this instance owns, e.g. `0-3` or `4,5,6,7` (with --nats).
    #[arg(long, env = "LIVEGUARD_PARTITIONS")]
    partitions: Option<String>,
    /// Rooms are hashed over this many partitions [default: what the comment stream records].
    #[arg(long)]
    partition_count: Option<u32>,
}

/// `bridge` flags.
#[derive(clap::Args)]
struct BridgeArgs {
    /// The NATS server (JetStream) to publish to.
    #[arg(long, env = "LIVEGUARD_NATS")]
    nats: Option<String>,
    /// Hash rooms over this many partitions (fixed for the life of the streams).
    #[arg(long)]
    partitions: Option<u32>,
    /// Configuration file (its [[source]]s and [bus]).
    #[arg(long, env = "LIVEGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// Watch this firehose (replaces the file's sources).
    #[arg(long, env = "LIVEGUARD_SOURCE")]
    source: Option<String>,
    /// Input format of --source.
    #[arg(long, value_enum, default_value = "canonical", env = "LIVEGUARD_FORMAT")]
    format: Format,
    /// Serve /metrics and /healthz here (e.g. 127.0.0.1:8786).
    #[arg(long, env = "LIVEGUARD_LISTEN")]
    listen: Option<String>,
}

/// `report` flags.
#[derive(clap::Args)]
struct ReportArgs {
    /// Window start: a duration back from now (90s, 30m, 24h, 7d) or ms since the epoch.
    #[arg(long, default_value = "7d")]
    since: String,
    /// Window end (exclusive), ms since the epoch or a duration back from now; default now.
    #[arg(long)]
    until: Option<String>,
    /// Only this room.
    #[arg(long)]
    room: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
    /// The state database (default: the config's store, else the state directory's).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Read the demo's database (what `liveguard demo` wrote).
    #[arg(long, conflicts_with_all = ["db", "config"])]
    demo: bool,
    /// Configuration file (for its [store] path).
    #[arg(long, env = "LIVEGUARD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Classify comments from stdin: one JSON verdict per line on stdout.
    Classify {
        /// Rule packs directory [default: /etc/liveguard/rules when it exists, else the packs
        /// built into the binary].
        #[arg(long, env = "LIVEGUARD_RULES")]
        rules: Option<PathBuf>,
        /// Input: JSON lines with at least `text`, or plain text lines.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: InputFormat,
    },
    /// Run the daemon: watch firehoses (or, with --nats, consume partitions from the bus),
    /// serve alerts on /ws/alerts, /api/alerts, /metrics.
    Run(RunArgs),
    /// The edge: read firehoses and publish their events to NATS JetStream, rooms hashed over
    /// partitions, for `run --nats` instances to classify.
    Bridge(BridgeArgs),
    /// A console gateway: every partition's alerts from the bus on /ws/alerts, /api/alerts and
    /// /console; console actions go to each alert's owner.
    Console {
        /// The NATS server (JetStream).
        #[arg(long, env = "LIVEGUARD_NATS")]
        nats: String,
        /// Configuration file ([auth], [tls], [store], [bus]...).
        #[arg(long, env = "LIVEGUARD_CONFIG")]
        config: Option<PathBuf>,
        /// HTTP listen address [default: the config's `listen`, else 127.0.0.1:8787].
        #[arg(long, env = "LIVEGUARD_LISTEN")]
        listen: Option<String>,
    },
    /// Serve a simulated comment firehose over WebSocket.
    Simulate {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Comments per second per connection.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Rooms the comments spread over.
        #[arg(long, default_value_t = 3)]
        rooms: u32,
        /// Stop each stream after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "canonical")]
        format: Format,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Start the simulator and the daemon together on localhost and print the URLs.
    Demo {
        /// Daemon listen address.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: String,
        /// Simulated comments per second.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        /// Simulated rooms.
        #[arg(long, default_value_t = 3)]
        rooms: u32,
        /// Rule packs directory [default: /etc/liveguard/rules when it exists, else the packs
        /// built into the binary].
        #[arg(long, env = "LIVEGUARD_RULES")]
        rules: Option<PathBuf>,
    },
    /// Complaints, attacks, ticket response times and rule false-positive rates over a window,
    /// read from the state database (safe while the daemon runs).
    Report(ReportArgs),
    /// Validate a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The floor's decisions as training labels.
    Feedback {
        #[command(subcommand)]
        command: FeedbackCommand,
    },
    /// Train the model from labelled JSONL (`{"text","label","topic"?}`), print
    /// cross-validated figures, and write the model file the daemon hot-reloads.
    Train(TrainArgs),
    /// Validate and debug rule packs.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum FeedbackCommand {
    /// Write the floor's decisions (invite, script, resolve, mute, dismiss, reported misses)
    /// as training JSONL on stdout, each with the verdict it confirmed or corrected.
    Export {
        /// Only decisions on alerts changed in this window (90s, 30m, 24h, 7d, or ms since
        /// the epoch).
        #[arg(long, default_value = "3650d")]
        since: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Which state database to read.
#[derive(clap::Args)]
struct DbArgs {
    /// The state database (default: the config's store, else the state directory's).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Configuration file (for its [store] path).
    #[arg(long, env = "LIVEGUARD_CONFIG")]
    config: Option<PathBuf>,
}

impl DbArgs {
    fn path(&self) -> anyhow::Result<PathBuf> {
        Ok(match (&self.db, &self.config) {
            (Some(db), _) => db.clone(),
            (None, Some(path)) => Config::load(path)?.store.db_path(),
            (None, None) => liveguard::store::StoreConfig::default().db_path(),
        })
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Labelled JSONL files, or directories of them (every `*.jsonl`, sorted).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Rule packs directory (the model learns from what the rules fire); default as `run`.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Where to write the model (`-` for none: cross-validate only).
    #[arg(long, default_value = "rules/model/liveguard.lgm")]
    out: PathBuf,
    /// Cross-validation folds (0: skip).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Shuffling seed.
    #[arg(long, default_value_t = liveguard::train::Options::default().seed)]
    seed: u64,
    /// Passes over the data.
    #[arg(long, default_value_t = liveguard::train::Options::default().epochs)]
    epochs: u32,
    /// AdaGrad step.
    #[arg(long, default_value_t = liveguard::train::Options::default().rate)]
    rate: f32,
    /// L2 penalty.
    #[arg(long, default_value_t = liveguard::train::Options::default().l2)]
    l2: f32,
    /// Weigh the items of files under PATH by W (`PATH=W`, repeatable), e.g. real comments
    /// over written ones.
    #[arg(long = "weight", value_name = "PATH=W")]
    weights: Vec<String>,
    /// Fold in the floor's decisions from this state database (repeatable): confirmations and
    /// dismissals, weighted by --feedback-weight, listed first so they win over older data.
    #[arg(long)]
    feedback: Vec<PathBuf>,
    /// Weight of one floor decision against one written item (a weight of w is w updates).
    #[arg(long, default_value_t = 8.0)]
    feedback_weight: f32,
    /// Class table size in bits (rows = 2^bits).
    #[arg(long, default_value_t = liveguard::train::Options::default().bits)]
    bits: u32,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check FILE as `run` would (unknown keys, bad values, addresses, URLs, sources, and the
    /// rules it names): every problem as `file:line: message`.
    Check {
        /// The configuration file.
        #[arg(default_value = "liveguard.toml")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate every pack and run every [[example]].
    Check {
        /// Rule packs directory [default: /etc/liveguard/rules when it exists, else the packs
        /// built into the binary].
        dir: Option<PathBuf>,
    },
    /// Show the normalized text and every rule that fires for TEXT (a dry run).
    Explain {
        /// The comment to explain.
        text: String,
        /// Rule packs directory [default: /etc/liveguard/rules when it exists, else the packs
        /// built into the binary].
        #[arg(long, env = "LIVEGUARD_RULES")]
        rules: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // `run --help` shows where the rules and the database come from on this machine.
    let matches = Args::command()
        .mut_subcommand("run", |c| c.after_help(run_defaults()))
        .get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    init_logging(args.log_format);
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("liveguard: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The `run --help` epilogue: the defaults as they resolve here and now.
fn run_defaults() -> String {
    let system = Path::new(rules::source::SYSTEM_DIR);
    let built_in: Vec<&str> = rules::source::built_in().iter().map(|(rel, _)| *rel).collect();
    format!(
        "Defaults:\n  \
         rules     --rules DIR, else $LIVEGUARD_RULES, else `rules` in --config, else {} ({}), else\n            \
         the packs built into this binary ({})\n  \
         database  `[store] path` in --config, else {}\n            \
         (liveguard.db in $LIVEGUARD_STATE_DIR, else $STATE_DIRECTORY, else\n            \
         $XDG_STATE_HOME/liveguard, else ~/.local/state/liveguard)\n  \
         listen    127.0.0.1:8787\n  \
         health    /healthz answers 503 when a source is down or silent for {} s (source_down_ms)",
        system.display(),
        if system.is_dir() { "present here" } else { "absent here" },
        built_in.join(", "),
        liveguard::store::StoreConfig::default().db_path().display(),
        liveguard::config::SOURCE_DOWN_MS / 1000,
    )
}

/// The rule set `explicit` names, or the default one (see [`RuleSource::resolve`]), compiled.
fn load(explicit: Option<&Path>) -> anyhow::Result<RuleSet> {
    liveguard::normalize::warm_up();
    let source = RuleSource::resolve(explicit);
    rules::load(&source).with_context(|| format!("rules in {source}"))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("liveguard=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn daemon_config(a: RunArgs) -> anyhow::Result<Config> {
    let mut cfg = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(url) = a.source {
        cfg.sources = vec![SourceConfig::new(&url, a.format)];
    }
    if let Some(r) = a.rules {
        cfg.rules = Some(r);
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(url) = a.nats {
        cfg.bus.url = url;
    }
    if let Some(p) = a.partitions {
        cfg.bus.partitions = p;
    }
    if a.partition_count.is_some() {
        cfg.bus.partition_count = a.partition_count;
    }
    if cfg.sources.is_empty() && !cfg.bus.enabled() {
        anyhow::bail!("no firehose to watch: give --source ws://HOST:PORT/PATH or [[source]] in --config");
    }
    Ok(cfg)
}

async fn run_daemon(cfg: Config) -> anyhow::Result<()> {
    let what = match (cfg.bus.enabled(), cfg.bus.console) {
        (true, true) => format!("mirroring every partition from {}", cfg.bus.url),
        (true, false) => format!("consuming partitions {} from {}", cfg.bus.partitions, cfg.bus.url),
        (false, _) => format!("watching {} firehose(s)", cfg.sources.len()),
    };
    let daemon = liveguard::daemon::start(cfg).await?;
    // Rules compiled, listener bound, sources started: tell systemd (no-op without it).
    let status = format!("{what}; alerts on http://{}", daemon.addr);
    if let Err(e) = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
    liveguard::shutdown::os_signal().await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down");
    daemon.stop(Duration::from_secs(5)).await;
    Ok(())
}

fn bridge_config(a: BridgeArgs) -> anyhow::Result<liveguard::bus::bridge::BridgeConfig> {
    let mut cfg = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(url) = a.source {
        cfg.sources = vec![SourceConfig::new(&url, a.format)];
    }
    if let Some(url) = a.nats {
        cfg.bus.url = url;
    }
    if !cfg.bus.enabled() {
        anyhow::bail!("no bus: give --nats nats://HOST:4222 or [bus] url in --config");
    }
    if cfg.sources.is_empty() {
        anyhow::bail!("no firehose to read: give --source ws://HOST:PORT/PATH or [[source]] in --config");
    }
    let partitions = a
        .partitions
        .or(cfg.bus.partition_count)
        .context("no partition count: give --partitions P or [bus] partition_count")?;
    if partitions == 0 {
        anyhow::bail!("--partitions must be at least 1");
    }
    Ok(liveguard::bus::bridge::BridgeConfig {
        sources: cfg.sources,
        bus: cfg.bus,
        partitions,
        source_down_ms: cfg.source_down_ms,
        listen: a.listen,
    })
}

async fn run_bridge(cfg: liveguard::bus::bridge::BridgeConfig) -> anyhow::Result<()> {
    let bridge = liveguard::bus::bridge::start(cfg).await?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    liveguard::shutdown::os_signal().await;
    tracing::info!("shutting down");
    bridge.stop(Duration::from_secs(5)).await;
    Ok(())
}

fn report(a: ReportArgs) -> anyhow::Result<()> {
    let db = match (a.db, &a.config) {
        _ if a.demo => liveguard::store::demo_db_path(),
        (Some(db), _) => db,
        (None, Some(path)) => Config::load(path)?.store.db_path(),
        (None, None) => liveguard::store::StoreConfig::default().db_path(),
    };
    let demo = liveguard::store::demo_db_path();
    if !db.exists() && !a.demo && demo.exists() {
        anyhow::bail!(
            "no database at {}; the demo's is {}: add --demo to read it",
            db.display(),
            demo.display()
        );
    }
    let now = liveguard::clock::now_ms();
    let q = StatsQuery::parse(&a.since, a.until.as_deref(), a.room.as_deref(), now)
        .map_err(anyhow::Error::msg)?;
    let conn = liveguard::store::open_reader(&db)?;
    let stats = liveguard::store::insights::stats(&conn, &q)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    cli::report::render(&stats, a.format, &mut out)?;
    out.flush()?;
    Ok(())
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Run(a) => {
            let cfg = daemon_config(a)?;
            runtime()?.block_on(run_daemon(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Console { nats, config, listen } => {
            let mut cfg = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            cfg.bus.url = nats;
            cfg.bus.console = true;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            runtime()?.block_on(run_daemon(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bridge(a) => {
            let cfg = bridge_config(a)?;
            runtime()?.block_on(run_bridge(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            port,
            rate,
            rooms,
            seconds,
            format,
            seed,
        } => {
            let cfg = SimConfig {
                rate,
                rooms,
                seconds,
                format,
                seed,
                mix: simulate::Mix::Live,
            };
            runtime()?.block_on(serve_simulator(port, cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen,
            rate,
            rooms,
            rules,
        } => {
            runtime()?.block_on(demo(listen, rate, rooms, rules))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify { rules, format } => classify(rules.as_deref(), format),
        Command::Train(a) => train(&a),
        Command::Feedback {
            command: FeedbackCommand::Export { since, db },
        } => feedback_export(&since, &db),
        Command::Report(a) => {
            report(a)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => Ok(config_check(&file)),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => Ok(rules_check(dir.as_deref())),
        Command::Rules {
            command: RulesCommand::Explain { text, rules },
        } => {
            let set = load(rules.as_deref())?;
            cli::explain(&set, &text, &mut io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `liveguard simulate`: a simulated firehose on `port` until Ctrl-C.
async fn serve_simulator(port: u16, cfg: SimConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .context("bind simulator")?;
    let addr = listener.local_addr()?;
    println!(
        "simulated firehose: ws://{addr}/  ({} comments/s over {} rooms, {})",
        cfg.rate,
        cfg.rooms,
        cfg.format.as_str()
    );
    let (trigger, shutdown) = liveguard::shutdown::channel();
    let server = tokio::spawn(simulate::serve(listener, cfg, shutdown));
    liveguard::shutdown::os_signal().await;
    trigger.fire();
    let _ = server.await;
    Ok(())
}

/// `liveguard demo`: the daemon reading a built-in simulated firehose, its history in the
/// demo database, until Ctrl-C.
async fn demo(listen: String, rate: u32, rooms: u32, rules: Option<PathBuf>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind simulator")?;
    let sim = listener.local_addr()?;
    let (trigger, shutdown) = liveguard::shutdown::channel();
    let sim_cfg = SimConfig {
        rate,
        rooms,
        seconds: None,
        format: Format::Canonical,
        seed: 1,
        mix: simulate::Mix::Live,
    };
    let sim_task = tokio::spawn(simulate::serve(listener, sim_cfg, shutdown));
    let cfg = Config {
        listen,
        rules,
        sources: vec![SourceConfig::new(&format!("ws://{sim}/"), Format::Canonical)],
        // Simulated alerts stay out of the real history.
        store: liveguard::store::StoreConfig {
            path: Some(liveguard::store::demo_db_path()),
            ..Default::default()
        },
        ..Config::default()
    };
    let daemon = liveguard::daemon::start(cfg).await?;
    let a = daemon.addr;
    println!("liveguard demo: {rate} simulated comments/s over {rooms} rooms");
    println!("  console             http://{a}/console");
    println!("  overlay (room-0)    http://{a}/overlay?room=room-0");
    println!("  simulated firehose  ws://{sim}/");
    println!("  alerts (WebSocket)  ws://{a}/ws/alerts?since=0");
    println!("  recent alerts       http://{a}/api/alerts");
    println!("  insights            http://{a}/api/stats?since=24h");
    println!(
        "  state database      {}  (liveguard report --demo)",
        daemon.hub.path().display()
    );
    println!("  metrics             http://{a}/metrics");
    println!("  health              http://{a}/healthz");
    println!("Ctrl-C to stop.");
    liveguard::shutdown::os_signal().await;
    trigger.fire();
    daemon.stop(Duration::from_secs(5)).await;
    let _ = sim_task.await;
    Ok(())
}

/// `liveguard classify`: JSON lines in, verdicts out; exit 1 when a line failed.
fn classify(rules: Option<&Path>, format: cli::InputFormat) -> anyhow::Result<ExitCode> {
    let set = load(rules)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let stats = cli::classify_stream(&set, io::stdin().lock(), &mut out, &mut io::stderr(), format)
        .context("classify")?;
    out.flush()?;
    Ok(if stats.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `liveguard feedback export`: the floor's decisions as training JSON lines.
fn feedback_export(since: &str, db: &DbArgs) -> anyhow::Result<ExitCode> {
    let since = liveguard::store::insights::parse_since(since, liveguard::clock::now_ms())
        .map_err(anyhow::Error::msg)?;
    let conn = liveguard::store::open_reader(&db.path()?)?;
    let labels = liveguard::store::feedback::floor_labels(&conn, since)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for l in &labels {
        serde_json::to_writer(&mut out, l)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("{} floor decision(s) exported", labels.len());
    Ok(ExitCode::SUCCESS)
}

/// `liveguard rules check`: compile the packs and run their examples (exit 2: errors,
/// 1: failing examples).
fn rules_check(dir: Option<&Path>) -> ExitCode {
    let source = RuleSource::resolve(dir);
    let set = match rules::load(&source) {
        Ok(set) => set,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("liveguard rules check: {} error(s) in {source}", errs.0.len());
            return ExitCode::from(2);
        }
    };
    let (ran, failures) = cli::check_examples(&set);
    for f in &failures {
        println!("{}", f.message);
    }
    println!(
        "{source}: {} pack(s), {} groups, {} terms; {} of {} examples pass",
        set.packs.len(),
        set.groups().len(),
        set.term_count,
        ran - failures.len(),
        ran
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn train(a: &TrainArgs) -> anyhow::Result<ExitCode> {
    use liveguard::cli::train as t;
    let set = rules::load_packs(&RuleSource::resolve(a.rules.as_deref()))
        .map_err(|e| anyhow::anyhow!("rules: {e}"))?;
    let files = t::training_files(&a.inputs)?;
    let weights = a
        .weights
        .iter()
        .map(|w| t::parse_weight(w))
        .collect::<Result<Vec<_>, _>>()?;
    let mut extra = Vec::new();
    for db in &a.feedback {
        let conn = liveguard::store::open_reader(db)?;
        let labels = liveguard::store::feedback::floor_labels(&conn, 0)?;
        extra.push(t::feedback_items(
            &db.display().to_string(),
            &labels,
            a.feedback_weight,
        ));
    }
    extra.push(t::examples_of(&set));
    let (items, names) = t::load_items(&files, &weights, extra)?;
    let opts = liveguard::train::Options {
        folds: a.folds,
        seed: a.seed,
        epochs: a.epochs,
        rate: a.rate,
        l2: a.l2,
        bits: a.bits.clamp(8, 22),
        ..Default::default()
    };
    let model = t::run(&set, items, &names, &opts, &mut io::stdout().lock())?;
    if a.out.as_os_str() != "-" {
        let n = t::write_model(&model, &a.out).with_context(|| format!("write {}", a.out.display()))?;
        println!("\nmodel written: {} ({n} bytes)", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `liveguard config check FILE`: the checks `run --config FILE` makes before it starts, each
/// problem on its own line as `file:line: message`. Exit 0 when `run` would start, else 2.
fn config_check(file: &Path) -> ExitCode {
    let cfg = match Config::load(file) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!(
                "liveguard config check: {} problem(s) in {}",
                errs.0.len(),
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut problems = Vec::new();
    if cfg.sources.is_empty() {
        problems.push(format!(
            "{}:1: no [[source]]: `liveguard run --config {}` would have no firehose to watch (add a [[source]] or pass --source)",
            file.display(),
            file.display()
        ));
    }
    let source = RuleSource::resolve(cfg.rules.as_deref());
    let rules = rules::load(&source);
    if let Err(errs) = &rules {
        for e in &errs.0 {
            // A directory that cannot be read is the config's `rules` line at fault.
            let line = (e.line == 0 && source.dir() == Some(e.path.as_path()))
                .then(|| std::fs::read_to_string(file).ok())
                .flatten()
                .and_then(|text| {
                    liveguard::config::line_of_key_in(&text, &[liveguard::config::Key::Name("rules".into())])
                });
            problems.push(match line {
                Some(l) => format!("{}:{l}: rules: {e}", file.display()),
                None => e.to_string(),
            });
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    match rules {
        Ok(set) if problems.is_empty() => {
            println!(
                "{}: ok ({} source(s), {} rule pack(s) from {source}, listening on {})",
                file.display(),
                cfg.sources.len(),
                set.packs.len(),
                cfg.listen
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "liveguard config check: {} problem(s) in {}",
                problems.len(),
                file.display()
            );
            ExitCode::from(2)
        }
    }
}
