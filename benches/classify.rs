//! Classifier speed on realistic short live comments (the simulator's mix: zh/en, with
//! evasions), using the
//! shipped packs and model in `rules/`: normalize alone, match alone, full classify (with
//! the model, and the rules alone), ingest's parse of the same as canonical frames, and a
//! 10,000-term rule build. Figures go to BENCHMARKS.md.

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use liveguard::classify::{classify, match_normalized, model_features, normalize_only, Input, Scratch};
use liveguard::ingest::Format;
use liveguard::rules::{self, file::parse_str};
use liveguard::simulate::{Generator, SimConfig};

/// The simulator's deterministic live-room mix (~88% chatter and questions, complaints of
/// every topic, attacks with evasions and diversion handles, the odd brigade), zh and en.
fn corpus(n: usize) -> Vec<String> {
    let mut g = generator();
    (0..n).map(|_| g.next_comment().text).collect()
}

/// The simulator behind [`corpus`], from its start.
fn generator() -> Generator {
    Generator::new(SimConfig {
        rate: 1,
        rooms: 10,
        seconds: None,
        format: Format::Canonical,
        seed: 42,
        mix: liveguard::simulate::Mix::Busy,
    })
}

fn benches(c: &mut Criterion) {
    liveguard::normalize::warm_up();
    let set = rules::load_dir(Path::new("rules")).expect("shipped rules compile");
    let comments = corpus(1000);
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(comments.len() as u64));

    g.bench_function("normalize_1000", |b| {
        let mut s = Scratch::new();
        b.iter(|| {
            for t in &comments {
                normalize_only(&mut s, black_box(t));
            }
        })
    });

    g.bench_function("match_1000", |b| {
        // Pre-normalized, so this is matching alone.
        let mut scratches: Vec<Scratch> = comments
            .iter()
            .map(|t| {
                let mut s = Scratch::new();
                normalize_only(&mut s, t);
                s
            })
            .collect();
        b.iter(|| {
            for (s, t) in scratches.iter_mut().zip(&comments) {
                match_normalized(&set, s, black_box(t));
            }
        })
    });

    g.bench_function("model_opinion_1000", |b| {
        // Pre-matched and decided, so this is the model's part alone: features and scoring.
        let model = set.model.as_deref().expect("the shipped model loads");
        let mut prepared: Vec<(Scratch, liveguard::classify::Verdict)> = comments
            .iter()
            .map(|t| {
                let mut s = Scratch::new();
                let v = classify(
                    &set,
                    &mut s,
                    Input {
                        text: t,
                        ..Input::default()
                    },
                );
                (s, v)
            })
            .collect();
        b.iter(|| {
            for (s, v) in prepared.iter_mut() {
                model_features(&set, s, v);
                black_box(model.probs(&s.feats));
            }
        })
    });

    // With the shipped model (rules/model/*.lgm), then the rules alone.
    let mut rules_only = rules::load_dir(Path::new("rules")).expect("shipped rules compile");
    rules_only.model = None;
    for (name, set) in [
        ("full_classify_1000", &set),
        ("rules_only_classify_1000", &rules_only),
    ] {
        g.bench_function(name, |b| {
            let mut s = Scratch::new();
            b.iter(|| {
                for t in &comments {
                    black_box(classify(
                        set,
                        &mut s,
                        Input {
                            text: black_box(t),
                            user: Some("u"),
                            product: None,
                        },
                    ));
                }
            })
        });
    }
    g.finish();

    // Ingest's parse of the same comments as canonical frames (what a worker does first).
    let frames: Vec<String> = {
        let mut g = generator();
        (0..1000u64)
            .map(|i| g.next_frame(1_764_000_000_000 + i))
            .collect()
    };
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("parse_canonical_1000", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(
                    liveguard::ingest::parse_frame(Format::Canonical, black_box(f), "r").expect("parses"),
                );
            }
        })
    });
    g.finish();

    let terms: Vec<String> = (0..10_000)
        .map(|i| format!("\"词{i}term{}\"", i * 7919 % 10_007))
        .collect();
    let pack = format!(
        "[pack]\nid = \"big\"\nlang = \"zh\"\n[[keywords]]\nid = \"big-k\"\nclass = \"attack\"\ntopic = \"spam\"\nweight = 0.5\nterms = [{}]\n",
        terms.join(",")
    );
    c.bench_function("rule_build_10000_terms", |b| {
        b.iter_batched(
            || pack.clone(),
            |text| {
                let f = parse_str(text, Path::new("big.toml")).expect("parses");
                black_box(rules::compile::compile(&[f]).expect("compiles"))
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(classify_benches, benches);
criterion_main!(classify_benches);
