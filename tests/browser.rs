//! The console and overlay pages in real headless Chromium (Debian's `chromium`), driven over
//! the DevTools protocol with chromiumoxide, against the real daemon on 127.0.0.1: an alert
//! appears with its evidence highlighted, Invite puts the prompt on the room's overlay, Dismiss
//! is recorded, and a second console sees every action. Set `LIVEGUARD_SCREENSHOTS=DIR` to
//! also save screenshots of both pages (that is how `docs/*.png` were made).

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use liveguard::ingest::Format;

use crate::util::live::{daemon, get, metric, test_signals, Firehose, WAIT};

/// Where Debian puts Chromium; `LIVEGUARD_CHROMIUM` overrides.
fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("LIVEGUARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "{} not found: install it with `apt-get install -y chromium` (.ci/run does)",
        path.display()
    );
    path
}

struct Chrome {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    async fn launch() -> Chrome {
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(chromium())
            .user_data_dir(profile.path())
            .no_sandbox()
            .window_size(1280, 900)
            .args([
                "--disable-gpu",
                "--disable-component-update",
                "--disable-quic",
                "--mute-audio",
            ])
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(10))
            .build()
            .expect("browser config");
        let (browser, mut events) = Browser::launch(config).await.expect("chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chrome {
            browser,
            handler,
            _profile: profile,
        }
    }

    async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.expect("open page");
        page.wait_for_navigation().await.expect("page loads");
        page
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Evaluates `js` until it returns something `ok` accepts (bounded by [`WAIT`]).
async fn eventually(page: &Page, js: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v: serde_json::Value = match page.evaluate(js).await {
            Ok(r) => r.into_value().unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        };
        if ok(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{js}` never held; last value {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real mouse click (input events, not `element.click()`); the page comes to the front
/// first, since a background tab does not process input.
async fn click(page: &Page, selector: &str) {
    page.bring_to_front().await.expect("bring to front");
    let el = page
        .find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    el.click()
        .await
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

fn comment(room: &str, id: &str, user: &str, name: &str, text: &str) -> String {
    serde_json::json!({"type":"liveguard.comment.v1","platform":"t","room":{"id":room},"msg_id":id,
        "ts_ms": liveguard::pipeline::now_ms(),"user":{"id":user,"name":name},"text":text})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_overlay_in_a_real_browser() {
    let run = async {
        let mut fh = Firehose::start("127.0.0.1:0").await;
        let d = daemon(&fh.url(), Format::Canonical, test_signals()).await;
        fh.connected().await;
        let chrome = Chrome::launch().await;
        let base = format!("http://{}", d.addr);
        let console = chrome.open(&format!("{base}/console")).await;
        let second = chrome.open(&format!("{base}/console")).await;
        let overlay = chrome.open(&format!("{base}/overlay?room=jade&hide=3")).await;
        for p in [&console, &second] {
            eventually(
                p,
                "document.getElementById('conn').classList.contains('up')",
                |v| v == true,
            )
            .await;
        }

        fh.send(comment(
            "jade",
            "c1",
            "u1",
            "阿珍",
            "上次买的宝石有裂，收到就这样",
        ));
        fh.send(comment("jade", "c2", "u2", "troll", "加我vx便宜一半"));
        fh.send(comment("jade", "c3", "u3", "hater", "垃圾主播滚"));

        // The complaint appears with its evidence highlighted.
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 3
        })
        .await;
        let marks = eventually(
            &console,
            "[...document.querySelectorAll('.card.complaint mark')].map(m => m.textContent)",
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
        let marks: Vec<&str> = marks
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|m| m.as_str())
            .collect();
        assert!(
            marks.iter().any(|m| m.contains("裂")) && marks.contains(&"上次"),
            "{marks:?}"
        );
        let title = eventually(&console, "document.title", |v| {
            v.as_str().is_some_and(|t| t.starts_with("(1)"))
        })
        .await;
        assert_eq!(title, "(1) liveguard", "the title badge counts open complaints");

        if let Ok(dir) = std::env::var("LIVEGUARD_SCREENSHOTS") {
            let params = ScreenshotParams::builder().full_page(true).build();
            console
                .save_screenshot(params, PathBuf::from(&dir).join("console.png"))
                .await
                .expect("screenshot");
        }

        // Invite: the overlay shows the prompt, the second console sees it, no second invite.
        click(&console, ".card.complaint button.invite").await;
        let shown = eventually(&overlay, "document.getElementById('prompt').classList.contains('on') && document.getElementById('prompt').textContent", |v| {
            v.as_str().is_some_and(|t| t.contains("阿珍"))
        })
        .await;
        assert!(
            shown
                .as_str()
                .is_some_and(|t| t.contains("连麦") && t.contains("质量问题")),
            "{shown}"
        );
        if let Ok(dir) = std::env::var("LIVEGUARD_SCREENSHOTS") {
            // A background tab does not advance transitions: show it, let the fade-in finish.
            overlay.bring_to_front().await.expect("front");
            tokio::time::sleep(Duration::from_millis(900)).await;
            let params = ScreenshotParams::builder().omit_background(true).build();
            overlay
                .save_screenshot(params, PathBuf::from(&dir).join("overlay.png"))
                .await
                .expect("screenshot");
        }
        eventually(
            &second,
            "document.querySelector('.card.complaint').dataset.status",
            |v| v == "invited",
        )
        .await;
        eventually(
            &second,
            "document.querySelector('.card.complaint button.invite').disabled",
            |v| v == true,
        )
        .await;

        // Dismiss on the second console is recorded and reaches the first.
        click(
            &second,
            ".card.attack.kind-comment[data-status='open'] button.dismiss",
        )
        .await;
        eventually(
            &console,
            "[...document.querySelectorAll('.card.attack')].map(c => c.dataset.status).sort().join()",
            |v| v == "dismissed,open",
        )
        .await;
        let alerts: serde_json::Value =
            serde_json::from_str(&get(d.addr, "/api/alerts?room=jade").await).expect("json");
        let dismissed: Vec<&serde_json::Value> = alerts
            .as_array()
            .expect("array")
            .iter()
            .filter(|a| a["status"] == "dismissed")
            .collect();
        assert_eq!(dismissed.len(), 1);
        assert_eq!(dismissed[0]["actions"][0]["action"], "dismiss");
        assert!(
            metric(d.addr, "liveguard_dismissed_total").await >= 1.0,
            "dismissal feedback counted per rule"
        );

        // A script for the insult reaches the overlay as the script, never as the raw insult.
        click(&console, ".card.attack[data-status='open'] button.send").await;
        let script = eventually(&overlay, "document.getElementById('prompt').classList.contains('on') && document.getElementById('prompt').className === 'script on' && document.getElementById('prompt').textContent", |v| {
            v.as_str().is_some_and(|t| !t.is_empty())
        })
        .await;
        let script = script.as_str().unwrap_or_default();
        assert!(script.contains("私信") && !script.contains("垃圾"), "{script}");

        // Nothing appears on the overlay of another room.
        let other = chrome.open(&format!("{base}/overlay?room=elsewhere")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let empty: serde_json::Value = other
            .evaluate("document.getElementById('prompt').textContent")
            .await
            .expect("eval")
            .into_value()
            .expect("value");
        assert_eq!(empty, "");

        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finishes within 2 minutes");
}
