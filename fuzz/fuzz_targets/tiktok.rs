//! Fuzz target: `liveguard::fuzzing::tiktok` (see that function for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liveguard::fuzzing::tiktok(data));
