//! The properties the `cargo fuzz` targets check (see `fuzz/`), kept in the library so
//! the targets are one-liners and the seed-replay test below runs them on stable.
//!
//! Each check panics when a property fails; libFuzzer reports that panic as a crash.
//! Not part of the product: nothing outside `fuzz/` and the tests calls this module.

use std::any::type_name;

use serde::de::DeserializeOwned;

use crate::api::input::{
    self, AckInput, BatchInput, ConsumerInput, ExtendInput, MessageInput, PeekInput, PullInput,
    QueueInput, RedriveInput,
};
use crate::api::{ApiError, parse_json};
use crate::broker::lease::{Lease, LeaseSigner};
use crate::broker::limits::{self, DELAY_SECONDS, Limits};
use crate::model::{AccountId, MessageId, QueueId};

const LEASE_ID_LEN: usize = 80;

/// The fixed secret, account and queue every lease check signs and verifies against.
fn lease_fixture() -> (LeaseSigner, AccountId, QueueId) {
    let signer = LeaseSigner::new(b"leaseq-fuzz-secret");
    let account = AccountId::parse("fuzz-account").expect("a valid account id");
    let queue = QueueId::from_bytes(*b"leaseq-fuzz-queu");
    (signer, account, queue)
}

/// Arbitrary bytes as a lease id: `verify` does not panic, and whatever it accepts is
/// exactly what `sign` issues for that lease (one spelling per lease, so no uppercase
/// or otherwise malleable variant of a real lease id is honoured).
pub fn lease_id(data: &[u8]) {
    let (signer, account, queue) = lease_fixture();
    // Lossy, so bytes that are not UTF-8 still arrive, as U+FFFD, like a bad header would.
    let text = String::from_utf8_lossy(data);
    if let Some(lease) = signer.verify(&account, queue, &text) {
        assert_eq!(
            signer.sign(&account, queue, lease),
            text,
            "non-canonical lease id"
        );
    }
}

/// What [`lease_round_trip`] is built from; the fuzz target derives it with `arbitrary`.
pub type LeaseCase = ([u8; 16], u64, u8, char);

/// Sign then verify round-trips, and changing one character of the signed id, at
/// `position` (mod 80), to `replacement` or to the next hex digit, is refused.
pub fn lease_round_trip((message_id, generation, position, replacement): LeaseCase) {
    let (signer, account, queue) = lease_fixture();
    let lease = Lease {
        message_id: MessageId::from_bytes(message_id),
        generation,
    };
    let id = signer.sign(&account, queue, lease);
    assert_eq!(id.len(), LEASE_ID_LEN, "{id}");
    assert_eq!(signer.verify(&account, queue, &id), Some(lease), "{id}");

    let position = usize::from(position) % LEASE_ID_LEN;
    let original = char::from(id.as_bytes()[position]);
    let next_hex = match original {
        '9' => 'a',
        'f' => '0',
        c => char::from(c as u8 + 1),
    };
    for flipped in [replacement, next_hex] {
        if flipped == original {
            continue;
        }
        let mut tampered = id.clone();
        tampered.replace_range(position..=position, flipped.encode_utf8(&mut [0; 4]));
        assert_eq!(
            signer.verify(&account, queue, &tampered),
            None,
            "{id} with {flipped:?} at {position}"
        );
    }
}

/// Arbitrary bytes as the body of every request that has one: `parse_json` then the
/// broker's validation with default limits do not panic, every error is a 4xx, and
/// what passes validation is within the limits.
pub fn request_body(data: &[u8]) {
    let limits = Limits::default();
    let (signer, account, queue) = lease_fixture();
    // Lease ids in acks and extends are verified next, before anything touches Redis.
    let verify_all = |ids: &mut dyn Iterator<Item = &String>| {
        for id in ids {
            let _ = signer.verify(&account, queue, id);
        }
    };

    check::<QueueInput>(data, |input| {
        input::new_queue(&limits, &input)?;
        input::queue_change(&limits, &input, true)?;
        Ok(())
    });
    check::<ConsumerInput>(data, |input| {
        let settings = input::consumer(&input)?.settings;
        assert!(limits::PULL_BATCH_SIZE.contains(&u64::from(settings.batch_size)));
        assert!(limits::MAX_RETRIES.contains(&u64::from(settings.max_retries)));
        assert!(limits::VISIBILITY_TIMEOUT_MS.contains(&settings.visibility_timeout_ms));
        Ok(())
    });
    check::<MessageInput>(data, |input| {
        let message = input::push(&limits, &input, crate::model::now_ms())?;
        assert!(message.body.len() <= limits.message_bytes);
        assert!(message.delay_ms.unwrap_or(0) <= DELAY_SECONDS.end() * 1000);
        Ok(())
    });
    check::<BatchInput>(data, |input| {
        let messages = input::batch(&limits, &input, crate::model::now_ms())?;
        assert!((1..=limits.batch_messages).contains(&messages.len()));
        assert!(messages.iter().map(|m| m.body.len()).sum::<usize>() <= limits.batch_bytes);
        assert!(
            messages
                .iter()
                .all(|m| m.delay_ms.unwrap_or(0) <= DELAY_SECONDS.end() * 1000)
        );
        Ok(())
    });
    check::<PullInput>(data, |input| {
        let pull = input::pull(&input)?;
        assert!(pull.batch_size.is_none_or(|n| (1..=100).contains(&n)));
        assert!(limits::WAIT_TIME_MS.contains(&pull.wait_time_ms));
        Ok(())
    });
    check::<PeekInput>(data, |input| {
        let batch_size = input::peek(&input)?;
        assert!(batch_size.is_none_or(|n| (1..=100).contains(&n)));
        Ok(())
    });
    check::<AckInput>(data, |input| {
        let ack = input::acks(&limits, input)?;
        assert!(ack.acks.len() + ack.retries.len() <= limits.ack_entries);
        verify_all(&mut ack.acks.iter().chain(ack.retries.iter().map(|(id, _)| id)));
        Ok(())
    });
    check::<ExtendInput>(data, |input| {
        let leases = input::extensions(&limits, input)?;
        assert!(leases.len() <= limits.ack_entries);
        verify_all(&mut leases.iter().map(|(id, _)| id));
        Ok(())
    });
    check::<RedriveInput>(data, |input| {
        let redrive = input::redrive(&input)?;
        assert!((1..=10_000).contains(&redrive.max_messages));
        Ok(())
    });
}

/// Parses `data` as a `T` and validates it; any error must be the client's (4xx).
fn check<T: DeserializeOwned + Default>(
    data: &[u8],
    validate: impl FnOnce(T) -> Result<(), crate::broker::BrokerError>,
) {
    let result = parse_json::<T>(data).and_then(|input| validate(input).map_err(ApiError::from));
    if let Err(e) = result {
        assert!(
            (400..500).contains(&e.status()),
            "{}: {e:?} answers {}",
            type_name::<T>(),
            e.status()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arbitrary::Unstructured;

    use super::*;

    /// Every file under `fuzz/seeds/<target>/`, sorted, so a failure names its seed.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("a directory entry").path();
                let bytes = std::fs::read(&path).expect("a readable seed");
                (path.display().to_string(), bytes)
            })
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
        seeds
    }

    #[test]
    fn the_lease_id_seeds_pass_the_fuzz_checks() {
        for (name, data) in seeds("lease_id") {
            eprintln!("{name}");
            // The same two calls as fuzz/fuzz_targets/lease_id.rs.
            lease_id(&data);
            if let Ok(case) = Unstructured::new(&data).arbitrary() {
                lease_round_trip(case);
            }
        }
    }

    #[test]
    fn the_request_body_seeds_pass_the_fuzz_checks() {
        for (name, data) in seeds("request_body") {
            eprintln!("{name}");
            request_body(&data);
        }
    }

    #[test]
    fn the_signed_lease_seed_is_accepted() {
        // Keeps the seed that reaches the "verify accepted it" branch honest.
        let (signer, account, queue) = lease_fixture();
        let seed =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/lease_id/signed"))
                .expect("the signed seed");
        let text = String::from_utf8(seed).expect("ascii");
        assert!(signer.verify(&account, queue, &text).is_some(), "{text}");
    }

    #[test]
    fn every_position_of_a_signed_lease_id_is_checked() {
        for position in 0..LEASE_ID_LEN as u8 {
            lease_round_trip(([7; 16], u64::MAX, position, 'G'));
        }
    }
}
