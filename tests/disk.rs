//! A full disk mid-show, through the real binary: the state directory is a small tmpfs that a
//! filler file fills up. While commits fail, `/healthz` and `/metrics` answer within 2 s and
//! say why, a console action is refused at once (503) instead of hanging, and every complaint
//! sent meanwhile is committed once space returns.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::live::{canonical, http, Firehose};
use crate::util::{run_command, spawn, state_dir};

/// Complaints sent while the disk is full.
const N: usize = 30;
/// Every probe must answer within this.
const ANSWER: Duration = Duration::from_secs(2);

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the state directory and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes to `path` until the file system refuses: the disk is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

/// GET `path` within [`ANSWER`]: the status and body, or a panic naming what hung.
async fn probe(addr: SocketAddr, path: &str) -> (u16, String) {
    let (code, _, body) = tokio::time::timeout(ANSWER, http(addr, "GET", path, &[], ""))
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within {ANSWER:?} while the disk was full"));
    (code, body)
}

fn complaint(i: usize) -> String {
    format!("收到的手镯有裂纹，要退货，订单{i}")
}

async fn stored_msg_ids(addr: SocketAddr) -> Vec<String> {
    let (_, body) = probe(addr, "/api/alerts?limit=500").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let list = v
        .as_array()
        .cloned()
        .or_else(|| v["alerts"].as_array().cloned())
        .unwrap_or_default();
    list.iter()
        .filter(|a| a["kind"] == "comment")
        .flat_map(|a| a["msg_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_health_and_metrics_answering_and_loses_no_complaint() {
    let state = state_dir();
    let _tmpfs = Tmpfs::mount(&state, "8m");
    let mut fh = Firehose::start("127.0.0.1:0").await;
    // A small writer queue, so the complaints outnumber it and wait behind it.
    let conf_dir = state_dir();
    let conf = conf_dir.join("liveguard.toml");
    std::fs::write(&conf, "[store]\nqueue = 4\n").expect("write config");
    let mut command = run_command(&fh.url(), &state);
    command.arg("--config").arg(&conf);
    // Killed on drop, before the tmpfs goes.
    let (_child, addr) = spawn(command);
    fh.connected().await;

    fh.send(canonical("r1", "c-before", "buyer-0", &complaint(0)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stored_msg_ids(addr).await.contains(&"c-before".to_string()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first complaint was never stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A quiet writer's WAL is truncated; from then on every commit needs new space.
    let wal = state.join("liveguard.db-wal");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the WAL was never truncated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let filler = state.join("filler");
    let filled = fill(&filler);
    eprintln!("disk full after a {} KB filler", filled / 1024);

    for i in 1..=N {
        fh.send(canonical(
            "r1",
            &format!("c{i}"),
            &format!("buyer-{i}"),
            &complaint(i),
        ));
    }
    // Throughout the full disk: health and metrics answer, and say the store fails.
    let mut degraded = false;
    let mut failing_since = false;
    let mut last = String::new();
    for _ in 0..20 {
        let (code, body) = probe(addr, "/healthz").await;
        if code == 503 && body.contains("cannot commit") {
            degraded = true;
        }
        last = format!("{code} {body}");
        let (code, metrics) = probe(addr, "/metrics").await;
        assert_eq!(code, 200);
        if metrics
            .lines()
            .any(|l| l.starts_with("liveguard_store_failing_since_seconds ") && !l.ends_with(" 0"))
        {
            failing_since = true;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let store_lines = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("liveguard_store") || l.starts_with("liveguard_comments"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (_, metrics) = probe(addr, "/metrics").await;
    assert!(
        degraded,
        "/healthz never said the store fails while the disk was full; last: {last}\n{}",
        store_lines(&metrics)
    );
    assert!(failing_since, "/metrics never showed the store failing");
    let waited = metrics
        .lines()
        .find_map(|l| l.strip_prefix("liveguard_store_waits_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        waited > 0.0,
        "the complaints never outnumbered the writer's queue: {}",
        store_lines(&metrics)
    );
    // A console action cannot be committed now: refused at once, not left hanging.
    let body = r#"{"action":"dismiss","by":"fm"}"#;
    let (code, _, reply) = tokio::time::timeout(
        ANSWER + Duration::from_secs(4),
        http(
            addr,
            "POST",
            "/api/alerts/1/actions",
            &[("Content-Type", "application/json")],
            body,
        ),
    )
    .await
    .expect("a console action answers while the disk is full");
    assert_eq!(code, 503, "{reply}");
    assert!(reply.contains("commit") || reply.contains("store"), "{reply}");

    // Space returns: every complaint sent meanwhile is committed.
    std::fs::remove_file(&filler).expect("remove filler");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ids = stored_msg_ids(addr).await;
        let missing: Vec<String> = (1..=N)
            .map(|i| format!("c{i}"))
            .filter(|id| !ids.contains(id))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not stored after space returned: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, body) = probe(addr, "/healthz").await;
    assert_eq!(code, 200, "healthy again once commits succeed: {body}");
}
