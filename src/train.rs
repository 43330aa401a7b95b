//! Training the model (`liveguard train`): labelled comments → the same features classify
//! sees (text n-grams, rule groups, the rules' verdict) → a multinomial logistic regression
//! fitted with AdaGrad, single-threaded and seeded, so the same files give the same bytes.
//! Cross-validation scores the whole decision (rules, then the model's second opinion), next
//! to the rules alone and the model alone.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::classify::{self, combine, Input, Opinion, Scratch};
use crate::model::{class_index, softmax, Model, ModelInfo, Probs, TOPICS};
use crate::rules::{ModelCfg, RuleSet};
use crate::taxonomy::{Class, Lang, Topic};

/// One labelled comment.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The comment.
    pub text: String,
    /// Its class.
    pub label: Class,
    /// Its topic (complaints and attacks), when known.
    pub topic: Option<Topic>,
    /// How much it counts (floor feedback counts more).
    pub weight: f32,
    /// Index of the file (or feedback database) it came from.
    pub origin: usize,
}

/// One JSONL training line: `{"text","label","topic"?,"lang"?,"weight"?}`; other keys are
/// ignored (ids, sources, the verdict a feedback line corrected).
#[derive(Debug, Deserialize)]
pub struct Line {
    /// The comment.
    pub text: String,
    /// complaint, attack or neutral (also accepts genuine/malicious/ok).
    pub label: String,
    /// Topic of a complaint or attack.
    #[serde(default)]
    pub topic: Option<String>,
    /// Weight (default 1).
    #[serde(default)]
    pub weight: Option<f32>,
}

impl Line {
    /// Checks the line: a known label and, when given, a topic of that label's class.
    pub fn into_labelled(self, origin: usize) -> Result<Labelled, String> {
        let label = match self.label.as_str() {
            "genuine" => Some(Class::Complaint),
            "malicious" => Some(Class::Attack),
            "ok" => Some(Class::Neutral),
            other => Class::parse(other),
        }
        .ok_or_else(|| format!("label {:?} is not complaint, attack or neutral", self.label))?;
        let topic = match self.topic.as_deref() {
            None | Some("") => None,
            Some(t) => {
                let topic = Topic::parse(t).ok_or_else(|| format!("unknown topic {t:?}"))?;
                if topic.class() != label {
                    return Err(format!("topic {t:?} is not a {} topic", label.as_str()));
                }
                Some(topic)
            }
        };
        let weight = self.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0 && weight <= 100.0) {
            return Err(format!("weight {weight} is not in (0, 100]"));
        }
        if self.text.trim().is_empty() {
            return Err("empty text".into());
        }
        Ok(Labelled {
            text: self.text,
            label,
            topic,
            weight,
            origin,
        })
    }
}

/// Training settings. The defaults build the shipped model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Options {
    /// Class table size, in bits of the row index.
    pub bits: u32,
    /// Topic table size, in bits.
    pub topic_bits: u32,
    /// Passes over the data.
    pub epochs: u32,
    /// Shuffling and fold seed.
    pub seed: u64,
    /// AdaGrad step.
    pub rate: f32,
    /// L2 penalty per update.
    pub l2: f32,
    /// Cross-validation folds (0 or 1: none).
    pub folds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bits: 18,
            topic_bits: 16,
            epochs: 8,
            seed: 20261201,
            rate: 0.1,
            l2: 1e-6,
            folds: 5,
        }
    }
}

/// A comment as the trainer sees it.
#[derive(Debug, Clone)]
struct Prepared {
    hashes: Vec<u64>,
    label: usize,
    topic: Option<usize>,
    weight: f32,
    lang: Lang,
    /// The rules' verdict: class and score.
    rules: (Class, f32),
    /// Tokens in the text (the model raises nothing on one).
    tokens: usize,
}

/// Removes repeats (same normalized text): the first one stays, so floor feedback listed first
/// wins over older data. Returns the items kept and how many conflicting labels were dropped.
pub fn dedupe(items: Vec<Labelled>) -> (Vec<Labelled>, usize) {
    let mut scratch = Scratch::new();
    let mut seen: std::collections::HashMap<String, Class> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    let mut conflicts = 0;
    for it in items {
        classify::normalize_only(&mut scratch, &it.text);
        let key = scratch.norm.text.clone();
        match seen.get(&key) {
            Some(c) => conflicts += usize::from(*c != it.label),
            None => {
                seen.insert(key, it.label);
                out.push(it);
            }
        }
    }
    (out, conflicts)
}

/// A rule group is known to the model once it fired on this many training items.
const KNOWN_GROUP_MIN: usize = 3;

/// The group features that fired on at least [`KNOWN_GROUP_MIN`] of `data`, sorted.
fn known_groups(rules: &RuleSet, data: &[Prepared], idx: &[usize]) -> Vec<u64> {
    let mut counts: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let groups: HashSet<u64> = rules.group_features.iter().copied().collect();
    for &i in idx {
        for h in data[i].hashes.iter().filter(|h| groups.contains(h)) {
            *counts.entry(*h).or_default() += 1;
        }
    }
    let mut out: Vec<u64> = counts
        .into_iter()
        .filter(|&(_, n)| n >= KNOWN_GROUP_MIN)
        .map(|(h, _)| h)
        .collect();
    out.sort_unstable();
    out
}

fn prepare(rules: &RuleSet, items: &[Labelled]) -> Vec<Prepared> {
    let mut scratch = Scratch::new();
    items
        .iter()
        .map(|it| {
            let input = Input {
                text: &it.text,
                ..Input::default()
            };
            let v = classify::classify_with(rules, None, &mut scratch, input);
            classify::model_features(rules, &mut scratch, &v);
            let mut hashes = scratch.feats.hashes.clone();
            hashes.sort_unstable();
            hashes.dedup();
            Prepared {
                hashes,
                label: class_index(it.label),
                topic: it.topic.map(|t| t as usize),
                weight: it.weight,
                lang: v.lang,
                rules: (v.class, v.score),
                tokens: scratch.feats.tokens,
            }
        })
        .collect()
}

/// xorshift64*: a tiny seeded generator, so training needs no extra crate and is the same on
/// every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Fits a model on `data[idx]`.
fn fit(data: &[Prepared], idx: &[usize], opts: &Options, info: ModelInfo) -> Model {
    let rows = 1usize << opts.bits;
    let trows = 1usize << opts.topic_bits;
    let row = |h: u64| (h >> (64 - opts.bits)) as usize;
    let trow = |h: u64| (h >> (64 - opts.topic_bits)) as usize;
    let mut w = vec![[0f32; 3]; rows];
    let mut g = vec![[0f32; 3]; rows];
    let mut bias = [0f32; 3];
    let mut gbias = [0f32; 3];
    let mut tw = vec![0f32; trows * TOPICS];
    let mut tg = vec![0f32; trows * TOPICS];
    let mut tbias = [0f32; TOPICS];
    let mut tgbias = [0f32; TOPICS];
    // Balanced classes: each class weighs the same in total, whatever its share of the data.
    let mut per_class = [0f32; 3];
    for &i in idx {
        per_class[data[i].label] += data[i].weight;
    }
    let total: f32 = per_class.iter().sum();
    let class_weight = per_class.map(|n| if n > 0.0 { total / (3.0 * n) } else { 0.0 });
    let topic_mask: Vec<[bool; TOPICS]> = [Class::Complaint, Class::Attack, Class::Neutral]
        .iter()
        .map(|&c| std::array::from_fn(|t| Topic::ALL[t].class() == c))
        .collect();

    let mut order = idx.to_vec();
    let mut rng = Rng(opts.seed | 1);
    const EPS: f32 = 1e-6;
    for _ in 0..opts.epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let d = &data[i];
            // AdaGrad normalises each feature's steps, so scaling a gradient by an item's
            // weight would change nothing for features only that item has (a new slang word
            // the floor reported): a weight of w is w updates instead.
            let reps = d.weight.floor().max(1.0);
            for _ in 0..reps as u32 {
                let mut z = bias;
                for &h in &d.hashes {
                    let r = &w[row(h)];
                    for c in 0..3 {
                        z[c] += r[c];
                    }
                }
                softmax(&mut z);
                let scale = d.weight / reps * class_weight[d.label];
                let grad: [f32; 3] = std::array::from_fn(|c| (z[c] - f32::from(c == d.label)) * scale);
                for &h in &d.hashes {
                    let r = row(h);
                    for c in 0..3 {
                        let gr = grad[c] + opts.l2 * w[r][c];
                        g[r][c] += gr * gr;
                        w[r][c] -= opts.rate * gr / (g[r][c] + EPS).sqrt();
                    }
                }
                for c in 0..3 {
                    gbias[c] += grad[c] * grad[c];
                    bias[c] -= opts.rate * grad[c] / (gbias[c] + EPS).sqrt();
                }
                let Some(topic) = d.topic else { continue };
                let mask = &topic_mask[d.label];
                let mut tz = tbias;
                for &h in &d.hashes {
                    let base = trow(h) * TOPICS;
                    for t in 0..TOPICS {
                        tz[t] += tw[base + t];
                    }
                }
                // Softmax over the class's own topics only: that is how classify asks.
                let max = (0..TOPICS)
                    .filter(|&t| mask[t])
                    .map(|t| tz[t])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for t in 0..TOPICS {
                    tz[t] = if mask[t] { (tz[t] - max).exp() } else { 0.0 };
                    sum += tz[t];
                }
                let tgrad: [f32; TOPICS] =
                    std::array::from_fn(|t| (tz[t] / sum - f32::from(t == topic)) * d.weight / reps);
                for &h in &d.hashes {
                    let base = trow(h) * TOPICS;
                    for t in (0..TOPICS).filter(|&t| mask[t]) {
                        let gr = tgrad[t] + opts.l2 * tw[base + t];
                        tg[base + t] += gr * gr;
                        tw[base + t] -= opts.rate * gr / (tg[base + t] + EPS).sqrt();
                    }
                }
                for t in (0..TOPICS).filter(|&t| mask[t]) {
                    tgbias[t] += tgrad[t] * tgrad[t];
                    tbias[t] -= opts.rate * tgrad[t] / (tgbias[t] + EPS).sqrt();
                }
            }
        }
    }
    Model::from_floats(opts.bits, opts.topic_bits, &w, bias, &tw, tbias, info)
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Prf {
    /// Precision.
    pub p: f32,
    /// Recall.
    pub r: f32,
    /// F1.
    pub f1: f32,
    /// Gold items of the class.
    pub support: usize,
}

/// Scores of one system on one slice of the data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    /// complaint, attack, neutral.
    pub classes: [Prf; 3],
    /// Mean F1 of the three classes.
    pub macro_f1: f32,
    /// Items.
    pub n: usize,
}

fn scores(pairs: impl Iterator<Item = (Class, Class)>) -> Scores {
    let mut m = [[0usize; 3]; 3];
    let mut n = 0;
    for (gold, pred) in pairs {
        m[class_index(gold)][class_index(pred)] += 1;
        n += 1;
    }
    let mut classes = [Prf::default(); 3];
    for (c, prf) in classes.iter_mut().enumerate() {
        let tp = m[c][c] as f32;
        let predicted: usize = (0..3).map(|g| m[g][c]).sum();
        let support: usize = m[c].iter().sum();
        let p = if predicted > 0 { tp / predicted as f32 } else { 0.0 };
        let r = if support > 0 { tp / support as f32 } else { 0.0 };
        let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
        *prf = Prf { p, r, f1, support };
    }
    let present: Vec<f32> = classes.iter().filter(|c| c.support > 0).map(|c| c.f1).collect();
    let macro_f1 = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f32>() / present.len() as f32
    };
    Scores { classes, macro_f1, n }
}

/// An out-of-fold prediction: what each system said of an item the model never saw.
#[derive(Debug, Clone, Copy)]
pub struct Oof {
    /// Gold class.
    pub gold: Class,
    /// Language.
    pub lang: Lang,
    /// Where the item came from.
    pub origin: usize,
    /// The rules' class and score.
    pub rules: (Class, f32),
    /// The model's probabilities.
    pub probs: Probs,
    /// Tokens in the text.
    pub tokens: usize,
}

impl Oof {
    /// The combined decision under thresholds `cfg`.
    pub fn decided(&self, cfg: &ModelCfg) -> Class {
        match combine(self.rules.0, self.rules.1, &self.probs, self.tokens, cfg) {
            Opinion::Keep(_) => self.rules.0,
            Opinion::Raise(c, _) => c,
            Opinion::Drop => Class::Neutral,
        }
    }
}

/// Cross-validated figures.
#[derive(Debug, Clone, Default)]
pub struct CrossValidation {
    /// Every item's out-of-fold predictions.
    pub oof: Vec<Oof>,
}

impl CrossValidation {
    /// Scores of one system over the items `keep` selects.
    pub fn score(&self, keep: impl Fn(&Oof) -> bool, system: impl Fn(&Oof) -> Class) -> Scores {
        scores(self.oof.iter().filter(|o| keep(o)).map(|o| (o.gold, system(o))))
    }
}

/// What training produced.
#[derive(Debug)]
pub struct Trained {
    /// The model fitted on every item.
    pub model: Model,
    /// Cross-validation, when folds > 1.
    pub cv: Option<CrossValidation>,
    /// Items after de-duplication.
    pub items: usize,
}

/// Trains on `items` (already de-duplicated), cross-validating first when `opts.folds > 1`.
/// `files` names each origin for the model's provenance.
pub fn train(rules: &RuleSet, items: &[Labelled], files: &[(String, usize)], opts: &Options) -> Trained {
    let data = prepare(rules, items);
    let all: Vec<usize> = (0..data.len()).collect();
    let info = ModelInfo {
        items: items.len(),
        seed: opts.seed,
        epochs: opts.epochs,
        data: files.to_vec(),
        known_groups: known_groups(rules, &data, &all),
    };
    let cv = (opts.folds > 1).then(|| {
        let mut order: Vec<usize> = (0..data.len()).collect();
        Rng(opts.seed.rotate_left(17) | 1).shuffle(&mut order);
        let mut fold_of = vec![0usize; data.len()];
        for (k, &i) in order.iter().enumerate() {
            fold_of[i] = k % opts.folds;
        }
        let mut oof: Vec<Option<Oof>> = vec![None; data.len()];
        for fold in 0..opts.folds {
            let train_idx: Vec<usize> = (0..data.len()).filter(|&i| fold_of[i] != fold).collect();
            let model = fit(&data, &train_idx, opts, ModelInfo::default());
            let mut f = crate::model::Features::default();
            for i in (0..data.len()).filter(|&i| fold_of[i] == fold) {
                f.hashes.clone_from(&data[i].hashes);
                oof[i] = Some(Oof {
                    gold: items[i].label,
                    lang: data[i].lang,
                    origin: items[i].origin,
                    rules: data[i].rules,
                    probs: model.probs(&f),
                    tokens: data[i].tokens,
                });
            }
        }
        CrossValidation {
            oof: oof.into_iter().flatten().collect(),
        }
    });
    Trained {
        model: fit(&data, &all, opts, info),
        cv,
        items: items.len(),
    }
}

/// Languages of items, for reports.
pub fn langs(cv: &CrossValidation) -> Vec<Lang> {
    let set: HashSet<&str> = cv.oof.iter().map(|o| o.lang.as_str()).collect();
    [Lang::Zh, Lang::En]
        .into_iter()
        .filter(|l| set.contains(l.as_str()))
        .collect()
}
