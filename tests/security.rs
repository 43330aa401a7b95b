//! Safe on a real network: every route but `/healthz` refuses no token, a wrong token and a
//! wrong role (walking the real route table); protected mode; Host and Origin checks; the
//! console's login cookie; actions signed by the token's name; an overlay token limited to
//! its room; tokens and certificates reloaded on SIGHUP; HTTPS and `wss://` upstreams.

use std::time::Duration;

use liveguard::auth::{Role, TokenConfig};
use liveguard::config::Config;
use liveguard::ingest::Format;
use liveguard::server::guard::Access;

use crate::util::live::{canonical, http, test_config, test_signals, Firehose, Subscriber, WAIT};

const MANAGER: &str = "manager-secret-0123456789abcdef";
const OVERLAY: &str = "overlay-secret-0123456789abcdef";
const METRICS: &str = "metrics-secret-0123456789abcdef";

fn token(name: &str, role: Role, rooms: &[&str], secret: &str) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        role,
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        token: Some(secret.into()),
        token_file: None,
        token_env: None,
    }
}

/// The test daemon's config with a manager (`li`), an overlay for room `r1` (`obs`) and a
/// metrics scraper (`prom`).
fn with_tokens(url: &str) -> Config {
    let mut cfg = test_config(url, Format::Canonical, test_signals());
    cfg.auth.token = vec![
        token("li", Role::Manager, &[], MANAGER),
        token("obs", Role::Overlay, &["r1"], OVERLAY),
        token("prom", Role::Metrics, &[], METRICS),
    ];
    cfg
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_refuses_no_token_a_wrong_token_and_a_wrong_role() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let d = liveguard::daemon::start(with_tokens(&fh.url()))
        .await
        .expect("starts");
    let table = liveguard::server::route_table();
    let open: Vec<&str> = table
        .iter()
        .filter(|r| r.access == Access::Open)
        .map(|r| r.path)
        .collect();
    assert_eq!(open, ["/healthz"], "only the health check is open");
    for r in &table {
        let path = r.path.replace("{seq}", "1").replace("{file}", "console.js");
        let path = if path.contains("overlay") {
            format!("{path}?room=r1")
        } else {
            path
        };
        let method = r.method.as_str();
        if r.access == Access::Open {
            let (code, _, _) = http(d.addr, method, &path, &[], "").await;
            assert_eq!(code, 200, "{method} {path} stays open");
            continue;
        }
        let login = r.access == Access::Login;
        let body = if login { "token=" } else { "{}" };
        let ct = (
            "Content-Type",
            if login {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
        );
        let (code, _, _) = http(d.addr, method, &path, &[ct], body).await;
        assert_eq!(code, 401, "{method} {path} without a token");
        let wrong = bearer("not-a-token-0123456789abcdef");
        let (code, _, _) = if login {
            http(d.addr, method, &path, &[ct], "token=not-a-token-0123456789abcdef").await
        } else {
            http(d.addr, method, &path, &[ct, ("Authorization", &wrong)], body).await
        };
        assert_eq!(code, 401, "{method} {path} with a wrong token");
        let roles: &[Role] = match r.access {
            Access::Roles(roles) => roles,
            _ => &[Role::Manager],
        };
        let (other, good) = if !roles.contains(&Role::Overlay) {
            (
                OVERLAY,
                if roles.contains(&Role::Manager) {
                    MANAGER
                } else {
                    METRICS
                },
            )
        } else {
            (METRICS, MANAGER)
        };
        let (code, _, _) = if login {
            http(d.addr, method, &path, &[ct], &format!("token={other}")).await
        } else {
            http(
                d.addr,
                method,
                &path,
                &[ct, ("Authorization", &bearer(other))],
                body,
            )
            .await
        };
        assert_eq!(code, 403, "{method} {path} with a token of the wrong role");
        // And the right token gets past the door (the handler may still dislike the body).
        let (code, _, _) = if login {
            http(d.addr, method, &path, &[ct], &format!("token={good}")).await
        } else {
            http(
                d.addr,
                method,
                &path,
                &[ct, ("Authorization", &bearer(good))],
                body,
            )
            .await
        };
        assert!(
            ![401, 403].contains(&code),
            "{method} {path} with the right token: {code}"
        );
    }
    d.stop(Duration::from_secs(5)).await;
}

#[test]
fn a_public_listen_without_tokens_refuses_to_start_and_names_the_fix() {
    let out = crate::util::run(
        &crate::util::repo(),
        &["run", "--listen", "0.0.0.0:0", "--source", "ws://127.0.0.1:9/"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[[auth.token]]") && err.contains("127.0.0.1:0") && err.contains("0.0.0.0:0"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_and_origins_are_refused_even_on_loopback() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let d = crate::util::live::daemon(&fh.url(), Format::Canonical, test_signals()).await;
    let evil_host = [("Host", "evil.example:8787")];
    assert_eq!(
        http(d.addr, "GET", "/api/alerts", &evil_host, "").await.0,
        403,
        "DNS rebinding"
    );
    assert_eq!(http(d.addr, "GET", "/healthz", &evil_host, "").await.0, 200);
    assert_eq!(
        http(d.addr, "GET", "/api/alerts", &[], "").await.0,
        200,
        "protected mode: local"
    );
    let upgrade = |origin: &'static str| {
        [
            ("Origin", origin),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
    };
    let (code, _, _) = http(
        d.addr,
        "GET",
        "/ws/alerts?since=0",
        &upgrade("http://evil.example"),
        "",
    )
    .await;
    assert_eq!(
        code, 403,
        "a page from another origin cannot read the alert socket"
    );
    // The same origin upgrades (a refusal would fail the connect).
    Subscriber::connect_with(d.addr, "", &[("Origin", &format!("http://{}", d.addr))]).await;
    let post = |origin: &'static str| [("Origin", origin), ("Content-Type", "application/json")];
    let body = r#"{"action":"dismiss"}"#;
    let (code, _, _) = http(
        d.addr,
        "POST",
        "/api/alerts/1/actions",
        &post("http://evil.example"),
        body,
    )
    .await;
    assert_eq!(code, 403, "no cross-site actions");
    let (code, _, _) = http(
        d.addr,
        "POST",
        "/api/alerts/1/actions",
        &post("http://localhost"),
        body,
    )
    .await;
    assert_eq!(code, 404, "the console's own origin reaches the handler");
    let (code, _, body) = http(d.addr, "GET", "/api/alerts?since=9223372036854775808", &[], "").await;
    assert_eq!(code, 400, "since past i64 is refused, not wrapped: {body}");
    assert_eq!(
        crate::util::live::metric(d.addr, "liveguard_refused_total{reason=\"origin\"}").await,
        2.0
    );
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_login_signs_actions_with_the_tokens_name() {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let d = liveguard::daemon::start(with_tokens(&fh.url()))
        .await
        .expect("starts");
    fh.connected().await;
    let (code, _, page) = http(d.addr, "GET", "/console", &[], "").await;
    assert_eq!(code, 401);
    assert!(
        page.contains(r#"action="/api/session""#),
        "the login form: {page}"
    );
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", "http://localhost"),
    ];
    let (code, head, _) = http(d.addr, "POST", "/api/session", &form, &format!("token={MANAGER}")).await;
    assert_eq!(code, 303, "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    assert!(
        !cookie_line.contains(MANAGER),
        "the token never goes into the cookie"
    );
    let cookie = cookie_line
        .split_once(':')
        .map(|(_, v)| v.trim().split(';').next().unwrap_or("").to_string())
        .expect("value");
    let (code, _, page) = http(d.addr, "GET", "/console", &[("Cookie", &cookie)], "").await;
    assert_eq!(code, 200);
    assert!(page.contains("console.js"), "the console itself");
    let mut sub = Subscriber::connect_with(d.addr, "", &[("Cookie", &cookie)]).await;
    fh.send(canonical("r1", "m1", "troll", "加我vx便宜一半"));
    let seq = sub.next_alert().await["seq"].as_u64().expect("seq");
    let (code, _, body) = http(
        d.addr,
        "POST",
        &format!("/api/alerts/{seq}/actions"),
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        r#"{"action":"dismiss","by":"mallory"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let alert: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(alert["actions"][0]["by"], "li", "`by` cannot be claimed");
    let (code, _, _) = http(d.addr, "DELETE", "/api/session", &[("Cookie", &cookie)], "").await;
    assert_eq!(code, 204);
    assert_eq!(
        http(d.addr, "GET", "/api/alerts", &[("Cookie", &cookie)], "")
            .await
            .0,
        401,
        "logged out"
    );
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_token_shows_only_its_room_with_names_cut_and_links_stripped() {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let mut cfg = with_tokens(&fh.url());
    cfg.overlay_auto_rooms = vec!["r1".into()];
    cfg.limits.overlay_auto_per_minute = 2;
    let d = liveguard::daemon::start(cfg).await.expect("starts");
    fh.connected().await;
    let (code, _, page) = http(
        d.addr,
        "GET",
        &format!("/overlay?room=r1&token={OVERLAY}"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        !page.contains("/assets/overlay.js"),
        "the script is inline: OBS sends no cookie"
    );
    assert!(page.contains("params.get(\"token\")"));
    let ws = |room: &str| format!("ws://{}/ws/overlay?room={room}&token={OVERLAY}", d.addr);
    let refused = tokio_tungstenite::connect_async(ws("r2")).await;
    assert!(refused.is_err(), "another room is refused");
    let (mut overlay, _) = tokio_tungstenite::connect_async(ws("r1"))
        .await
        .expect("its room");
    let name = format!("{} www.evil.example/buy", "名".repeat(3_000));
    for i in 0..5 {
        let frame = serde_json::json!({
            "type": "liveguard.comment.v1", "platform": "t", "room": {"id": "r1"}, "msg_id": format!("o{i}"),
            "user": {"id": format!("u{i}"), "name": name}, "text": "上次买的手链戴了两天就断了，能退吗",
            "signals": {"is_buyer": true}});
        fh.send(frame.to_string());
    }
    let mut prompts = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(
        Duration::from_millis(1500),
        futures_util::StreamExt::next(&mut overlay),
    )
    .await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            prompts.push(serde_json::from_str::<serde_json::Value>(t.as_str()).expect("json"));
        }
    }
    assert_eq!(
        prompts.len(),
        2,
        "at most overlay_auto_per_minute prompts: {prompts:?}"
    );
    for p in &prompts {
        let user = p["user"].as_str().expect("user");
        assert!(user.chars().count() <= 24 && !user.contains("evil"), "{user}");
        assert!(p["text"].as_str().expect("text").chars().count() <= 120);
    }
    let metric = |m: &'static str| {
        let addr = d.addr;
        async move {
            let (_, _, body) = http(
                addr,
                "GET",
                "/metrics",
                &[("Authorization", &bearer(METRICS))],
                "",
            )
            .await;
            body.lines()
                .filter(|l| l.starts_with(m))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    assert_eq!(
        metric("liveguard_limited_total{limit=\"overlay_rate\"}").await,
        3.0
    );
    d.stop(Duration::from_secs(5)).await;
}

/// Writes `text` to `path` atomically enough for a reload.
fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// Polls `f` until it is true (bounded by [`WAIT`]).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_tokens_from_their_files() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("li.token");
    write(&secret, &format!("{MANAGER}\n"));
    let config = dir.path().join("liveguard.toml");
    write(
        &config,
        &format!(
            "listen = \"127.0.0.1:0\"\n[[source]]\nurl = \"{}\"\nformat = \"canonical\"\n\
             [[auth.token]]\nname = \"li\"\nrole = \"manager\"\ntoken_file = \"{}\"\n",
            fh.url(),
            secret.display()
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_liveguard"))
        .args(["run", "--config"])
        .arg(&config)
        .env("LIVEGUARD_STATE_DIR", crate::util::state_dir())
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let addr = crate::util::listening_addr(&mut stderr);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let status = |secret: &'static str| async move {
        http(
            addr,
            "GET",
            "/api/alerts",
            &[("Authorization", &bearer(secret))],
            "",
        )
        .await
        .0
    };
    assert_eq!(status(MANAGER).await, 200);
    const ROTATED: &str = "rotated-secret-0123456789abcdef";
    write(&secret, ROTATED);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    until("the rotated token works after SIGHUP", || async {
        status(ROTATED).await == 200
    })
    .await;
    assert_eq!(status(MANAGER).await, 401, "the old token is gone");
    // A broken token file keeps the tokens in force.
    write(&secret, "short");
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    until("the failed reload is counted", || async {
        let (_, _, m) = http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &bearer(ROTATED))],
            "",
        )
        .await;
        m.contains("liveguard_auth_reloads_total{kind=\"failed\"} 1")
    })
    .await;
    assert_eq!(status(ROTATED).await, 200, "the last good tokens stay");
    let _ = child.kill();
    let _ = child.wait();
}
