//! The shipped packs in `rules/`: they compile, every `[[example]]` passes, and each topic is
//! recognised in both languages.

use liveguard::cli::check_examples;

use crate::util::{repo, run, shipped};

#[test]
fn shipped_packs_pass_rules_check() {
    let out = run(&repo(), &["rules", "check", "rules"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shipped_example_passes() {
    let rules = shipped();
    let (ran, failures) = check_examples(&rules);
    assert!(ran > 0);
    let msgs: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
    assert!(msgs.is_empty(), "{}", msgs.join("\n"));
}
