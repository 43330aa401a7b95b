//! Classifier speed on realistic short live comments (mixed zh/en, with evasions), using the
//! shipped packs in `rules/`: normalize alone, match alone, full classify, and a 10,000-term
//! rule build. Figures go to BENCHMARKS.md.

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use liveguard::classify::{classify, match_normalized, normalize_only, Input, Scratch};
use liveguard::rules::{self, file::parse_str};

/// Deterministic corpus: ~80% chatter and questions, complaints, attacks, evasions.
fn corpus(n: usize) -> Vec<String> {
    const ZH: &[&str] = &[
        "主播好漂亮",
        "这个多少钱",
        "三号链接还有吗",
        "会不会褪色？",
        "想要那个手镯",
        "上车上车",
        "今天有优惠吗",
        "宝宝们晚上好",
        "这个是真金吗",
        "尺寸有几号",
        "看看7号",
        "好看好看好看",
        "上次买的手链戴了两天就断了",
        "收到的戒指颜色和直播完全不一样",
        "我的订单一周了还没发货",
        "客服一直不回，退款也不给退",
        "你们就是骗子",
        "加我vx便宜一半",
        "垃圾主播滚",
        "騙*子直播間",
        "加V 一三八 0013 8000",
        "买的项链是假的，根本不是925银",
        "戒指太小了戴不进去",
        "哈哈哈哈哈",
        "来了来了",
        "主播穿的衣服好看",
        "没有裂，很满意",
        "有没有大一点的",
        "已拍",
        "求讲解5号",
    ];
    const EN: &[&str] = &[
        "love this necklace",
        "how much is the ring?",
        "does it tarnish?",
        "hi from texas",
        "is this real gold",
        "what size is that",
        "beautiful!!",
        "first time here",
        "can you show #3",
        "the ring I got last week is cracked",
        "my order still hasn't arrived after 2 weeks",
        "color is totally different from the stream",
        "customer service never replied, I want a refund",
        "this is a sc4m",
        "add my whatsapp for cheaper",
        "you are an idiot",
        "s.c.a.m shop",
        "stone fell out after one day",
        "no cracks, very happy",
        "check out my shop www.cheapjewels.shop",
        "wow sooooo pretty",
        "following!",
        "bracelet too small, doesn't fit",
        "ordered twice, love it",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pick = (seed >> 33) as usize;
            if pick.is_multiple_of(2) {
                ZH[pick % ZH.len()]
            } else {
                EN[pick % EN.len()]
            }
            .to_string()
        })
        .collect()
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

    g.bench_function("full_classify_1000", |b| {
        let mut s = Scratch::new();
        b.iter(|| {
            for t in &comments {
                black_box(classify(
                    &set,
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
