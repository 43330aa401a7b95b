//! Decisions on the fixture pack: every mechanism of the decide stage, one row each.

use liveguard::taxonomy::{Action, Class};

use crate::util::{fixture, label, verdict};

#[test]
fn decision_table() {
    let rules = fixture();
    let cases: &[(&str, &str, &str)] = &[
        ("problem with purchase", "上次买的宝石有裂", "complaint/defect"),
        ("problem alone still fires", "戒指裂了", "complaint/defect"),
        ("weak problem needs purchase", "褪色了", "neutral"),
        (
            "weak problem with purchase",
            "买了一周就褪色了",
            "complaint/defect",
        ),
        ("pre-purchase question", "这个会不会裂？", "neutral"),
        (
            "question from a buyer stays a complaint",
            "我收到的怎么裂了？",
            "complaint/defect",
        ),
        (
            "rhetorical question is a complaint",
            "为什么戒指会裂？",
            "complaint/defect",
        ),
        ("negated problem", "没有裂，很好看", "neutral"),
        ("english negation", "no cracks at all", "neutral"),
        ("english suffix term", "my ring cracked", "complaint/defect"),
        ("smear without purchase", "你们是骗子", "attack/smear"),
        (
            "fake from a buyer is authenticity",
            "我买了，是假货",
            "complaint/authenticity",
        ),
        (
            "angry buyer stays a complaint",
            "垃圾！上次买的就裂了",
            "complaint/defect",
        ),
        ("insult alone", "主播是垃圾", "attack/insult"),
        (
            "diversion dressed as complaint",
            "收到的也裂了，加我vx 看更好的",
            "attack/diversion",
        ),
        ("phone number", "加V 一三八 0013 8000", "attack/diversion"),
        (
            "order number is not a phone",
            "订单号 202411250001 还没到",
            "neutral",
        ),
        ("url", "cheaper at www.otherstore.com", "attack/diversion"),
        ("allow-listed phrase", "假一赔十放心", "neutral"),
        ("boolean rule", "这个戒指不行", "complaint/defect"),
        ("boolean rule blocked by question", "这个戒指不行吗", "neutral"),
        ("traditional + separators", "你們是騙*子", "attack/smear"),
        ("leetspeak", "total sc4m", "attack/smear"),
        ("chatter", "主播好漂亮", "neutral"),
    ];
    let mut failed = Vec::new();
    for (name, text, want) in cases {
        let got = label(&verdict(&rules, text));
        if &got != want {
            failed.push(format!("{name}: {text:?}: want {want}, got {got}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn evidence_spans_point_into_the_original_text() {
    let rules = fixture();
    let text = "你們是騙*子，ＶＸ加我";
    let v = verdict(&rules, text);
    assert_eq!(v.class, Class::Attack);
    let spans: Vec<&str> = v
        .evidence
        .iter()
        .map(|e| text.get(e.start..e.end).expect("char boundary"))
        .collect();
    assert!(spans.contains(&"ＶＸ"), "{spans:?}");
    assert!(v
        .evidence
        .iter()
        .all(|e| text.get(e.start..e.end) == Some(e.text.as_str())));
}

#[test]
fn complaint_evidence_shows_purchase_and_problem() {
    let v = verdict(&fixture(), "上次买的宝石有裂");
    let rules: Vec<&str> = v.evidence.iter().map(|e| &*e.rule).collect();
    assert_eq!(rules, ["fx-purchase", "fx-crack"]);
    assert_eq!(v.evidence[1].text, "裂");
}

#[test]
fn actions_and_scripts_follow_the_class() {
    let rules = fixture();
    let c = verdict(&rules, "上次买的宝石有裂");
    assert_eq!(c.action, Action::InviteCostream);
    assert_eq!(c.script.as_deref(), Some("看到amy的反馈，这款我们现场解决"));
    let a = verdict(&rules, "你们是骗子");
    assert_eq!(a.action, Action::PrivateResolution);
    assert_eq!(
        a.script.as_deref(),
        Some("amy请私信客服"),
        "class-wide fallback script"
    );
    let i = verdict(&rules, "主播是垃圾");
    assert_eq!(i.action, Action::MuteReview);
    let n = verdict(&rules, "好看");
    assert_eq!((n.action, n.script), (Action::None, None));
}

#[test]
fn scores_stay_in_range() {
    let rules = fixture();
    for text in ["加我vx加我vx 13800138000 www.x.com 骗子 垃圾 idiot", "", "ok"] {
        let v = verdict(&rules, text);
        assert!((0.0..=1.0).contains(&v.score), "{text}: {}", v.score);
    }
}

#[test]
fn scripts_read_naturally_with_and_without_a_product() {
    use liveguard::classify::fill_script;
    use liveguard::taxonomy::Lang;
    let input = |product| liveguard::classify::Input {
        text: "",
        user: Some("amy"),
        product,
    };
    let t = "{user}, sorry {product} hasn't reached you.";
    assert_eq!(
        fill_script(t, input(None), Lang::En),
        "amy, sorry your item hasn't reached you."
    );
    assert_eq!(
        fill_script(t, input(Some("jade bangle")), Lang::En),
        "amy, sorry the jade bangle hasn't reached you."
    );
    assert_eq!(
        fill_script("{user}，{product}有问题", input(None), Lang::Zh),
        "amy，这款有问题"
    );
}

/// `liveguard classify` without a user name: the English scripts used to open "there, sorry …".
#[test]
fn english_scripts_without_a_user_name_read_naturally() {
    use liveguard::classify::fill_script;
    use liveguard::taxonomy::Lang;
    let anon = liveguard::classify::Input {
        text: "",
        user: None,
        product: None,
    };
    for (template, want) in [
        (
            "{user}, sorry {product} hasn't reached you.",
            "Sorry your item hasn't reached you.",
        ),
        (
            "Sorry {user}, it should look just like the live.",
            "Sorry, it should look just like the live.",
        ),
        (
            "So sorry about {product}, {user}. Please send a photo.",
            "So sorry about your item. Please send a photo.",
        ),
        (
            "Hi {user}, please keep the chat about today's live.",
            "Hi there, please keep the chat about today's live.",
        ),
        (
            "Of course, {user}. Please send your order number.",
            "Of course. Please send your order number.",
        ),
        (
            "Thanks! {user}, we see your message.",
            "Thanks! We see your message.",
        ),
    ] {
        assert_eq!(fill_script(template, anon, Lang::En), want, "{template}");
    }
    // Every shipped English script, filled without a name, starts with a capital and never
    // says "there," where a name stood.
    let rules = liveguard::rules::load(&liveguard::rules::RuleSource::BuiltIn).expect("built-in rules");
    let mut seen = 0;
    for text in rules.script_texts(Lang::En) {
        let filled = fill_script(text, anon, Lang::En);
        assert!(
            !filled.contains("{user}") && !filled.starts_with("there") && !filled.contains(" ,"),
            "{filled}"
        );
        assert!(filled.chars().next().is_some_and(char::is_uppercase), "{filled}");
        seen += 1;
    }
    assert!(seen >= 10, "{seen} English scripts");
}
