//! Faults with real sockets and processes: an upstream that stalls without closing, closes
//! mid-frame, sends garbage, invalid UTF-8 or a frame header past the transport limit; a
//! client that sends a Close (answered); 1,000 idle connections; SIGTERM under load losing
//! no accepted alert; HTTPS with a certificate reloaded on SIGHUP; a `wss://` upstream
//! trusted through the system roots.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use liveguard::ingest::Format;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::util::live::{
    canonical, metric, test_config, test_signals, wait_metric, Firehose, Subscriber, WAIT,
};

/// A hand-made upstream: accepts one connection at a time, answers the WebSocket handshake,
/// then lets the test write raw bytes. Each accepted stream goes to the test.
async fn raw_upstream() -> (SocketAddr, tokio::sync::mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let req = String::from_utf8_lossy(&buf).to_string();
            let key = req
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Sec-WebSocket-Key: ")
                        .or_else(|| l.strip_prefix("sec-websocket-key: "))
                })
                .unwrap_or("")
                .trim()
                .to_string();
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if s.write_all(resp.as_bytes()).await.is_ok() && tx.send(s).await.is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// An unmasked server frame: FIN, `opcode`, `payload`.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65_536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

async fn next_conn(rx: &mut tokio::sync::mpsc::Receiver<TcpStream>) -> TcpStream {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the daemon connects")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_is_dropped_within_the_idle_timeout_and_bad_frames_are_counted() {
    let (addr, mut conns) = raw_upstream().await;
    let url = format!("ws://{addr}/");
    let mut cfg = test_config(&url, Format::Canonical, test_signals());
    cfg.sources[0].idle_timeout_ms = 400;
    cfg.sources[0].ping_interval_ms = 100;
    let d = liveguard::daemon::start(cfg).await.expect("starts");
    let mut sub = Subscriber::connect(d.addr, "").await;

    // 1. Invalid UTF-8 in a text frame: counted (the WebSocket library ends the stream on it),
    // and the daemon reconnects and reads on.
    let mut s = next_conn(&mut conns).await;
    s.write_all(&frame(0x1, &[0xff, 0xfe, 0x41]))
        .await
        .expect("write");
    let mut s = next_conn(&mut conns).await;
    let ok = canonical("r1", "u8ok", "amy", "加我vx便宜一半");
    s.write_all(&frame(0x1, ok.as_bytes())).await.expect("write");
    assert_eq!(
        sub.next_alert().await["msg_ids"][0],
        "u8ok",
        "read on after reconnecting"
    );
    let source = format!("liveguard_parse_errors_total{{source=\"{url}\",reason=");
    assert_eq!(metric(d.addr, &format!("{source}\"invalid_utf8\"}}")).await, 1.0);

    // 2. A stall without a close (no data, no pongs): dropped within the idle timeout.
    let started = tokio::time::Instant::now();
    let mut again = next_conn(&mut conns).await;
    let stalled_for = started.elapsed();
    assert!(
        stalled_for < Duration::from_millis(2_000),
        "dropped {stalled_for:?} after stalling (idle_timeout_ms 400)"
    );
    assert!(metric(d.addr, "liveguard_reconnects_total").await >= 1.0);
    drop(s);

    // 3. A frame header past the transport's 16 MB: counted as oversized, reconnect.
    again.write_all(&[0x81, 127]).await.expect("write");
    again
        .write_all(&(17u64 << 20).to_be_bytes())
        .await
        .expect("write");
    let mut third = next_conn(&mut conns).await;
    assert_eq!(metric(d.addr, &format!("{source}\"oversized\"}}")).await, 1.0);

    // 4. Closed mid-frame: a header promising 100 bytes, 10 sent, then the socket shut.
    third.write_all(&[0x81, 100]).await.expect("write");
    third.write_all(b"0123456789").await.expect("write");
    drop(third);
    let mut fourth = next_conn(&mut conns).await;

    // 5. Garbage that is not WebSocket at all: reconnect, daemon unharmed.
    fourth
        .write_all(b"\x00\x01garbage\xff\xff\xff\xff\xff\xff\xff\xff")
        .await
        .expect("write");
    let mut fifth = next_conn(&mut conns).await;
    let ok = canonical("r1", "after", "bob", "加我微信 abc12345 便宜一半");
    fifth.write_all(&frame(0x1, ok.as_bytes())).await.expect("write");
    assert_eq!(sub.next_alert().await["msg_ids"][0], "after");
    assert!(metric(d.addr, "liveguard_reconnects_total").await >= 4.0);
    assert_eq!(metric(d.addr, "liveguard_source_connected").await, 1.0);
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_close_is_answered_and_idle_sockets_are_closed() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let mut cfg = test_config(&fh.url(), Format::Canonical, test_signals());
    cfg.limits.ws_idle_timeout_ms = 600;
    let d = liveguard::daemon::start(cfg).await.expect("starts");
    let url = format!("ws://{}/ws/alerts", d.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    ws.close(None).await.expect("send close");
    let mut answered = false;
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, ws.next()).await {
        match m {
            Ok(Message::Close(_)) => answered = true,
            Ok(_) => {}
            // tokio-tungstenite reports the end after the close handshake completes.
            Err(_) => break,
        }
    }
    assert!(answered, "the daemon answered the Close (not a 1006)");
    // A client that never answers pings (its socket is never read) is closed after the
    // idle timeout: the raw TCP stream sees the end.
    let mut raw = TcpStream::connect(d.addr).await.expect("connect");
    raw.write_all(
        b"GET /ws/alerts HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a silent client's socket is closed");
    wait_metric(d.addr, "liveguard_limited_total{limit=\"ws_idle\"}", 1.0).await;
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_neither_block_others_nor_stay() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let mut cfg = test_config(&fh.url(), Format::Canonical, test_signals());
    cfg.limits.handshake_timeout_ms = 1_000;
    let d = liveguard::daemon::start(cfg).await.expect("starts");
    let mut idle = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        idle.push(TcpStream::connect(d.addr).await.expect("connect"));
    }
    let started = tokio::time::Instant::now();
    let (code, _, _) = crate::util::live::http(d.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(code, 200, "served beside 1,000 idle connections");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Each is closed once it has sent no request for handshake_timeout_ms.
    let closed = tokio::time::timeout(WAIT, async {
        for s in &mut idle {
            let mut b = [0u8; 64];
            while let Ok(n) = s.read(&mut b).await {
                if n == 0 {
                    break;
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connections were kept open");
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_accepted_alert() {
    let crate::util::Spawned {
        state,
        fh,
        mut child,
        mut sub,
        ..
    } = crate::util::spawned().await;
    let frames = (0..3_000).map(|i| {
        let text = if i % 2 == 0 {
            "上次买的手链戴了两天就断了，能退吗"
        } else {
            "加我vx便宜一半"
        };
        canonical(&format!("r{}", i % 3), &format!("t{i}"), &format!("u{i}"), text)
    });
    let sender = fh.send_paced(frames, Duration::from_micros(300));
    let pid = child.id().to_string();
    let announced = async {
        let mut seen = Vec::new();
        while seen.len() < 200 {
            seen.push(sub.next_alert().await["seq"].as_u64().expect("seq"));
        }
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(term.success());
        // Everything still announced before the socket closes counts as accepted too.
        while let Some(m) = sub.next_or_end().await {
            if m["type"] == "alert" {
                seen.push(m["seq"].as_u64().expect("seq"));
            }
        }
        seen
    };
    let (_, announced) = tokio::join!(sender, announced);
    let exit = tokio::task::spawn_blocking(move || child.wait().expect("exit"))
        .await
        .expect("join");
    assert!(exit.success(), "a clean stop under load: {exit}");
    let db = rusqlite::Connection::open(state.join("liveguard.db")).expect("open");
    let stored: std::collections::BTreeSet<u64> = db
        .prepare("SELECT seq FROM alerts")
        .expect("prepare")
        .query_map([], |r| r.get::<_, i64>(0))
        .expect("query")
        .filter_map(Result::ok)
        .map(|s| s as u64)
        .collect();
    let lost: Vec<&u64> = announced.iter().filter(|s| !stored.contains(s)).collect();
    assert!(lost.is_empty(), "announced but not stored: {lost:?}");
    let top = stored.iter().max().copied().unwrap_or(0);
    assert_eq!(stored.len() as u64, top, "no gap in the numbering up to {top}");
}
