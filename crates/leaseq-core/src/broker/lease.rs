//! Lease ids: what a consumer holds between pull and ack.
//!
//! A lease id names one delivery of one message and proves the server issued it:
//! `hex(message_id) ‖ hex(lease_generation, 16) ‖ hex(mac, 32)`, 80 lowercase hex
//! characters, where the MAC is HMAC-SHA256 keyed with `auth.lease_secret` over the
//! account, queue, message id and generation (truncated to 128 bits). Binding the account
//! and queue means a lease replayed against another queue or account fails verification
//! exactly like a forged one.
//!
//! The signer may also hold the previous secret (`auth.lease_secret_previous`): lease
//! ids and refs it signed still verify, so the secret can rotate without turning every
//! outstanding lease into a redelivery. New ones are always signed with the current one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::{AccountId, MessageId, QueueId};

type HmacSha256 = Hmac<Sha256>;

const ID_HEX: usize = 32;
const GENERATION_HEX: usize = 16;
const MAC_BYTES: usize = 16;
const LEASE_ID_LEN: usize = ID_HEX + GENERATION_HEX + MAC_BYTES * 2;

/// A verified lease: the delivery it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub message_id: MessageId,
    pub generation: u64,
}

/// Signs and verifies lease ids with the server's lease secret.
#[derive(Clone)]
pub struct LeaseSigner {
    key: HmacSha256,
    /// The secret before the last rotation: verifies, never signs.
    previous: Option<HmacSha256>,
}

fn hmac_key(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the error case cannot happen for HMAC.
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

impl LeaseSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac_key(secret),
            previous: None,
        }
    }

    /// Also accepts what `previous` signed.
    pub fn with_previous(mut self, previous: &[u8]) -> Self {
        self.previous = Some(hmac_key(previous));
        self
    }

    /// The current key, then the previous one.
    fn keys(&self) -> impl Iterator<Item = &HmacSha256> {
        std::iter::once(&self.key).chain(self.previous.as_ref())
    }

    fn mac(key: &HmacSha256, account: &AccountId, queue: QueueId, lease: Lease) -> HmacSha256 {
        let mut mac = key.clone();
        mac.update(b"leaseq/lease/v1\0");
        mac.update(account.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(queue.as_bytes());
        mac.update(lease.message_id.as_bytes());
        mac.update(&lease.generation.to_be_bytes());
        mac
    }

    pub fn sign(&self, account: &AccountId, queue: QueueId, lease: Lease) -> String {
        let tag = Self::mac(&self.key, account, queue, lease)
            .finalize()
            .into_bytes();
        let mut out = String::with_capacity(LEASE_ID_LEN);
        out.push_str(&lease.message_id.to_string());
        out.push_str(&format!("{:016x}", lease.generation));
        for byte in &tag[..MAC_BYTES] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// `None` for anything this server did not issue for this account and queue.
    pub fn verify(&self, account: &AccountId, queue: QueueId, lease_id: &str) -> Option<Lease> {
        if lease_id.len() != LEASE_ID_LEN || !lease_id.is_ascii() {
            return None;
        }
        let message_id = MessageId::parse(&lease_id[..ID_HEX])?;
        let generation_hex = &lease_id[ID_HEX..ID_HEX + GENERATION_HEX];
        if !generation_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let generation = u64::from_str_radix(generation_hex, 16).ok()?;
        let tag = decode_hex(&lease_id[ID_HEX + GENERATION_HEX..])?;
        let lease = Lease {
            message_id,
            generation,
        };
        self.keys()
            .any(|key| {
                Self::mac(key, account, queue, lease)
                    .verify_truncated_left(&tag)
                    .is_ok()
            })
            .then_some(lease)
    }
}

/// A peek's `ref`: `r ‖ hex(message_id) ‖ hex(mac, 32)`, the MAC over the account, queue
/// and message under its own label, so a ref is never a lease id, nor the reverse.
const REF_LEN: usize = 1 + ID_HEX + MAC_BYTES * 2;

impl LeaseSigner {
    fn ref_mac(
        key: &HmacSha256,
        account: &AccountId,
        queue: QueueId,
        message: MessageId,
    ) -> HmacSha256 {
        let mut mac = key.clone();
        mac.update(b"leaseq/ref/v1\0");
        mac.update(account.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(queue.as_bytes());
        mac.update(message.as_bytes());
        mac
    }

    /// The ref a peek shows for `message`: what `POST …/messages/purge` takes.
    pub fn sign_ref(&self, account: &AccountId, queue: QueueId, message: MessageId) -> String {
        let tag = Self::ref_mac(&self.key, account, queue, message)
            .finalize()
            .into_bytes();
        let mut out = String::with_capacity(REF_LEN);
        out.push('r');
        out.push_str(&message.to_string());
        for byte in &tag[..MAC_BYTES] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// The message a ref names; `None` for anything this server did not issue for this
    /// account and queue.
    pub fn verify_ref(&self, account: &AccountId, queue: QueueId, r: &str) -> Option<MessageId> {
        if r.len() != REF_LEN || !r.is_ascii() || !r.starts_with('r') {
            return None;
        }
        let message = MessageId::parse(&r[1..=ID_HEX])?;
        let tag = decode_hex(&r[1 + ID_HEX..])?;
        self.keys()
            .any(|key| {
                Self::ref_mac(key, account, queue, message)
                    .verify_truncated_left(&tag)
                    .is_ok()
            })
            .then_some(message)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2)?;
            if !pair.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (LeaseSigner, AccountId, QueueId, Lease) {
        let signer = LeaseSigner::new(b"test-secret");
        let account = AccountId::parse("acct").expect("valid account");
        let queue = QueueId::generate();
        let lease = Lease {
            message_id: MessageId::generate(),
            generation: 42,
        };
        (signer, account, queue, lease)
    }

    #[test]
    fn refs_name_their_message_and_are_not_leases() {
        let signer = LeaseSigner::new(b"secret");
        let account = AccountId::parse("acct").expect("valid");
        let queue = QueueId::generate();
        let message = MessageId::generate();
        let r = signer.sign_ref(&account, queue, message);
        assert_eq!(signer.verify_ref(&account, queue, &r), Some(message));
        assert_eq!(
            signer.verify(&account, queue, &r),
            None,
            "a ref is no lease"
        );
        let other = AccountId::parse("other").expect("valid");
        assert_eq!(signer.verify_ref(&other, queue, &r), None);
        assert_eq!(signer.verify_ref(&account, QueueId::generate(), &r), None);
        let lease = signer.sign(
            &account,
            queue,
            Lease {
                message_id: message,
                generation: 1,
            },
        );
        assert_eq!(
            signer.verify_ref(&account, queue, &lease),
            None,
            "a lease is no ref"
        );
        let mut tampered = r.clone();
        tampered.replace_range(r.len() - 1.., if r.ends_with('0') { "1" } else { "0" });
        assert_eq!(signer.verify_ref(&account, queue, &tampered), None);
    }

    #[test]
    fn a_signed_lease_verifies() {
        let (signer, account, queue, lease) = fixture();
        let id = signer.sign(&account, queue, lease);
        assert_eq!(id.len(), LEASE_ID_LEN);
        assert_eq!(signer.verify(&account, queue, &id), Some(lease));
    }

    #[test]
    fn flipping_any_character_breaks_the_lease() {
        let (signer, account, queue, lease) = fixture();
        let id = signer.sign(&account, queue, lease);
        for i in 0..id.len() {
            let mut bytes = id.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(bytes).expect("ascii");
            assert_eq!(
                signer.verify(&account, queue, &tampered),
                None,
                "position {i}"
            );
        }
    }

    #[test]
    fn a_lease_of_another_queue_account_or_key_is_refused() {
        let (signer, account, queue, lease) = fixture();
        let id = signer.sign(&account, queue, lease);
        let other_account = AccountId::parse("other").expect("valid account");
        assert_eq!(signer.verify(&other_account, queue, &id), None);
        assert_eq!(signer.verify(&account, QueueId::generate(), &id), None);
        assert_eq!(
            LeaseSigner::new(b"other-secret").verify(&account, queue, &id),
            None
        );
    }

    #[test]
    fn leases_and_refs_of_the_previous_secret_verify_and_new_ones_use_the_current() {
        let (old, account, queue, lease) = fixture();
        let message = lease.message_id;
        let old_lease = old.sign(&account, queue, lease);
        let old_ref = old.sign_ref(&account, queue, message);
        let rotated = LeaseSigner::new(b"new-secret").with_previous(b"test-secret");
        assert_eq!(rotated.verify(&account, queue, &old_lease), Some(lease));
        assert_eq!(rotated.verify_ref(&account, queue, &old_ref), Some(message));
        let new_lease = rotated.sign(&account, queue, lease);
        assert_ne!(new_lease, old_lease, "signed with the current secret");
        assert_eq!(
            LeaseSigner::new(b"new-secret").verify(&account, queue, &new_lease),
            Some(lease)
        );
        assert_eq!(old.verify(&account, queue, &new_lease), None);
        assert_eq!(
            LeaseSigner::new(b"new-secret").verify(&account, queue, &old_lease),
            None,
            "once the previous secret is dropped, its leases are refused"
        );
    }

    #[test]
    fn malformed_lease_ids_are_refused_without_panicking() {
        let (signer, account, queue, _) = fixture();
        for bad in [
            "",
            "x",
            &"é".repeat(40),
            &"g".repeat(LEASE_ID_LEN),
            &"0".repeat(LEASE_ID_LEN + 1),
        ] {
            assert_eq!(signer.verify(&account, queue, bad), None);
        }
    }
}
