//! Invariants over arbitrary input: nothing panics, every span is valid in the original text.

use liveguard::classify::{classify, Input, Scratch};
use liveguard::normalize::Normalizer;
use proptest::prelude::*;

use crate::util::fixture;

/// Live-chat-like strings: Han, Latin, digits, separators, emoji, full width, zero width.
fn chat() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "[骗子裂了买收到假货垃圾加我一三八a-zA-Z0-9 .*@$！？?😀\u{200b}ＶＸ①騙]{0,40}",
    )
    .expect("valid strategy")
}

proptest! {
    #[test]
    fn normalizer_spans_are_valid(s in any::<String>()) {
        let mut n = Normalizer::new();
        let out = n.normalize(&s);
        for (i, _) in out.text.char_indices() {
            let (a, b) = out.original_span(i, i + 1);
            prop_assert!(a <= b && b <= s.len());
            prop_assert!(s.is_char_boundary(a) && s.is_char_boundary(b));
        }
    }

    #[test]
    fn classify_evidence_is_valid(s in chat()) {
        let rules = fixture();
        let v = classify(&rules, &mut Scratch::new(), Input { text: &s, ..Input::default() });
        prop_assert!((0.0..=1.0).contains(&v.score));
        for e in &v.evidence {
            prop_assert_eq!(s.get(e.start..e.end), Some(e.text.as_str()));
        }
    }

    #[test]
    fn keywords_and_comments_normalize_alike(s in chat()) {
        // A word normalized alone equals itself normalized inside a comment.
        let mut n = Normalizer::new();
        let alone = n.normalize(&s).text;
        let inside = n.normalize(&format!("主播{s}主播")).text;
        prop_assert!(alone.is_empty() || inside.contains(alone.trim()));
    }
}
