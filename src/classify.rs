//! Stage 4, classify: normalized text + [`RuleSet`] → hits ([`Scratch::hits`], the "match"
//! step) → [`Verdict`] (the "decide" step). Pure and synchronous; a [`Scratch`] per worker
//! holds every buffer, so a neutral comment allocates nothing after warm-up.
//!
//! The decision: each fired scored group adds its weight to its topic. Purchase context
//! (买了/收到/my order) raises complaint topics and can turn a smear into an authenticity
//! complaint; a question with no purchase context (会不会褪色?) cancels complaint topics,
//! unless it is rhetorical (为什么还不发货? / why is it still…?); a
//! negation just before a problem word (没有裂) cancels that hit. Then the best complaint and the
//! best attack are weighed: an angry buyer stays a complaint, but diversion, spam, threats and
//! hate win over a complaint they are dressed in.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::features::{self, hash_str, Kind};
use crate::model::{Features, Model, Probs};
use crate::normalize::{Normalized, Normalizer};
use crate::rules::compile::{Detector, GroupKind, ModelCfg, Role, RuleSet};
pub use crate::taxonomy::Source;
use crate::taxonomy::{Action, Class, Lang, Topic};

/// A topic's score must reach this for its class to fire.
pub const FIRE_THRESHOLD: f32 = 0.5;
/// Added to every complaint topic that has a score when purchase context is present.
pub const PURCHASE_BOOST: f32 = 0.25;
/// A complaint this sure is worth inviting on mic; below it, a scripted reply.
pub const INVITE_THRESHOLD: f32 = 0.7;
/// Diversion, spam, threat or hate this sure wins over any complaint it is dressed in.
pub const STRONG_ATTACK: f32 = 0.8;
/// A group's second distinct hit adds this share of its weight again, a third one more;
/// further hits add nothing (`加我` + `vx` is surer than `vx`, a flood of one word is not).
const EXTRA_HIT_SHARE: f32 = 0.5;
/// At most this many evidence spans per verdict (a flood of one word says no more).
const MAX_EVIDENCE: usize = 16;

/// What classify needs from a comment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// The comment text as written.
    pub text: &'a str,
    /// The writer's display name, for `{user}` in scripts.
    pub user: Option<&'a str>,
    /// The product the comment is about, when the event says, for `{product}`.
    pub product: Option<&'a str>,
}

/// Why a verdict fired: a rule id and the span it matched in the ORIGINAL text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Rule or group id (`detector:phone` for built-ins).
    pub rule: Arc<str>,
    /// Byte offset in the original text.
    pub start: usize,
    /// Byte offset in the original text (exclusive).
    pub end: usize,
    /// The matched original text.
    pub text: String,
    /// Context shown for the reader (a purchase like `买了`), not a rule that decided: left
    /// out of the per-rule false-positive figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub context: bool,
}

/// The classifier's answer for one comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// complaint, attack or neutral.
    pub class: Class,
    /// The topic, for complaints and attacks.
    pub topic: Option<Topic>,
    /// Confidence in `class`, 0..=1.
    pub score: f32,
    /// What fired, with spans in the original text.
    pub evidence: Vec<Evidence>,
    /// Suggested action.
    pub action: Action,
    /// The script for that action, placeholders filled, in the comment's language.
    pub script: Option<String>,
    /// The comment's language (Han characters → zh).
    pub lang: Lang,
    /// Purchase context was found.
    pub purchase: bool,
    /// Who decided the class: the rules, the model, or both agreeing.
    #[serde(default)]
    pub source: Source,
}

/// State of one hit after allow-lists and negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitState {
    /// Counts.
    Active,
    /// Cancelled by a negation just before it.
    Negated,
    /// Inside an allow-listed phrase.
    Allowed,
}

/// One match of one group.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    /// Group index into [`RuleSet::groups`].
    pub group: u32,
    /// Span in the normalized text (`u32::MAX` for detectors that read the original).
    pub nstart: u32,
    /// End in the normalized text.
    pub nend: u32,
    /// Span in the original text.
    pub start: u32,
    /// End in the original text.
    pub end: u32,
    /// Whether it counts.
    pub state: HitState,
}

/// Per-worker buffers. Create one per thread and reuse it for every comment.
#[derive(Debug, Default)]
pub struct Scratch {
    normalizer: Normalizer,
    /// The last comment, normalized.
    pub norm: Normalized,
    /// The last comment's hits (all of them, including negated and allowed ones).
    pub hits: Vec<Hit>,
    fired: Vec<bool>,
    fired_list: Vec<u32>,
    /// Regexes whose prefix gate fired on this comment.
    gated: Vec<bool>,
    gated_list: Vec<u32>,
    scores: [f32; TOPICS],
    /// Per topic, the weight of its strongest single group (breaks ties).
    strongest: [f32; TOPICS],
    /// The last comment's model features (when a model is loaded).
    pub feats: Features,
}

const TOPICS: usize = Topic::ALL.len();

impl Scratch {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether group `g` fired (has an active hit, or is a boolean rule that held) on the
    /// last comment.
    pub fn fired(&self, g: u32) -> bool {
        self.fired.get(g as usize).copied().unwrap_or(false)
    }
}

/// Normalizes and matches `text`: fills `scratch.norm`, `scratch.hits` and the fired set.
pub fn match_text(rules: &RuleSet, scratch: &mut Scratch, text: &str) {
    scratch.normalizer.normalize_into(text, &mut scratch.norm);
    match_normalized(rules, scratch, text);
}

/// Normalizes `text` into `scratch.norm` only (the first half of [`match_text`]).
pub fn normalize_only(scratch: &mut Scratch, text: &str) {
    scratch.normalizer.normalize_into(text, &mut scratch.norm);
}

/// Matches the already-normalized `scratch.norm` of original `text` (the second half of
/// [`match_text`]): fills `scratch.hits` and the fired set.
pub fn match_normalized(rules: &RuleSet, scratch: &mut Scratch, text: &str) {
    scratch.hits.clear();
    for &g in &scratch.fired_list {
        if let Some(f) = scratch.fired.get_mut(g as usize) {
            *f = false;
        }
    }
    scratch.fired_list.clear();
    if scratch.fired.len() != rules.groups.len() {
        scratch.fired = vec![false; rules.groups.len()];
    }
    if scratch.gated.len() != rules.regexes.len() {
        scratch.gated = vec![false; rules.regexes.len()];
    }
    scratch.gated_list.clear();
    let norm = &scratch.norm;
    let nt = norm.text.as_bytes();
    let hits = &mut scratch.hits;

    if let Some(ac) = &rules.ac {
        for m in ac.find_overlapping_iter(&norm.text) {
            let meta = rules.patterns[m.pattern().as_usize()];
            for &r in &rules.pat_gate[meta.gates.0 as usize..meta.gates.1 as usize] {
                if !scratch.gated[r as usize] {
                    scratch.gated[r as usize] = true;
                    scratch.gated_list.push(r);
                }
            }
            let (s, e) = (m.start(), m.end());
            if meta.word_start && s > 0 && nt[s - 1].is_ascii_alphanumeric() {
                continue;
            }
            if meta.word_end && e < nt.len() && nt[e].is_ascii_alphanumeric() {
                continue;
            }
            let (os, oe) = norm.original_span(s, e);
            for &g in &rules.pat_owner[meta.owners.0 as usize..meta.owners.1 as usize] {
                hits.push(Hit {
                    group: g,
                    nstart: s as u32,
                    nend: e as u32,
                    start: os as u32,
                    end: oe as u32,
                    state: HitState::Active,
                });
            }
        }
    }
    // Regexes whose prefix occurred, then the few with no prefix set.
    for &r in scratch.gated_list.iter().chain(&rules.ungated) {
        scratch.gated[r as usize] = false;
        let (re, g) = &rules.regexes[r as usize];
        for m in re.find_iter(&norm.text) {
            let (os, oe) = norm.original_span(m.start(), m.end());
            hits.push(Hit {
                group: *g,
                nstart: m.start() as u32,
                nend: m.end() as u32,
                start: os as u32,
                end: oe as u32,
                state: HitState::Active,
            });
        }
    }
    detect(rules, norm, text, hits);
    apply_allow_and_negation(rules, norm, hits);

    for h in hits.iter() {
        if h.state == HitState::Active && !scratch.fired[h.group as usize] {
            scratch.fired[h.group as usize] = true;
            scratch.fired_list.push(h.group);
        }
    }
    for r in &rules.rules {
        let f = &scratch.fired;
        let holds = r.all.iter().all(|&g| f[g as usize])
            && (r.any.is_empty() || r.any.iter().any(|&g| f[g as usize]))
            && !r.none.iter().any(|&g| f[g as usize]);
        if holds && !scratch.fired[r.group as usize] {
            scratch.fired[r.group as usize] = true;
            scratch.fired_list.push(r.group);
        }
    }
}

/// Built-in detectors: digit runs on the normalized text (where 一三八 and ①②③ are digits
/// already), URLs and mentions on the original.
fn detect(rules: &RuleSet, norm: &Normalized, text: &str, hits: &mut Vec<Hit>) {
    let d = &rules.detectors;
    let lang = lang_of(norm);
    if let (Some(g), Some(set)) = (
        d.groups[Detector::Phone as usize],
        d.setting(Detector::Phone, lang),
    ) {
        let b = norm.text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - s >= set.min_digits as usize && !after_order_ref(rules, hits, &norm.text, s) {
                let (os, oe) = norm.original_span(s, i);
                hits.push(Hit {
                    group: g,
                    nstart: s as u32,
                    nend: i as u32,
                    start: os as u32,
                    end: oe as u32,
                    state: HitState::Active,
                });
            }
        }
    }
    // Cheap pre-checks: no dot, no URL; no '@', no mention.
    let on_original = [
        (Detector::Url, &d.url_re, '.'),
        (Detector::Mention, &d.mention_re, '@'),
    ];
    for (det, re, marker) in on_original {
        let (Some(g), Some(re)) = (d.groups[det as usize], re) else {
            continue;
        };
        if d.setting(det, lang).is_none() || !text.contains(marker) {
            continue;
        }
        for m in re.find_iter(text) {
            hits.push(Hit {
                group: g,
                nstart: u32::MAX,
                nend: u32::MAX,
                start: m.start() as u32,
                end: m.end() as u32,
                state: HitState::Active,
            });
        }
    }
}

/// A comment's language, by script: any Han character makes it Chinese.
fn lang_of(norm: &Normalized) -> Lang {
    if norm.has_han {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// Topic and weight a fired group scores for a comment in `lang` (detectors differ by language).
fn scoring(rules: &RuleSet, g: u32, lang: Lang) -> (Option<Topic>, f32) {
    let grp = &rules.groups[g as usize];
    match grp.kind {
        GroupKind::Detector(d) => rules
            .detectors
            .setting(d, lang)
            .map_or((None, 0.0), |s| (Some(s.topic), s.weight)),
        _ => (grp.topic, grp.weight),
    }
}

/// Whether an order-reference term (订单号, order #, tracking) ends within its window before
/// normalized offset `at`.
fn after_order_ref(rules: &RuleSet, hits: &[Hit], text: &str, at: usize) -> bool {
    hits.iter().any(|h| {
        let g = &rules.groups[h.group as usize];
        g.kind == GroupKind::Context(Role::OrderRef)
            && (h.nend as usize) <= at
            && gap_chars(text, h.nend as usize, at) <= g.window as usize
    })
}

fn gap_chars(text: &str, from: usize, to: usize) -> usize {
    text.get(from..to).map_or(usize::MAX, |s| s.chars().count())
}

fn apply_allow_and_negation(rules: &RuleSet, norm: &Normalized, hits: &mut [Hit]) {
    let has_allow = hits
        .iter()
        .any(|h| rules.groups[h.group as usize].kind == GroupKind::Allow);
    if has_allow {
        for i in 0..hits.len() {
            if rules.groups[hits[i].group as usize].kind == GroupKind::Allow {
                continue;
            }
            let (s, e) = (hits[i].start, hits[i].end);
            let inside = hits
                .iter()
                .any(|a| rules.groups[a.group as usize].kind == GroupKind::Allow && a.start < e && s < a.end);
            if inside {
                hits[i].state = HitState::Allowed;
            }
        }
    }
    let has_negation = hits
        .iter()
        .any(|h| rules.groups[h.group as usize].kind == GroupKind::Context(Role::Negation));
    if has_negation {
        for i in 0..hits.len() {
            let g = &rules.groups[hits[i].group as usize];
            if !g.negatable || hits[i].state != HitState::Active || hits[i].nstart == u32::MAX {
                continue;
            }
            let at = hits[i].nstart as usize;
            let negated = hits.iter().any(|n| {
                let ng = &rules.groups[n.group as usize];
                ng.kind == GroupKind::Context(Role::Negation)
                    && n.state == HitState::Active
                    && (n.nend as usize) <= at
                    && gap_chars(&norm.text, n.nend as usize, at) <= ng.window as usize
            });
            if negated {
                hits[i].state = HitState::Negated;
            }
        }
    }
}

/// Classifies one comment: the rules decide, then the rule set's model (if any) gives its
/// second opinion.
pub fn classify(rules: &RuleSet, scratch: &mut Scratch, input: Input<'_>) -> Verdict {
    classify_with(rules, rules.model.as_deref(), scratch, input)
}

/// [`classify`] with another model than the rule set's (training's cross-validation).
pub fn classify_with(
    rules: &RuleSet,
    model: Option<&Model>,
    scratch: &mut Scratch,
    input: Input<'_>,
) -> Verdict {
    match_text(rules, scratch, input.text);
    let verdict = decide(rules, scratch, input);
    match model {
        Some(m) => second_opinion(rules, m, scratch, input, verdict),
        None => verdict,
    }
}

/// Fixed model tags, hashed once.
struct Tags {
    lang: [u64; 2],
    verdict: [u64; TOPICS + 1],
    strength: [[u64; 5]; 2],
    length: [[u64; 6]; 2],
    question: u64,
    purchase: u64,
}

static TAGS: std::sync::LazyLock<Tags> = std::sync::LazyLock::new(|| {
    let langs = [Lang::Zh, Lang::En];
    Tags {
        lang: langs.map(|l| hash_str(&format!("lang:{}", l.as_str()))),
        verdict: std::array::from_fn(|i| match Topic::ALL.get(i) {
            Some(t) => hash_str(&format!("rv:{}", t.as_str())),
            None => hash_str("rv:neutral"),
        }),
        strength: [Class::Complaint, Class::Attack]
            .map(|c| std::array::from_fn(|b| hash_str(&format!("rs:{}:{b}", c.as_str())))),
        length: langs.map(|l| std::array::from_fn(|b| hash_str(&format!("len:{}:{b}", l.as_str())))),
        question: hash_str("question"),
        purchase: hash_str("purchase"),
    }
});

/// Fills `scratch.feats` with what the model sees of the last matched comment: its text
/// n-grams, the rule groups that fired and the rules' verdict. Training and classifying both
/// come through here, so they always see the same features.
pub fn model_features(rules: &RuleSet, scratch: &mut Scratch, verdict: &Verdict) {
    let f = &mut scratch.feats;
    f.clear();
    features::text_features(&scratch.norm, f);
    for &g in &scratch.fired_list {
        if let Some(&h) = rules.group_features.get(g as usize) {
            f.tag(h, || format!("rule {}", rules.groups[g as usize].id));
        }
    }
    let t = &*TAGS;
    let l = verdict.lang as usize;
    f.tag(t.lang[l], || format!("lang {}", verdict.lang.as_str()));
    let vt = verdict.topic.map_or(TOPICS, |tp| tp as usize);
    f.tag(t.verdict[vt], || {
        format!("rules say {}", verdict.topic.map_or("neutral", Topic::as_str))
    });
    if verdict.class != Class::Neutral {
        let c = usize::from(verdict.class == Class::Attack);
        let b = ((verdict.score * 4.0) as usize).min(4);
        f.tag(t.strength[c][b], || format!("rules score bucket {b}"));
    }
    let chars = scratch.norm.text.len() / if l == Lang::Zh as usize { 3 } else { 1 };
    let b = match chars {
        0..=4 => 0,
        5..=9 => 1,
        10..=19 => 2,
        20..=39 => 3,
        40..=79 => 4,
        _ => 5,
    };
    f.tag(t.length[l][b], || format!("length bucket {b}"));
    if scratch.norm.has_question_mark {
        f.tag(t.question, || "question mark".into());
    }
    if verdict.purchase {
        f.tag(t.purchase, || "purchase context".into());
    }
}

/// What the model does to a rules' verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Opinion {
    /// Keep the rules' verdict; the source says whether the model agreed.
    Keep(Source),
    /// Raise this class (the rules said neutral), this sure.
    Raise(Class, f32),
    /// Drop the rules' weak hit: the model is sure it is neutral.
    Drop,
}

/// The model's say over a rules' verdict of `class` scoring `score`: raise what the rules
/// missed when sure, drop a weak rule hit it is sure is neutral, otherwise keep the rules'
/// verdict. One function, so classify and training's threshold sweep decide alike.
/// A comment of fewer than [`MIN_TOKENS_TO_RAISE`] `tokens` is never raised: one character or
/// one word says too little for the model alone (骗, 假 and 傻 came up at P 0.6–0.77).
pub fn combine(class: Class, score: f32, p: &Probs, tokens: usize, cfg: &ModelCfg) -> Opinion {
    if class == Class::Neutral {
        let (c, pc, raise) = if p.complaint >= p.attack {
            (Class::Complaint, p.complaint, cfg.raise_complaint)
        } else {
            (Class::Attack, p.attack, cfg.raise_attack)
        };
        if pc >= raise && tokens >= MIN_TOKENS_TO_RAISE {
            return Opinion::Raise(c, pc);
        }
    } else if score < cfg.weak && p.neutral >= cfg.veto {
        return Opinion::Drop;
    }
    Opinion::Keep(if p.best() == class {
        Source::Both
    } else {
        Source::Rules
    })
}

/// Applies the model's opinion to the rules' verdict `v`.
fn second_opinion(
    rules: &RuleSet,
    model: &Model,
    scratch: &mut Scratch,
    input: Input<'_>,
    v: Verdict,
) -> Verdict {
    model_features(rules, scratch, &v);
    let p = model.probs(&scratch.feats);
    match combine(
        v.class,
        v.score,
        &p,
        scratch.feats.tokens,
        &rules.model_cfg(v.lang),
    ) {
        Opinion::Raise(class, pc) => match model.topic(&scratch.feats, class) {
            Some((topic, _)) => {
                // Rare: only now are spans worth keeping, for the evidence.
                scratch.feats.detail = true;
                model_features(rules, scratch, &v);
                scratch.feats.detail = false;
                model_verdict(rules, model, scratch, input, &v, topic, pc)
            }
            None => v,
        },
        // Only rules the model saw fire in training can be overruled (not one ops just added).
        Opinion::Drop if !knows_fired_rules(rules, model, scratch) => Verdict {
            source: Source::Rules,
            ..v
        },
        Opinion::Drop => Verdict {
            class: Class::Neutral,
            topic: None,
            score: p.neutral,
            evidence: Vec::new(),
            action: Action::None,
            script: None,
            source: Source::Model,
            ..v
        },
        Opinion::Keep(source) => Verdict { source, ..v },
    }
}

/// Whether the model saw every scored rule group that fired on the last comment fire in
/// training.
fn knows_fired_rules(rules: &RuleSet, model: &Model, scratch: &Scratch) -> bool {
    scratch.fired_list.iter().all(|&g| {
        !rules.groups[g as usize].kind.scored()
            || rules
                .group_features
                .get(g as usize)
                .is_some_and(|&h| model.knows_group(h))
    })
}

/// A verdict the model raised: its topic, the rules' action and script for that topic, and
/// the n-grams that pushed it most as evidence.
fn model_verdict(
    rules: &RuleSet,
    model: &Model,
    scratch: &Scratch,
    input: Input<'_>,
    v: &Verdict,
    topic: Topic,
    p: f32,
) -> Verdict {
    let class = topic.class();
    let action = action_for(class, topic, p);
    let script = rules
        .script(v.lang, Some(topic), class, action)
        .map(|s| fill_script(s, input, v.lang));
    Verdict {
        class,
        topic: Some(topic),
        score: p,
        evidence: model_evidence(model, scratch, input.text, class),
        action,
        script,
        lang: v.lang,
        purchase: v.purchase,
        source: Source::Model,
    }
}

/// The model raises an alert only on comments of at least this many tokens.
pub const MIN_TOKENS_TO_RAISE: usize = 2;
/// How many n-grams a model verdict shows as evidence.
const MODEL_EVIDENCE: usize = 3;
/// The rule name model evidence carries.
pub const MODEL_RULE: &str = "model";

/// The text n-grams that pushed most towards `class`, as (merged) spans of the original.
fn model_evidence(model: &Model, scratch: &Scratch, text: &str, class: Class) -> Vec<Evidence> {
    let f = &scratch.feats;
    let mut top: [(f32, usize); MODEL_EVIDENCE] = [(0.0, usize::MAX); MODEL_EVIDENCE];
    // `kinds` and `spans` are filled: the caller asked for detail.
    for (i, kind) in f.kinds.iter().enumerate() {
        if *kind == Kind::Tag {
            continue;
        }
        let w = model.push_towards(f, i, class);
        if w > top[MODEL_EVIDENCE - 1].0 {
            top[MODEL_EVIDENCE - 1] = (w, i);
            top.sort_by(|a, b| b.0.total_cmp(&a.0));
        }
    }
    let mut spans: Vec<(usize, usize)> = top
        .iter()
        .filter(|(_, i)| *i != usize::MAX)
        .filter_map(|&(_, i)| f.spans.get(i))
        .map(|&(s, e)| scratch.norm.original_span(s as usize, e as usize))
        .filter(|(s, e)| s < e)
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let rule: Arc<str> = Arc::from(MODEL_RULE);
    merged
        .into_iter()
        .map(|(s, e)| Evidence {
            rule: rule.clone(),
            start: s,
            end: e,
            text: text.get(s..e).unwrap_or("").to_string(),
            context: false,
        })
        .collect()
}

/// The action for a verdict of `class`/`topic` this sure.
fn action_for(class: Class, topic: Topic, score: f32) -> Action {
    match (class, topic) {
        (Class::Complaint, _) if score >= INVITE_THRESHOLD => Action::InviteCostream,
        (Class::Complaint, _) => Action::ScriptedReply,
        (_, Topic::Insult | Topic::Hate | Topic::Threat) => Action::MuteReview,
        _ => Action::PrivateResolution,
    }
}

/// What the model thought of `text`, for `liveguard rules explain`.
#[derive(Debug, Clone)]
pub struct ModelExplain {
    /// Class probabilities.
    pub probs: Probs,
    /// The features that pushed most towards the most probable non-neutral class (or away
    /// from it, when negative): a readable name and the push.
    pub top: Vec<(String, f32)>,
    /// The class `top` is about.
    pub towards: Class,
}

/// Explains the model's view of `text` (None without a model).
pub fn explain_model(rules: &RuleSet, text: &str) -> Option<ModelExplain> {
    let model = rules.model.as_deref()?;
    let mut scratch = Scratch::new();
    scratch.feats.tag_names = Some(Vec::new());
    scratch.feats.detail = true;
    match_text(rules, &mut scratch, text);
    let v = decide(
        rules,
        &mut scratch,
        Input {
            text,
            ..Input::default()
        },
    );
    model_features(rules, &mut scratch, &v);
    let probs = model.probs(&scratch.feats);
    let towards = if probs.complaint >= probs.attack {
        Class::Complaint
    } else {
        Class::Attack
    };
    let f = &scratch.feats;
    let names = f.tag_names.as_deref().unwrap_or(&[]);
    let mut tag = 0;
    let mut top: Vec<(String, f32)> = f
        .kinds
        .iter()
        .zip(&f.spans)
        .enumerate()
        .map(|(i, (&kind, &(s, e)))| {
            let name = if kind == Kind::Tag {
                tag += 1;
                names.get(tag - 1).cloned().unwrap_or_default()
            } else {
                let kind = match kind {
                    Kind::Uni => "uni",
                    Kind::Bi => "bi",
                    _ => "edge",
                };
                let t = scratch.norm.text.get(s as usize..e as usize).unwrap_or("");
                format!("{kind} {t:?}")
            };
            (name, model.push_towards(f, i, towards))
        })
        .collect();
    top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    top.truncate(12);
    Some(ModelExplain { probs, top, towards })
}

/// The decision over the hits `match_text` left in `scratch`.
pub fn decide(rules: &RuleSet, scratch: &mut Scratch, input: Input<'_>) -> Verdict {
    let groups = &rules.groups;
    let mut purchase = false;
    let mut question = scratch.norm.has_question_mark;
    let mut rhetorical = false;
    for &g in &scratch.fired_list {
        let grp = &groups[g as usize];
        match grp.kind {
            GroupKind::Context(Role::Purchase) => purchase = true,
            GroupKind::Context(Role::Question) => question = true,
            GroupKind::Context(Role::Rhetorical) => rhetorical = true,
            _ if grp.kind.scored() && grp.implies_purchase => purchase = true,
            _ => {}
        }
    }
    let lang = lang_of(&scratch.norm);
    let scores = &mut scratch.scores;
    let strongest = &mut scratch.strongest;
    *scores = [0.0; TOPICS];
    *strongest = [0.0; TOPICS];
    for &g in &scratch.fired_list {
        let grp = &groups[g as usize];
        if !grp.kind.scored() {
            continue;
        }
        let (own_topic, weight) = scoring(rules, g, lang);
        let topic = match (purchase, grp.with_purchase, own_topic) {
            (true, Some(t), _) => t,
            (_, _, Some(t)) => t,
            _ => continue,
        };
        let distinct = distinct_hits(&scratch.hits, g);
        let extra = EXTRA_HIT_SHARE * distinct.saturating_sub(1).min(2) as f32;
        scores[topic as usize] += weight * (1.0 + extra);
        strongest[topic as usize] = strongest[topic as usize].max(weight);
    }
    let pre_purchase_question = question && !purchase && !rhetorical;
    let mut best_c: Option<(Topic, f32)> = None;
    let mut best_a: Option<(Topic, f32)> = None;
    for &t in Topic::ALL {
        let mut s = scores[t as usize];
        if s <= 0.0 {
            continue;
        }
        let slot = match t.class() {
            Class::Complaint => {
                if pre_purchase_question {
                    continue;
                }
                if purchase {
                    s += PURCHASE_BOOST;
                }
                &mut best_c
            }
            _ => &mut best_a,
        };
        // Equal scores: the topic with the strongest single rule wins (one specific rule over
        // an accumulation of generic weak words).
        let beats = |(b, bt): (f32, Topic)| {
            s > b + 1e-4 || ((s - b).abs() <= 1e-4 && strongest[t as usize] > strongest[bt as usize])
        };
        if slot.is_none_or(|(bt, b)| beats((b, bt))) {
            *slot = Some((t, s));
        }
    }
    let complaint = best_c.filter(|(_, s)| *s >= FIRE_THRESHOLD);
    let attack = best_a.filter(|(_, s)| *s >= FIRE_THRESHOLD);
    let winner = match (complaint, attack) {
        (Some(c), Some(a)) => {
            let yields = matches!(a.0, Topic::Insult | Topic::Smear);
            if yields && purchase {
                Some(c)
            } else if !yields && a.1 >= STRONG_ATTACK {
                Some(a)
            } else if c.1 > a.1 {
                Some(c)
            } else {
                Some(a)
            }
        }
        (c, a) => c.or(a),
    };
    let Some((topic, raw)) = winner else {
        let top = best_c.map_or(0.0, |c| c.1).max(best_a.map_or(0.0, |a| a.1));
        return Verdict {
            class: Class::Neutral,
            topic: None,
            score: (1.0 - top).clamp(0.0, 1.0),
            evidence: Vec::new(),
            action: Action::None,
            script: None,
            lang,
            purchase,
            source: Source::Rules,
        };
    };
    let class = topic.class();
    let score = raw.min(1.0);
    let action = action_for(class, topic, score);
    let evidence = evidence_for(rules, scratch, input.text, topic, purchase, lang);
    let script = rules
        .script(lang, Some(topic), class, action)
        .map(|s| fill_script(s, input, lang));
    Verdict {
        class,
        topic: Some(topic),
        score,
        evidence,
        action,
        script,
        lang,
        purchase,
        source: Source::Rules,
    }
}

/// How many active hits of group `g` start at distinct places (counted up to 3).
fn distinct_hits(hits: &[Hit], g: u32) -> usize {
    let mut starts = [u32::MAX; 3];
    let mut n = 0;
    for h in hits
        .iter()
        .filter(|h| h.group == g && h.state == HitState::Active)
    {
        if n < starts.len() && !starts[..n].contains(&h.start) {
            starts[n] = h.start;
            n += 1;
        }
    }
    n.max(1)
}

/// The hits that explain the verdict: the winning topic's groups (boolean rules show the
/// spans of what they combined) and, for complaints, the purchase context.
fn evidence_for(
    rules: &RuleSet,
    scratch: &Scratch,
    text: &str,
    topic: Topic,
    purchase: bool,
    lang: Lang,
) -> Vec<Evidence> {
    let groups = &rules.groups;
    let counts_for = |g: u32| {
        let grp = &groups[g as usize];
        grp.kind.scored()
            && match (purchase, grp.with_purchase) {
                (true, Some(t)) => t == topic,
                _ => scoring(rules, g, lang).0 == Some(topic),
            }
    };
    let mut out: Vec<Evidence> = Vec::new();
    let mut push = |rule: &Arc<str>, h: &crate::classify::Hit, context: bool| {
        if out.len() < MAX_EVIDENCE && !out.iter().any(|e| e.rule == *rule && e.start == h.start as usize) {
            let (s, e) = (h.start as usize, h.end as usize);
            out.push(Evidence {
                rule: rule.clone(),
                start: s,
                end: e,
                text: text.get(s..e).unwrap_or("").to_string(),
                context,
            });
        }
    };
    for h in scratch.hits.iter().filter(|h| h.state == HitState::Active) {
        let grp = &groups[h.group as usize];
        let context = topic.class() == Class::Complaint && grp.kind == GroupKind::Context(Role::Purchase);
        if counts_for(h.group) || context {
            push(&grp.id, h, context);
        }
    }
    for r in &rules.rules {
        if scratch.fired(r.group) && counts_for(r.group) {
            let id = &groups[r.group as usize].id;
            for h in scratch.hits.iter().filter(|h| {
                h.state == HitState::Active && (r.all.contains(&h.group) || r.any.contains(&h.group))
            }) {
                push(id, h, false);
            }
        }
    }
    out.sort_by_key(|e| (e.start, e.end));
    out
}

/// Fills `{user}` and `{product}`. In English `{product}` is a whole noun phrase with its
/// determiner ("the jade bangle", or "your item" when the event names no product), so
/// templates write "{product} hasn't arrived", not "your {product}"; in Chinese a missing
/// product reads 这款. Without a user name, Chinese says 这位宝宝 and English leaves the
/// address out ("{user}, we see …" → "We see …", "Sorry {user}, it …" → "Sorry, it …"),
/// except after a greeting ("Hi there").
pub fn fill_script(template: &str, input: Input<'_>, lang: Lang) -> String {
    let product = match (lang, input.product) {
        (Lang::Zh, Some(p)) => p.to_string(),
        (Lang::Zh, None) => "这款".to_string(),
        (Lang::En, Some(p)) => format!("the {p}"),
        (Lang::En, None) => "your item".to_string(),
    };
    match (input.user, lang) {
        (Some(user), _) => template.replace("{user}", user).replace("{product}", &product),
        (None, Lang::Zh) => template
            .replace("{user}", "这位宝宝")
            .replace("{product}", &product),
        (None, Lang::En) => {
            // "{user}, {product} comes …" opens with the product now: "Your item comes …".
            let filled = without_address(template).replace("{product}", &product);
            let mut chars = filled.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

/// An English template with its `{user}` address taken out, reading naturally: "Hi {user}"
/// becomes "Hi there", ", {user}." loses the comma, "Sorry {user}, it" becomes "Sorry, it",
/// and a sentence opening "{user}, we" opens "We".
fn without_address(template: &str) -> String {
    const USER: &str = "{user}";
    let mut s = template.to_string();
    while let Some(i) = s.find(USER) {
        let before = s.get(..i).unwrap_or("");
        let after = s.get(i + USER.len()..).unwrap_or("");
        let trimmed = before.trim_end();
        let greeting = ["Hi", "Hello", "Hey", "Dear"]
            .iter()
            .any(|g| trimmed.ends_with(g) && before.ends_with(' '));
        s = if greeting {
            format!("{before}there{after}")
        } else if let Some(head) = before.strip_suffix(", ") {
            format!("{head}{after}")
        } else if trimmed.is_empty() || trimmed.ends_with(['.', '!', '?', '\n']) {
            let rest = after.trim_start_matches([',', ' ']);
            let mut chars = rest.chars();
            let capital: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            format!("{before}{capital}")
        } else {
            format!("{trimmed}{after}")
        };
    }
    s
}

/// What fired for `text`, for `liveguard rules explain`: the normalized text, every hit with
/// its state, and the verdict.
pub fn explain(rules: &RuleSet, text: &str) -> (String, Vec<(Arc<str>, Hit)>, Verdict) {
    let mut scratch = Scratch::new();
    let verdict = classify(
        rules,
        &mut scratch,
        Input {
            text,
            ..Input::default()
        },
    );
    let mut hits: Vec<(Arc<str>, Hit)> = scratch
        .hits
        .iter()
        .map(|h| (rules.groups[h.group as usize].id.clone(), *h))
        .collect();
    for r in &rules.rules {
        if scratch.fired(r.group) {
            hits.push((
                rules.groups[r.group as usize].id.clone(),
                Hit {
                    group: r.group,
                    nstart: u32::MAX,
                    nend: u32::MAX,
                    start: 0,
                    end: 0,
                    state: HitState::Active,
                },
            ));
        }
    }
    (scratch.norm.text.clone(), hits, verdict)
}

/// An `[[example]]` the rules got wrong.
#[derive(Debug, Clone)]
pub struct ExampleFailure {
    /// `file:line: example "text": expected …, got …` ready to print.
    pub message: String,
}

/// Runs every `[[example]]` of the rule set; returns how many ran and the failures.
pub fn check_examples(rules: &RuleSet) -> (usize, Vec<ExampleFailure>) {
    let mut scratch = Scratch::new();
    let mut failures = Vec::new();
    for ex in &rules.examples {
        let v = classify(
            rules,
            &mut scratch,
            Input {
                text: &ex.text,
                ..Input::default()
            },
        );
        let topic_ok = ex.topic.is_none() || ex.topic == v.topic;
        if v.class != ex.class || !topic_ok {
            let want = match ex.topic {
                Some(t) => format!("{}/{}", ex.class.as_str(), t.as_str()),
                None => ex.class.as_str().to_string(),
            };
            let got = match v.topic {
                Some(t) => format!("{}/{}", v.class.as_str(), t.as_str()),
                None => v.class.as_str().to_string(),
            };
            let fired: Vec<&str> = v.evidence.iter().map(|e| &*e.rule).collect();
            failures.push(ExampleFailure {
                message: format!(
                    "{}:{}: example {:?}: expected {want}, got {got} (score {:.2}; evidence: {})",
                    ex.path.display(),
                    ex.line,
                    ex.text,
                    v.score,
                    if fired.is_empty() {
                        "none".to_string()
                    } else {
                        fired.join(", ")
                    }
                ),
            });
        }
    }
    (rules.examples.len(), failures)
}
