//! Standard Webhooks signatures: `webhook-signature: v1,<base64 of HMAC-SHA256 over
//! "{webhook-id}.{webhook-timestamp}.{body}">`, keyed by the base64-decoded part of the
//! secret after `whsec_`. Several signatures (during a secret rotation) are separated by
//! spaces; a receiver accepts the request when any of them verifies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::WebhookSecret;

/// `v1,<signature>` of one message, or `None` when the secret is not `whsec_` and base64
/// (never: the broker made it).
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: u64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(secret.0.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret.
pub fn header(secrets: &[&WebhookSecret], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (its test vector).
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn every_secret_signs() {
        let a = WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let b = WebhookSecret("whsec_dGhlIG90aGVyIHNlY3JldA==".into());
        let header = header(&[&a, &b], "id", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }
}
