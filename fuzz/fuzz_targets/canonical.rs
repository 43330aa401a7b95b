//! Fuzz target: `liveguard::fuzzing::canonical` (see that function for the invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liveguard::fuzzing::canonical(data));
