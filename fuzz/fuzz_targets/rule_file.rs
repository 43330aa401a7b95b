//! Fuzz target: `liveguard::fuzzing::rule_file` (see that function for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liveguard::fuzzing::rule_file(data));
