//! Runs full classify in a loop over a mixed corpus (for profilers).
use liveguard::classify::{classify, Input, Scratch};
fn main() {
    liveguard::normalize::warm_up();
    let set = liveguard::rules::load_dir(std::path::Path::new("rules")).expect("rules");
    let texts = [
        "主播晚上好",
        "这个多少钱",
        "三号链接还有吗",
        "会不会褪色？",
        "上次买的手链戴了两天就断了",
        "love this necklace",
        "how much is the ring?",
        "does it tarnish?",
        "the ring I got last week is cracked",
        "加我vx便宜一半",
        "哈哈哈哈哈",
        "好看好看好看",
        "beautiful!!",
        "first time here",
    ];
    let mut s = Scratch::new();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let t = std::time::Instant::now();
    for i in 0..n {
        std::hint::black_box(classify(
            &set,
            &mut s,
            Input {
                text: texts[i % texts.len()],
                user: Some("u"),
                product: None,
            },
        ));
    }
    eprintln!("{:.0} ns/comment", t.elapsed().as_nanos() as f64 / n as f64);
}
