//! The accept loop: HTTP/1.1 (WebSocket upgrades included) over plain TCP or rustls, on
//! hyper directly so every connection is bounded: at most `max_connections` open (more are
//! closed at once and counted), the TLS handshake and the request headers within
//! `handshake_timeout_ms` (a client that connects and says nothing is dropped, not kept),
//! and on shutdown each connection finishes the request it is serving.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::tls::Reloadable;

/// What the loop needs.
#[derive(Debug, Clone)]
pub struct Serve {
    /// Connections open at once.
    pub max_connections: usize,
    /// TLS handshake and request headers must arrive within this.
    pub handshake_timeout: Duration,
    /// HTTPS when set.
    pub tls: Option<Arc<Reloadable>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Accepts until shutdown, then waits (at most `grace`) for open connections to finish.
pub async fn run(listener: TcpListener, app: Router, s: Serve, mut shutdown: Shutdown, grace: Duration) {
    let slots = Arc::new(Semaphore::new(s.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => break,
            a = listener.accept() => a,
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: wait a moment instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            s.metrics.refused("connections");
            drop(tcp);
            continue;
        };
        // Alerts are small and must go out at once: no Nagle delay waiting for the
        // subscriber's ACK (measured: ~40 ms added to p99 without it).
        let _ = tcp.set_nodelay(true);
        let (app, s2, shutdown) = (app.clone(), s.clone(), shutdown.clone());
        tokio::spawn(async move {
            s2.metrics.connections.inc();
            match &s2.tls {
                None => connection(tcp, app, &s2, shutdown).await,
                Some(tls) => {
                    match tokio::time::timeout(s2.handshake_timeout, tls.acceptor().accept(tcp)).await {
                        Ok(Ok(stream)) => connection(stream, app, &s2, shutdown).await,
                        Ok(Err(e)) => {
                            s2.metrics.refused("tls");
                            tracing::debug!(error = %e, "TLS handshake failed");
                        }
                        Err(_) => s2.metrics.refused("handshake"),
                    }
                }
            }
            s2.metrics.connections.dec();
            drop(slot);
        });
    }
    drop(listener);
    // Every connection holds a slot: all of them back means all are done.
    let all = u32::try_from(s.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
}

/// Serves one connection until it ends, or until shutdown lets the current request finish.
async fn connection<I>(io: I, app: Router, s: &Serve, mut shutdown: Shutdown)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(s.handshake_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                if e.is_timeout() {
                    s.metrics.refused("handshake");
                }
                tracing::debug!(error = %e, "connection ended");
            }
        }
        _ = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
