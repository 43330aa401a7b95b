//! A floor manager's shift, in real headless Chromium against the real daemon (the helpers of
//! `browser`): 600 complaints from 600 buyers and the oldest is still first in the worklist,
//! with the database's count, also once overdue; reminders never cover a button; cards hold
//! still under the pointer while new alerts wait behind a pill, and j / k / n find the open
//! complaints; a source that goes down turns `/healthz` 503 and the console red, and both
//! clear when it returns; Send script over plain HTTP (not a secure context) leaves the script
//! on the clipboard. `LIVEGUARD_SCREENSHOTS=DIR` also saves `tickets.png` and `blind.png`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::browser::{
    PermissionDescriptor, PermissionSetting, SetPermissionParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use liveguard::clock::ManualClock;
use liveguard::history::SignalConfig;
use liveguard::ingest::Format;

use crate::browser::{click, comment, comment_on, connected, eval, eventually, Chrome};
use crate::util::live::{get_status, test_config, test_signals, watched, Firehose, Subscriber, WAIT};

const HOUR: u64 = 3_600_000;

/// Presses a key on the page (real input events; the page comes to the front first).
async fn key(page: &Page, k: &str) {
    page.bring_to_front().await.expect("front");
    for ty in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
        let mut b = DispatchKeyEventParams::builder()
            .r#type(ty.clone())
            .key(k)
            .code(format!("Key{}", k.to_uppercase()));
        if ty == DispatchKeyEventType::KeyDown {
            b = b.text(k);
        }
        page.execute(b.build().expect("a key event")).await.expect("key");
    }
}

async fn viewport(page: &Page) {
    page.execute(SetDeviceMetricsOverrideParams::new(1280, 900, 1.0, false))
        .await
        .expect("viewport");
}

fn screenshot_dir() -> Option<PathBuf> {
    std::env::var("LIVEGUARD_SCREENSHOTS").ok().map(PathBuf::from)
}

/// Buttons in the viewport that something else covers (the dock, a toast): must be none.
const COVERED_BUTTONS: &str = "[...document.querySelectorAll('main button, #work button')].filter(b => { \
    const r = b.getBoundingClientRect(); \
    const top = document.querySelector('header').getBoundingClientRect().bottom; \
    if (!r.width || r.top + r.height / 2 <= top || r.top >= innerHeight) return false; \
    const y = Math.min(r.top + r.height / 2, innerHeight - 1); \
    const e = document.elementFromPoint(r.left + r.width / 2, y); \
    return !b.contains(e); }).map(b => b.className + '@' + b.closest('article').dataset.user)";

/// 600 buyers complain; the feed keeps its newest 400, the worklist keeps them all, oldest
/// (nearest deadline) first, with the database's count in the tab, the title and the page
/// line. Two hours on, every unanswered one is overdue on the badge, though most are no
/// longer in the feed; the reminders pile up in the dock without covering a button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_buyers_the_oldest_stays_in_the_worklist_with_the_right_count() {
    const N: usize = 600;
    let run = async {
        let mut fh = Firehose::start("127.0.0.1:0").await;
        let clock = ManualClock::at(liveguard::clock::now_ms());
        let signals = SignalConfig {
            silence_after_ms: 48 * HOUR,
            ..test_signals()
        };
        let mut cfg = test_config(&fh.url(), Format::Canonical, signals);
        // 599 reminders and their ticket updates come in one burst: room for all of them.
        cfg.fanout_capacity = 4_096;
        let d = liveguard::daemon::start_with_clock(cfg, clock.clone())
            .await
            .expect("daemon starts");
        fh.connected().await;
        let addr = d.addr;
        let chrome = Chrome::launch().await;
        let console = chrome.open(&format!("http://{addr}/console")).await;
        viewport(&console).await;
        connected(&console).await;

        let mut sub = Subscriber::connect(addr, "").await;
        for i in 0..N {
            fh.send(comment_on(
                "jade",
                &format!("b{i}"),
                &format!("u-{i:03}"),
                &format!("买家{i}"),
                &format!("收到的手镯有裂纹，要退货 {i}"),
                "jade bangle",
            ));
        }
        for _ in 0..N {
            sub.next_alert().await;
        }
        eventually(&console, "document.title", |v| v == "(600) liveguard").await;
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 400
        })
        .await;
        assert_eq!(
            eval(
                &console,
                "Boolean(document.querySelector(\"#feed .card[data-user='u-000']\"))"
            )
            .await,
            false,
            "the oldest complaint left the capped feed"
        );

        click(&console, "#tab-tickets").await;
        let first = eventually(
            &console,
            "[...document.querySelectorAll('#work-list .card')].slice(0, 2).map(c => c.dataset.user).join()",
            |v| v == "u-000,u-001",
        )
        .await;
        let page_line = eval(&console, "document.getElementById('work-page').textContent").await;
        assert_eq!(page_line, "第 1–50 条，共 600 条", "{first}");
        assert_eq!(
            eval(&console, "document.getElementById('work-n').textContent").await,
            "600"
        );
        let db = rusqlite::Connection::open(d.hub.path()).expect("open the database");
        let active: i64 = db
            .query_row(
                "SELECT count(*) FROM tickets WHERE status IN ('open', 'responding')",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(active, N as i64, "the count is the database's");
        // The last page holds the newest.
        for _ in 0..11 {
            click(&console, "#work-next").await;
        }
        eventually(
            &console,
            "document.getElementById('work-page').textContent + ' ' + [...document.querySelectorAll('#work-list .card')].pop()?.dataset.user",
            |v| v == "第 551–600 条，共 600 条 u-599",
        )
        .await;
        click(&console, "#work-prev").await;
        for _ in 0..10 {
            click(&console, "#work-prev").await;
        }
        eventually(
            &console,
            "document.querySelector('#work-list .card')?.dataset.user",
            |v| v == "u-000",
        )
        .await;

        // Invite the oldest from the worklist: the list holds still under the pointer, the
        // counts follow at once; when the pointer leaves, she moves down (answered).
        click(&console, "#work-list .card[data-user='u-000'] button.invite").await;
        eventually(&console, "document.title", |v| v == "(599) liveguard").await;
        assert_eq!(
            eval(
                &console,
                "document.querySelector('#work-list .card').dataset.user"
            )
            .await,
            "u-000",
            "no reshuffle under the pointer"
        );
        console
            .move_mouse(Point { x: 5.0, y: 5.0 })
            .await
            .expect("mouse away");
        eventually(
            &console,
            "document.querySelector('#work-list .card')?.dataset.user",
            |v| v == "u-001",
        )
        .await;

        // Two hours on: 599 unanswered complaints are overdue; the badge counts them all.
        clock.advance(2 * HOUR + 1_000);
        eventually(
            &console,
            "document.getElementById('overdue-n').textContent",
            |v| v == "599",
        )
        .await;
        eventually(&console, "document.title", |v| v == "(599) ⚠599 liveguard").await;
        eventually(
            &console,
            "document.querySelectorAll('#reminders .reminder').length",
            |v| v == 3,
        )
        .await;
        click(&console, "#overdue").await;
        eventually(
            &console,
            "document.getElementById('work-page').textContent + ' ' + document.querySelector('#work-list .card')?.dataset.user",
            |v| v == "第 1–50 条，共 599 条 u-001",
        )
        .await;
        if let Some(dir) = screenshot_dir() {
            console
                .save_screenshot(ScreenshotParams::builder().build(), dir.join("tickets.png"))
                .await
                .expect("screenshot");
        }

        // Reminders sit in the dock; the page makes room: no button is under it, at the bottom
        // of the feed or for a card brought into view.
        click(&console, "#tab-feed").await;
        let covered = eval(
            &console,
            &format!("window.scrollTo(0, document.body.scrollHeight); {COVERED_BUTTONS}"),
        )
        .await;
        assert_eq!(covered, serde_json::json!([]), "at the bottom of the feed");
        let covered = eval(
            &console,
            &format!("document.querySelectorAll('#feed .card')[200].querySelector('button.dismiss').scrollIntoView({{block: 'end'}}); {COVERED_BUTTONS}"),
        )
        .await;
        assert_eq!(covered, serde_json::json!([]), "a card scrolled into view");
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("the worklist test finishes within 150 s");
}

/// While the pointer is on the feed, new alerts wait behind the pill (which counts them) and
/// the card under the pointer stays where it is; they come in when the pointer leaves. The
/// same while a script is being edited. j / k walk the open complaints; n opens the most
/// urgent ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_hold_still_under_the_pointer_and_keys_find_the_open_complaints() {
    let run = async {
        let (fh, d) = watched().await;
        let chrome = Chrome::launch().await;
        let console = chrome.open(&format!("http://{}/console", d.addr)).await;
        viewport(&console).await;
        connected(&console).await;
        let complaint = |i: usize| {
            comment(
                "jade",
                &format!("c{i}"),
                &format!("u{i}"),
                &format!("买家{i}"),
                &format!("上次买的手链戴了两天就断了 {i}"),
            )
        };
        for i in 0..6 {
            fh.send(complaint(i));
        }
        fh.send(comment("jade", "a1", "t1", "troll", "加我vx便宜一半"));
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 7
        })
        .await;

        // Rest the pointer on the third card, then five alerts arrive.
        let spot = eval(&console, "(() => { const c = document.querySelectorAll('#feed .card')[2]; const r = c.getBoundingClientRect(); return [c.dataset.seq, r.left + r.width / 2, r.top + 12, r.top]; })()").await;
        let (x, y) = (spot[1].as_f64().expect("x"), spot[2].as_f64().expect("y"));
        console.bring_to_front().await.expect("front");
        // (Input.dispatchMouseEvent returns once the page has handled the move.)
        console.move_mouse(Point { x, y }).await.expect("hover");
        for i in 6..11 {
            fh.send(complaint(i));
        }
        eventually(
            &console,
            "document.getElementById('pill').hidden ? '' : document.getElementById('pill').textContent",
            |v| v == "5 条新告警 ↑",
        )
        .await;
        let under = eval(
            &console,
            &format!("(() => {{ const c = document.elementFromPoint({x}, {y}).closest('article'); return [c.dataset.seq, c.getBoundingClientRect().top, document.querySelectorAll('#feed .card').length]; }})()"),
        )
        .await;
        assert_eq!(
            (&under[0], &under[1], &under[2]),
            (&spot[0], &spot[3], &serde_json::json!(7)),
            "the card under the pointer did not move"
        );

        // The pointer leaves: the five come in on top, the pill goes.
        console.move_mouse(Point { x: 5.0, y: 5.0 }).await.expect("leave");
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 12
        })
        .await;
        assert_eq!(
            eval(&console, "document.getElementById('pill').hidden").await,
            true
        );
        assert_eq!(
            eval(&console, "document.querySelector('#feed .card').dataset.user").await,
            "u10"
        );

        // Editing a script holds the feed too, pointer or not.
        click(&console, "#feed .card[data-user='u3'] textarea.script").await;
        console.move_mouse(Point { x: 5.0, y: 5.0 }).await.expect("leave");
        fh.send(complaint(11));
        eventually(&console, "document.getElementById('pill').textContent", |v| {
            v == "1 条新告警 ↑"
        })
        .await;
        assert_eq!(
            eval(&console, "document.querySelectorAll('#feed .card').length").await,
            12
        );
        click(&console, "h1").await;
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 13
        })
        .await;

        // j / k: the open complaints, newest first; the troll is skipped.
        key(&console, "j").await;
        eventually(&console, "document.activeElement.dataset.user", |v| v == "u11").await;
        key(&console, "j").await;
        eventually(&console, "document.activeElement.dataset.user", |v| v == "u10").await;
        key(&console, "k").await;
        eventually(&console, "document.activeElement.dataset.user", |v| v == "u11").await;
        // n: the ticket with the nearest deadline, in the worklist.
        key(&console, "n").await;
        eventually(
            &console,
            "import('/assets/state.js').then(({ state }) => state.tab + ' ' + document.activeElement.dataset.user)",
            |v| v == "tickets u0",
        )
        .await;
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the steady feed test finishes within 90 s");
}

/// The firehose dies: once it has been down `source_down_ms`, `/healthz` answers 503 and the
/// console shows a red banner naming the source and since when; both clear when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_goes_down_turns_healthz_503_and_the_console_red_until_it_returns() {
    const DOWN_MS: u64 = 1_500;
    let run = async {
        let mut fh = Firehose::start("127.0.0.1:0").await;
        let mut cfg = test_config(&fh.url(), Format::Canonical, test_signals());
        cfg.source_down_ms = DOWN_MS;
        let source = fh.url();
        let d = liveguard::daemon::start(cfg).await.expect("daemon starts");
        fh.connected().await;
        let chrome = Chrome::launch().await;
        let console = chrome.open(&format!("http://{}/console", d.addr)).await;
        viewport(&console).await;
        connected(&console).await;
        fh.send(comment(
            "jade",
            "c1",
            "u1",
            "阿珍",
            "上次买的宝石有裂，收到就这样",
        ));
        // The buyer's card (a source quiet past DOWN_MS while Chromium starts adds ops cards).
        eventually(
            &console,
            "document.querySelectorAll('#feed .card:not(.kind-ops)').length",
            |v| v == 1,
        )
        .await;
        // Chromium may take longer than DOWN_MS to start on a loaded machine, long enough for
        // the quiet source to count as silent: the banner clears at the next health poll.
        eventually(&console, "document.getElementById('blind').hidden", |v| v == true).await;

        let died = Instant::now();
        let addr = fh.kill();
        let banner = eventually(
            &console,
            "document.getElementById('blind').hidden ? null : document.getElementById('blind').textContent",
            |v| v.is_string(),
        )
        .await;
        let shown = died.elapsed();
        let (code, health) = get_status(d.addr, "/healthz").await;
        assert_eq!(code, 503, "{health}");
        let banner = banner.as_str().unwrap_or_default();
        assert!(banner.contains(&source) && banner.contains("已断开"), "{banner}");
        assert!(
            shown >= Duration::from_millis(DOWN_MS - 100)
                && shown < Duration::from_millis(DOWN_MS) + WAIT / 4,
            "banner after {shown:?} (source_down_ms {DOWN_MS})"
        );
        eprintln!("banner shown {shown:?} after the firehose died (source_down_ms {DOWN_MS} ms)");
        if let Some(dir) = screenshot_dir() {
            console
                .save_screenshot(ScreenshotParams::builder().build(), dir.join("blind.png"))
                .await
                .expect("screenshot");
        }

        let back = Instant::now();
        let mut fh = Firehose::start(&addr.to_string()).await;
        fh.connected().await;
        fh.send(comment("jade", "c2", "u2", "小美", "主播好漂亮"));
        eventually(&console, "document.getElementById('blind').hidden", |v| v == true).await;
        let (code, health) = get_status(d.addr, "/healthz").await;
        assert_eq!(code, 200, "{health}");
        eprintln!("banner cleared {:?} after the firehose came back", back.elapsed());
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the blind-source test finishes within a minute");
}

/// A tablet on the shop's Wi-Fi opens the console over plain HTTP: not a secure context, no
/// `navigator.clipboard`. Send script still leaves the script on the clipboard and says so on
/// the card (or leaves it selected with a hint). The same page: one status chip on a
/// complaint, no Mute for a genuine complaint, a brigade card naming its people.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_script_copies_over_plain_http() {
    let run = async {
        let mut fh = Firehose::start("127.0.0.1:0").await;
        // The tablet's name must be an allowed host (the Host check stops DNS rebinding).
        let mut cfg = crate::util::live::test_config(&fh.url(), Format::Canonical, test_signals());
        cfg.auth.allowed_hosts = vec!["tablet.test".into()];
        let d = liveguard::daemon::start(cfg).await.expect("daemon starts");
        fh.connected().await;
        let port = d.addr.port();
        // tablet.test resolves to this machine, but is not localhost: plain http is insecure.
        let chrome = Chrome::launch_with(&["host-resolver-rules=MAP tablet.test 127.0.0.1"]).await;
        let console = chrome.open(&format!("http://tablet.test:{port}/console")).await;
        viewport(&console).await;
        connected(&console).await;
        assert_eq!(
            eval(&console, "[window.isSecureContext, typeof navigator.clipboard]").await,
            serde_json::json!([false, "undefined"])
        );
        fh.send(comment(
            "jade",
            "c1",
            "u1",
            "阿珍",
            "上次买的宝石有裂，收到就这样",
        ));
        for (i, (user, name)) in [("b1", "阿强"), ("b2", "小丽"), ("b3", "大熊")]
            .iter()
            .enumerate()
        {
            fh.send(comment(
                "jade",
                &format!("br{i}"),
                user,
                name,
                "骗子直播间，大家快跑",
            ));
        }
        eventually(
            &console,
            "document.querySelector('.card.brigade .users')?.textContent",
            |v| v.as_str().is_some_and(|t| t.contains("阿强, 小丽, 大熊")),
        )
        .await;
        let complaint = ".card.complaint[data-user='u1']";
        assert_eq!(
            eval(&console, &format!("[document.querySelectorAll(\"{complaint} .tag.status, {complaint} .tstatus\").length, document.querySelectorAll(\"{complaint} button.mute\").length]")).await,
            serde_json::json!([1, 0]),
            "one status chip, and no Mute for a buyer's genuine complaint"
        );

        click(&console, ".card.brigade button.send").await;
        let note = eventually(
            &console,
            "document.querySelector('.card.brigade .copy-note')?.textContent",
            |v| v.is_string(),
        )
        .await;
        let script = eval(
            &console,
            "document.querySelector('.card.brigade textarea.script').value",
        )
        .await;
        let script = script.as_str().expect("a script").to_string();
        assert!(!script.is_empty());
        eprintln!("Send script over plain HTTP: {note}");
        if note == "话术已复制" {
            // Read the clipboard back from a secure page of the same browser.
            let origin = format!("http://127.0.0.1:{port}");
            for name in ["clipboard-read", "clipboard-write"] {
                let grant = SetPermissionParams::builder()
                    .permission(PermissionDescriptor::new(name))
                    .setting(PermissionSetting::Granted)
                    .origin(origin.clone())
                    .build()
                    .expect("permission");
                chrome.browser.execute(grant).await.expect("grant clipboard");
            }
            let reader = chrome.open(&format!("{origin}/overlay?room=none")).await;
            reader.bring_to_front().await.expect("front");
            let pasted = eval(&reader, "navigator.clipboard.readText()").await;
            assert_eq!(pasted, script.as_str(), "the script is on the clipboard");
        } else {
            assert_eq!(note, "话术已选中，请按 Ctrl+C（Mac 上 ⌘C）复制");
            let selected = eval(&console, "(() => { const a = document.activeElement; return a.selectionStart === 0 && a.selectionEnd === a.value.length && a.value; })()").await;
            assert_eq!(selected, script.as_str(), "the script is selected for Ctrl+C");
        }
        eventually(
            &console,
            "document.querySelector('.card.brigade').dataset.status",
            |v| v == "scripted",
        )
        .await;
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the copy test finishes within a minute");
}
