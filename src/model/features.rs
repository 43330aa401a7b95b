//! What the model sees of a comment: hashed features of the normalized text, each with the span
//! it came from (so the n-grams that pushed a verdict can be shown in the original text), plus
//! tags added by the caller (rule groups that fired, the rules' verdict, language, length).
//!
//! The text becomes a stream of tokens: every Han (or other unsegmented) character is a token,
//! a Latin word is one token, a digit run is a token naming only its length class. Unigrams and
//! bigrams of that stream are Chinese character n-grams and English word n-grams at once.
//! (Token trigrams and character trigrams inside Latin words were tried: slower, and worse in
//! cross-validation — they let the model memorise the written training items.)

use crate::normalize::Normalized;

/// Bumped whenever extraction changes: a model trained on other features is refused at load.
pub const VERSION: u32 = 4;

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;

/// What kind of feature an entry is (for `rules explain` and evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// One token.
    Uni = 1,
    /// Two adjacent tokens.
    Bi = 2,
    /// A first or last token (its span is that token).
    Edge = 5,
    /// A tag without a span: a rule group, the rules' verdict, language, length.
    Tag = 6,
}

/// The features of one comment. Reused per worker; clearing keeps the buffers.
#[derive(Debug, Default, Clone)]
pub struct Features {
    /// Full 64-bit hashes; the model masks them to its table sizes.
    pub hashes: Vec<u64>,
    /// Span in the normalized text (`start == end` for tags).
    pub spans: Vec<(u32, u32)>,
    /// Kind of each feature.
    pub kinds: Vec<Kind>,
    /// Tokens in the text (a Han character, a Latin word, a digit run).
    pub tokens: usize,
    /// Keep spans and kinds too (evidence, explain); the hot path keeps hashes only.
    pub detail: bool,
    /// Names of the tags, in order, when explaining (`None` on the hot path).
    pub tag_names: Option<Vec<String>>,
}

impl Features {
    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.hashes.clear();
        self.spans.clear();
        self.kinds.clear();
        self.tokens = 0;
        if let Some(names) = &mut self.tag_names {
            names.clear();
        }
    }

    /// Adds a feature.
    #[inline]
    pub fn push(&mut self, hash: u64, kind: Kind, span: (u32, u32)) {
        self.hashes.push(hash);
        if self.detail {
            self.spans.push(span);
            self.kinds.push(kind);
        }
    }

    /// Adds a tag (a feature with no span); `name` is called only when explaining.
    #[inline]
    pub fn tag(&mut self, hash: u64, name: impl FnOnce() -> String) {
        self.push(hash, Kind::Tag, (0, 0));
        if let Some(names) = &mut self.tag_names {
            names.push(name());
        }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// No features.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Mixes `x` into `h`. The model takes the top bits, which the multiply spreads well.
#[inline]
pub fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(26) ^ x).wrapping_mul(K1)
}

/// Final avalanche, for hashes of whole strings (tags).
#[inline]
pub fn finish(h: u64) -> u64 {
    let h = (h ^ (h >> 31)).wrapping_mul(K2);
    h ^ (h >> 29)
}

/// Hash of a string (tags: `g:zh-purchase`, `lang:zh`).
pub fn hash_str(s: &str) -> u64 {
    let mut h = 0x51_7CC1_B727_220A;
    for chunk in s.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(b));
    }
    finish(mix(h, s.len() as u64))
}

/// Token kinds are kept apart by seeds, so a word and a Han character never share a hash.
const SEED_UNI: u64 = 0x1001;
const SEED_BI: u64 = 0x2002;
const SEED_FIRST: u64 = 0x5005;
const SEED_LAST: u64 = 0x6006;
const SEED_WORD: u64 = 0x7007;

/// A Latin (or other space-separated script) letter or digit: part of a word token.
#[inline]
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || (c.is_alphabetic() && (c as u32) < 0x0E00)
}

/// Appends the text features of `norm` to `out`.
pub fn text_features(norm: &Normalized, out: &mut Features) {
    let text = norm.text.as_str();
    // The previous token: (hash, start).
    let mut prev: Option<(u64, u32)> = None;
    let mut last: Option<(u64, u32, u32)> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let (tok, end) = if is_word_char(c) {
            let mut end = start + c.len_utf8();
            let mut all_digits = c.is_ascii_digit();
            let mut h = mix(SEED_WORD, c as u64);
            while let Some(&(k, d)) = chars.peek() {
                if !is_word_char(d) {
                    break;
                }
                all_digits &= d.is_ascii_digit();
                h = mix(h, d as u64);
                end = k + d.len_utf8();
                chars.next();
            }
            // Digits say only how many: a price, a day count, a handle.
            let tok = if all_digits {
                mix(0xD161, digit_class(end - start))
            } else {
                h
            };
            (tok, end)
        } else if c.is_whitespace() {
            continue;
        } else {
            (c as u64, start + c.len_utf8())
        };
        let (s, e) = (start as u32, end as u32);
        out.tokens += 1;
        out.push(mix(SEED_UNI, tok), Kind::Uni, (s, e));
        match prev {
            Some((p, ps)) => out.push(mix(mix(SEED_BI, p), tok), Kind::Bi, (ps, e)),
            None => out.push(mix(SEED_FIRST, tok), Kind::Edge, (s, e)),
        }
        prev = Some((tok, s));
        last = Some((tok, s, e));
    }
    if let Some((tok, s, e)) = last {
        out.push(mix(SEED_LAST, tok), Kind::Edge, (s, e));
    }
}

fn digit_class(len: usize) -> u64 {
    match len {
        0..=2 => 2,
        3..=4 => 4,
        5..=6 => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Normalizer;

    fn feats(text: &str) -> (Normalized, Features) {
        let mut n = Normalized::default();
        Normalizer::default().normalize_into(text, &mut n);
        let mut f = Features {
            detail: true,
            ..Features::default()
        };
        text_features(&n, &mut f);
        (n, f)
    }

    #[test]
    fn han_chars_and_latin_words_are_tokens() {
        let (n, f) = feats("戒指断了");
        let unis = f.kinds.iter().filter(|k| **k == Kind::Uni).count();
        assert_eq!(unis, 4, "{}", n.text);
        assert_eq!(f.kinds.iter().filter(|k| **k == Kind::Bi).count(), 3);
        let (_, f) = feats("the ring broke");
        assert_eq!(f.kinds.iter().filter(|k| **k == Kind::Uni).count(), 3);
        assert_eq!(f.kinds.iter().filter(|k| **k == Kind::Bi).count(), 2);
    }

    #[test]
    fn same_text_same_hashes_and_spans_stay_in_the_text() {
        let (n, a) = feats("My ORDER said 3 days, it's day 12 — where is it?? 加V信");
        let (_, b) = feats("My ORDER said 3 days, it's day 12 — where is it?? 加V信");
        assert_eq!(a.hashes, b.hashes);
        for &(s, e) in &a.spans {
            assert!(s <= e && e as usize <= n.text.len());
            assert!(n.text.is_char_boundary(s as usize) && n.text.is_char_boundary(e as usize));
        }
    }

    #[test]
    fn digit_runs_keep_only_their_length() {
        let (_, a) = feats("day 12");
        let (_, b) = feats("day 47");
        assert_eq!(a.hashes, b.hashes);
        let (_, c) = feats("day 13800138000");
        assert_ne!(a.hashes, c.hashes);
    }
}
