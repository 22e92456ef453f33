//! Token keys from a JSON Web Key Set (`auth.jwks_url`), as identity providers publish
//! them (Auth0, Keycloak, Okta, Cloudflare Access). A token names its key by `kid`; each
//! key's algorithm is pinned by the set (its `alg`, else its key type and curve), so a
//! token cannot pick one. The set is fetched again every `auth.jwks_refresh_secs`, and
//! when a token names a key it does not hold (at most once per [`UNKNOWN_KID_GAP`]).
//! While the URL fails, the last good set stays in use: requests whose key is cached
//! never notice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Shortest time between two fetches caused by unknown `kid`s: a flood of tokens with
/// made-up ids must not become a flood of requests to the identity provider.
pub const UNKNOWN_KID_GAP: Duration = Duration::from_secs(30);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set read, bytes.
const MAX_SET_BYTES: usize = 1 << 20;

/// One verification key of the set.
#[derive(Clone)]
pub struct JwksKey {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("could not fetch the key set: {0}")]
    Fetch(String),
    #[error("the key set is not a JWK set: {0}")]
    Parse(String),
    #[error("the key set holds no usable signing key (each needs a kid)")]
    NoKeys,
}

/// The key set of `auth.jwks_url`, kept fresh.
pub struct Jwks {
    url: String,
    refresh: Duration,
    unknown_kid_gap: Duration,
    client: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, JwksKey>>>,
    /// When the last fetch began (successful or not).
    last_fetch: Mutex<Option<Instant>>,
    /// One fetch at a time; those who waited find the set fresh.
    fetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    pub fn new(url: &str, refresh: Duration) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        Ok(Self {
            url: url.to_owned(),
            refresh,
            unknown_kid_gap: UNKNOWN_KID_GAP,
            client,
            keys: RwLock::new(Arc::new(HashMap::new())),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The key named `kid`, if the set held it at the last successful fetch.
    pub fn key(&self, kid: &str) -> Option<JwksKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    fn since_last_fetch(&self) -> Option<Duration> {
        self.last_fetch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }

    fn may_fetch_again(&self) -> bool {
        self.since_last_fetch()
            .is_none_or(|since| since >= self.unknown_kid_gap)
    }

    /// Whether a token naming `kid` should wait for a fetch: the key is unknown, and a
    /// fetch is under way (the first, at start-up) or may begin (none began within
    /// [`UNKNOWN_KID_GAP`]).
    pub fn should_fetch_for(&self, kid: &str) -> bool {
        self.key(kid).is_none() && (self.fetching.try_lock().is_err() || self.may_fetch_again())
    }

    /// Waits for the fetch under way, if any; then fetches the set if `kid` is still
    /// unknown and no fetch began within the gap.
    pub async fn fetch_for_unknown_kid(&self, kid: &str) {
        let _one_at_a_time = self.fetching.lock().await;
        if self.key(kid).is_none() && self.may_fetch_again() {
            self.fetch_and_log().await;
        }
    }

    /// Fetches the set now and every `refresh` after, for the life of the process.
    pub async fn keep_fresh(self: Arc<Self>) {
        loop {
            {
                let _one_at_a_time = self.fetching.lock().await;
                self.fetch_and_log().await;
            }
            tokio::time::sleep(self.refresh).await;
        }
    }

    async fn fetch_and_log(&self) {
        *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %self.url, "JWKS not refreshed; the keys fetched before stay in use");
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, JwksKey>, JwksError> {
        let fetch = |e: reqwest::Error| JwksError::Fetch(e.without_url().to_string());
        let mut response = self
            .client
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(fetch)?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch)? {
            if body.len() + chunk.len() > MAX_SET_BYTES {
                return Err(JwksError::Parse(format!(
                    "larger than {MAX_SET_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        parse_set(&body)
    }
}

/// The usable keys of a JWK set, by `kid`. A key the set marks for encryption, without
/// a `kid`, symmetric, or of a type or algorithm leaseq does not verify is skipped, not
/// an error: one odd key must not take the others down.
pub fn parse_set(body: &[u8]) -> Result<HashMap<String, JwksKey>, JwksError> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| JwksError::Parse(e.to_string()))?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let Some(algorithm) = algorithm_of(&jwk) else {
            continue;
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(
            kid,
            JwksKey {
                algorithm,
                decoding,
            },
        );
    }
    if keys.is_empty() {
        return Err(JwksError::NoKeys);
    }
    Ok(keys)
}

/// The one algorithm a key verifies: its `alg` when given (it must suit the key), else
/// the usual one for its type. Symmetric keys never: a public set holding an HMAC
/// secret would let anyone who reads it sign tokens.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    use Algorithm::*;
    let suits = |algorithm: Algorithm| match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
        }
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, algorithm),
            (EllipticCurve::P256, ES256) | (EllipticCurve::P384, ES384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => algorithm == EdDSA,
        _ => false,
    };
    let algorithm = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return None,
        // Its name is the algorithm's (`Display` writes the variant).
        Some(given) => given.to_string().parse().ok()?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => ES256,
                EllipticCurve::P384 => ES384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(_) => EdDSA,
            _ => return None,
        },
    };
    suits(algorithm).then_some(algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A key set served on loopback, counting its requests.
    async fn served(set: serde_json::Value) -> (String, Arc<AtomicUsize>) {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            let (count, set) = (counted.clone(), set.clone());
            App::new().default_service(web::to(move || {
                count.fetch_add(1, Ordering::SeqCst);
                let set = set.clone();
                async move { HttpResponse::Ok().json(set) }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        (format!("http://127.0.0.1:{port}/jwks.json"), count)
    }

    #[actix_web::test]
    async fn unknown_kids_fetch_the_set_at_most_once_per_gap() {
        let set = json!({"keys": [jwk("rsa_private.pem", Algorithm::RS256, "known")]});
        let (url, fetches) = served(set).await;
        let mut jwks = Jwks::new(&url, Duration::from_secs(3600)).expect("client");
        // Before any fetch, an unknown kid waits for one.
        assert!(jwks.should_fetch_for("known"));
        jwks.fetch_for_unknown_kid("known").await;
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(jwks.key("known").is_some());
        assert!(
            !jwks.should_fetch_for("known"),
            "a known key needs no fetch"
        );
        // Within the gap, made-up kids cost nothing.
        for _ in 0..20 {
            assert!(!jwks.should_fetch_for("made-up"));
            jwks.fetch_for_unknown_kid("made-up").await;
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Past the gap, one fetch again.
        jwks.unknown_kid_gap = Duration::ZERO;
        assert!(jwks.should_fetch_for("made-up"));
        jwks.fetch_for_unknown_kid("made-up").await;
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    fn jwk(private: &str, algorithm: Algorithm, kid: &str) -> serde_json::Value {
        let pem = fixture(private);
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .expect("key");
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, algorithm).expect("jwk"))
            .expect("json");
        jwk["kid"] = json!(kid);
        jwk
    }

    #[test]
    fn keys_are_taken_by_kid_with_their_algorithm_pinned() {
        let mut rsa_without_alg = jwk("rsa_private.pem", Algorithm::RS256, "rsa-plain");
        rsa_without_alg
            .as_object_mut()
            .expect("object")
            .remove("alg");
        let set = json!({"keys": [
            jwk("rsa_private.pem", Algorithm::RS256, "rsa"),
            jwk("ec_private.pem", Algorithm::ES256, "ec"),
            rsa_without_alg,
        ]});
        let keys = parse_set(set.to_string().as_bytes()).expect("parses");
        assert_eq!(keys["rsa"].algorithm, Algorithm::RS256);
        assert_eq!(keys["ec"].algorithm, Algorithm::ES256);
        assert_eq!(keys["rsa-plain"].algorithm, Algorithm::RS256);
    }

    #[test]
    fn keys_without_kid_symmetric_for_encryption_or_mismatched_are_skipped() {
        let mut no_kid = jwk("rsa_private.pem", Algorithm::RS256, "x");
        no_kid.as_object_mut().expect("object").remove("kid");
        let mut encryption = jwk("rsa_private.pem", Algorithm::RS256, "enc");
        encryption["use"] = json!("enc");
        let mut mismatched = jwk("rsa_private.pem", Algorithm::RS256, "rsa-as-ec");
        mismatched["alg"] = json!("ES256");
        let hmac = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"});
        let odd = json!({"kty": "nonsense", "kid": "odd"});
        let good = jwk("ec_private.pem", Algorithm::ES256, "good");
        let set = json!({"keys": [no_kid, encryption, mismatched, hmac, odd, good]});
        let keys = parse_set(set.to_string().as_bytes()).expect("parses");
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["good"]);
        let nothing = json!({"keys": [json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})]});
        assert!(matches!(
            parse_set(nothing.to_string().as_bytes()),
            Err(JwksError::NoKeys)
        ));
        assert!(matches!(parse_set(b"<html>"), Err(JwksError::Parse(_))));
    }
}
