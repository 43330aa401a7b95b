//! The fuzz targets' bodies, shared by the coverage-guided fuzzers in `fuzz/` (cargo-fuzz,
//! nightly) and the stable test that replays their kept corpus (`tests/fuzz_corpus.rs`):
//! each takes arbitrary bytes and panics only when an invariant breaks.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::LazyLock;

use crate::classify::{classify, Input, Scratch};
use crate::ingest::{parse_frame, Event, Format};
use crate::normalize::Normalizer;
use crate::rules::{RuleFile, RuleSet, RuleSource};

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

fn frames(format: Format, data: &[u8]) {
    let frame = text(data);
    match parse_frame(format, &frame, "fuzz-room") {
        Ok(events) => {
            for e in events {
                if let Event::Comment(c) = e {
                    assert!(
                        !c.msg_id.trim().is_empty()
                            && !c.room.trim().is_empty()
                            && !c.user.id.trim().is_empty()
                    );
                }
            }
        }
        Err(e) => assert!(!e.reason().is_empty()),
    }
}

/// `liveguard.comment.v1` frames: never a panic; comments always carry their ids.
pub fn canonical(data: &[u8]) {
    frames(Format::Canonical, data);
}

/// TikTok relay frames: the same.
pub fn tiktok(data: &[u8]) {
    frames(Format::Tiktok, data);
}

static SHIPPED: LazyLock<Option<RuleSet>> = LazyLock::new(|| crate::rules::load(&RuleSource::BuiltIn).ok());

/// The normalizer and the classifier: every span maps back onto char boundaries of the
/// original text, and every piece of evidence is exactly the original text it names.
pub fn normalize(data: &[u8]) {
    let s = text(data);
    let out = Normalizer::new().normalize(&s);
    for (i, c) in out.text.char_indices() {
        let (a, b) = out.original_span(i, i + c.len_utf8());
        assert!(a <= b && b <= s.len(), "span {a}..{b} outside {}", s.len());
        assert!(
            s.is_char_boundary(a) && s.is_char_boundary(b),
            "span {a}..{b} inside a character"
        );
    }
    if let Some(rules) = SHIPPED.as_ref() {
        let v = classify(
            rules,
            &mut Scratch::new(),
            Input {
                text: &s,
                ..Input::default()
            },
        );
        for e in &v.evidence {
            assert_eq!(
                s.get(e.start..e.end),
                Some(e.text.as_str()),
                "evidence {}..{}",
                e.start,
                e.end
            );
        }
    }
}

/// The rule-file loader: any bytes as a pack give a rule set or `file:line` errors whose
/// lines are in the file, never a panic.
pub fn rule_file(data: &[u8]) {
    let file = RuleFile {
        path: PathBuf::from("fuzz.toml"),
        rel: "fuzz.toml".into(),
        bytes: Cow::Owned(data.to_vec()),
    };
    let lines = text(data).lines().count() + 1;
    if let Err(errs) = crate::rules::load_files(&[file], &RuleSource::BuiltIn) {
        for e in &errs.0 {
            assert!(e.line <= lines, "line {} of a {lines}-line file", e.line);
        }
    }
}
