//! Arbitrary bytes as the body of every request type, parsed and validated.
//! The checks live in `leaseq::fuzz_checks`, where a stable test replays `fuzz/seeds/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leaseq::fuzz_checks::request_body(data));
