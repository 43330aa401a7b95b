//! Running as a service: the systemd unit verifies and is hardened (real `systemd-analyze`),
//! and the real binary talks sd_notify on a fake `NOTIFY_SOCKET` (READY, WATCHDOG, STOPPING)
//! and reloads its rules on SIGHUP.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::live::{Firehose, WAIT};
use crate::util::repo;

/// The unit with ExecStart pointing at the binary under test.
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("systemd/liveguard.service")).expect("unit in repo");
    let unit = dir.join("liveguard.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/liveguard", env!("CARGO_BIN_EXE_liveguard")),
    )
    .expect("write unit");
    unit
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().expect("tmp");
    let unit = unit_under_test(dir.path());
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze is installed");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !said.contains("liveguard.service:"),
        "{said}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    let out = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = out
        .lines()
        .find_map(|l| l.split("Overall exposure level for liveguard.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(exposure <= 2.5, "exposure {exposure} > 2.5");
    let text = std::fs::read_to_string(&unit).expect("unit");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "DynamicUser=yes",
        "StateDirectory=liveguard",
        "MemoryMax=",
        "TasksMax=",
    ] {
        assert!(text.contains(key), "{key}");
    }
}

/// Receives datagrams on `sock` until one contains `want` (bounded by WAIT).
fn wait_for(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = msg.contains(want);
            seen.push(msg);
            if hit {
                return;
            }
        }
    }
    panic!("no {want:?} on NOTIFY_SOCKET; got {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_reload_and_stop_over_sd_notify() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind fake NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut child = crate::util::run_command(&fh.url(), &crate::util::state_dir())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "300000")
        .spawn()
        .expect("start liveguard run");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().expect("stderr");
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let sock = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        wait_for(&sock, "READY=1", &mut seen);
        wait_for(&sock, "WATCHDOG=1", &mut seen);
        wait_for(&sock, "WATCHDOG=1", &mut seen);
        (sock, seen)
    })
    .await
    .expect("join");
    let (sock, mut seen) = sock;
    assert!(
        seen.iter().any(|m| m.contains("STATUS=watching 1 firehose")),
        "{seen:?}"
    );
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let seen = tokio::task::spawn_blocking(move || {
        wait_for(&sock, "STOPPING=1", &mut seen);
        seen
    })
    .await
    .expect("join");
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status}; notify: {seen:?}");
    let log = lines.join().expect("stderr lines").join("\n");
    assert!(
        log.contains("SIGHUP: reloading rules") && log.contains("rules reloaded"),
        "{log}"
    );
}
