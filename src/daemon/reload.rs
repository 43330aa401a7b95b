//! Hot reload: SIGHUP and changes under the rules directory (debounced) become one reload
//! path. The new rule set is compiled off the hot path (a blocking thread), its `[[example]]`s
//! run, and only a set that compiled and passed is swapped in, atomically; comments in flight
//! finish on the set they loaded. A broken change keeps the last good set running, logs the
//! precise `file:line` errors, sets the reload metrics and shows a banner on the console.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::rules::{self, RuleSet, RuleSource};
use crate::shutdown::Shutdown;

/// File events this close together make one reload (editors write in several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// SIGHUP (systemd's ExecReload).
    Signal,
    /// A file under the rules directory changed.
    Files,
}

pub use crate::health::{ReloadStatus, SharedStatus};

/// Compiles the rules of `source` and runs their examples: the whole check a reload must pass.
pub fn compile_checked(source: &RuleSource) -> Result<RuleSet, String> {
    let set = rules::load(source).map_err(|e| e.to_string())?;
    let (_, failures) = crate::classify::check_examples(&set);
    if failures.is_empty() {
        Ok(set)
    } else {
        let lines: Vec<String> = failures.into_iter().map(|f| f.message).collect();
        Err(format!("{} example(s) fail:\n{}", lines.len(), lines.join("\n")))
    }
}

/// Runs until shutdown: waits for causes, debounces, reloads.
pub async fn run(
    source: RuleSource,
    rules: Arc<ArcSwap<RuleSet>>,
    status: SharedStatus,
    metrics: Arc<Metrics>,
    mut causes: mpsc::Receiver<Cause>,
    mut shutdown: Shutdown,
) {
    loop {
        let cause = tokio::select! {
            _ = shutdown.wait() => return,
            c = causes.recv() => match c { Some(c) => c, None => return },
        };
        // Debounce: keep absorbing causes until DEBOUNCE passes quietly.
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DEBOUNCE) => break,
                more = causes.recv() => if more.is_none() { break },
            }
        }
        let src = source.clone();
        let compiled = tokio::task::spawn_blocking(move || compile_checked(&src)).await;
        let now = crate::clock::now_ms();
        let mut st = status.lock().unwrap_or_else(|p| p.into_inner());
        st.at_ms = now;
        match compiled {
            Ok(Ok(set)) => {
                let (packs, terms) = (set.packs.len(), set.term_count);
                rules.store(Arc::new(set));
                st.generation += 1;
                st.error = None;
                metrics.reload(true, st.generation);
                tracing::info!(?cause, packs, terms, generation = st.generation, "rules reloaded");
            }
            Ok(Err(errors)) => {
                metrics.reload(false, st.generation);
                tracing::error!(
                    ?cause,
                    "rules reload failed; keeping the last good rules:\n{errors}"
                );
                st.error = Some(errors);
            }
            Err(join) => {
                metrics.reload(false, st.generation);
                tracing::error!(?cause, error = %join, "rules reload crashed; keeping the last good rules");
                st.error = Some(format!("reload crashed: {join}"));
            }
        }
    }
}

/// Turns SIGHUP into reload causes until shutdown.
pub async fn on_sighup(tx: mpsc::Sender<Cause>, mut shutdown: Shutdown) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by editing the rules instead");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                s = hup.recv() => {
                    if s.is_none() || tx.send(Cause::Signal).await.is_err() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading rules");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (tx, shutdown.wait().await);
    }
}

/// Watches `dir` recursively; every change becomes a cause (debounced by [`run`]). The
/// returned watcher must be kept alive.
pub fn watch(dir: &std::path::Path, tx: mpsc::Sender<Cause>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !ev.kind.is_access() {
                // A full queue already holds a cause: dropping this one loses nothing.
                let _ = tx.try_send(Cause::Files);
            }
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(watcher)
}
