//! Raw packs → one checked, compiled [`RuleSet`]: every term normalized exactly as comments
//! are and compiled together into one Aho-Corasick automaton, group references of boolean
//! rules resolved to indices. Regexes are gated: literals of which every match of a regex
//! must contain one (found by walking its `regex-syntax` HIR) join the same automaton, and a
//! regex runs only on comments where one of them occurs. A `RegexSet` over the shipped packs'
//! regexes measured ~90 µs per comment (its lazy DFA gives up on the large alternations);
//! gated regexes cost almost nothing on the comments they cannot match.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexBuilder};
use toml::Spanned;

use serde::Serialize;

use super::file::{PackFile, RawDetector};
use super::{RuleError, RuleErrors};
use crate::model::features::hash_str;
use crate::model::Model;
use crate::normalize::Normalizer;
use crate::taxonomy::{Action, Class, Lang, Topic};

/// Regexes are compiled with this size limit, so one runaway pattern cannot eat the memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Default shortest digit run the phone detector counts (WeChat/QQ ids and phone numbers).
const DEFAULT_MIN_DIGITS: u32 = 7;
/// Default reach of a negation or order-reference term, in chars.
const DEFAULT_WINDOW: u32 = 3;

/// The compiled rules: everything the classifier needs, immutable once built.
///
/// # Resource usage
/// One Aho-Corasick automaton over every term of every pack (roughly tens of bytes per term
/// byte), one `RegexSet` plus one `Regex` per regex rule, and small tables per group.
///
/// # Cloning and sharing
/// Build once per (re)load and share behind an `Arc`; it is `Send + Sync`. Classifying
/// borrows it immutably, so a new set can be swapped in while comments finish on the old one.
///
/// # Construction failure
/// [`compile`] returns every problem found, each with `file:line` and the rule id; nothing
/// partial is ever built.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) groups: Vec<Group>,
    pub(crate) ac: Option<AhoCorasick>,
    /// Per automaton pattern: (whole word at start, whole word at end, range into `pat_owner`).
    pub(crate) patterns: Vec<PatternMeta>,
    /// Group indices owning each pattern, flattened.
    pub(crate) pat_owner: Vec<u32>,
    /// Regex indices each pattern gates, flattened.
    pub(crate) pat_gate: Vec<u32>,
    /// Compiled regexes with their groups.
    pub(crate) regexes: Vec<(Regex, u32)>,
    /// Regexes with no finite prefix set: they run on every comment.
    pub(crate) ungated: Vec<u32>,
    pub(crate) rules: Vec<BoolRule>,
    pub(crate) detectors: Detectors,
    pub(crate) scripts: HashMap<(Lang, ScriptKey, Action), Arc<str>>,
    /// `[[example]]` cases of every pack.
    pub examples: Vec<Example>,
    /// Pack ids and files, in load order.
    pub packs: Vec<(String, PathBuf)>,
    /// How many terms were compiled.
    pub term_count: usize,
    /// Per group, the model feature saying it fired (hash of `g:<id>`).
    pub(crate) group_features: Vec<u64>,
    /// Model thresholds per language (`[model]` tables), indexed by [`Lang`].
    pub(crate) model_cfg: [ModelCfg; 2],
    /// The learned second opinion (`*.lgm` in the rules directory), when there is one.
    pub model: Option<Arc<Model>>,
}

/// When the learned model may overrule the rules, for one language (`[model]` in a pack).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelCfg {
    /// Raise a complaint the rules missed at this P(complaint).
    pub raise_complaint: f32,
    /// Raise an attack the rules missed at this P(attack).
    pub raise_attack: f32,
    /// A rule verdict below this score is weak...
    pub weak: f32,
    /// ...and is dropped at this P(neutral).
    pub veto: f32,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self {
            raise_complaint: 0.8,
            raise_attack: 0.85,
            weak: 0.6,
            veto: 0.9,
        }
    }
}

impl RuleSet {
    /// The model thresholds for `lang`.
    pub fn model_cfg(&self, lang: Lang) -> ModelCfg {
        self.model_cfg[lang as usize]
    }
}

/// A named group of rules: a keyword list, a regex, a boolean rule, a detector, a context
/// list, a term list or an allow list.
#[derive(Debug)]
pub struct Group {
    /// The id ops wrote (or `detector:phone` etc.).
    pub id: Arc<str>,
    /// What kind of group.
    pub kind: GroupKind,
    /// Topic it scores for (scored groups only).
    pub topic: Option<Topic>,
    /// Score added when it fires.
    pub weight: f32,
    /// A negation just before a hit cancels it.
    pub negatable: bool,
    /// Firing says the writer bought the item.
    pub implies_purchase: bool,
    /// With purchase context, score for this topic instead.
    pub with_purchase: Option<Topic>,
    /// Reach of a negation/order-reference term, in chars.
    pub window: u32,
    /// Where it was defined.
    pub path: PathBuf,
    /// Line where it was defined.
    pub line: usize,
}

/// What a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// `[[keywords]]`: scored terms.
    Keywords,
    /// `[[regex]]`: a scored regex.
    Regex,
    /// `[[rule]]`: a scored boolean rule.
    Rule,
    /// A built-in detector.
    Detector(Detector),
    /// `[[context]]`: terms that modify the decision.
    Context(Role),
    /// `[[terms]]`: a term list for boolean rules.
    Terms,
    /// `[[allow]]`: phrases that must never fire.
    Allow,
}

impl GroupKind {
    /// Whether firing adds to a topic's score.
    pub fn scored(self) -> bool {
        matches!(
            self,
            Self::Keywords | Self::Regex | Self::Rule | Self::Detector(_)
        )
    }
}

/// Built-in detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// Long digit runs: phone, WeChat, QQ numbers.
    Phone,
    /// URLs and bare domains.
    Url,
    /// `@handle` mentions.
    Mention,
}

/// What a context list does to the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The writer bought or received the item: raises a complaint.
    Purchase,
    /// A (pre-purchase) question: a problem word alone becomes neutral.
    Question,
    /// Cancels a negatable hit that follows within the window.
    Negation,
    /// An order or tracking number reference: a digit run after it is not a contact number.
    OrderRef,
    /// A rhetorical complaint question (为什么还不发货? / why is it still…?): a question
    /// mark does not make it a pre-purchase question.
    Rhetorical,
}

impl Role {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "purchase" => Self::Purchase,
            "question" => Self::Question,
            "negation" => Self::Negation,
            "order_ref" => Self::OrderRef,
            "rhetorical" => Self::Rhetorical,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PatternMeta {
    pub word_start: bool,
    pub word_end: bool,
    pub owners: (u32, u32),
    pub gates: (u32, u32),
}

#[derive(Debug)]
pub(crate) struct BoolRule {
    pub group: u32,
    pub all: Vec<u32>,
    pub any: Vec<u32>,
    pub none: Vec<u32>,
}

/// One detector's settings for one language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DetSetting {
    pub weight: f32,
    pub topic: Topic,
    pub min_digits: u32,
}

/// Detector settings per language: a pack's `[detectors]` apply to comments in its language
/// (so a link in an English complaint tweet is not judged by the Chinese pack's weight); a
/// comment in a language with no setting uses the other language's.
#[derive(Debug, Default)]
pub(crate) struct Detectors {
    /// Indexed by [`Detector`] then [`Lang`].
    settings: [[Option<DetSetting>; 2]; 3],
    /// The group of each detector, when any pack switched it on.
    pub groups: [Option<u32>; 3],
    pub url_re: Option<Regex>,
    pub mention_re: Option<Regex>,
}

impl Detectors {
    /// The setting of detector `d` for a comment in `lang`.
    pub fn setting(&self, d: Detector, lang: Lang) -> Option<DetSetting> {
        let per = &self.settings[d as usize];
        per[lang as usize].or(per[1 - lang as usize])
    }
}

/// What a script answers: one topic, or a whole class as the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ScriptKey {
    Topic(Topic),
    Class(Class),
}

/// An `[[example]]` case.
#[derive(Debug, Clone)]
pub struct Example {
    /// The comment.
    pub text: String,
    /// Expected class.
    pub class: Class,
    /// Expected topic, when given.
    pub topic: Option<Topic>,
    /// Pack file.
    pub path: PathBuf,
    /// Line of the example's text.
    pub line: usize,
}

impl RuleSet {
    /// The groups, indexable by the ids that hits carry.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The script for a class/topic, action and language, falling back to the class-wide one.
    pub fn script(&self, lang: Lang, topic: Option<Topic>, class: Class, action: Action) -> Option<&str> {
        topic
            .and_then(|t| self.scripts.get(&(lang, ScriptKey::Topic(t), action)))
            .or_else(|| self.scripts.get(&(lang, ScriptKey::Class(class), action)))
            .map(|s| &**s)
    }

    /// Every script template in `lang`, unfilled.
    pub fn script_texts(&self, lang: Lang) -> impl Iterator<Item = &str> {
        self.scripts
            .iter()
            .filter(move |((l, _, _), _)| *l == lang)
            .map(|(_, s)| &**s)
    }
}

/// Collects errors for one file.
struct Ctx<'a> {
    file: &'a PackFile,
    errors: &'a mut Vec<RuleError>,
}

impl Ctx<'_> {
    fn err(&mut self, offset: usize, id: Option<&str>, message: impl Into<String>) {
        self.errors.push(RuleError {
            path: self.file.path.clone(),
            line: self.file.line(offset),
            id: id.map(str::to_string),
            message: message.into(),
        });
    }

    fn topic(&mut self, id: &str, class: &Spanned<String>, topic: &Spanned<String>) -> Option<Topic> {
        let Some(c) = Class::parse(class.get_ref()).filter(|c| *c != Class::Neutral) else {
            self.err(
                class.span().start,
                Some(id),
                format!(
                    "unknown class {:?} (expected complaint or attack)",
                    class.get_ref()
                ),
            );
            return None;
        };
        let Some(t) = Topic::parse(topic.get_ref()) else {
            self.err(
                topic.span().start,
                Some(id),
                format!("unknown topic {:?}", topic.get_ref()),
            );
            return None;
        };
        if t.class() != c {
            self.err(
                topic.span().start,
                Some(id),
                format!(
                    "topic {:?} belongs to class {}, not {}",
                    topic.get_ref(),
                    t.class().as_str(),
                    c.as_str()
                ),
            );
            return None;
        }
        Some(t)
    }

    /// A `[model]` table: each threshold a probability in (0, 1].
    fn model_cfg(&mut self, id: &str, m: &super::file::RawModel) -> ModelCfg {
        let d = ModelCfg::default();
        let mut get = |name: &str, v: &Option<Spanned<f64>>, default: f32| match v {
            Some(v) if *v.get_ref() > 0.0 && *v.get_ref() <= 1.0 => *v.get_ref() as f32,
            Some(v) => {
                self.err(
                    v.span().start,
                    Some(id),
                    format!("[model] {name} = {} must be a probability in (0, 1]", v.get_ref()),
                );
                default
            }
            None => default,
        };
        ModelCfg {
            raise_complaint: get("raise_complaint", &m.raise_complaint, d.raise_complaint),
            raise_attack: get("raise_attack", &m.raise_attack, d.raise_attack),
            weak: get("weak", &m.weak, d.weak),
            veto: get("veto", &m.veto, d.veto),
        }
    }

    fn weight(&mut self, id: &str, w: &Spanned<f64>) -> f32 {
        let v = *w.get_ref();
        if !(0.0..=1.0).contains(&v) {
            self.err(w.span().start, Some(id), format!("weight {v} is outside 0..=1"));
        }
        v as f32
    }
}

/// Builds the automaton's pattern table while groups are added.
#[derive(Default)]
struct Terms {
    normalizer: Normalizer,
    index: HashMap<(String, bool, bool), usize>,
    texts: Vec<String>,
    bounds: Vec<(bool, bool)>,
    owners: Vec<Vec<u32>>,
    gates: Vec<Vec<u32>>,
    count: usize,
}

impl Terms {
    fn add(&mut self, ctx: &mut Ctx<'_>, gid: &Spanned<String>, group: u32, terms: &[Spanned<String>]) {
        let at = gid.span().start;
        let gid = gid.get_ref().as_str();
        if terms.is_empty() {
            ctx.err(at, Some(gid), "terms list is empty");
        }
        for t in terms {
            let raw = t.get_ref().trim();
            let prefix = raw.ends_with('*');
            let suffix = raw.starts_with('*');
            let core = raw.trim_matches('*');
            let norm = self.normalizer.normalize(core).text;
            if norm.is_empty() {
                ctx.err(
                    t.span().start,
                    Some(gid),
                    format!(
                        "empty keyword {:?} (nothing left after normalization)",
                        t.get_ref()
                    ),
                );
                continue;
            }
            let latin_start = norm.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
            let latin_end = norm.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
            let key = (norm, latin_start && !suffix, latin_end && !prefix);
            self.count += 1;
            let idx = match self.index.get(&key) {
                Some(&i) => i,
                None => self.push(key),
            };
            if !self.owners[idx].contains(&group) {
                self.owners[idx].push(group);
            }
        }
    }

    fn push(&mut self, key: (String, bool, bool)) -> usize {
        let i = self.texts.len();
        self.texts.push(key.0.clone());
        self.bounds.push((key.1, key.2));
        self.owners.push(Vec::new());
        self.gates.push(Vec::new());
        self.index.insert(key, i);
        i
    }

    /// Adds a regex's prefix literals as gates for regex `re` (already normalized text).
    fn add_gates(&mut self, re: u32, literals: &[String]) {
        for lit in literals {
            let key = (lit.clone(), false, false);
            let idx = match self.index.get(&key) {
                Some(&i) => i,
                None => self.push(key),
            };
            if !self.gates[idx].contains(&re) {
                self.gates[idx].push(re);
            }
        }
    }
}

/// Literals of which every match of `pattern` contains at least one (a necessary condition,
/// so gating on them is exact), or None when no small set exists (then the regex runs on
/// every comment).
fn required_literals(pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?;
    let set = required(&hir)?;
    let mut out: Vec<String> = Vec::with_capacity(set.len());
    for lit in set {
        let s = String::from_utf8(lit).ok()?;
        if s.is_empty() {
            return None;
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Some(out)
}

/// At most this many gate literals per regex.
const MAX_GATES: usize = 2_000;
/// A character class is a literal set only when this small.
const MAX_CLASS_CHARS: u32 = 16;

/// A set of literals one of which every match of `hir` contains.
fn required(hir: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Literal(l) => Some(vec![l.0.to_vec()]),
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub),
        HirKind::Class(Class::Unicode(c)) => {
            let n: u32 = c
                .ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            (n <= MAX_CLASS_CHARS).then(|| {
                c.ranges()
                    .iter()
                    .flat_map(|r| r.start()..=r.end())
                    .map(|ch| ch.to_string().into_bytes())
                    .collect()
            })
        }
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for sub in subs {
                all.extend(required(sub)?);
                if all.len() > MAX_GATES {
                    return None;
                }
            }
            Some(all)
        }
        // Of a concatenation, the most selective required piece: longest shortest literal,
        // then fewest literals.
        HirKind::Concat(subs) => subs.iter().filter_map(required).max_by_key(|set| {
            let shortest = set.iter().map(Vec::len).min().unwrap_or(0);
            (shortest, usize::MAX - set.len())
        }),
        _ => None,
    }
}

/// Where each id is first defined, as (file index, byte offset): in file order, then in the
/// order of the file's lines, whatever kind of group each definition is (they are compiled
/// kind by kind, so the first one compiled is not always the first one written).
type FirstIds = HashMap<String, (usize, usize)>;

fn first_ids(files: &[PackFile]) -> FirstIds {
    let mut first = FirstIds::new();
    for (f, file) in files.iter().enumerate() {
        let p = &file.pack;
        let ids = p
            .keywords
            .iter()
            .map(|k| &k.id)
            .chain(p.context.iter().map(|c| &c.id))
            .chain(p.terms.iter().map(|t| &t.id))
            .chain(p.allow.iter().map(|a| &a.id))
            .chain(p.regex.iter().map(|r| &r.id))
            .chain(p.rule.iter().map(|r| &r.id));
        for id in ids {
            let name = id.get_ref().trim();
            if name.is_empty() {
                continue;
            }
            let at = (f, id.span().start);
            first
                .entry(name.to_string())
                .and_modify(|e| *e = (*e).min(at))
                .or_insert(at);
        }
    }
    first
}

/// Registers a group id, reporting a duplicate where it repeats; returns the new group's index.
fn new_group(
    groups: &mut Vec<Group>,
    first: &FirstIds,
    (files, f): (&[PackFile], usize),
    ctx: &mut Ctx<'_>,
    id: &Spanned<String>,
    kind: GroupKind,
) -> u32 {
    let line = ctx.file.line(id.span().start);
    let name = id.get_ref().trim();
    if name.is_empty() {
        ctx.err(id.span().start, None, "empty id");
    } else if let Some(&(ff, off)) = first.get(name).filter(|&&at| at != (f, id.span().start)) {
        let (path, l) = files
            .get(ff)
            .map_or((PathBuf::new(), 0), |o| (o.path.clone(), o.line(off)));
        ctx.err(
            id.span().start,
            Some(name),
            format!("duplicate id (first defined at {}:{l})", path.display()),
        );
    }
    groups.push(Group {
        id: Arc::from(name),
        kind,
        topic: None,
        weight: 0.0,
        negatable: false,
        implies_purchase: false,
        with_purchase: None,
        window: DEFAULT_WINDOW,
        path: ctx.file.path.clone(),
        line,
    });
    (groups.len() - 1) as u32
}

fn placeholder_error(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some((_, after)) = rest.split_once('{') {
        let Some((name, tail)) = after.split_once('}') else {
            return Some("unclosed '{' in script".into());
        };
        if name != "user" && name != "product" {
            return Some(format!(
                "unknown placeholder {{{name}}} (use {{user}} or {{product}})"
            ));
        }
        rest = tail;
    }
    None
}

/// Checks and compiles parsed packs into one rule set, or returns every error found.
pub fn compile(files: &[PackFile]) -> Result<RuleSet, RuleErrors> {
    let mut errors = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let first = first_ids(files);
    let mut terms = Terms::default();
    let mut regexes = Vec::new();
    let mut pending_rules = Vec::new();
    let mut scripts = HashMap::new();
    let mut examples = Vec::new();
    let mut packs = Vec::new();
    let mut det_settings: [[Option<DetSetting>; 2]; 3] = [[None; 2]; 3];
    let mut det_owner: HashMap<(usize, usize), PathBuf> = HashMap::new();
    let mut model_cfg = [ModelCfg::default(); 2];
    let mut model_owner: [Option<String>; 2] = [None, None];

    for (f, file) in files.iter().enumerate() {
        let mut ctx = Ctx {
            file,
            errors: &mut errors,
        };
        let p = &file.pack;
        let lang = Lang::parse(p.pack.lang.get_ref());
        if lang.is_none() {
            ctx.err(
                p.pack.lang.span().start,
                Some(p.pack.id.get_ref()),
                format!("unknown lang {:?} (expected zh or en)", p.pack.lang.get_ref()),
            );
        }
        packs.push((p.pack.id.get_ref().clone(), file.path.clone()));
        if let (Some(m), Some(lang)) = (&p.model, lang) {
            let at = m.span().start;
            if let Some(first) = &model_owner[lang as usize] {
                ctx.err(
                    at,
                    Some(p.pack.id.get_ref()),
                    format!("second [model] table for {} (first in {first})", lang.as_str()),
                );
            } else {
                model_owner[lang as usize] = Some(format!("{}:{}", file.path.display(), file.line(at)));
                model_cfg[lang as usize] = ctx.model_cfg(p.pack.id.get_ref(), m.get_ref());
            }
        }

        for k in &p.keywords {
            let id = k.id.get_ref().clone();
            let g = new_group(
                &mut groups,
                &first,
                (files, f),
                &mut ctx,
                &k.id,
                GroupKind::Keywords,
            );
            let topic = ctx.topic(&id, &k.class, &k.topic);
            let weight = ctx.weight(&id, &k.weight);
            let with_purchase = k.with_purchase.as_ref().and_then(|wp| {
                let parsed = wp.get_ref().split_once('/').and_then(|(c, t)| {
                    let t = Topic::parse(t)?;
                    (Class::parse(c)? == t.class()).then_some(t)
                });
                if parsed.is_none() {
                    ctx.err(
                        wp.span().start,
                        Some(&id),
                        format!(
                            "with_purchase {:?} is not class/topic (e.g. complaint/authenticity)",
                            wp.get_ref()
                        ),
                    );
                }
                parsed
            });
            terms.add(&mut ctx, &k.id, g, &k.terms);
            let grp = &mut groups[g as usize];
            grp.topic = topic;
            grp.weight = weight;
            grp.implies_purchase = k.implies_purchase;
            grp.negatable = k
                .negatable
                .unwrap_or(topic.is_some_and(|t| t.class() == Class::Complaint));
            grp.with_purchase = with_purchase;
        }
        for c in &p.context {
            let id = c.id.get_ref().clone();
            let role = Role::parse(c.role.get_ref());
            if role.is_none() {
                ctx.err(
                    c.role.span().start,
                    Some(&id),
                    format!(
                        "unknown role {:?} (expected purchase, question, negation, order_ref or rhetorical)",
                        c.role.get_ref()
                    ),
                );
            }
            let g = new_group(
                &mut groups,
                &first,
                (files, f),
                &mut ctx,
                &c.id,
                GroupKind::Context(role.unwrap_or(Role::Question)),
            );
            terms.add(&mut ctx, &c.id, g, &c.terms);
            let grp = &mut groups[g as usize];
            grp.window = c.window.unwrap_or(DEFAULT_WINDOW);
            // Only a purchase can be negated ("没买过" is not a purchase).
            grp.negatable = role == Some(Role::Purchase);
        }
        for t in &p.terms {
            let g = new_group(&mut groups, &first, (files, f), &mut ctx, &t.id, GroupKind::Terms);
            terms.add(&mut ctx, &t.id, g, &t.terms);
        }
        for a in &p.allow {
            let g = new_group(&mut groups, &first, (files, f), &mut ctx, &a.id, GroupKind::Allow);
            terms.add(&mut ctx, &a.id, g, &a.terms);
        }
        for r in &p.regex {
            let id = r.id.get_ref().clone();
            let g = new_group(&mut groups, &first, (files, f), &mut ctx, &r.id, GroupKind::Regex);
            let topic = ctx.topic(&id, &r.class, &r.topic);
            let weight = ctx.weight(&id, &r.weight);
            match RegexBuilder::new(r.pattern.get_ref())
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) if re.is_match("") => {
                    ctx.err(
                        r.pattern.span().start,
                        Some(&id),
                        "regex matches the empty string (it would fire on every comment)",
                    );
                }
                Ok(re) => regexes.push((re, g, required_literals(r.pattern.get_ref()))),
                Err(e) => {
                    let msg = e.to_string().lines().last().unwrap_or("").trim().to_string();
                    ctx.err(r.pattern.span().start, Some(&id), format!("invalid regex: {msg}"));
                }
            }
            let grp = &mut groups[g as usize];
            grp.topic = topic;
            grp.weight = weight;
            grp.implies_purchase = r.implies_purchase;
        }
        for r in &p.rule {
            let id = r.id.get_ref().clone();
            let g = new_group(&mut groups, &first, (files, f), &mut ctx, &r.id, GroupKind::Rule);
            let topic = ctx.topic(&id, &r.class, &r.topic);
            let weight = ctx.weight(&id, &r.weight);
            if r.all.is_empty() && r.any.is_empty() {
                ctx.err(
                    r.id.span().start,
                    Some(&id),
                    "rule needs at least one group in `all` or `any`",
                );
            }
            let grp = &mut groups[g as usize];
            grp.topic = topic;
            grp.weight = weight;
            grp.implies_purchase = r.implies_purchase;
            pending_rules.push((file, g, r));
        }
        let dets: [(&Option<RawDetector>, usize); 3] = [
            (&p.detectors.phone, 0),
            (&p.detectors.url, 1),
            (&p.detectors.mention, 2),
        ];
        for (d, slot) in dets {
            let Some(d) = d else { continue };
            let name = ["detector:phone", "detector:url", "detector:mention"][slot];
            let weight = ctx.weight(name, &d.weight);
            let topic = match &d.topic {
                None => Some(Topic::Diversion),
                Some(t) => match Topic::parse(t.get_ref()).filter(|t| t.class() == Class::Attack) {
                    Some(t) => Some(t),
                    None => {
                        ctx.err(
                            t.span().start,
                            Some(name),
                            format!("detector topic {:?} is not an attack topic", t.get_ref()),
                        );
                        None
                    }
                },
            };
            if let (Some(topic), Some(lang)) = (topic, lang) {
                let min_digits = d.min_digits.unwrap_or(DEFAULT_MIN_DIGITS);
                if let Some(first) = det_owner.get(&(slot, lang as usize)) {
                    ctx.err(
                        d.weight.span().start,
                        Some(name),
                        format!("already configured for this language in {}", first.display()),
                    );
                } else {
                    det_owner.insert((slot, lang as usize), file.path.clone());
                    det_settings[slot][lang as usize] = Some(DetSetting {
                        weight,
                        topic,
                        min_digits,
                    });
                }
            }
        }
        for s in &p.script {
            let key = match (Topic::parse(s.topic.get_ref()), Class::parse(s.topic.get_ref())) {
                (Some(t), _) => Some(ScriptKey::Topic(t)),
                (None, Some(c)) if c != Class::Neutral => Some(ScriptKey::Class(c)),
                _ => {
                    ctx.err(
                        s.topic.span().start,
                        None,
                        format!("script for unknown topic {:?}", s.topic.get_ref()),
                    );
                    None
                }
            };
            let action = Action::parse(s.action.get_ref());
            if action.is_none() {
                ctx.err(
                    s.action.span().start,
                    None,
                    format!("unknown action {:?}", s.action.get_ref()),
                );
            }
            if let Some(msg) = placeholder_error(s.text.get_ref()) {
                ctx.err(s.text.span().start, None, msg);
            }
            if let (Some(k), Some(a), Some(l)) = (key, action, lang) {
                scripts.insert((l, k, a), Arc::from(s.text.get_ref().as_str()));
            }
        }
        for e in &p.example {
            let class = Class::parse(e.class.get_ref());
            if class.is_none() {
                ctx.err(
                    e.class.span().start,
                    None,
                    format!("example has unknown class {:?}", e.class.get_ref()),
                );
            }
            let topic = e.topic.as_ref().and_then(|t| {
                let parsed = Topic::parse(t.get_ref());
                if parsed.is_none() {
                    ctx.err(
                        t.span().start,
                        None,
                        format!("example has unknown topic {:?}", t.get_ref()),
                    );
                }
                parsed
            });
            if let Some(class) = class {
                examples.push(Example {
                    text: e.text.get_ref().clone(),
                    class,
                    topic,
                    path: file.path.clone(),
                    line: file.line(e.text.span().start),
                });
            }
        }
    }

    // Detectors become groups with fixed ids.
    let mut detectors = Detectors {
        settings: det_settings,
        ..Detectors::default()
    };
    for (slot, per_lang) in det_settings.iter().enumerate() {
        let Some(first) = per_lang.iter().flatten().next() else {
            continue;
        };
        let (name, det) = [
            ("detector:phone", Detector::Phone),
            ("detector:url", Detector::Url),
            ("detector:mention", Detector::Mention),
        ][slot];
        let g = groups.len() as u32;
        // Weight and topic here are placeholders: the decision reads the comment's language's.
        groups.push(Group {
            id: Arc::from(name),
            kind: GroupKind::Detector(det),
            topic: Some(first.topic),
            weight: first.weight,
            negatable: false,
            implies_purchase: false,
            with_purchase: None,
            window: 0,
            path: PathBuf::new(),
            line: 0,
        });
        detectors.groups[slot] = Some(g);
        match det {
            Detector::Phone => {}
            Detector::Url => detectors.url_re = Some(URL_RE.clone()),
            Detector::Mention => detectors.mention_re = Some(MENTION_RE.clone()),
        }
    }

    // Boolean rules reference groups by id, across packs.
    let by_id: HashMap<&str, u32> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (&*g.id, i as u32))
        .collect();
    let mut rules = Vec::new();
    for (file, g, r) in pending_rules {
        let mut ctx = Ctx {
            file,
            errors: &mut errors,
        };
        let id = r.id.get_ref();
        let mut resolve = |list: &[Spanned<String>]| -> Vec<u32> {
            let mut out = Vec::new();
            for name in list {
                match by_id.get(name.get_ref().as_str()) {
                    Some(&i) if matches!(groups[i as usize].kind, GroupKind::Rule | GroupKind::Allow) => {
                        ctx.err(
                            name.span().start,
                            Some(id),
                            format!(
                                "rule cannot refer to {:?}: it is a rule or an allow list",
                                name.get_ref()
                            ),
                        );
                    }
                    Some(&i) => out.push(i),
                    None => ctx.err(
                        name.span().start,
                        Some(id),
                        format!("unknown group {:?}", name.get_ref()),
                    ),
                }
            }
            out
        };
        let (all, any, none) = (resolve(&r.all), resolve(&r.any), resolve(&r.none));
        rules.push(BoolRule {
            group: g,
            all,
            any,
            none,
        });
    }

    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }

    let mut ungated = Vec::new();
    let mut compiled = Vec::with_capacity(regexes.len());
    for (i, (re, g, gates)) in regexes.into_iter().enumerate() {
        match gates {
            Some(lits) => terms.add_gates(i as u32, &lits),
            None => ungated.push(i as u32),
        }
        compiled.push((re, g));
    }

    let ac = if terms.texts.is_empty() {
        None
    } else {
        match AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&terms.texts)
        {
            Ok(ac) => Some(ac),
            Err(e) => {
                return Err(RuleErrors(vec![RuleError {
                    path: PathBuf::from("(all packs)"),
                    line: 0,
                    id: None,
                    message: format!("cannot build keyword automaton: {e}"),
                }]))
            }
        }
    };
    let mut pat_owner = Vec::new();
    let mut pat_gate = Vec::new();
    let mut patterns = Vec::with_capacity(terms.texts.len());
    for (i, owners) in terms.owners.iter().enumerate() {
        let start = pat_owner.len() as u32;
        pat_owner.extend_from_slice(owners);
        let gstart = pat_gate.len() as u32;
        pat_gate.extend_from_slice(&terms.gates[i]);
        patterns.push(PatternMeta {
            word_start: terms.bounds[i].0,
            word_end: terms.bounds[i].1,
            owners: (start, pat_owner.len() as u32),
            gates: (gstart, pat_gate.len() as u32),
        });
    }
    let group_features = groups.iter().map(|g| hash_str(&format!("g:{}", g.id))).collect();
    Ok(RuleSet {
        group_features,
        model_cfg,
        model: None,
        groups,
        ac,
        patterns,
        pat_owner,
        pat_gate,
        regexes: compiled,
        ungated,
        rules,
        detectors,
        scripts,
        examples,
        packs,
        term_count: terms.count,
    })
}

/// Compiled once; cloning a `Regex` is cheap.
static URL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(URL_PATTERN).expect("URL_PATTERN is a valid regex"));
static MENTION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(MENTION_PATTERN).expect("MENTION_PATTERN is a valid regex"));

/// URLs, `www.` hosts and bare domains with a common top-level domain, on the original text.
const URL_PATTERN: &str = r"(?i)(?:https?://|www\.)[^\s]+|\b[a-z0-9][a-z0-9-]{1,62}\.(?:com|net|org|shop|store|top|xyz|cn|me|ly|co|io|link|site|online|tk|cc|info|biz|club|vip)\b(?:/[^\s]*)?";
/// `@handle` mentions on the original text.
const MENTION_PATTERN: &str = r"@[\p{L}\p{N}_.]{2,30}";

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::rules::file::parse_str;

    /// Compiles one pack text named `t.toml`; returns the rendered errors.
    fn errors(text: &str) -> Vec<String> {
        let file = match parse_str(text.to_string(), Path::new("t.toml")) {
            Ok(f) => f,
            Err(e) => return vec![e.to_string()],
        };
        match compile(&[file]) {
            Ok(_) => Vec::new(),
            Err(RuleErrors(es)) => es.iter().map(ToString::to_string).collect(),
        }
    }

    const HEAD: &str = "[pack]\nid = \"p\"\nlang = \"zh\"\n";

    #[test]
    fn a_valid_pack_compiles() {
        let text = format!(
            "{HEAD}[[keywords]]\nid = \"k\"\nclass = \"complaint\"\ntopic = \"defect\"\nweight = 0.6\nterms = [\"裂\"]\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn each_error_names_file_line_and_rule() {
        let cases: &[(&str, &str, &str)] = &[
            ("toml syntax", "[[keywords]]\nid = \"k\nclass = 1\n", "t.toml:5:"),
            (
                "unknown field",
                "[[keywords]]\nid = \"k\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 0.5\nterms = [\"x\"]\ncolour = 1\n",
                "t.toml:10: unknown field `colour`",
            ),
            (
                "bad regex",
                "[[regex]]\nid = \"r\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\npattern = '(abc'\n",
                "t.toml:9: r: invalid regex",
            ),
            (
                "unknown class",
                "[[keywords]]\nid = \"k\"\nclass = \"angry\"\ntopic = \"insult\"\nweight = 0.5\nterms = [\"x\"]\n",
                "t.toml:6: k: unknown class \"angry\"",
            ),
            (
                "unknown topic",
                "[[keywords]]\nid = \"k\"\nclass = \"attack\"\ntopic = \"rude\"\nweight = 0.5\nterms = [\"x\"]\n",
                "t.toml:7: k: unknown topic \"rude\"",
            ),
            (
                "topic of another class",
                "[[keywords]]\nid = \"k\"\nclass = \"attack\"\ntopic = \"defect\"\nweight = 0.5\nterms = [\"x\"]\n",
                "t.toml:7: k: topic \"defect\" belongs to class complaint",
            ),
            (
                "empty keyword",
                "[[keywords]]\nid = \"k\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 0.5\nterms = [\"ok\", \"  \"]\n",
                "t.toml:9: k: empty keyword",
            ),
            (
                "weight out of range",
                "[[keywords]]\nid = \"k\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 1.5\nterms = [\"x\"]\n",
                "t.toml:8: k: weight 1.5 is outside 0..=1",
            ),
            (
                "unknown rule reference",
                "[[rule]]\nid = \"b\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\nall = [\"nope\"]\n",
                "t.toml:9: b: unknown group \"nope\"",
            ),
            (
                "unknown placeholder",
                "[[script]]\ntopic = \"defect\"\naction = \"invite_costream\"\ntext = \"hi {name}\"\n",
                "t.toml:7: unknown placeholder {name}",
            ),
            (
                "unknown role",
                "[[context]]\nid = \"c\"\nrole = \"maybe\"\nterms = [\"x\"]\n",
                "t.toml:6: c: unknown role \"maybe\"",
            ),
            (
                "regex matching everything",
                "[[regex]]\nid = \"r\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\npattern = 'a*'\n",
                "t.toml:9: r: regex matches the empty string",
            ),
        ];
        for (name, body, want) in cases {
            let errs = errors(&format!("{HEAD}{body}"));
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{name}: want {want:?} in {errs:#?}"
            );
        }
    }

    /// Groups compile kind by kind (keywords before terms), so a `[[terms]]` written first and
    /// a `[[keywords]]` repeating its id further down used to be reported the wrong way round.
    #[test]
    fn a_duplicate_id_is_reported_where_it_repeats() {
        let text = format!(
            "{HEAD}[[terms]]\nid = \"dup\"\nterms = [\"x\"]\n\
             [[keywords]]\nid = \"dup\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 0.5\nterms = [\"y\"]\n"
        );
        let errs = errors(&text);
        assert_eq!(errs, ["t.toml:8: dup: duplicate id (first defined at t.toml:5)"]);
    }

    #[test]
    fn duplicate_ids_across_files_name_the_first() {
        let a = parse_str(
            format!("{HEAD}[[terms]]\nid = \"dup\"\nterms = [\"x\"]\n"),
            Path::new("a.toml"),
        )
        .expect("a parses");
        let b = parse_str(
            "[pack]\nid = \"q\"\nlang = \"en\"\n[[terms]]\nid = \"dup\"\nterms = [\"y\"]\n".to_string(),
            Path::new("b.toml"),
        )
        .expect("b parses");
        let errs = match compile(&[a, b]) {
            Err(RuleErrors(es)) => es,
            Ok(_) => panic!("duplicate ids must not compile"),
        };
        assert_eq!(
            errs[0].to_string(),
            "b.toml:5: dup: duplicate id (first defined at a.toml:5)"
        );
    }

    #[test]
    fn one_bad_rule_does_not_hide_the_rest() {
        let body = "[[keywords]]\nid = \"a\"\nclass = \"bad\"\ntopic = \"insult\"\nweight = 0.5\nterms = [\"x\"]\n\
                    [[keywords]]\nid = \"b\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 2.0\nterms = [\"y\"]\n";
        assert_eq!(errors(&format!("{HEAD}{body}")).len(), 2);
    }

    #[test]
    fn ten_thousand_terms_build() {
        let terms: Vec<String> = (0..10_000).map(|i| format!("\"term{i}x\"")).collect();
        let text = format!(
            "{HEAD}[[keywords]]\nid = \"k\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\nterms = [{}]\n",
            terms.join(",")
        );
        let file = parse_str(text, Path::new("big.toml")).expect("parses");
        let set = compile(&[file]).expect("compiles");
        assert_eq!(set.term_count, 10_000);
    }

    #[test]
    fn regex_gates_are_required_literals() {
        let g = |p: &str| {
            required_literals(p).map(|mut v| {
                v.sort();
                v
            })
        };
        assert_eq!(
            g("(?:和|跟)(?:直播|视频).{0,6}不一样"),
            Some(vec!["不一样".to_string()]),
            "most selective piece"
        );
        assert_eq!(
            g(r"\p{Han}.*(?:sb|cnm)(?:[^a-z]|$)"),
            Some(vec!["cnm".to_string(), "sb".to_string()])
        );
        assert_eq!(
            g("(?:ab|cd)|ef"),
            Some(vec!["ab".to_string(), "cd".to_string(), "ef".to_string()])
        );
        assert_eq!(g("a.*|.*"), None, "a branch with no literal: run always");
        assert_eq!(g("x?y?"), None);
    }

    #[test]
    fn gated_regexes_still_fire() {
        let text = format!(
            "{HEAD}[[regex]]\nid = \"r\"\nclass = \"attack\"\ntopic = \"insult\"\nweight = 0.8\npattern = '\\p{{Han}}.*(?:sb|cnm)'\n"
        );
        let set = compile(&[parse_str(text, Path::new("t.toml")).expect("parses")]).expect("compiles");
        assert!(set.ungated.is_empty(), "the regex is gated on sb|cnm");
        let mut s = crate::classify::Scratch::new();
        let v = crate::classify::classify(
            &set,
            &mut s,
            crate::classify::Input {
                text: "主播 SB",
                ..Default::default()
            },
        );
        assert_eq!(v.topic, Some(Topic::Insult));
        let v = crate::classify::classify(
            &set,
            &mut s,
            crate::classify::Input {
                text: "主播好",
                ..Default::default()
            },
        );
        assert_eq!(v.topic, None);
    }

    #[test]
    fn rule_set_is_send_and_sync() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<RuleSet>();
    }
}
