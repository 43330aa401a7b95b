//! The shipped packs in `rules/`: they compile, every `[[example]]` passes, and each topic is
//! recognised in both languages.

use liveguard::cli::check_examples;

use crate::util::{label, repo, run, shipped, verdict};

#[test]
fn shipped_packs_pass_rules_check() {
    let out = run(&repo(), &["rules", "check", "rules"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shipped_example_passes() {
    let rules = shipped();
    let (ran, failures) = check_examples(&rules);
    assert!(ran > 0);
    let msgs: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
    assert!(msgs.is_empty(), "{}", msgs.join("\n"));
}

/// One realistic live comment per topic and language, plus the neutral traps and evasions.
#[test]
fn every_topic_in_both_languages() {
    let rules = shipped();
    let cases: &[(&str, &str)] = &[
        // complaints, zh
        ("上次买的手链戴了两天就断了", "complaint/defect"),
        ("收到的项链颜色和直播完全不一样", "complaint/not_as_shown"),
        ("买的金手镯拿去金店检测不是足金", "complaint/authenticity"),
        ("收到的戒指太小了戴不进去", "complaint/size_fit"),
        ("我的订单一周了还没发货", "complaint/logistics"),
        ("客服三天都不回消息", "complaint/after_sales"),
        ("我要退货退款", "complaint/refund_request"),
        // complaints, en
        ("the ring I got last week is cracked", "complaint/defect"),
        (
            "the color is totally different from the live stream",
            "complaint/not_as_shown",
        ),
        (
            "I bought this as sterling silver but it's not real silver",
            "complaint/authenticity",
        ),
        (
            "the bracelet I received is way too small, doesn't fit",
            "complaint/size_fit",
        ),
        (
            "my order still hasn't arrived after 2 weeks",
            "complaint/logistics",
        ),
        (
            "customer service never replied to my messages",
            "complaint/after_sales",
        ),
        ("I want a refund for my order", "complaint/refund_request"),
        // attacks, zh
        ("主播就是个傻逼", "attack/insult"),
        ("加我vx便宜一半", "attack/diversion"),
        ("你们就是骗子", "attack/smear"),
        ("关注我互粉，免费抽奖", "attack/spam"),
        ("再卖假货我弄死你", "attack/threat"),
        // attacks, en
        ("you are a stupid idiot", "attack/insult"),
        ("add my whatsapp for the same ring half price", "attack/diversion"),
        ("this shop is a scam", "attack/smear"),
        ("sub4sub check out my channel", "attack/spam"),
        ("I will find you and kill you", "attack/threat"),
        // neutral traps
        ("会不会褪色？", "neutral"),
        ("does it tarnish?", "neutral"),
        ("没有裂，质量很好", "neutral"),
        ("no cracks at all, super happy", "neutral"),
        ("主播好漂亮，三号链接还有吗", "neutral"),
        ("what size is the ring in the video?", "neutral"),
        ("假一赔十吗？", "neutral"),
        // evasions
        ("騙*子直播間", "attack/smear"),
        ("s.c.a.m shop", "attack/smear"),
        ("this is a sc4m", "attack/smear"),
        ("加V 一三八 0013 8000", "attack/diversion"),
        // A buyer shouting 骗子 and asking to return: a complaint (refund or authenticity).
        ("你們這些騙子，退貨！", "complaint"),
        // an angry buyer stays a complaint; diversion dressed as a complaint does not
        ("垃圾！上次买的戒指就裂了", "complaint/defect"),
        ("我买的也裂了，加我vx jade888 给你推荐更好的", "attack/diversion"),
    ];
    let mut failed = Vec::new();
    for (text, want) in cases {
        let v = verdict(&rules, text);
        // "class" alone checks the class; "class/topic" checks both.
        let got = if want.contains('/') {
            label(&v)
        } else {
            v.class.as_str().to_string()
        };
        if &got != want {
            failed.push(format!("{text:?}: want {want}, got {got}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} wrong:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// Hate needs its own check: group slurs in both languages, never a buyer's complaint.
#[test]
fn hate_is_an_attack_and_mutes() {
    let rules = shipped();
    for text in ["黑鬼滚出中国", "all immigrants are vermin"] {
        let v = verdict(&rules, text);
        assert_eq!(label(&v), "attack/hate", "{text}");
        assert_eq!(v.action, liveguard::taxonomy::Action::MuteReview, "{text}");
    }
}
