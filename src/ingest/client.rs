//! One firehose connection per source (tokio-tungstenite): connect, read frames, parse them
//! with the source's format and hand events to a [`Sink`] (the daemon's intake, or the bus).
//! Sends pings, drops a connection silent past the idle timeout, and reconnects with exponential backoff and jitter, counting
//! every reconnect. A frame that does not parse is counted and logged; the connection stays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::backoff::Backoff;
use super::{parse_frame_from, Format, FrameError, Ingested, Origin, Sink};
use crate::clock::now_ms;
use crate::health::SourceHealth;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// One upstream firehose, as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name in logs and metrics (default: the URL).
    #[serde(default)]
    pub name: Option<String>,
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// Input format.
    pub format: Format,
    /// Room for events that carry none (the legacy TikTok shape).
    #[serde(default)]
    pub room: Option<String>,
    /// Drop the connection after this long without a frame (ms).
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// Send a ping this often (ms).
    #[serde(default = "default_ping_ms")]
    pub ping_interval_ms: u64,
    /// Frames larger than this are counted and skipped (bytes).
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// First reconnect delay (ms); doubles up to `backoff_max_ms`.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_ms: u64,
    /// Longest reconnect delay (ms).
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
}

fn default_idle_ms() -> u64 {
    30_000
}
fn default_ping_ms() -> u64 {
    10_000
}
fn default_max_frame() -> usize {
    64 * 1024
}
fn default_backoff_base() -> u64 {
    200
}
fn default_backoff_max() -> u64 {
    10_000
}

impl SourceConfig {
    /// A source with default timings.
    pub fn new(url: &str, format: Format) -> Self {
        Self {
            name: None,
            url: url.to_string(),
            format,
            room: None,
            idle_timeout_ms: default_idle_ms(),
            ping_interval_ms: default_ping_ms(),
            max_frame_bytes: default_max_frame(),
            backoff_base_ms: default_backoff_base(),
            backoff_max_ms: default_backoff_max(),
        }
    }

    /// Name in logs and metrics.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.url)
    }
}

/// Runs one source until shutdown: connect, read, reconnect, telling `health` about the
/// connection and every frame. Logs carry a `source` span.
pub async fn run(
    cfg: SourceConfig,
    sink: impl Sink,
    metrics: Arc<Metrics>,
    health: Arc<SourceHealth>,
    shutdown: Shutdown,
) {
    let span = tracing::info_span!("source", source = %cfg.display_name());
    run_source(cfg, sink, metrics, health, shutdown)
        .instrument(span)
        .await;
}

async fn run_source<K: Sink>(
    cfg: SourceConfig,
    mut sink: K,
    metrics: Arc<Metrics>,
    health: Arc<SourceHealth>,
    mut shutdown: Shutdown,
) {
    let name: Arc<str> = Arc::from(cfg.display_name());
    let default_room = cfg.room.clone().unwrap_or_else(|| "default".to_string());
    let mut backoff = Backoff::new(
        Duration::from_millis(cfg.backoff_base_ms),
        Duration::from_millis(cfg.backoff_max_ms),
    );
    // Frames up to the transport's limit are accepted and then judged by our own, smaller
    // limit, so an oversized frame is counted and skipped instead of closing the connection.
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let connect = tokio_tungstenite::connect_async_with_config(cfg.url.as_str(), Some(ws_config), true);
        let connected = tokio::select! {
            _ = shutdown.wait() => return,
            r = tokio::time::timeout(Duration::from_secs(10), connect) => r,
        };
        match connected {
            Ok(Ok((ws, _))) => {
                backoff.reset();
                metrics.set_connected(&name, true);
                health.set_connected(true);
                tracing::info!(url = %cfg.url, "connected");
                let conn = Conn {
                    cfg: &cfg,
                    name: &name,
                    default_room: &default_room,
                    metrics: &metrics,
                    health: &health,
                };
                let stop = conn.read(ws, &mut sink, &mut shutdown).await;
                metrics.set_connected(&name, false);
                health.set_connected(false);
                if stop {
                    return;
                }
            }
            Ok(Err(e)) => tracing::warn!(url = %cfg.url, error = %e, "connect failed"),
            Err(_) => tracing::warn!(url = %cfg.url, "connect timed out"),
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(1));
        metrics.reconnect(&name);
        tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

struct Conn<'a> {
    cfg: &'a SourceConfig,
    name: &'a Arc<str>,
    default_room: &'a str,
    metrics: &'a Metrics,
    health: &'a SourceHealth,
}

impl Conn<'_> {
    /// Reads until the connection ends (false: reconnect) or shutdown (true: stop).
    async fn read<S>(&self, ws: S, out: &mut impl Sink, shutdown: &mut Shutdown) -> bool
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + futures_util::Sink<Message>
            + Unpin,
    {
        let (mut sink, mut stream) = ws.split();
        let connected_ms = now_ms();
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        let mut ping = tokio::time::interval(Duration::from_millis(self.cfg.ping_interval_ms.max(1)));
        ping.tick().await;
        // One deadline for the whole connection, pushed back by every message (a pong too):
        // a relay that stalls without closing is dropped `idle` after it last said anything,
        // however often the ping tick wakes this loop.
        let silent = tokio::time::sleep(idle);
        tokio::pin!(silent);
        loop {
            tokio::select! {
                _ = shutdown.wait() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return true;
                }
                _ = ping.tick() => {
                    // A relay that stopped reading must not block this loop on the send.
                    match tokio::time::timeout(idle, sink.send(Message::Ping(Vec::new().into()))).await {
                        Ok(Ok(())) => {}
                        _ => return false,
                    }
                }
                _ = silent.as_mut() => {
                    tracing::warn!(idle_ms = self.cfg.idle_timeout_ms, "nothing from upstream within the idle timeout; dropping the connection");
                    return false;
                }
                next = stream.next() => match next {
                    None => {
                        tracing::warn!("upstream closed");
                        return false;
                    }
                    Some(Err(e)) => {
                        use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
                        match &e {
                            // tokio-tungstenite ends the stream after any error: count, reconnect.
                            WsError::Utf8(_) => self.bad_frame(&FrameError::NotUtf8),
                            WsError::Capacity(CapacityError::MessageTooLong { size, .. }) => {
                                self.bad_frame(&FrameError::TooLarge(*size));
                            }
                            _ => {}
                        }
                        tracing::warn!(error = %e, "upstream error");
                        return false;
                    }
                    Some(Ok(msg)) => {
                        silent.as_mut().reset(tokio::time::Instant::now() + idle);
                        // Data, not pings: a relay that keeps the socket open but forwards
                        // nothing is a blind watcher too.
                        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                            self.health.frame();
                        }
                        match msg {
                            Message::Text(t) if !self.frame(t.as_str(), connected_ms, out).await => return true,
                            Message::Binary(b) => {
                                let err = if b.len() > self.cfg.max_frame_bytes { FrameError::TooLarge(b.len()) } else { FrameError::Binary };
                                self.bad_frame(&err);
                            }
                            Message::Close(_) => return false,
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Parses and queues one frame; false when the pipeline is gone.
    async fn frame(&self, text: &str, connected_ms: u64, sink: &mut impl Sink) -> bool {
        if text.len() > self.cfg.max_frame_bytes {
            self.bad_frame(&FrameError::TooLarge(text.len()));
            return true;
        }
        let received_at = Instant::now();
        let received_ms = now_ms();
        let origin = Origin {
            source: self.name,
            room: self.default_room,
            received_ms,
        };
        match parse_frame_from(self.cfg.format, text, &origin) {
            Ok(events) => {
                for event in events {
                    let item = Ingested {
                        event,
                        source: self.name.clone(),
                        format: self.cfg.format,
                        received_at,
                        received_ms,
                        connected_ms,
                    };
                    if !sink.push(item).await {
                        return false;
                    }
                }
                true
            }
            Err(e) => {
                self.bad_frame(&e);
                true
            }
        }
    }

    fn bad_frame(&self, e: &FrameError) {
        self.metrics.parse_error(self.name, e.reason());
        tracing::debug!(reason = e.reason(), error = %crate::logsafe::Esc(&e.to_string()), "frame skipped");
    }
}
