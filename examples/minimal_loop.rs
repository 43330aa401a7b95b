//! The floor for `liveguard classify`'s wall time (BENCHMARKS.md): read JSON lines from
//! stdin, parse each with serde_json, normalize its text, run one Aho-Corasick automaton over
//! every keyword term of the packs in `rules/`, write one small JSON line. Nothing else.
//!
//! `cargo run --release --example minimal_loop < comments.jsonl > /dev/null`

use std::io::{BufRead, Write};

use aho_corasick::AhoCorasick;
use liveguard::normalize::{Normalized, Normalizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    liveguard::normalize::warm_up();
    let mut terms = Vec::new();
    let mut normalizer = Normalizer::default();
    let mut norm = Normalized::default();
    let files = liveguard::rules::RuleSource::Dir("rules".into())
        .files()
        .map_err(|e| e.to_string())?;
    for f in files {
        if !f.has_ext("toml") {
            continue;
        }
        let pack = liveguard::rules::file::parse_str(String::from_utf8(f.bytes.to_vec())?, &f.path)
            .map_err(|e| e.to_string())?;
        for k in &pack.pack.keywords {
            for t in &k.terms {
                normalizer.normalize_into(t.get_ref(), &mut norm);
                terms.push(norm.text.clone());
            }
        }
    }
    let ac = AhoCorasick::new(&terms)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let text = v["text"].as_str().unwrap_or_default();
        normalizer.normalize_into(text, &mut norm);
        let hits = ac.find_overlapping_iter(&norm.text).count();
        serde_json::to_writer(&mut out, &serde_json::json!({"id": v["id"], "hits": hits}))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
