//! The learned second opinion: the shipped model raises what the rules miss (with n-gram
//! evidence in the original text) and says who decided; `liveguard train` rebuilds it byte for
//! byte; a damaged model file keeps the last good one running; and the floor's decisions
//! (reports of missed comments, dismissals) retrain it so a missed shape alerts and a false
//! positive stops.

use std::path::Path;
use std::time::Duration;

use liveguard::classify::{classify, Input, Scratch, Source};
use liveguard::ingest::Format;
use liveguard::rules::{self, RuleSource};

use crate::util::live::{
    canonical, get, metric, post, test_config, test_signals, wait_metric, Firehose, Subscriber,
};
use crate::util::{copy_dir, repo, run, shipped};

/// A comment the rules miss and the shipped model catches.
const MODEL_ONLY: &str = "收到的耳环第二天就歇菜了";

#[test]
fn the_model_raises_what_the_rules_miss_and_says_so() {
    let with_model = shipped();
    assert!(
        with_model.model.is_some(),
        "rules/model/liveguard.lgm loads with the packs"
    );
    let mut rules_only = rules::load_packs(&RuleSource::Dir(repo().join("rules"))).expect("packs");
    rules_only.model = None;
    let mut s = Scratch::new();
    let input = Input {
        text: MODEL_ONLY,
        ..Input::default()
    };
    let r = classify(&rules_only, &mut s, input);
    assert_eq!(r.class.as_str(), "neutral", "the rules alone miss it: {r:?}");
    let v = classify(&with_model, &mut s, input);
    assert_eq!(
        (v.class.as_str(), v.source),
        ("complaint", Source::Model),
        "{v:?}"
    );
    assert!(!v.evidence.is_empty(), "{v:?}");
    for e in &v.evidence {
        assert_eq!(&*e.rule, "model");
        assert_eq!(MODEL_ONLY.get(e.start..e.end), Some(e.text.as_str()), "{e:?}");
    }
    assert!(
        v.script.is_some(),
        "the rules' script for the model's topic: {v:?}"
    );

    let agreed = classify(
        &with_model,
        &mut s,
        Input {
            text: "上次买的手链戴了两天就断了",
            ..Input::default()
        },
    );
    assert_eq!(
        (agreed.class.as_str(), agreed.source),
        ("complaint", Source::Both)
    );
}

/// Regression: with a model trusted to overrule more (weak = 0.9, veto = 0.5) the SOP's own
/// example 上次买的宝石有裂 was dropped (its n-grams had seen 没有裂纹 in praise).
#[test]
fn plain_complaints_and_attacks_keep_their_class_with_the_model() {
    let set = shipped();
    let mut s = Scratch::new();
    for (text, want) in [
        ("上次买的宝石有裂", "complaint"),
        ("the stone I got last week is cracked", "complaint"),
        ("my order still hasn't arrived after 2 weeks", "complaint"),
        ("你们就是骗子", "attack"),
        ("加我vx便宜一半", "attack"),
        ("主播在吗", "neutral"),
        // One character says too little for the model alone.
        ("骗", "neutral"),
        ("会不会褪色？", "neutral"),
    ] {
        let v = classify(
            &set,
            &mut s,
            Input {
                text,
                ..Input::default()
            },
        );
        assert_eq!(v.class.as_str(), want, "{text}: {v:?}");
    }
}

#[test]
fn a_weak_rule_the_model_never_saw_is_not_overruled() {
    let dir = tempfile::tempdir().expect("tmp");
    copy_dir(&repo().join("rules"), dir.path());
    std::fs::write(
        dir.path().join("zz.toml"),
        "[pack]\nid = \"zz\"\nlang = \"zh\"\n[[keywords]]\nid = \"zz-code\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.55\nterms = [\"蓝莓暗号\"]\n",
    )
    .expect("write pack");
    let set = rules::load_dir(dir.path()).expect("loads");
    let v = classify(
        &set,
        &mut Scratch::new(),
        Input {
            text: "家人们蓝莓暗号",
            ..Input::default()
        },
    );
    assert_eq!(
        (v.class.as_str(), v.topic.map(|t| t.as_str())),
        ("attack", Some("spam")),
        "{v:?}"
    );
}

#[test]
fn train_rebuilds_the_shipped_model_byte_for_byte() {
    let out = tempfile::tempdir().expect("tmp");
    let model = out.path().join("m.lgm");
    // The README's command, without cross-validation (the same model, faster).
    train(&repo().join("rules"), &model, &[]);
    let built = std::fs::read(&model).expect("model written");
    let shipped = std::fs::read(repo().join("rules/model/liveguard.lgm")).expect("shipped model");
    assert!(
        built == shipped,
        "rules/model/liveguard.lgm is not what the data in the repo trains: retrain it (README, Retraining)"
    );
}

#[test]
fn train_names_each_bad_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("bad.jsonl");
    std::fs::write(
        &f,
        "{\"text\":\"ok\",\"label\":\"neutral\"}\n{\"text\":\"x\",\"label\":\"angry\"}\nnot json\n{\"text\":\"y\",\"label\":\"complaint\",\"topic\":\"spam\"}\n",
    )
    .expect("write");
    let o = run(
        &repo(),
        &[
            "train",
            &f.to_string_lossy(),
            "--rules",
            "rules",
            "--folds",
            "0",
            "--out",
            "-",
        ],
        "",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for want in [
        "bad.jsonl:2: label \"angry\"",
        "bad.jsonl:3: not valid JSON",
        "bad.jsonl:4: topic \"spam\" is not a complaint topic",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
}

/// Sends `text` then a sentinel complaint from another user; returns the first alert that
/// arrives (the sentinel when `text` raised nothing).
async fn first_alert_after(
    fh: &Firehose,
    sub: &mut Subscriber,
    n: &mut u32,
    text: &str,
) -> serde_json::Value {
    *n += 1;
    fh.send(canonical(
        &format!("room{n}"),
        &format!("m{n}"),
        &format!("u{n}"),
        text,
    ));
    fh.send(canonical(
        &format!("room{n}"),
        &format!("s{n}"),
        &format!("sentinel{n}"),
        "上次买的手链戴了两天就断了",
    ));
    sub.next_alert().await
}

fn is_sentinel(a: &serde_json::Value) -> bool {
    a["user"]["id"]
        .as_str()
        .is_some_and(|u| u.starts_with("sentinel"))
}

/// Runs `liveguard train` (the README's command, no cross-validation) on the repo's data plus
/// `extra` args, with the packs in `rules`, writing the model to `out`.
fn train(rules: &Path, out: &Path, extra: &[&str]) {
    let rules_arg = rules.to_string_lossy().into_owned();
    let out_arg = out.to_string_lossy().into_owned();
    let mut args = vec![
        "train",
        "data/train",
        "data/dev",
        "--weight",
        "data/dev=3",
        "--rules",
        &rules_arg,
        "--folds",
        "0",
        "--out",
        &out_arg,
    ];
    args.extend_from_slice(extra);
    let t = run(&repo(), &args, "");
    assert_eq!(t.status.code(), Some(0), "{}", String::from_utf8_lossy(&t.stderr));
}

/// [`train`] into the model file of `rules` (a daemon watching it hot-reloads).
fn train_into(rules: &Path, extra: &[&str]) {
    train(rules, &rules.join("model/liveguard.lgm"), extra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_teaches_the_model_a_missed_shape_and_a_false_positive() {
    let rules = tempfile::tempdir().expect("tmp");
    copy_dir(&repo().join("rules"), rules.path());
    // A model with a bad habit, as noisy data gives: "the lighting is dreamy" taken for spam.
    let planted = rules.path().join("planted.jsonl");
    let habit = ["今天的灯光好梦幻", "灯光好梦幻呀", "这个灯光好梦幻"];
    let lines: Vec<String> = habit
        .iter()
        .map(|t| serde_json::json!({"text": t, "label": "attack", "topic": "spam"}).to_string())
        .collect();
    std::fs::write(&planted, lines.join("\n")).expect("write planted data");
    let planted_arg = planted.to_string_lossy().into_owned();
    train_into(rules.path(), &[&planted_arg]);

    let mut fh = Firehose::start("127.0.0.1:0").await;
    let mut cfg = test_config(&fh.url(), Format::Canonical, test_signals());
    cfg.rules = Some(rules.path().to_path_buf());
    let db = cfg.store.db_path();
    let d = liveguard::daemon::start(cfg).await.expect("daemon starts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;
    let mut n = 0;

    // The floor dismisses a handful of those false positives.
    let fp = [
        "主播这灯光好梦幻",
        "灯光好梦幻啊主播",
        "背景灯光好梦幻",
        "灯光梦幻得不行",
        "灯光好梦幻耶",
    ];
    // Two more of that shape the floor never touches: raised now, checked after the retrain.
    let later = ["这灯光好梦幻", "灯光太梦幻了吧"];
    for text in later {
        let a = first_alert_after(&fh, &mut sub, &mut n, text).await;
        assert!(!is_sentinel(&a), "precondition: the model raises {text:?}");
        let _ = sub.next_alert().await;
    }
    for text in fp {
        let a = first_alert_after(&fh, &mut sub, &mut n, text).await;
        assert!(!is_sentinel(&a), "precondition: the model raises {text:?}");
        assert_eq!(a["source"], "model", "{a}");
        let (code, body) = post(
            d.addr,
            &format!("/api/alerts/{}/actions", a["seq"]),
            r#"{"action":"dismiss"}"#,
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let s = sub.next_alert().await;
        assert!(is_sentinel(&s), "{s}");
    }
    // And reports a handful of comments liveguard missed: new slang for broken ("zonked").
    let missed = "my earrings came zonked";
    assert!(
        is_sentinel(&first_alert_after(&fh, &mut sub, &mut n, missed).await),
        "precondition: {missed:?} is missed"
    );
    for text in [
        "my bracelet came zonked",
        "got the earrings today, both zonked",
        "ring arrived zonked, so sad",
        "the necklace i bought is zonked already",
        "pendant zonked on day one",
    ] {
        let body = serde_json::json!({"room": "r1", "text": text, "class": "complaint", "topic": "defect"})
            .to_string();
        let (code, resp) = post(d.addr, "/api/report", &body).await;
        assert_eq!(code, 200, "{resp}");
        let a = sub.next_alert().await;
        assert_eq!(
            (a["kind"].as_str(), a["source"].as_str()),
            (Some("reported"), Some("floor")),
            "{a}"
        );
    }

    // The floor's decisions, exported, and folded into a retrain the daemon hot-reloads.
    let db_arg = db.to_string_lossy().into_owned();
    let export = run(&repo(), &["feedback", "export", "--db", &db_arg], "");
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), fp.len() + 5, "{lines:?}");
    assert!(lines.iter().any(|l| l["label"] == "neutral"
        && l["action"] == "dismiss"
        && l["verdict"]["source"] == "model"
        && l["verdict"]["topic"] == "spam"
        && l["text"] == "背景灯光好梦幻"));
    assert!(lines
        .iter()
        .any(|l| l["label"] == "complaint" && l["action"] == "report" && l["topic"] == "defect"));
    train_into(rules.path(), &[&planted_arg, "--feedback", &db_arg]);
    wait_metric(d.addr, "liveguard_rules_reloads_total{kind=\"ok\"}", 1.0).await;

    // The same comments as before the retrain (never labelled: nobody acted on them).
    let a = first_alert_after(&fh, &mut sub, &mut n, missed).await;
    assert!(!is_sentinel(&a), "the missed shape now alerts");
    assert_eq!(
        (a["class"].as_str(), a["source"].as_str()),
        (Some("complaint"), Some("model")),
        "{a}"
    );
    let _ = sub.next_alert().await;
    for text in later {
        let a = first_alert_after(&fh, &mut sub, &mut n, text).await;
        assert!(is_sentinel(&a), "the dismissed shape no longer alerts: {a}");
    }
    assert!(metric(d.addr, "liveguard_verdict_sources_total{source=\"model\"}").await >= 1.0);
    assert_eq!(
        metric(d.addr, "liveguard_verdict_sources_total{source=\"floor\"}").await,
        5.0
    );
    d.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_model_is_refused_and_the_last_good_one_keeps_running() {
    let rules = tempfile::tempdir().expect("tmp");
    copy_dir(&repo().join("rules"), rules.path());
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let mut cfg = test_config(&fh.url(), Format::Canonical, test_signals());
    cfg.rules = Some(rules.path().to_path_buf());
    let d = liveguard::daemon::start(cfg).await.expect("daemon starts");
    fh.connected().await;
    let mut sub = Subscriber::connect(d.addr, "").await;

    let path = rules.path().join("model/liveguard.lgm");
    let good = std::fs::read(&path).expect("model");
    std::fs::write(&path, &good[..good.len() / 2]).expect("cut the model in half");
    wait_metric(d.addr, "liveguard_rules_reloads_total{kind=\"failed\"}", 1.0).await;
    let console: serde_json::Value = serde_json::from_str(&get(d.addr, "/api/console").await).expect("json");
    let err = console["rules_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("model/liveguard.lgm: bad model file: model file is"),
        "{console}"
    );
    fh.send(canonical("r1", "m1", "u1", MODEL_ONLY));
    let a = sub.next_alert().await;
    assert_eq!(
        (a["class"].as_str(), a["source"].as_str()),
        (Some("complaint"), Some("model")),
        "the last good model runs: {a}"
    );
    assert!(Path::new(&path).exists());
    d.stop(Duration::from_secs(5)).await;
}
