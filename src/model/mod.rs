//! Stage 3½, the learned second opinion: a linear model over hashed features of a comment
//! ([`features`]) giving P(complaint), P(attack), P(neutral), and a topic head. It loads from a
//! small versioned file ([`file`]) that ships in `rules/` and swaps with the rule packs; it is
//! trained by `liveguard train` ([`crate::train`]). The rules stay the source of evidence, topic and
//! script: `classify` asks the model only where the rules are silent or weak.
//!
//! # Resource usage
//! One table of `2^bits` rows of three one-byte weights and one of `2^topic_bits` rows of one
//! byte per topic (1 MiB and 0.8 MiB at the shipped sizes, as in the file); scoring a comment
//! is one 4-byte row read and three integer adds per feature.
//!
//! # Why a model of our own
//! fastText through a Rust binding (`fasttext` crate) needs a C++ build and its models run to
//! hundreds of MB unless quantised with its own tool; linfa has no hashed sparse features.
//! What we need is small: hashed n-grams, a softmax over three classes, deterministic training
//! and a file we can check byte for byte, in a few hundred lines.

pub mod features;
pub mod file;

use serde::Serialize;

use crate::taxonomy::{Class, Topic};
pub use features::Features;

/// Number of topics the topic head scores.
pub const TOPICS: usize = Topic::ALL.len();
/// Class order in the class head.
pub const CLASSES: [Class; 3] = [Class::Complaint, Class::Attack, Class::Neutral];

/// A trained model, ready to score.
#[derive(Debug, Clone)]
pub struct Model {
    bits: u32,
    topic_bits: u32,
    /// `2^bits` rows: complaint, attack, neutral weights as stored (one byte each; the fourth
    /// lane pads a row to 4 bytes). Kept quantised: a 1 MiB table stays in cache where floats
    /// (4 MiB) missed it on every feature.
    pub(crate) class_w: Vec<[i8; 4]>,
    /// Multiplies a sum of `class_w` entries into a logit.
    pub(crate) class_scale: f32,
    pub(crate) class_bias: [f32; 3],
    /// `2^topic_bits` rows of [`TOPICS`] weights, flattened, quantised.
    pub(crate) topic_w: Vec<i8>,
    /// Multiplies a sum of `topic_w` entries into a logit.
    pub(crate) topic_scale: f32,
    pub(crate) topic_bias: [f32; TOPICS],
    /// What the file says about itself.
    pub info: ModelInfo,
}

/// Provenance of a model, from its file header.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ModelInfo {
    /// Training items, after de-duplication.
    pub items: usize,
    /// Shuffling seed.
    pub seed: u64,
    /// Passes over the data.
    pub epochs: u32,
    /// Each training file with how many items it gave.
    pub data: Vec<(String, usize)>,
    /// Rule-group features (`g:<id>` hashes) the model saw fire in training, sorted: it may
    /// overrule only rules it knows (a rule ops add after training is left alone).
    pub known_groups: Vec<u64>,
}

/// P(complaint), P(attack), P(neutral).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Probs {
    /// P(complaint).
    pub complaint: f32,
    /// P(attack).
    pub attack: f32,
    /// P(neutral).
    pub neutral: f32,
}

impl Probs {
    /// The probability of `class`.
    pub fn of(&self, class: Class) -> f32 {
        match class {
            Class::Complaint => self.complaint,
            Class::Attack => self.attack,
            Class::Neutral => self.neutral,
        }
    }

    /// The most probable class.
    pub fn best(&self) -> Class {
        if self.complaint >= self.attack && self.complaint >= self.neutral {
            Class::Complaint
        } else if self.attack >= self.neutral {
            Class::Attack
        } else {
            Class::Neutral
        }
    }
}

/// Index of `c` in the class head ([`CLASSES`] order).
pub(crate) fn class_index(c: Class) -> usize {
    match c {
        Class::Complaint => 0,
        Class::Attack => 1,
        Class::Neutral => 2,
    }
}

/// Softmax in place.
pub(crate) fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        for x in v.iter_mut() {
            *x /= sum;
        }
    }
}

impl Model {
    /// Row of the class table for a feature hash.
    #[inline]
    fn row(&self, h: u64) -> usize {
        (h >> (64 - self.bits)) as usize
    }

    #[inline]
    fn topic_row(&self, h: u64) -> usize {
        (h >> (64 - self.topic_bits)) as usize
    }

    /// Class probabilities for a comment's features.
    pub fn probs(&self, f: &Features) -> Probs {
        let mut acc = [0i32; 4];
        for &h in &f.hashes {
            // In bounds: the row index has `bits` bits and the table has 2^bits rows.
            if let Some(w) = self.class_w.get(self.row(h)) {
                for k in 0..4 {
                    acc[k] += i32::from(w[k]);
                }
            }
        }
        let s = self.class_scale;
        let b = self.class_bias;
        let mut p = [
            b[0] + acc[0] as f32 * s,
            b[1] + acc[1] as f32 * s,
            b[2] + acc[2] as f32 * s,
        ];
        softmax(&mut p);
        Probs {
            complaint: p[0],
            attack: p[1],
            neutral: p[2],
        }
    }

    /// The most probable topic of `class` (complaint or attack), with its probability among
    /// that class's topics.
    pub fn topic(&self, f: &Features, class: Class) -> Option<(Topic, f32)> {
        let mut sums = [0i32; TOPICS];
        for &h in &f.hashes {
            let r = self.topic_row(h) * TOPICS;
            if let Some(w) = self.topic_w.get(r..r + TOPICS) {
                for (a, &x) in sums.iter_mut().zip(w) {
                    *a += i32::from(x);
                }
            }
        }
        let mut acc = self.topic_bias;
        for (a, &x) in acc.iter_mut().zip(&sums) {
            *a += x as f32 * self.topic_scale;
        }
        let mut best: Option<(Topic, f32)> = None;
        let mut sum = 0.0;
        let max = Topic::ALL
            .iter()
            .filter(|t| t.class() == class)
            .map(|t| acc[*t as usize])
            .fold(f32::NEG_INFINITY, f32::max);
        for &t in Topic::ALL.iter().filter(|t| t.class() == class) {
            let e = (acc[t as usize] - max).exp();
            sum += e;
            if best.is_none_or(|(_, b)| e > b) {
                best = Some((t, e));
            }
        }
        best.map(|(t, e)| (t, if sum > 0.0 { e / sum } else { 0.0 }))
    }

    /// How much feature `i` of `f` pushed towards `class` rather than neutral.
    pub fn push_towards(&self, f: &Features, i: usize, class: Class) -> f32 {
        let Some(w) = f.hashes.get(i).and_then(|&h| self.class_w.get(self.row(h))) else {
            return 0.0;
        };
        f32::from(i16::from(w[class_index(class)]) - i16::from(w[class_index(Class::Neutral)]))
            * self.class_scale
    }

    /// Whether the model saw the rule group with feature hash `h` fire in training.
    pub fn knows_group(&self, h: u64) -> bool {
        self.info.known_groups.binary_search(&h).is_ok()
    }

    /// Class-table size in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_and_sync() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Model>();
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut v = [1.0, 2.0, -3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(v[1] > v[0] && v[0] > v[2]);
    }
}
