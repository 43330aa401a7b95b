//! The console's words and its alert state, in real headless Chromium against the real daemon
//! (the helpers of `browser`): every label of a daemon type on the page is the one
//! `GET /api/console` sends, in zh and in en; the overlay names a topic as the console does;
//! updates that carry only the fields that changed are merged into the cards, and one for an
//! alert the page never got is fetched.

use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::{click, comment, connected, eval, eventually, Chrome};
use crate::util::live::{get, get_status, post, watched, Subscriber};

/// The vocabulary the daemon hands the console.
async fn vocab(addr: std::net::SocketAddr) -> Value {
    let settings: Value = serde_json::from_str(&get(addr, "/api/console").await).expect("JSON settings");
    settings["vocab"].clone()
}

/// The `lang` label of `name` in `group` of `vocab`.
fn label<'a>(vocab: &'a Value, group: &str, name: &str, lang: &str) -> &'a str {
    vocab[group]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name))
        .and_then(|r| r[lang].as_str())
        .unwrap_or_else(|| panic!("no {lang} label for {group}/{name}"))
}

/// What the page shows of the daemon's types: per card its topic, suggested action, status chip
/// and buttons as (name, text); the class and topic filters as (value, text).
const SHOWN: &str = "(() => {
  const pairs = (els, key) => [...els].map((e) => [key(e), e.textContent.trim()]);
  return {
    cards: [...document.querySelectorAll('#feed .card')].map((c) => ({
      user: c.dataset.user, status: c.dataset.status,
      topic: pairs(c.querySelectorAll('.tag.topic'), (e) => e.dataset.topic),
      action: c.querySelector('.tag.action')?.textContent,
      chip: c.querySelector('.tag.status, .tag.tstatus')?.textContent,
      buttons: pairs(c.querySelectorAll('.buttons button'), (e) => e.dataset.act),
    })),
    classes: pairs(document.querySelectorAll('#f-class option'), (e) => e.value).slice(1),
    topics: pairs(document.querySelectorAll('#f-topic option'), (e) => e.value).slice(1),
  };
})()";

/// Asserts every daemon word in `shown` is `vocab`'s label in `lang`.
fn assert_labels(shown: &Value, vocab: &Value, alerts: &[Value], lang: &str) {
    let rows = |group: &str| -> Vec<Value> {
        vocab[group]
            .as_array()
            .expect(group)
            .iter()
            .map(|r| json!([r["name"], r[lang]]))
            .collect()
    };
    assert_eq!(shown["classes"], json!(rows("classes")), "class filter in {lang}");
    assert_eq!(shown["topics"], json!(rows("topics")), "topic filter in {lang}");
    let cards = shown["cards"].as_array().expect("cards");
    assert_eq!(cards.len(), alerts.len(), "{shown}");
    for a in alerts {
        let user = a["user"]["id"].as_str().expect("user");
        let card = cards
            .iter()
            .find(|c| c["user"] == user)
            .expect("a card per alert");
        let topic = a["topic"].as_str().expect("a topic");
        assert_eq!(
            card["topic"],
            json!([[topic, label(vocab, "topics", topic, lang)]]),
            "{user} in {lang}"
        );
        let action = a["action"].as_str().expect("an action");
        assert_eq!(card["action"], label(vocab, "actions", action, lang), "{user}");
        let chip = match a["ticket"]["status"].as_str() {
            Some(s) => label(vocab, "ticket_statuses", s, lang),
            None => label(
                vocab,
                "alert_statuses",
                a["status"].as_str().expect("status"),
                lang,
            ),
        };
        assert_eq!(card["chip"], chip, "{user}");
        for b in card["buttons"].as_array().expect("buttons") {
            let act = b[0].as_str().expect("data-act");
            assert_eq!(b[1], label(vocab, "console_actions", act, lang), "{user}: {act}");
        }
    }
}

/// The topic, class, status, suggested action and button labels on the console are the ones in
/// `/api/console`'s vocabulary, in Chinese and, after the switch, in English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_labels_come_from_the_daemons_vocabulary() {
    let run = async {
        let (fh, d) = watched().await;
        let vocab = vocab(d.addr).await;
        let mut sub = Subscriber::connect(d.addr, "").await;
        let chrome = Chrome::launch().await;
        let console = chrome.open(&format!("http://{}/console", d.addr)).await;
        connected(&console).await;
        fh.send(comment(
            "jade",
            "c1",
            "u1",
            "阿珍",
            "上次买的宝石有裂，收到就这样",
        ));
        fh.send(comment("jade", "c2", "u2", "troll", "加我vx便宜一半"));
        let alerts = [sub.next_alert().await, sub.next_alert().await];
        assert_eq!(
            (alerts[0]["class"].as_str(), alerts[1]["class"].as_str()),
            (Some("complaint"), Some("attack"))
        );
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 2
        })
        .await;
        assert_labels(&eval(&console, SHOWN).await, &vocab, &alerts, "zh");
        click(&console, "#lang-toggle").await;
        eventually(&console, "document.documentElement.lang", |v| v == "en").await;
        assert_labels(&eval(&console, SHOWN).await, &vocab, &alerts, "en");
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the vocabulary test finishes within a minute");
}

/// An invite's issue on the overlay is the topic's label on the console, for a Chinese and an
/// English buyer doubting a piece is real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_overlay_name_a_topic_alike() {
    let run = async {
        let (fh, d) = watched().await;
        let vocab = vocab(d.addr).await;
        let mut sub = Subscriber::connect(d.addr, "").await;
        let chrome = Chrome::launch().await;
        let base = format!("http://{}", d.addr);
        let console = chrome.open(&format!("{base}/console")).await;
        let overlay = chrome.open(&format!("{base}/overlay?room=jade&hide=3")).await;
        connected(&console).await;
        fh.send(comment(
            "jade",
            "c1",
            "u-zh",
            "阿珍",
            "上次买的金手镯是假的吧，证书都没有",
        ));
        let zh = sub.next_alert().await;
        fh.send(comment("jade", "c2", "u-en", "Amy", "the ring I bought is fake"));
        let en = sub.next_alert().await;
        let issue = "(() => { const p = document.getElementById('prompt'); \
                     return p.classList.contains('on') && p.dataset.seq === '{seq}' && p.querySelector('.issue')?.textContent; })()";
        for (alert, lang, about) in [(&zh, "zh", "问题："), (&en, "en", "About: ")] {
            let seq = alert["seq"].as_u64().expect("seq");
            // The topic the two pages used to name differently (真假质疑 / 真假疑问).
            assert_eq!(alert["topic"], "authenticity", "{alert}");
            let topic = "authenticity";
            let want = label(&vocab, "topics", topic, lang);
            let card = format!("#feed .card[data-seq='{seq}']");
            if lang == "en" {
                click(&console, "#lang-toggle").await;
            }
            let on_console = eventually(
                &console,
                &format!("document.querySelector(\"{card} .tag.topic\")?.textContent"),
                |v| v == want,
            )
            .await;
            click(&console, &format!("{card} button.invite")).await;
            let on_air = eventually(&overlay, &issue.replace("{seq}", &seq.to_string()), |v| {
                v.is_string()
            })
            .await;
            assert_eq!(on_air, format!("{about}{want}"), "console shows {on_console}");
        }
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the overlay label test finishes within a minute");
}

/// Loaded before the console's own scripts: the real socket, with the keys of every `update`
/// (the daemon's deltas) noted, and the `alert` message of user `u-hidden` dropped, so the
/// page first hears of that alert through an update.
const DELTA_SOCKET: &str = r#"(() => {
  const Real = window.WebSocket;
  window.__deltas = [];
  window.WebSocket = class extends Real {
    set onmessage(f) {
      super.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.type === "alert" && m.user && m.user.id === "u-hidden") return;
        if (m.type === "update") window.__deltas.push(Object.keys(m));
        f.call(this, ev);
      };
    }
    get onmessage() { return super.onmessage; }
  };
})();"#;

/// Updates carrying only what changed: the status, ticket and log change on the card and the
/// rest of it stays (who, the comment with its evidence, the topic); an update about an alert
/// the page never got brings the whole alert from `GET /api/alerts/{seq}`; null removes a
/// field, and a version older than the one held changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_updates_are_merged_into_the_cards() {
    let run = async {
        let (fh, d) = watched().await;
        let addr = d.addr;
        let vocab = vocab(addr).await;
        let mut sub = Subscriber::connect(addr, "").await;
        let chrome = Chrome::launch().await;
        let console = chrome.browser.new_page("about:blank").await.expect("a page");
        console
            .evaluate_on_new_document(DELTA_SOCKET)
            .await
            .expect("the delta socket");
        console
            .goto(format!("http://{addr}/console"))
            .await
            .expect("console");
        console.wait_for_navigation().await.expect("loads");
        connected(&console).await;
        fh.send(comment(
            "jade",
            "c1",
            "u-azhen",
            "阿珍",
            "上次买的宝石有裂，收到就这样",
        ));
        fh.send(comment("jade", "c2", "u-troll", "troll", "加我vx便宜一半"));
        fh.send(comment("jade", "c3", "u-hidden", "hater", "垃圾主播滚"));
        let (c1, c2, c3) = (
            sub.next_alert().await,
            sub.next_alert().await,
            sub.next_alert().await,
        );
        eventually(&console, "document.querySelectorAll('#feed .card').length", |v| {
            v == 2
        })
        .await;
        let card = |user: &str| format!("document.querySelector(\"#feed .card[data-user='{user}']\")");
        let before = eval(
            &console,
            &format!("{}.querySelector('.text').innerHTML", card("u-azhen")),
        )
        .await;

        // The complaint is invited: status, ticket and log change; the rest of the card stays.
        let act = |seq: &Value, body: Value| {
            let path = format!("/api/alerts/{seq}/actions");
            async move {
                let (code, reply) = post(addr, &path, &body.to_string()).await;
                assert_eq!(code, 200, "{reply}");
            }
        };
        act(&c1["seq"], json!({"action": "invite", "by": "fm-li"})).await;
        let azhen = eventually(
            &console,
            &format!(
                "(c => c && c.dataset.status === 'invited' && c.querySelector('.log').textContent.includes('fm-li') && {{ user: c.querySelector('.user').textContent, \
                 text: c.querySelector('.text').innerHTML, topic: c.querySelector('.tag.topic')?.textContent, \
                 ticket: c.querySelector('.ticket')?.dataset.ticket, log: c.querySelector('.log').textContent, \
                 invite: c.querySelector('button.invite').disabled }})({})",
                card("u-azhen")
            ),
            |v| v.is_object(),
        )
        .await;
        assert_eq!(azhen["user"], "阿珍");
        assert_eq!(azhen["text"], before, "the comment and its evidence stay");
        assert!(before.as_str().is_some_and(|t| t.contains("<mark")), "{before}");
        assert_eq!(azhen["topic"], label(&vocab, "topics", "defect", "zh"));
        assert_eq!(azhen["ticket"], "responding");
        assert!(
            azhen["log"].as_str().is_some_and(|l| l.contains("fm-li")),
            "{azhen}"
        );
        assert_eq!(azhen["invite"], true, "no second invite");
        let deltas = eval(&console, "window.__deltas").await;
        let first = deltas.as_array().and_then(|d| d.first()).expect("a delta");
        let keys: Vec<&str> = first
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            keys.contains(&"status") && !keys.contains(&"text") && !keys.contains(&"user"),
            "the page got a delta, not the whole alert: {keys:?}"
        );

        // The attack: a script, then muted; its comment stays.
        act(
            &c2["seq"],
            json!({"action": "send_script", "by": "fm-li", "choice": "private", "script": "请私信客服"}),
        )
        .await;
        act(&c2["seq"], json!({"action": "mute", "by": "fm-li"})).await;
        let troll = eventually(
            &console,
            &format!(
                "(c => c && c.dataset.status === 'muted' && [c.querySelector('.text').textContent, \
                 c.querySelector('.tag.status').textContent, c.querySelector('.user').textContent])({})",
                card("u-troll")
            ),
            |v| v.is_array(),
        )
        .await;
        assert_eq!(
            troll,
            json!([
                "加我vx便宜一半",
                label(&vocab, "alert_statuses", "muted", "zh"),
                "troll"
            ])
        );

        // Never seen: its dismissal brings the whole alert.
        act(&c3["seq"], json!({"action": "dismiss", "by": "fm-li"})).await;
        let hidden = eventually(
            &console,
            &format!(
                "(c => c && [c.dataset.status, c.querySelector('.text').textContent, c.querySelector('.user').textContent])({})",
                card("u-hidden")
            ),
            |v| v.is_array(),
        )
        .await;
        assert_eq!(hidden, json!(["dismissed", "垃圾主播滚", "hater"]));
        let (code, stored) = get_status(addr, &format!("/api/alerts/{}", c3["seq"])).await;
        assert!(code == 200 && stored.contains("垃圾主播滚"), "{code} {stored}");
        assert_eq!(get_status(addr, "/api/alerts/999999").await.0, 404);

        // Null removes a field; an older version than the one held changes nothing.
        let seq = &c2["seq"];
        let merged = eval(
            &console,
            &format!(
                "import('/assets/feed.js').then(({{ onUpdate }}) => import('/assets/state.js').then(({{ state }}) => {{ \
                 onUpdate({{ type: 'update', seq: {seq}, version: 7, product: null, count: 3 }}, true); \
                 onUpdate({{ type: 'update', seq: {seq}, version: 6, count: 99, status: 'open' }}, true); \
                 const a = state.alerts.get({seq}); \
                 return {{ product: 'product' in a, count: a.count, status: a.status, text: a.text, \
                   kind: document.querySelector(\"#feed .card[data-seq='{seq}'] .kind\")?.textContent }}; }}))"
            ),
        )
        .await;
        assert_eq!(
            merged,
            json!({"product": false, "count": 3, "status": "muted", "text": "加我vx便宜一半", "kind": "×3"})
        );
        chrome.close().await;
        d.stop(Duration::from_secs(5)).await;
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the delta test finishes within a minute");
}
