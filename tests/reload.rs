//! Hot reload under live traffic: a rule change takes effect with no comment lost or
//! misrouted during the swap; a broken change keeps the last good rules, sets the metrics and
//! shows the console banner.

use std::time::Duration;

use liveguard::config::Config;
use liveguard::ingest::client::SourceConfig;
use liveguard::ingest::Format;

use crate::util::live::{canonical, get, metric, test_signals, wait_metric, Firehose, Subscriber};
use crate::util::{copy_dir, repo};

const NEW_PACK: &str = r#"
[pack]
id = "zz-live"
lang = "zh"

[[keywords]]
id = "zz-codeword"
class = "attack"
topic = "spam"
weight = 0.9
terms = ["紫晶暗号"]

[[example]]
text = "紫晶暗号来了"
class = "attack"
topic = "spam"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_under_live_traffic_loses_nothing_and_a_broken_one_keeps_the_old_rules() {
    let rules = tempfile::tempdir().expect("tmp");
    copy_dir(&repo().join("rules"), rules.path());
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let cfg = Config {
        listen: "127.0.0.1:0".into(),
        rules: Some(rules.path().to_path_buf()),
        sources: vec![SourceConfig::new(&fh.url(), Format::Canonical)],
        signals: test_signals(),
        store: crate::util::store(),
        ..Config::default()
    };
    let d = liveguard::daemon::start(cfg).await.expect("daemon starts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;

    // Live traffic: every user and room distinct, so every complaint is its own alert.
    let mut sent = 0u32;
    let mut complaints = 0u32;
    let mut codewords = 0u32;
    let send = |i: u32, text: &str| {
        fh.send(canonical(
            &format!("room{i}"),
            &format!("m{i}"),
            &format!("user{i}"),
            text,
        ));
    };
    let mut swapped = false;
    for i in 0..1500u32 {
        let text = match i % 5 {
            0 => {
                complaints += 1;
                "上次买的宝石有裂"
            }
            1 if swapped => {
                codewords += 1;
                "紫晶暗号来了"
            }
            _ => "主播晚上好",
        };
        send(i, text);
        sent += 1;
        if i == 500 {
            std::fs::create_dir_all(rules.path().join("zz")).expect("mkdir");
            std::fs::write(rules.path().join("zz/live.toml"), NEW_PACK).expect("write pack");
        }
        if i > 500 && !swapped && metric(d.addr, "liveguard_rules_reloads_total{kind=\"ok\"}").await >= 1.0 {
            swapped = true;
        }
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(swapped, "the new rules were swapped in during the traffic");
    assert!(codewords > 50, "{codewords}");
    wait_metric(d.addr, "liveguard_comments_total", f64::from(sent)).await;
    assert_eq!(
        metric(d.addr, "liveguard_comments_total").await,
        f64::from(sent),
        "no comment lost"
    );
    let (mut got_c, mut got_s) = (0, 0);
    while got_c + got_s < complaints + codewords {
        let a = sub.next_alert().await;
        match (a["class"].as_str(), a["topic"].as_str()) {
            (Some("complaint"), Some("defect")) => got_c += 1,
            (Some("attack"), Some("spam")) => got_s += 1,
            other => panic!("misrouted: {other:?} for {a}"),
        }
    }
    assert_eq!((got_c, got_s), (complaints, codewords));
    assert_eq!(sub.try_next(Duration::from_millis(300)).await, None);

    // A broken change: precise error, metrics, banner; the last good rules keep running.
    std::fs::write(rules.path().join("zz/broken.toml"), "[pack]\nid = \"zz-b\"\nlang = \"zh\"\n[[regex]]\nid = \"zz-bad\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\npattern = '(oops'\n")
        .expect("write broken");
    wait_metric(d.addr, "liveguard_rules_reloads_total{kind=\"failed\"}", 1.0).await;
    assert_eq!(metric(d.addr, "liveguard_rules_reload_ok").await, 0.0);
    let console: serde_json::Value = serde_json::from_str(&get(d.addr, "/api/console").await).expect("json");
    let err = console["rules_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("zz/broken.toml:9: zz-bad: invalid regex"),
        "{console}"
    );
    fh.send(canonical("roomX", "after-broken", "userX", "紫晶暗号来了"));
    let a = sub.next_alert().await;
    assert_eq!(
        (a["topic"].as_str(), a["msg_ids"][0].as_str()),
        (Some("spam"), Some("after-broken")),
        "old rules still run"
    );

    // Fixed again: the banner clears.
    std::fs::remove_file(rules.path().join("zz/broken.toml")).expect("remove");
    wait_metric(d.addr, "liveguard_rules_reloads_total{kind=\"ok\"}", 2.0).await;
    assert_eq!(metric(d.addr, "liveguard_rules_reload_ok").await, 1.0);
    let console: serde_json::Value = serde_json::from_str(&get(d.addr, "/api/console").await).expect("json");
    assert!(console["rules_error"].is_null(), "{console}");
    d.stop(Duration::from_secs(5)).await;
}
