//! Bearer tokens: JWTs verified with one configured key, or a key of a JWK set named by
//! the token's `kid`, the key's algorithm pinned either way, so `alg: none` and
//! algorithm confusion (an HS256 token "signed" with the RSA public key) are refused.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::jwks::Jwks;
use super::scope::Scopes;

/// The claims leaseq reads and mints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    #[serde(default)]
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Account ids this token may act on; `"*"` means all.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Space-separated scopes (`queues:read queues:write messages:push messages:pull`).
    /// A token without scopes may do nothing.
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

    pub fn scopes(&self) -> Scopes {
        Scopes::parse(self.scope.as_deref().unwrap_or(""))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("no signing key: this server only holds a public key; pass --private-key")]
    NoSigningKey,
    #[error("token is invalid: {0}")]
    Lifetime(&'static str),
    #[error("a token may live at most auth.max_token_ttl_secs = {max_secs} s; ask for less")]
    TtlOverCap { max_secs: u64 },
    #[error(
        "tokens are verified against auth.jwks_url: your identity provider mints them, not leaseq"
    )]
    MintedByKeySetOwner,
    #[error("token is invalid: it names no key (kid)")]
    NoKeyId,
    #[error("token is invalid: its key (kid) is not in the key set")]
    UnknownKeyId,
}

/// What a token must say besides its signature.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Longest lifetime (`exp - iat`) accepted and minted, in seconds; `None`: no cap.
    /// With a cap, a token must carry `iat` (else its lifetime is unknown) and must
    /// not be issued in the future.
    pub max_ttl_secs: Option<u64>,
}

/// What `leaseq token` and the dev banner put in a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub accounts: Vec<String>,
    pub scope: String,
    pub queues: Option<Vec<String>>,
    pub ttl: Duration,
}

/// What verifies a token's signature.
#[derive(Clone)]
enum Verifying {
    /// One configured key, of `TokenKeys::algorithm`.
    Key(DecodingKey),
    /// The key the token names in a JWK set, of that key's algorithm.
    Jwks(Arc<Jwks>),
}

/// Verifies tokens, and mints them when it holds a signing key.
#[derive(Clone)]
pub struct TokenKeys {
    algorithm: Algorithm,
    verifying: Verifying,
    encoding: Option<EncodingKey>,
    validation: Validation,
    policy: TokenPolicy,
}

impl TokenKeys {
    fn new(
        algorithm: Algorithm,
        verifying: Verifying,
        encoding: Option<EncodingKey>,
        policy: TokenPolicy,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = policy.leeway_secs;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not merely right when present.
        let mut required = vec!["exp"];
        required.extend(policy.issuer.as_ref().map(|_| "iss"));
        required.extend(policy.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        if let Some(issuer) = &policy.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &policy.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Self {
            algorithm,
            verifying,
            encoding,
            validation,
            policy,
        }
    }

    /// The keys of a JWK set (verifies only).
    pub fn jwks(jwks: Arc<Jwks>, policy: TokenPolicy) -> Self {
        // The algorithm here only seeds the validation; each key brings its own.
        Self::new(Algorithm::RS256, Verifying::Jwks(jwks), None, policy)
    }

    /// The key set, when tokens are verified against one.
    pub fn key_set(&self) -> Option<&Arc<Jwks>> {
        match &self.verifying {
            Verifying::Jwks(jwks) => Some(jwks),
            Verifying::Key(_) => None,
        }
    }

    /// The `kid` of a token that names a key the set does not hold, when a fetch of the
    /// set may bring it (see [`Jwks::should_fetch_for`]): the caller fetches, then
    /// verifies.
    pub fn unknown_kid(&self, token: &str) -> Option<String> {
        let jwks = self.key_set()?;
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        jwks.should_fetch_for(&kid).then_some(kid)
    }

    /// HS256 with a shared secret: verifies and mints.
    pub fn hs256(secret: &[u8], policy: TokenPolicy) -> Self {
        Self::new(
            Algorithm::HS256,
            Verifying::Key(DecodingKey::from_secret(secret)),
            Some(EncodingKey::from_secret(secret)),
            policy,
        )
    }

    /// RS256, ES256 or EdDSA with a PEM public key: verifies only.
    pub fn public_key(
        algorithm: Algorithm,
        pem: &[u8],
        policy: TokenPolicy,
    ) -> Result<Self, TokenError> {
        let decoding = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem)?,
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem)?,
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem)?,
            _ => {
                return Err(TokenError::Invalid(
                    jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into(),
                ));
            }
        };
        Ok(Self::new(algorithm, Verifying::Key(decoding), None, policy))
    }

    /// Adds the PEM private key matching this key's algorithm, for minting.
    pub fn with_private_key(mut self, pem: &[u8]) -> Result<Self, TokenError> {
        if self.key_set().is_some() {
            return Err(TokenError::MintedByKeySetOwner);
        }
        self.encoding = Some(match self.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem)?,
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem)?,
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem)?,
            _ => {
                return Err(TokenError::Invalid(
                    jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into(),
                ));
            }
        });
        Ok(self)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = match &self.verifying {
            Verifying::Key(decoding) => {
                jsonwebtoken::decode::<Claims>(token, decoding, &self.validation)?.claims
            }
            Verifying::Jwks(jwks) => {
                let kid = jsonwebtoken::decode_header(token)?
                    .kid
                    .ok_or(TokenError::NoKeyId)?;
                let key = jwks.key(&kid).ok_or(TokenError::UnknownKeyId)?;
                let mut validation = self.validation.clone();
                validation.algorithms = vec![key.algorithm];
                jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)?.claims
            }
        };
        if let Some(max) = self.policy.max_ttl_secs {
            // A missing `iat` reads as 0, like an explicit 0: either way, no known start.
            if claims.iat == 0 {
                return Err(TokenError::Lifetime(
                    "it has no iat, so its lifetime is unknown",
                ));
            }
            let now = crate::model::now_ms() / 1000;
            if claims.iat > now.saturating_add(self.policy.leeway_secs) {
                return Err(TokenError::Lifetime("it was issued in the future"));
            }
            if claims.exp.saturating_sub(claims.iat) > max {
                return Err(TokenError::Lifetime(
                    "it lives longer than auth.max_token_ttl_secs allows",
                ));
            }
        }
        Ok(claims)
    }

    /// A signed token carrying `request`, and the configured `iss` and `aud`.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, TokenError> {
        if self.key_set().is_some() {
            return Err(TokenError::MintedByKeySetOwner);
        }
        let encoding = self.encoding.as_ref().ok_or(TokenError::NoSigningKey)?;
        if let Some(max_secs) = self.policy.max_ttl_secs
            && request.ttl.as_secs() > max_secs
        {
            return Err(TokenError::TtlOverCap { max_secs });
        }
        let now = crate::model::now_ms() / 1000;
        let claims = Claims {
            sub: request.subject.clone(),
            exp: now + request.ttl.as_secs(),
            iat: now,
            nbf: None,
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone(),
            accounts: request.accounts.clone(),
            scope: Some(request.scope.clone()),
            queues: request.queues.clone(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            &claims,
            encoding,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(accounts: &[&str]) -> TokenRequest {
        TokenRequest {
            subject: "ops".into(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            scope: "queues:read".into(),
            queues: None,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn minted_tokens_verify_and_carry_their_claims() {
        let keys = TokenKeys::hs256(b"secret", TokenPolicy::default());
        let claims = keys
            .verify(&keys.mint(&request(&["acct"])).expect("mints"))
            .expect("verifies");
        assert!(claims.allows_account("acct"));
        assert!(!claims.allows_account("other"));
        assert_eq!(claims.scope.as_deref(), Some("queues:read"));
    }

    #[test]
    fn tokens_signed_with_another_secret_or_expired_are_refused() {
        let keys = TokenKeys::hs256(b"secret", TokenPolicy::default());
        let other = TokenKeys::hs256(b"other", TokenPolicy::default())
            .mint(&request(&["*"]))
            .expect("mints");
        assert!(keys.verify(&other).is_err());
        let claims = Claims {
            sub: "x".into(),
            exp: 1,
            iat: 0,
            nbf: None,
            iss: None,
            aud: None,
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
    fn issuer_and_audience_are_checked_when_configured() {
        let policy = TokenPolicy {
            issuer: Some("leaseq".into()),
            audience: Some("queues".into()),
            leeway_secs: 0,
            max_ttl_secs: None,
        };
        let keys = TokenKeys::hs256(b"secret", policy);
        assert!(
            keys.verify(&keys.mint(&request(&["a"])).expect("mints"))
                .is_ok()
        );
        let plain = TokenKeys::hs256(b"secret", TokenPolicy::default())
            .mint(&request(&["a"]))
            .expect("mints");
        assert!(
            keys.verify(&plain).is_err(),
            "a token without iss/aud is refused"
        );
    }

    fn capped(max_ttl_secs: u64) -> TokenKeys {
        let policy = TokenPolicy {
            max_ttl_secs: Some(max_ttl_secs),
            ..TokenPolicy::default()
        };
        TokenKeys::hs256(b"secret", policy)
    }

    /// A token signed with `b"secret"` with these `iat` (0: none) and `exp`.
    fn token(iat: u64, exp: u64) -> String {
        let mut claims = serde_json::json!({"sub": "t", "exp": exp, "accounts": ["*"]});
        if iat > 0 {
            claims["iat"] = iat.into();
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encodes")
    }

    #[test]
    fn tokens_living_longer_than_the_cap_are_refused() {
        let now = crate::model::now_ms() / 1000;
        let keys = capped(3600);
        assert!(keys.verify(&token(now, now + 3600)).is_ok());
        assert!(keys.verify(&token(now - 60, now + 3540)).is_ok());
        let long = keys.verify(&token(now, now + 3601)).expect_err("too long");
        assert!(long.to_string().contains("max_token_ttl_secs"), "{long}");
        // Without a cap, any lifetime goes.
        let uncapped = TokenKeys::hs256(b"secret", TokenPolicy::default());
        assert!(
            uncapped
                .verify(&token(now, now + 10 * 365 * 86_400))
                .is_ok()
        );
    }

    #[test]
    fn with_a_cap_tokens_without_iat_or_issued_in_the_future_are_refused() {
        let now = crate::model::now_ms() / 1000;
        let keys = capped(3600);
        let no_iat = keys.verify(&token(0, now + 60)).expect_err("no iat");
        assert!(no_iat.to_string().contains("no iat"), "{no_iat}");
        // Issued "later" so that exp - iat looks short while exp is far away.
        let future = now + 10 * 365 * 86_400;
        let early = keys
            .verify(&token(future, future + 60))
            .expect_err("future");
        assert!(early.to_string().contains("future"), "{early}");
        let uncapped = TokenKeys::hs256(b"secret", TokenPolicy::default());
        assert!(uncapped.verify(&token(0, now + 60)).is_ok());
    }

    #[test]
    fn minting_beyond_the_cap_is_refused() {
        let keys = capped(3600);
        let mut long = request(&["a"]);
        long.ttl = Duration::from_secs(3601);
        let error = keys.mint(&long).expect_err("over the cap");
        assert!(error.to_string().contains("3600"), "{error}");
        long.ttl = Duration::from_secs(3600);
        assert!(keys.mint(&long).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = TokenKeys::hs256(b"secret", TokenPolicy::default());
        // {"alg":"none","typ":"JWT"} . {"exp":9999999999,"accounts":["*"]} . (no signature)
        let token =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTksImFjY291bnRzIjpbIioiXX0.";
        assert!(keys.verify(token).is_err());
    }
}
