//! Bearer tokens: HS256 JWTs, algorithm pinned so `alg: none` and confusion are refused.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims leaseq reads and mints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    #[serde(default)]
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    /// Account ids this token may act on; `"*"` means all.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Space-separated scopes (`queues:read queues:write messages:push messages:pull`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Queue names this token may act on; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
}

impl Claims {
    pub fn allows_account(&self, account: &str) -> bool {
        self.accounts.iter().any(|a| a == "*" || a == account)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is missing")]
    Missing,
    #[error("token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Verifies and mints tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }

    /// A token for `accounts`, valid for `ttl` from now.
    pub fn mint(
        &self,
        subject: &str,
        accounts: Vec<String>,
        scope: Option<String>,
        queues: Option<Vec<String>>,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let now = crate::model::now_ms() / 1000;
        let claims = Claims {
            sub: subject.to_owned(),
            exp: now + ttl.as_secs(),
            iat: now,
            accounts,
            scope,
            queues,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_carry_their_accounts() {
        let keys = TokenKeys::hs256(b"secret");
        let token = keys
            .mint(
                "ops",
                vec!["acct".into()],
                None,
                None,
                Duration::from_secs(60),
            )
            .expect("mints");
        let claims = keys.verify(&token).expect("verifies");
        assert!(claims.allows_account("acct"));
        assert!(!claims.allows_account("other"));
    }

    #[test]
    fn tokens_signed_with_another_secret_or_expired_are_refused() {
        let keys = TokenKeys::hs256(b"secret");
        let other = TokenKeys::hs256(b"other")
            .mint("ops", vec!["*".into()], None, None, Duration::from_secs(60))
            .expect("mints");
        assert!(keys.verify(&other).is_err());
        let claims = Claims {
            sub: "x".into(),
            exp: 1,
            iat: 0,
            accounts: vec!["*".into()],
            scope: None,
            queues: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encodes");
        assert!(keys.verify(&expired).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = TokenKeys::hs256(b"secret");
        // {"alg":"none","typ":"JWT"} . {"exp":9999999999,"accounts":["*"]} . (no signature)
        let token =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTksImFjY291bnRzIjpbIioiXX0.";
        assert!(keys.verify(token).is_err());
    }
}
