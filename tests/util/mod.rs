//! Helpers: a fixture rule pack, temp rule dirs, and running the real binary.

#![allow(dead_code)]

pub mod live;
pub mod nats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use liveguard::classify::{classify, Input, Scratch, Verdict};
use liveguard::rules::RuleSet;

/// A small pack exercising every mechanism of the engine.
pub const FIXTURE: &str = r#"
[pack]
id = "fx"
lang = "zh"

[detectors]
phone = { weight = 0.9, min_digits = 7 }
url = { weight = 0.6 }
mention = { weight = 0.2 }

[[context]]
id = "fx-purchase"
role = "purchase"
terms = ["买了", "收到", "上次买的", "i bought", "my order"]

[[context]]
id = "fx-question"
role = "question"
terms = ["会不会", "吗", "does it"]

[[context]]
id = "fx-rhetorical"
role = "rhetorical"
terms = ["为什么", "why"]

[[context]]
id = "fx-negation"
role = "negation"
window = 2
terms = ["没有", "没", "no", "not"]

[[context]]
id = "fx-order"
role = "order_ref"
window = 4
terms = ["订单号", "order number"]

[[keywords]]
id = "fx-crack"
class = "complaint"
topic = "defect"
weight = 0.6
terms = ["裂", "crack*"]

[[keywords]]
id = "fx-tarnish"
class = "complaint"
topic = "defect"
weight = 0.3
terms = ["褪色", "tarnish*"]

[[keywords]]
id = "fx-fake"
class = "attack"
topic = "smear"
weight = 0.6
terms = ["假货", "骗子", "scam"]
with_purchase = "complaint/authenticity"

[[keywords]]
id = "fx-insult"
class = "attack"
topic = "insult"
weight = 0.7
terms = ["垃圾", "idiot"]

[[keywords]]
id = "fx-divert"
class = "attack"
topic = "diversion"
weight = 0.6
terms = ["加我", "vx"]

[[terms]]
id = "fx-product"
terms = ["戒指", "ring"]

[[terms]]
id = "fx-bad"
terms = ["不行", "bad"]

[[rule]]
id = "fx-product-bad"
class = "complaint"
topic = "defect"
weight = 0.5
all = ["fx-product", "fx-bad"]
none = ["fx-question"]

[[allow]]
id = "fx-allow"
terms = ["假一赔十"]

[[script]]
topic = "defect"
action = "invite_costream"
text = "看到{user}的反馈，{product}我们现场解决"

[[script]]
topic = "attack"
action = "private_resolution"
text = "{user}请私信客服"
"#;

/// A temp dir holding `files` (relative path → content) as a rules directory.
pub fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, text) in files {
        let p = dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write pack");
    }
    dir
}

/// The fixture pack, compiled.
pub fn fixture() -> RuleSet {
    let dir = rules_dir(&[("fx.toml", FIXTURE)]);
    liveguard::rules::load_dir(dir.path()).expect("fixture compiles")
}

/// The shipped packs in `rules/`.
pub fn shipped() -> RuleSet {
    liveguard::rules::load_dir(&repo().join("rules")).expect("shipped rules compile")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Classifies one text.
pub fn verdict(rules: &RuleSet, text: &str) -> Verdict {
    classify(
        rules,
        &mut Scratch::new(),
        Input {
            text,
            user: Some("amy"),
            product: None,
        },
    )
}

/// `class` or `class/topic` of a verdict, for compact asserts.
pub fn label(v: &Verdict) -> String {
    match v.topic {
        Some(t) => format!("{}/{}", v.class.as_str(), t.as_str()),
        None => v.class.as_str().to_string(),
    }
}

/// A fresh state directory for one test (under cargo's per-target temp dir, never the
/// user's own state).
pub fn state_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "state-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a test state dir");
    dir
}

/// A store in a fresh state directory.
pub fn store() -> liveguard::store::StoreConfig {
    liveguard::store::StoreConfig {
        path: Some(state_dir().join("liveguard.db")),
        ..liveguard::store::StoreConfig::default()
    }
}

/// Runs the real binary with `args` in `cwd`, feeding `stdin`.
pub fn run(cwd: &Path, args: &[&str], stdin: &str) -> Output {
    run_bytes(cwd, args, stdin.as_bytes())
}

/// [`run`] with raw bytes on stdin (not necessarily UTF-8).
pub fn run_bytes(cwd: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_liveguard"))
        .args(args)
        .env("LIVEGUARD_STATE_DIR", state_dir())
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start liveguard");
    // A command that fails before reading stdin closes it: that is its answer, not an error.
    let written = child.stdin.take().expect("stdin").write_all(stdin);
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("liveguard runs")
}

/// Reads a daemon's stderr until `addr=…` of its "listening" line shows up.
pub fn listening_addr(stderr: &mut impl std::io::BufRead) -> std::net::SocketAddr {
    listening_addr_and_log(stderr).0
}

/// [`listening_addr`], and everything the daemon logged up to that line.
pub fn listening_addr_and_log(stderr: &mut impl std::io::BufRead) -> (std::net::SocketAddr, String) {
    let mut line = String::new();
    let mut log = String::new();
    for _ in 0..500 {
        line.clear();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            break;
        }
        log.push_str(&line);
        if let Some(rest) = line.split("addr=").nth(1).filter(|_| line.contains("listening")) {
            let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            return (addr.parse().expect("an address"), log);
        }
    }
    panic!("the daemon never said where it listens:\n{log}");
}

/// `liveguard run` (the real binary) watching `source` with the shipped rules, listening on a
/// free loopback port, its state in `state`, info logs without colour on a piped stderr.
pub fn run_command(source: &str, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_liveguard"));
    c.args(["run", "--source", source, "--listen", "127.0.0.1:0", "--rules"])
        .arg(repo().join("rules"))
        .env("LIVEGUARD_STATE_DIR", state)
        .env("RUST_LOG", "liveguard=info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    c
}

/// Starts the real binary as `liveguard run` watching `source`, with its state in `state`;
/// returns the child and the address it listens on. Its stderr keeps draining in a thread.
pub fn spawn_daemon(source: &str, state: &Path) -> (Proc, std::net::SocketAddr) {
    spawn(run_command(source, state))
}

/// The real binary watching a test firehose, its state in a fresh directory, and a client of
/// its `/ws/alerts`.
pub struct Spawned {
    pub state: PathBuf,
    pub fh: live::Firehose,
    pub child: Proc,
    pub addr: std::net::SocketAddr,
    pub sub: live::Subscriber,
}

/// Starts a firehose, [`spawn_daemon`] on it, and a subscriber.
pub async fn spawned() -> Spawned {
    let state = state_dir();
    let mut fh = live::Firehose::start("127.0.0.1:0").await;
    let (child, addr) = spawn_daemon(&fh.url(), &state);
    fh.connected().await;
    let sub = live::Subscriber::connect(addr, "").await;
    Spawned {
        state,
        fh,
        child,
        addr,
        sub,
    }
}

/// A daemon process that is killed and reaped when the test ends, passed or failed (an
/// orphan would outlive the test run).
pub struct Proc(std::process::Child);

impl std::ops::Deref for Proc {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (a [`run_command`], perhaps with more flags), as [`spawn_daemon`] does.
pub fn spawn(mut command: Command) -> (Proc, std::net::SocketAddr) {
    let mut child = Proc(command.spawn().expect("start liveguard run"));
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let addr = listening_addr(&mut stderr);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, addr)
}

/// Copies a directory tree (a rules directory to edit in a test).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}
