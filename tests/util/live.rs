//! Live helpers: a fake firehose (a real WebSocket server on 127.0.0.1 sending what the test
//! pushes, killable and restartable on the same port), the daemon on an ephemeral port, and a
//! real alert subscriber.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use liveguard::config::Config;
use liveguard::daemon::Daemon;
use liveguard::history::SignalConfig;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::Format;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket server that forwards pushed frames to every connected client.
pub struct Firehose {
    pub addr: SocketAddr,
    tx: broadcast::Sender<Message>,
    task: JoinHandle<()>,
    /// Connections accepted so far.
    pub connects: mpsc::UnboundedReceiver<()>,
}

impl Firehose {
    /// Listens on `addr` (port 0: any free port).
    pub async fn start(addr: &str) -> Firehose {
        // A killed firehose releases its port asynchronously: retry for a while.
        let deadline = tokio::time::Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("bind firehose {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().expect("addr");
        let (tx, _) = broadcast::channel::<Message>(100_000);
        let (conn_tx, connects) = mpsc::unbounded_channel();
        let tx2 = tx.clone();
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                let mut rx = tx2.subscribe();
                let conn_tx = conn_tx.clone();
                conns.push(tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let _ = conn_tx.send(());
                    let (mut sink, mut stream) = ws.split();
                    loop {
                        tokio::select! {
                            m = rx.recv() => match m {
                                Ok(m) => if sink.send(m).await.is_err() { return },
                                Err(_) => return,
                            },
                            m = stream.next() => if m.is_none() { return },
                        }
                    }
                }));
            }
        });
        Firehose {
            addr,
            tx,
            task,
            connects,
        }
    }

    /// `ws://` URL of this firehose.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Sends a text frame to every connected client.
    pub fn send(&self, text: impl Into<String>) {
        let _ = self.tx.send(Message::Text(text.into().into()));
    }

    /// Sends `frames` one by one, `gap` apart (a stream that goes on while a test acts).
    pub async fn send_paced(&self, frames: impl IntoIterator<Item = String>, gap: Duration) {
        for f in frames {
            self.send(f);
            tokio::time::sleep(gap).await;
        }
    }

    /// Sends a binary frame.
    pub fn send_binary(&self, data: Vec<u8>) {
        let _ = self.tx.send(Message::Binary(data.into()));
    }

    /// Waits until a client has connected (again).
    pub async fn connected(&mut self) {
        tokio::time::timeout(WAIT, self.connects.recv())
            .await
            .expect("a client connects")
            .expect("open");
    }

    /// Kills the server and every connection.
    pub fn kill(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

/// A canonical comment frame.
pub fn canonical(room: &str, msg_id: &str, user: &str, text: &str) -> String {
    serde_json::json!({
        "type": "liveguard.comment.v1", "platform": "test", "room": {"id": room}, "msg_id": msg_id,
        "ts_ms": liveguard::clock::now_ms(), "user": {"id": user, "name": user}, "text": text,
    })
    .to_string()
}

/// Signal settings that make tests quick and deterministic.
pub fn test_signals() -> SignalConfig {
    SignalConfig {
        silence_after_ms: 3_600_000,
        ..SignalConfig::default()
    }
}

/// The test daemon's configuration: 127.0.0.1:0, the shipped rules, `url` as its one source
/// (quick reconnects), a fresh store, sweeps every 50 ms.
pub fn test_config(url: &str, format: Format, signals: SignalConfig) -> Config {
    let mut source = SourceConfig::new(url, format);
    source.backoff_base_ms = 20;
    source.backoff_max_ms = 200;
    source.room = Some("flat-room".into());
    Config {
        listen: "127.0.0.1:0".into(),
        rules: Some(crate::util::repo().join("rules")),
        // Tests pause (a browser starting, a clock moved by hours): only the health tests want
        // a quiet source reported as down.
        source_down_ms: 120_000,
        sources: vec![source],
        signals,
        sweep_interval_ms: 50,
        store: crate::util::store(),
        ..Config::default()
    }
}

/// Starts the daemon on 127.0.0.1:0 with the shipped rules, watching `url`.
pub async fn daemon(url: &str, format: Format, signals: SignalConfig) -> Daemon {
    liveguard::daemon::start(test_config(url, format, signals))
        .await
        .expect("daemon starts")
}

/// A test firehose and a daemon (canonical format, [`test_signals`]) connected to it.
pub async fn watched() -> (Firehose, Daemon) {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d = daemon(&fh.url(), Format::Canonical, test_signals()).await;
    fh.connected().await;
    (fh, d)
}

/// [`daemon`], reading time from `clock` (tests move it to reach ticket deadlines); the sweeper
/// checks tickets every 50 ms, so reminders follow an `advance` within one sweep.
pub async fn daemon_with_clock(
    url: &str,
    format: Format,
    signals: SignalConfig,
    clock: std::sync::Arc<liveguard::clock::ManualClock>,
) -> Daemon {
    liveguard::daemon::start_with_clock(test_config(url, format, signals), clock)
        .await
        .expect("daemon starts")
}

/// A real client of `/ws/alerts`.
pub struct Subscriber {
    stream: futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    >,
    /// Keeps the socket open.
    _sink: futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
        Message,
    >,
}

impl Subscriber {
    /// Connects with `query` (e.g. `since=0&room=r1`); returns after the hello message.
    pub async fn connect(addr: SocketAddr, query: &str) -> Subscriber {
        Self::connect_with(addr, query, &[]).await
    }

    /// [`connect`](Self::connect) sending `headers` with the upgrade (a token, an origin).
    pub async fn connect_with(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Subscriber {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}/ws/alerts?{query}")
            .into_client_request()
            .expect("a request");
        for (k, v) in headers {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .expect("connect");
        let (sink, stream) = ws.split();
        let mut s = Subscriber { stream, _sink: sink };
        let hello = s.next_msg().await;
        assert_eq!(hello["type"], "hello");
        s
    }

    /// The next message of any type.
    pub async fn next_msg(&mut self) -> serde_json::Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("no socket error");
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).expect("JSON message");
            }
        }
    }

    /// The next message, or None once the socket has ended (or nothing came within [`WAIT`]).
    pub async fn next_or_end(&mut self) -> Option<serde_json::Value> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Some(Ok(_))) => {}
                _ => return None,
            }
        }
    }

    /// Waits until the daemon closes the socket (a close frame or the end of the stream).
    pub async fn wait_closed(&mut self) {
        let closed = tokio::time::timeout(WAIT, async {
            while let Some(m) = self.stream.next().await {
                if matches!(m, Ok(Message::Close(_)) | Err(_)) {
                    return;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the socket stayed open");
    }

    /// The next message, or None if none arrives within `d`.
    pub async fn try_next(&mut self, d: Duration) -> Option<serde_json::Value> {
        tokio::time::timeout(d, self.next_msg()).await.ok()
    }

    /// The next text message as sent (its bytes count), or None if none arrives within `d`.
    pub async fn try_next_raw(&mut self, d: Duration) -> Option<String> {
        tokio::time::timeout(d, async {
            while let Some(m) = self.stream.next().await {
                match m {
                    Ok(Message::Text(t)) => return Some(t.as_str().to_string()),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// The next `alert` message (skipping updates).
    pub async fn next_alert(&mut self) -> serde_json::Value {
        loop {
            let m = self.next_msg().await;
            if m["type"] == "alert" {
                return m;
            }
        }
    }
}

/// Folds socket message `m` into `held`, the alerts a client holds by seq, as the console does:
/// an `alert` is held whole; an `update` carries the fields changed since the last update
/// (a removed field as `null`) and must bring the held alert to the next version it names.
/// Returns the alert as it now stands.
pub fn fold(
    held: &mut std::collections::HashMap<u64, serde_json::Value>,
    m: &serde_json::Value,
) -> serde_json::Value {
    let seq = m["seq"].as_u64().expect("a message names its alert");
    match m["type"].as_str() {
        Some("alert") => {
            held.insert(seq, m.clone());
        }
        Some("update") => {
            let a = held
                .get_mut(&seq)
                .unwrap_or_else(|| panic!("an update to alert {seq}, never sent: {m}"));
            let (have, next) = (a["version"].as_u64(), m["version"].as_u64());
            assert!(
                next > have,
                "an update moves its alert forward: version {next:?} after {have:?}"
            );
            let fields = a.as_object_mut().expect("an alert is an object");
            for (k, v) in m.as_object().expect("a message is an object") {
                if k == "type" {
                    continue;
                }
                if v.is_null() {
                    fields.remove(k);
                } else {
                    fields.insert(k.clone(), v.clone());
                }
            }
        }
        other => panic!("not an alert or update: {other:?}"),
    }
    held[&seq].clone()
}

/// A raw HTTP/1.1 request: `method path`, extra header lines, a body; returns the status
/// code, the head (status line and headers) and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .expect("read");
    let out = String::from_utf8_lossy(&out).to_string();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, head.to_string(), body.to_string())
}

/// Sends one raw HTTP/1.1 request (`Connection: close`); returns the status code and the body.
async fn request(addr: SocketAddr, req: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .expect("response in time")
        .expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_string())
}

/// GETs `path`: the status code and the body.
pub async fn get_status(addr: SocketAddr, path: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// GETs `path` from the daemon: the body.
pub async fn get(addr: SocketAddr, path: &str) -> String {
    get_status(addr, path).await.1
}

/// POSTs `body` (JSON) to `path`; returns the status code and the body.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// The value of a metric line (`name{labels}`) in `/metrics`, summed over matching lines.
pub async fn metric(addr: SocketAddr, prefix: &str) -> f64 {
    get(addr, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `metric` until it reaches `want`.
pub async fn wait_metric(addr: SocketAddr, prefix: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = metric(addr, prefix).await;
        if v >= want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{prefix} stayed at {v}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
