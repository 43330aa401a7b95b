//! The fuzz targets on stable: every input of the kept corpus (`fuzz/corpus/TARGET/`, grown
//! by `fuzz/run`) replayed through its target, then a bounded batch of random bytes
//! (proptest), so `cargo test` checks the same invariants on any toolchain.

use proptest::prelude::*;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = crate::util::repo().join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the kept corpus").flatten() {
        let data = std::fs::read(entry.path()).expect("read");
        f(&data);
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn the_kept_corpus_replays_cleanly() {
    replay("canonical", liveguard::fuzzing::canonical);
    replay("tiktok", liveguard::fuzzing::tiktok);
    replay("normalize", liveguard::fuzzing::normalize);
    replay("rule_file", liveguard::fuzzing::rule_file);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_break_no_invariant(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        liveguard::fuzzing::canonical(&data);
        liveguard::fuzzing::tiktok(&data);
        liveguard::fuzzing::normalize(&data);
        liveguard::fuzzing::rule_file(&data);
    }
}
