//! Fuzz target: `liveguard::fuzzing::normalize` (see that function for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liveguard::fuzzing::normalize(data));
