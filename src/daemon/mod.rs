//! Wiring: sources → [`intake`] (bounded, per-room shards) → [`worker`]s routing each comment
//! ([`Router`]) → [`Hub`] → store → server; [`reload`] swaps rules. Every task gets the shutdown signal; [`Daemon::stop`]
//! stops the sources, lets the workers drain what was already queued, then closes sockets.

pub mod intake;
pub mod reload;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::alerts::route::Router;
use crate::alerts::{Alert, Hub};
use crate::clock::now_ms;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::health::{Health, Watch};
use crate::history::Signals;
use crate::ingest::client;
use crate::metrics::Metrics;
use crate::rules::{self, RuleErrors, RuleSource};
use crate::server::{self, AppState};
use crate::shutdown::{self, Trigger};
use intake::{Intake, IntakeSink};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The rule packs do not compile.
    #[error(transparent)]
    Rules(#[from] RuleErrors),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The state database cannot be used.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The bus (NATS) cannot be used.
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Alerts.
    pub hub: Arc<Hub>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The live rules (swap to reload).
    pub rules: Arc<ArcSwap<crate::rules::RuleSet>>,
    trigger: Trigger,
    sources: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
}

/// Starts everything on the wall clock; returns once the server is listening.
pub async fn start(cfg: Config) -> Result<Daemon, StartError> {
    start_with_clock(cfg, crate::clock::system()).await
}

/// Starts everything reading time from `clock` (tests move a manual clock to reach ticket
/// deadlines); returns once the server is listening.
pub async fn start_with_clock(cfg: Config, clock: Arc<dyn Clock>) -> Result<Daemon, StartError> {
    let problems: Vec<String> = cfg.check().iter().map(ToString::to_string).collect();
    if !problems.is_empty() {
        return Err(StartError::Config(problems.join("; ")));
    }
    crate::normalize::warm_up();
    // Token files and the certificate are files: read off the async threads.
    let (auth, tls_cfg) = (cfg.auth.clone(), cfg.tls.clone());
    let (keyring, tls) = tokio::task::spawn_blocking(move || {
        let ring = crate::auth::Keyring::build(&auth);
        let tls = tls_cfg.as_ref().map(crate::tls::load).transpose();
        (ring, tls)
    })
    .await
    .map_err(|e| StartError::Config(format!("loading tokens: {e}")))?;
    let keyring = keyring.map_err(|errs| {
        StartError::Config(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let tls = tls?.map(|c| Arc::new(crate::tls::Reloadable::new(c)));
    let source = RuleSource::resolve(cfg.rules.as_deref());
    let set = rules::load(&source)?;
    tracing::info!(rules = %source, packs = set.packs.len(), terms = set.term_count, "rules loaded");
    let rules = Arc::new(ArcSwap::from_pointee(set));
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen.clone(),
        source,
    })?;
    let metrics = Arc::new(Metrics::new());
    metrics.set_label_cap(cfg.limits.max_label_values);
    // With a bus, the owned partitions' alerts are rebuilt into the database before the store
    // opens, so their tickets are scheduled like local ones.
    let (bus, console) = match (cfg.bus.enabled(), cfg.bus.console) {
        (true, false) => (
            Some(crate::bus::consume::prepare(&cfg.bus, &cfg.store).await?),
            None,
        ),
        (true, true) => (
            None,
            Some(crate::bus::gateway::prepare(&cfg.bus, &cfg.store).await?),
        ),
        (false, _) => (None, None),
    };
    let (store_cfg, tickets, fanout, m) = (
        cfg.store.clone(),
        cfg.tickets.clone(),
        cfg.fanout_capacity,
        metrics.clone(),
    );
    // Opening reads the database: off the async threads.
    let hub = tokio::task::spawn_blocking(move || Hub::open(&store_cfg, tickets, fanout, m))
        .await
        .map_err(|e| StartError::Config(format!("opening the store: {e}")))??;
    let router = Arc::new(
        Router::new(
            rules.clone(),
            Signals::new(cfg.signals.clone()),
            hub.clone(),
            metrics.clone(),
        )
        .with_comment_chars(cfg.limits.comment_chars),
    );
    let (trigger, shutdown) = shutdown::channel();
    let reload_status = reload::SharedStatus::default();
    let reload_tasks = spawn_reload(&cfg, &source, &rules, &reload_status, &metrics, &trigger);
    let mut others: Vec<JoinHandle<()>> = Vec::new();
    let (intake, receivers) = Intake::new(cfg.workers, cfg.queue_capacity, rules.clone(), metrics.clone());
    let intake = Arc::new(intake);

    let (dedupe_window_ms, dedupe_max_ids) = (cfg.dedupe_window_ms, cfg.dedupe_max_ids / cfg.workers.max(1));
    let workers = receivers
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            worker::spawn(
                i,
                rx,
                router.clone(),
                clock.clone(),
                dedupe_window_ms,
                dedupe_max_ids,
            )
        })
        .collect();

    // With a bus the bridges hold the firehoses; this instance reads its partitions.
    let sources_cfg: &[crate::ingest::client::SourceConfig] =
        if cfg.bus.enabled() { &[] } else { &cfg.sources };
    if cfg.bus.enabled() && !cfg.sources.is_empty() {
        tracing::info!(
            sources = cfg.sources.len(),
            "[bus] is set: the [[source]]s are the bridge's, not read here"
        );
    }
    let mut names: Vec<(String, Option<String>)> = sources_cfg
        .iter()
        .map(|s| (s.display_name().to_string(), s.room.clone()))
        .collect();
    // The bus is watched like a source: unreachable past source_down_ms is degraded.
    if cfg.bus.enabled() {
        names.push((crate::bus::bridge::BUS_HEALTH_NAME.into(), None));
    }
    let health = Health::new(&names, cfg.source_down_ms, SystemClock.now_ms());
    let sources = sources_cfg
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let h = health.source(i)?;
            Some(tokio::spawn(client::run(
                s.clone(),
                IntakeSink::new(intake.clone()),
                metrics.clone(),
                h,
                trigger.subscribe(),
            )))
        })
        .collect();
    let mut workers: Vec<JoinHandle<()>> = workers;
    if let Some(prepared) = bus {
        let settings = crate::bus::consume::Settings {
            batch: cfg.bus.batch.max(1),
            dedupe_window_ms,
            dedupe_max_ids,
            health: health.source(sources_cfg.len()),
        };
        workers.extend(crate::bus::consume::spawn(
            prepared, &cfg.bus, &settings, &router, &clock, &metrics, &trigger,
        ));
    }
    let remote = console.map(|p| {
        others.push(crate::bus::gateway::spawn(
            &p,
            &hub,
            &metrics,
            health.source(sources_cfg.len()),
            trigger.subscribe(),
        ));
        Arc::new(crate::bus::actions::Remote::new(p.client, p.count))
            as Arc<dyn server::actions::RemoteActions>
    });
    let health_task = spawn_health(&health, &hub, &metrics, &clock, trigger.subscribe());

    let sweeper = {
        let (router, intake, metrics, clock) = (router, intake.clone(), metrics.clone(), clock.clone());
        // A gateway's tickets are the owners' to remind (their reminders arrive as versions).
        let tick_tickets = remote.is_none();
        let mut shutdown = trigger.subscribe();
        let every = Duration::from_millis(cfg.sweep_interval_ms.max(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tick.tick() => {
                        let now = clock.now_ms();
                        // Walks every tracked user and room (milliseconds at 200,000
                        // users): on a blocking thread, not one the workers need.
                        let swept = tokio::task::spawn_blocking({
                            let router = router.clone();
                            move || router.sweep(now)
                        });
                        if let Err(e) = swept.await {
                            tracing::error!(error = %e, "the sweep panicked");
                        }
                        if tick_tickets {
                            router.hub.tick(now);
                        }
                        router.hub.drain().await;
                        metrics.queue_depth.set(intake.depth() as i64);
                    }
                }
            }
        })
    };
    let watchdog = spawn_watchdog(&intake, trigger.subscribe());
    drop(intake);

    // Prompts for the streamers' overlays: a small buffer, a prompt is only useful live.
    let (overlay, _) = tokio::sync::broadcast::channel(256);
    let auto_overlay = spawn_auto_overlay(
        &cfg.overlay_auto_rooms,
        &cfg.limits,
        &hub,
        &metrics,
        &overlay,
        trigger.subscribe(),
    );
    let guard = Arc::new(server::guard::Guard::new(
        &cfg.auth,
        &cfg.limits,
        addr,
        keyring,
        tls.is_some(),
        server::route_table(),
        metrics.clone(),
    ));
    others.extend(spawn_secrets_reload(
        &cfg,
        &guard,
        tls.as_ref(),
        &metrics,
        &trigger,
    ));
    let state = AppState {
        hub: hub.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        overlay,
        console: server::ConsoleSettings {
            response_ms: cfg.tickets.default.respond_ms,
        },
        clock: clock.clone(),
        reload: reload_status,
        health,
        guard,
        limits: cfg.limits.clone(),
        sockets: Arc::default(),
        remote,
    };
    let app = server::router(state, &cfg.auth.cors_origins);
    let serve = server::listen::Serve {
        max_connections: cfg.limits.max_connections,
        handshake_timeout: Duration::from_millis(cfg.limits.handshake_timeout_ms),
        tls,
        metrics: metrics.clone(),
    };
    let server = tokio::spawn(server::listen::run(
        listener,
        app,
        serve,
        shutdown,
        Duration::from_secs(5),
    ));
    tracing::info!(%addr, tls = cfg.tls.is_some(), tokens = cfg.auth.token.len(), "listening");
    others.extend([sweeper, server, health_task]);
    others.extend(auto_overlay);
    others.extend(reload_tasks);
    others.extend(watchdog);
    Ok(Daemon {
        addr,
        hub,
        metrics,
        rules,
        trigger,
        sources,
        workers,
        others,
    })
}

/// SIGHUP re-reads the config file's `[auth]` tokens (files and variables included) and the
/// `[tls]` certificate and key; what loads is swapped in, what does not is logged and
/// counted and the old set stays. Sessions of tokens that are gone end with them.
fn spawn_secrets_reload(
    cfg: &Config,
    guard: &Arc<server::guard::Guard>,
    tls: Option<&Arc<crate::tls::Reloadable>>,
    metrics: &Arc<Metrics>,
    trigger: &Trigger,
) -> Option<JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; tokens reload only on restart");
                return None;
            }
        };
        let (path, listen) = (cfg.path.clone(), cfg.listen.clone());
        let (fallback_auth, fallback_tls) = (cfg.auth.clone(), cfg.tls.clone());
        let (guard, tls, metrics) = (guard.clone(), tls.cloned(), metrics.clone());
        let mut shutdown = trigger.subscribe();
        Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    s = hup.recv() => if s.is_none() { return },
                }
                let (path, listen, fa, ft) = (
                    path.clone(),
                    listen.clone(),
                    fallback_auth.clone(),
                    fallback_tls.clone(),
                );
                let has_tls = tls.is_some();
                let loaded = tokio::task::spawn_blocking(move || {
                    reload_secrets(path.as_deref(), &listen, fa, ft, has_tls)
                })
                .await;
                match loaded {
                    Ok(Ok((ring, tls_cfg))) => {
                        let n = ring.len();
                        guard.keyring.store(Arc::new(ring));
                        if let (Some(t), Some(c)) = (&tls, tls_cfg) {
                            t.store(c);
                        }
                        metrics.auth_reload(true);
                        tracing::info!(tokens = n, "tokens and certificate reloaded");
                    }
                    Ok(Err(e)) => {
                        metrics.auth_reload(false);
                        tracing::error!(error = %e, "tokens or certificate reload failed; keeping the old ones");
                    }
                    Err(e) => {
                        metrics.auth_reload(false);
                        tracing::error!(error = %e, "tokens reload crashed; keeping the old ones");
                    }
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = (cfg, guard, tls, metrics, trigger);
        None
    }
}

/// Reads `[auth]` and `[tls]` afresh (blocking): from the config file when there is one,
/// else the start-up settings (token files and variables are still re-read).
fn reload_secrets(
    path: Option<&std::path::Path>,
    listen: &str,
    auth: crate::auth::AuthConfig,
    tls: Option<crate::tls::TlsConfig>,
    has_tls: bool,
) -> Result<(crate::auth::Keyring, Option<Arc<rustls::ServerConfig>>), String> {
    let (auth, tls) = match path {
        Some(p) => {
            let cfg = Config::load(p).map_err(|e| e.to_string())?;
            (cfg.auth, cfg.tls)
        }
        None => (auth, tls),
    };
    let ring = crate::auth::Keyring::build(&auth).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let protected = Config {
        listen: listen.to_string(),
        ..Config::default()
    };
    if let Some(p) = protected.unprotected(&ring) {
        return Err(p.to_string());
    }
    let tls = match (has_tls, tls) {
        (true, Some(t)) => Some(crate::tls::load(&t).map_err(|e| e.to_string())?),
        (true, None) => return Err("[tls] was removed: restart to serve plain HTTP".into()),
        (false, _) => None,
    };
    Ok((ring, tls))
}

/// Under systemd with `WatchdogSec=`, pings `WATCHDOG=1` at half the period, but only while
/// comments are moving: a full queue that did not drain since the last tick skips the ping,
/// so systemd restarts a daemon whose workers are stuck.
fn spawn_watchdog(intake: &Arc<Intake>, mut shutdown: crate::shutdown::Shutdown) -> Option<JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let intake = intake.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        let mut last_depth = 0;
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {
                    let depth = intake.depth();
                    let stuck = depth >= intake.capacity() && depth >= last_depth;
                    last_depth = depth;
                    if stuck {
                        tracing::warn!(depth, "queues full and not draining: skipping the watchdog ping");
                    } else if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                        tracing::warn!(error = %e, "watchdog ping failed");
                    }
                }
            }
        }
    }))
}

/// Loud when blind: checks the sources and the store a few times per `source_down_ms`; when a
/// problem starts or ends, logs it, sets the metrics and (for a source) raises an ops alert.
/// The store's failures get no alert: it could not be stored or sent until the store recovers.
fn spawn_health(
    health: &Arc<Health>,
    hub: &Arc<Hub>,
    metrics: &Arc<Metrics>,
    clock: &Arc<dyn Clock>,
    mut shutdown: crate::shutdown::Shutdown,
) -> JoinHandle<()> {
    let (health, hub, metrics, clock) = (health.clone(), hub.clone(), metrics.clone(), clock.clone());
    // A fifth of the threshold (within 50 ms .. 1 s): a problem shows soon after it is one.
    let every = Duration::from_millis((health.down_after_ms() / 5).clamp(50, 1_000));
    tokio::spawn(async move {
        let mut watch = Watch::default();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tick.tick() => {}
            }
            let store = hub.store_failure();
            metrics
                .store_failing_since_seconds
                .set(store.as_ref().map_or(0, |f| (f.since_ms / 1000) as i64));
            let problems = health.check(store.as_ref(), SystemClock.now_ms());
            metrics.degraded.set(i64::from(!problems.is_empty()));
            let (started, ended) = watch.update(problems);
            let mut ops = Vec::new();
            for p in started {
                tracing::warn!(source = ?p.source, state = p.state.as_str(), since_ms = p.since_ms, "{}", p.message);
                let Some(source) = &p.source else { continue };
                metrics.set_source_down(source, Some(p.since_ms));
                ops.push((p.room.clone(), p.message.clone()));
            }
            for p in ended {
                let back = match &p.source {
                    Some(s) => format!(
                        "source {s} is back after {} s: the watcher sees again",
                        (p.for_ms + 500) / 1000
                    ),
                    None => "the state database commits again".to_string(),
                };
                tracing::info!(source = ?p.source, state = p.state.as_str(), "{back}");
                let Some(source) = &p.source else { continue };
                metrics.set_source_down(source, None);
                ops.push((p.room.clone(), back));
            }
            if ops.is_empty() {
                continue;
            }
            // Publishing waits when the store's queue is full (a failing disk): off the async
            // threads, and in order.
            let (hub, metrics, now) = (hub.clone(), metrics.clone(), clock.now_ms());
            let _ = tokio::task::spawn_blocking(move || {
                for (room, text) in ops {
                    metrics.alert(crate::alerts::AlertKind::Ops.as_str());
                    hub.publish(Alert::ops(room.unwrap_or_else(|| "*".into()), text, now));
                }
            })
            .await;
        }
    })
}

/// The reload path: SIGHUP and (unless `watch_rules = false`) file changes feed one task.
fn spawn_reload(
    cfg: &Config,
    source: &RuleSource,
    rules: &Arc<ArcSwap<crate::rules::RuleSet>>,
    status: &reload::SharedStatus,
    metrics: &Arc<Metrics>,
    trigger: &Trigger,
) -> Vec<JoinHandle<()>> {
    // Two slots: one cause waiting is enough, the reload reads the files afresh anyway.
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let mut tasks = vec![tokio::spawn(reload::run(
        source.clone(),
        rules.clone(),
        status.clone(),
        metrics.clone(),
        rx,
        trigger.subscribe(),
    ))];
    tasks.push(tokio::spawn(reload::on_sighup(tx.clone(), trigger.subscribe())));
    if let (true, Some(dir)) = (cfg.watch_rules, source.dir()) {
        match reload::watch(dir, tx) {
            Ok(watcher) => {
                let mut shutdown = trigger.subscribe();
                // The watcher lives as long as this task.
                tasks.push(tokio::spawn(async move {
                    shutdown.wait().await;
                    drop(watcher);
                }));
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the rules; reload with SIGHUP")
            }
        }
    }
    tasks
}

/// For rooms configured to (`overlay_auto_rooms`), strong complaints appear on the overlay as
/// invite prompts without a click. Off for every room unless its config says so.
/// Viewer-chosen names go on air unreviewed here, so names are cut and stripped of links and
/// each room gets at most `overlay_auto_per_minute` prompts (the rest dropped, counted).
fn spawn_auto_overlay(
    rooms: &[String],
    limits: &crate::limits::Limits,
    hub: &Arc<Hub>,
    metrics: &Arc<Metrics>,
    overlay: &tokio::sync::broadcast::Sender<Arc<server::actions::Prompt>>,
    mut shutdown: crate::shutdown::Shutdown,
) -> Option<JoinHandle<()>> {
    if rooms.is_empty() {
        return None;
    }
    let rooms: Vec<String> = rooms.to_vec();
    let mut alerts = hub.subscribe();
    let overlay = overlay.clone();
    let air = server::actions::OnAir::from(limits);
    let per_minute = limits.overlay_auto_per_minute;
    let rate = crate::limits::Buckets::new(per_minute, 60_000, per_minute, rooms.len().max(1));
    let metrics = metrics.clone();
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                m = alerts.recv() => match m {
                    Ok(m) if m.kind == crate::alerts::MsgKind::Alert && rooms.iter().any(|r| *r == *m.room)
                        && m.alert.verdict.action == crate::taxonomy::Action::InviteCostream
                        && !m.alert.backlog => {
                        if !rate.take(&m.room, now_ms()) {
                            metrics.limited("overlay_rate");
                            continue;
                        }
                        if let Some(p) = server::actions::prompt_for(&m.alert, "invite", now_ms(), &air, &metrics) {
                            let _ = overlay.send(Arc::new(p));
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }))
}

impl Daemon {
    /// Graceful stop: sources stop reading, queued comments are classified, sockets close.
    /// Waits at most `grace` for each step.
    pub async fn stop(self, grace: Duration) {
        self.trigger.fire();
        for h in self.sources {
            let _ = tokio::time::timeout(grace, h).await;
        }
        for h in self.workers {
            let _ = tokio::time::timeout(grace, h).await;
        }
        for h in self.others {
            let _ = tokio::time::timeout(grace, h).await;
        }
        // Everything queued for the store is committed before the process goes.
        let hub = self.hub.clone();
        let _ = tokio::task::spawn_blocking(move || hub.close()).await;
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_comment_is_caught_counted_and_the_worker_goes_on() {
        let m = Metrics::new();
        let mut handled = 0;
        for i in 0..3 {
            let ok = crate::alerts::route::supervised(&m, 0, || {
                assert!(i != 1, "boom on comment {i}");
                handled += 1;
            });
            assert_eq!(ok, i != 1);
        }
        assert_eq!(handled, 2, "the comments after the panic were handled");
        assert!(
            m.render().contains("liveguard_worker_panics_total 1"),
            "{}",
            m.render()
        );
    }
}
