//! The console and overlay pages in real headless Chromium (Debian's `chromium`), driven over
//! the DevTools protocol with chromiumoxide, against the real daemon on 127.0.0.1: an alert
//! appears with its evidence highlighted, Invite puts the prompt on the room's overlay, Dismiss
//! is recorded, and a second console sees every action; on a manual clock, a complaint's ticket
//! counts down, is reminded about and badged when overdue, is resolved with a refund, and the
//! Insights tab charts it. Set `LIVEGUARD_SCREENSHOTS=DIR` to also save screenshots of the
//! console, the Insights tab and the overlay (that is how `docs/*.png` were made).

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use liveguard::clock::ManualClock;
use liveguard::history::SignalConfig;
use liveguard::ingest::Format;

use crate::util::live::{
    daemon, daemon_with_clock, get, metric, post, test_signals, watched, Firehose, Subscriber, WAIT,
};

/// Where Debian puts Chromium; `LIVEGUARD_CHROMIUM` overrides.
pub(crate) fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("LIVEGUARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "{} not found: install it with `apt-get install -y chromium` (.ci/run does)",
        path.display()
    );
    path
}

pub(crate) struct Chrome {
    pub(crate) browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub(crate) async fn launch() -> Chrome {
        Self::launch_with(&[]).await
    }

    /// Chromium with `extra` command-line switches (without the leading `--`, which
    /// chromiumoxide adds).
    pub(crate) async fn launch_with(extra: &[&str]) -> Chrome {
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(chromium())
            .user_data_dir(profile.path())
            .no_sandbox()
            .window_size(1280, 900)
            .args(
                [
                    "--disable-gpu",
                    "--disable-component-update",
                    "--disable-quic",
                    "--mute-audio",
                ]
                .iter()
                .chain(extra)
                .map(|a| a.to_string()),
            )
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

    pub(crate) async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.expect("open page");
        page.wait_for_navigation().await.expect("page loads");
        page
    }

    pub(crate) async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Evaluates `js` until it returns something `ok` accepts (bounded by [`WAIT`]).
pub(crate) async fn eventually(
    page: &Page,
    js: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
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
/// first, since a background tab does not process input. A list that re-renders between
/// finding the node and clicking it replaces the node, so the click is retried on a fresh
/// find (bounded by [`WAIT`]), as a person would click again.
pub(crate) async fn click(page: &Page, selector: &str) {
    page.bring_to_front().await.expect("bring to front");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let tried = match page.find_element(selector).await {
            Ok(el) => el.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match tried {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("click {selector}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Evaluates `js` once.
pub(crate) async fn eval(page: &Page, js: &str) -> serde_json::Value {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .into_value()
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until the console's alert socket is up.
pub(crate) async fn connected(page: &Page) {
    eventually(
        page,
        "document.getElementById('conn').classList.contains('up')",
        |v| v == true,
    )
    .await;
}

pub(crate) fn comment(room: &str, id: &str, user: &str, name: &str, text: &str) -> String {
    serde_json::json!({"type":"liveguard.comment.v1","platform":"t","room":{"id":room},"msg_id":id,
        "ts_ms": liveguard::clock::now_ms(),"user":{"id":user,"name":name},"text":text})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_overlay_in_a_real_browser() {
    let run = async {
        let (fh, d) = watched().await;
        let chrome = Chrome::launch().await;
        let base = format!("http://{}", d.addr);
        let console = chrome.open(&format!("{base}/console")).await;
        let second = chrome.open(&format!("{base}/console")).await;
        let overlay = chrome.open(&format!("{base}/overlay?room=jade&hide=3")).await;
        for p in [&console, &second] {
            connected(p).await;
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

/// A canonical comment naming a product, as the platform sends it.
pub(crate) fn comment_on(room: &str, id: &str, user: &str, name: &str, text: &str, product: &str) -> String {
    serde_json::json!({"type":"liveguard.comment.v1","platform":"t","room":{"id":room},"msg_id":id,
        "ts_ms": liveguard::clock::now_ms(),"user":{"id":user,"name":name},"text":text,
        "product":{"id":product,"title":product}})
    .to_string()
}

/// An action through the API (the history the Insights tab summarizes).
async fn act(addr: std::net::SocketAddr, seq: &serde_json::Value, body: serde_json::Value) {
    let (code, reply) = post(addr, &format!("/api/alerts/{seq}/actions"), &body.to_string()).await;
    assert_eq!(code, 200, "{body} on {seq}: {reply}");
}

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

/// Tickets on the clock the daemon is given: a complaint's card counts down to the first
/// response; two hours later the reminder toast and the overdue badge appear; Refund resolves
/// the ticket; the Insights tab charts the day, with the refund in the ticket table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_reminders_and_insights_in_a_real_browser() {
    let run = async {
        let mut fh = Firehose::start("127.0.0.1:0").await;
        // Four hours of history before "now", walked through on a manual clock.
        let clock = ManualClock::at(liveguard::clock::now_ms() - 4 * HOUR);
        let signals = SignalConfig {
            // The clock jumps hours: the firehose must not be reported silent meanwhile.
            silence_after_ms: 48 * HOUR,
            ..test_signals()
        };
        let d = daemon_with_clock(&fh.url(), Format::Canonical, signals, clock.clone()).await;
        fh.connected().await;
        let addr = d.addr;
        let mut sub = Subscriber::connect(addr, "").await;

        // History: complaints answered within the hour and resolved, one dismissed, attacks.
        fh.send(comment_on(
            "jade",
            "h1",
            "u-mei",
            "小美",
            "收到的手镯有裂纹，怎么回事",
            "jade bangle",
        ));
        let c1 = sub.next_alert().await["seq"].clone();
        fh.send(comment_on(
            "jade",
            "h2",
            "u-lin",
            "林林",
            "快递一个星期了还没到",
            "pearl earrings",
        ));
        let c2 = sub.next_alert().await["seq"].clone();
        fh.send(comment("jade", "h3", "u-troll", "troll", "加我vx便宜一半"));
        sub.next_alert().await;
        clock.advance(6 * MIN);
        act(addr, &c1, serde_json::json!({"action":"invite","by":"fm-li"})).await;
        clock.advance(12 * MIN);
        act(addr, &c2, serde_json::json!({"action":"send_script","by":"fm-li","choice":"explain","script":"我们马上核实物流"})).await;
        clock.advance(22 * MIN);
        act(
            addr,
            &c1,
            serde_json::json!({"action":"resolve","by":"fm-li","choice":"exchange"}),
        )
        .await;
        clock.advance(20 * MIN);
        fh.send(comment_on(
            "live-2",
            "h4",
            "u-amy",
            "Amy",
            "the ring I bought looks nothing like it did on the live",
            "silver ring",
        ));
        let c3 = sub.next_alert().await["seq"].clone();
        fh.send(comment_on(
            "jade",
            "h5",
            "u-qiang",
            "阿强",
            "上次买的手链褪色了",
            "jade bangle",
        ));
        let c4 = sub.next_alert().await["seq"].clone();
        fh.send(comment("live-2", "h6", "u-hater", "hater", "垃圾主播滚"));
        sub.next_alert().await;
        clock.advance(9 * MIN);
        act(addr, &c3, serde_json::json!({"action":"invite","by":"fm-wu"})).await;
        act(addr, &c4, serde_json::json!({"action":"dismiss","by":"fm-wu"})).await;
        clock.advance(41 * MIN);
        act(
            addr,
            &c2,
            serde_json::json!({"action":"resolve","by":"fm-li","choice":"other"}),
        )
        .await;
        clock.advance(10 * MIN);

        // Now: the console is open when 阿珍's complaint comes in.
        let chrome = Chrome::launch().await;
        let console = chrome.open(&format!("http://{addr}/console")).await;
        console
            .execute(SetDeviceMetricsOverrideParams::new(1280, 900, 1.0, false))
            .await
            .expect("viewport");
        eventually(
            &console,
            "document.getElementById('conn').classList.contains('up') && document.querySelectorAll('#feed .card').length",
            |v| v == 6,
        )
        .await;
        fh.send(comment_on(
            "jade",
            "m1",
            "u-azhen",
            "阿珍",
            "上次买的宝石有裂，收到就这样",
            "jade bangle",
        ));
        let main = sub.next_alert().await;
        assert_eq!(main["ticket"]["status"], "open", "{main}");
        fh.send(comment("jade", "m2", "u-azhen", "阿珍", "主播在吗？等你们回复"));
        let card = "#feed .card[data-user='u-azhen']";
        let countdown = eventually(
            &console,
            &format!("document.querySelector(\"{card} .ticket[data-ticket='open'] .timer\")?.textContent"),
            |v| {
                v.as_str()
                    .is_some_and(|t| t.starts_with("首次回应剩余 1:59:") || t == "首次回应剩余 2:00:00")
            },
        )
        .await;
        let followup = eventually(
            &console,
            &format!("document.querySelector(\"{card} .fu-count\")?.textContent + ' ' + document.querySelector(\"{card} .followups\")?.textContent"),
            |v| v.as_str().is_some_and(|t| t.contains("主播在吗")),
        )
        .await;
        assert!(
            followup.as_str().is_some_and(|t| t.contains("追问 1 次")),
            "{followup}"
        );
        let badge = console
            .evaluate("document.getElementById('overdue-n').textContent")
            .await
            .expect("eval")
            .into_value::<String>()
            .expect("text");
        assert_eq!(badge, "0", "nothing overdue yet ({countdown})");

        // Two hours and a second later: the daemon reminds, the console says so and counts it.
        clock.advance(2 * HOUR + 1_000);
        let toast = eventually(
            &console,
            "document.querySelector('#reminders .reminder.overdue .msg')?.textContent",
            |v| v.is_string(),
        )
        .await;
        let toast = toast.as_str().unwrap_or_default();
        assert!(
            toast.contains("阿珍")
                && toast.contains("质量问题")
                && toast.contains("首次回应")
                && toast.contains("已超时"),
            "{toast}"
        );
        eventually(
            &console,
            "document.getElementById('overdue-n').textContent",
            |v| v == "1",
        )
        .await;
        eventually(&console, "document.title", |v| v == "(1) ⚠1 liveguard").await;
        eventually(
            &console,
            &format!("document.querySelector(\"{card} .timer\").className"),
            |v| v == "timer red",
        )
        .await;
        // The badge opens the worklist's overdue tickets, and again every active one.
        click(&console, "#overdue").await;
        eventually(
            &console,
            "import('/assets/state.js').then(({ state }) => state.tab === 'tickets' && [...document.querySelectorAll('#work-list .card')].map(c => c.dataset.user).join())",
            |v| v == "u-azhen",
        )
        .await;
        click(&console, "#overdue").await;
        eventually(
            &console,
            "[...document.querySelectorAll('#work-list .card')].map(c => c.dataset.user).join()",
            |v| v == "u-azhen,u-amy",
        )
        .await;
        click(&console, "#tab-feed").await;
        eventually(
            &console,
            "[...document.querySelectorAll('#feed .card')].filter(c => c.style.display !== 'none').length",
            |v| v == 7,
        )
        .await;
        if let Ok(dir) = std::env::var("LIVEGUARD_SCREENSHOTS") {
            let params = ScreenshotParams::builder().full_page(true).build();
            console
                .save_screenshot(params, PathBuf::from(&dir).join("console.png"))
                .await
                .expect("screenshot");
        }

        // Refund (方案A) closes the ticket; nothing is overdue any more.
        click(&console, &format!("{card} button.resolve[data-choice='refund']")).await;
        let resolved = eventually(
            &console,
            &format!(
                "document.querySelector(\"{card} .ticket[data-ticket='resolved_refund']\")?.textContent"
            ),
            |v| v.is_string(),
        )
        .await;
        assert!(
            resolved
                .as_str()
                .is_some_and(|t| t.contains("方案A") && t.contains("退款")),
            "{resolved}"
        );
        eventually(
            &console,
            "document.getElementById('overdue-n').textContent",
            |v| v == "0",
        )
        .await;
        eventually(
            &console,
            &format!("document.querySelectorAll(\"{card} button.resolve\").length"),
            |v| v == 0,
        )
        .await;

        // Insights: the day's complaints per hour as bars; one refund among the tickets.
        click(&console, "#tab-insights").await;
        let bars = eventually(
            &console,
            "document.querySelectorAll('#chart-topics svg rect.bar').length",
            |v| v.as_u64().is_some_and(|n| n >= 1),
        )
        .await;
        eventually(
            &console,
            "document.querySelector(\"#tbl-tickets tr[data-status='resolved_refund'] td.n\")?.textContent",
            |v| v == "1",
        )
        .await;
        let breaches = console
            .evaluate("document.querySelector(\"#tbl-promises tr[data-promise='response'] td:last-child\").textContent")
            .await
            .expect("eval")
            .into_value::<String>()
            .expect("text");
        assert_eq!(
            breaches, "1",
            "阿珍 waited past the response promise ({bars} bars)"
        );
        eventually(
            &console,
            "document.querySelectorAll('#chart-response svg rect.bar.median').length",
            |v| v.as_u64().is_some_and(|n| n >= 1),
        )
        .await;
        // In Chinese, all of it: no "n", "P90" or "2s" left in English, and 24-hour times.
        let english = console
            .evaluate("(document.getElementById('insights').innerText.match(/\\b\\d+[smhd]\\b|P90|\\bn\\b|\\bmedian\\b/g) || [])")
            .await
            .expect("eval")
            .into_value::<serde_json::Value>()
            .expect("value");
        assert_eq!(
            english,
            serde_json::json!([]),
            "untranslated in the zh Insights tab"
        );
        let clocks = console
            .evaluate("[...document.querySelectorAll('time')].map(t => t.textContent).filter(x => !/^\\d\\d:\\d\\d(:\\d\\d)?$/.test(x)).concat(document.body.innerText.match(/AM|PM|上午|下午/g) || [])")
            .await
            .expect("eval")
            .into_value::<serde_json::Value>()
            .expect("value");
        assert_eq!(clocks, serde_json::json!([]), "times on a 24-hour clock");
        click(&console, "#reminders .reminder .close").await;
        eventually(
            &console,
            "document.querySelectorAll('#reminders .reminder').length",
            |v| v == 0,
        )
        .await;
        // The language switch redraws the tab.
        click(&console, "#lang-toggle").await;
        eventually(
            &console,
            "document.querySelector('#insights h3').textContent",
            |v| v == "Complaints per hour, by topic",
        )
        .await;
        if let Ok(dir) = std::env::var("LIVEGUARD_SCREENSHOTS") {
            let params = ScreenshotParams::builder().full_page(true).build();
            console
                .save_screenshot(params, PathBuf::from(&dir).join("insights.png"))
                .await
                .expect("screenshot");
        }
        // A week: the same bars, labelled by day.
        console
            .evaluate("(() => { const r = document.getElementById('ins-range'); r.value = '7d'; r.dispatchEvent(new Event('change')); })()")
            .await
            .expect("eval");
        eventually(
            &console,
            "import('/assets/state.js').then(({ state }) => state.stats && state.stats.until_ms - state.stats.since_ms > 2 * 86400000 && document.querySelectorAll('#chart-topics svg rect.bar').length)",
            |v| v.as_u64().is_some_and(|n| n >= 1),
        )
        .await;
        // Nothing in the window: a friendly empty state, not empty charts.
        let empty = console
            .evaluate("Promise.all([import('/assets/state.js'), import('/assets/insights.js')]).then(([{ state }, { renderStats }]) => { state.stats = {since_ms: 1, until_ms: 2, complaints: {total: 0}, attacks: {total: 0}, tickets: {opened: 0}}; renderStats(); return [document.getElementById('ins-body').hidden, document.getElementById('ins-empty').textContent]; })")
            .await
            .expect("eval")
            .into_value::<serde_json::Value>()
            .expect("value");
        assert_eq!(empty[0], true, "{empty}");
        assert!(empty[1].as_str().is_some_and(|t| t.contains("quiet")), "{empty}");

        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the ticket browser test finishes within a minute");
}

/// A viewer named with `$` patterns stays a name in the filled script (a string replacement
/// would splice the template instead), in the console's own code, in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_names_with_dollar_patterns_fill_scripts_verbatim() {
    let fh = Firehose::start("127.0.0.1:0").await;
    let d = daemon(&fh.url(), Format::Canonical, crate::util::live::test_signals()).await;
    let chrome = Chrome::launch().await;
    let console = chrome.open(&format!("http://{}/console", d.addr)).await;
    let filled = eventually(
        &console,
        r#"import("/assets/scripts.js").then(({ fill }) => fill("看到{user}的反馈，{product}", {user: {name: "$'$`$&"}, lang: "zh", product: "$1"}))"#,
        |v| v.is_string(),
    )
    .await;
    assert_eq!(filled, "看到$'$`$&的反馈，$1");
    d.stop(Duration::from_secs(5)).await;
}
