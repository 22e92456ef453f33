//! Arbitrary bytes as a lease id, and sign/verify/tamper on a structured lease.
//! The checks live in `leaseq::fuzz_checks`, where a stable test replays `fuzz/seeds/`.
#![no_main]

use leaseq::fuzz_checks::{lease_id, lease_round_trip};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lease_id(data);
    if let Ok(case) = Unstructured::new(data).arbitrary() {
        lease_round_trip(case);
    }
});
