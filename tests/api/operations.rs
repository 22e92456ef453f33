//! Operations hardening (SPEC §14): private metrics, lease secret rotation, JWKS.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

/// A second broker on `app`'s Redis keys and token secret, with `lease_secret` and
/// `lease_secret_previous` as given: `app` restarted after a rotation.
async fn restarted(app: &TestApp, jwt: &str, lease: &str, previous: Option<&str>) -> TestApp {
    let (prefix, jwt, lease) = (app.prefix.clone(), jwt.to_owned(), lease.to_owned());
    let previous = previous.map(str::to_owned);
    spawn_app_with(move |s| {
        s.redis.key_prefix = prefix;
        s.auth.jwt_secret = Some(jwt.into());
        s.auth.lease_secret = Some(lease.into());
        s.auth.lease_secret_previous = previous.map(Into::into);
    })
    .await
}

#[tokio::test]
async fn leases_and_refs_from_before_a_lease_secret_rotation_still_work() {
    let secret = |name: &str| format!("{name}-{}", uuid::Uuid::now_v7().simple());
    let (jwt, old, new) = (secret("jwt"), secret("lease-old"), secret("lease-new"));
    let (jwt_a, old_a) = (jwt.clone(), old.clone());
    let before = spawn_app_with(move |s| {
        s.auth.jwt_secret = Some(jwt_a.into());
        s.auth.lease_secret = Some(old_a.into());
    })
    .await;
    let queue = before.create_queue("rotated").await;
    before.push_numbered(&queue, 3).await;
    let pulled = before
        .pull_messages(
            &queue,
            json!({"batch_size": 2, "visibility_timeout_ms": 60000}),
        )
        .await;
    assert_eq!(pulled.len(), 2);
    let peeked = before
        .post(
            &format!("/queues/{queue}/messages/peek"),
            json!({"batch_size": 3}),
        )
        .await;
    let unleased = peeked.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| pulled.iter().all(|p| p["id"] != m["id"]))
        .expect("the message not pulled")
        .clone();

    // Without the previous secret, the old lease is a warning and acks nothing.
    let forgetful = restarted(&before, &jwt, &new, None).await;
    let acked = forgetful
        .ack(
            &queue,
            json!({"acks": [{"lease_id": pulled[1]["lease_id"]}]}),
        )
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 0);

    let after = restarted(&before, &jwt, &new, Some(&old)).await;
    let acked = after
        .ack(
            &queue,
            json!({"acks": [{"lease_id": pulled[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 1, "the old lease acks");
    let purged = after
        .post(
            &format!("/queues/{queue}/messages/purge"),
            json!({"refs": [{"ref": unleased["ref"]}]}),
        )
        .await;
    assert_eq!(purged.assert_ok()["purgeCount"], 1, "the old ref purges");
    // The acked message is gone; the other pulled one is still leased (not redelivered).
    let metrics = after.metrics(&queue).await;
    assert_eq!(metrics["backlog_count"], 1);
    let again = after.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert!(again.is_empty(), "nothing redelivered: {again:?}");
    // New leases are signed with the new secret: a broker without the old one takes them.
    after.push_numbered(&queue, 1).await;
    let lease = after
        .pull_messages(&queue, json!({"batch_size": 1}))
        .await
        .pop()
        .expect("pulled");
    let acked = forgetful
        .ack(&queue, json!({"acks": [{"lease_id": lease["lease_id"]}]}))
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 1);
}

#[tokio::test]
async fn metrics_on_their_own_address_and_behind_a_token() {
    let app = spawn_app_with(|s| {
        s.metrics.bind = "127.0.0.1:0".into();
        s.metrics.token = Some("scrape-token-of-the-test".to_owned().into());
    })
    .await;
    let metrics_port = app.metrics_port.expect("metrics.bind is set");
    let queue = app.create_queue("private").await;
    app.push_numbered(&queue, 2).await;
    let client = reqwest::Client::new();
    let scrape = |token: Option<&'static str>| {
        let mut request = client.get(format!("http://127.0.0.1:{metrics_port}/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // The API port no longer serves it, with or without the token.
    let api = client
        .get(format!("{}/metrics", app.base))
        .bearer_auth("scrape-token-of-the-test")
        .send()
        .await
        .expect("request");
    assert_eq!(api.status().as_u16(), 404);
    let body: serde_json::Value = api.json().await.expect("envelope");
    assert_eq!(body["success"], false);

    let refused = scrape(None).await.expect("request");
    assert_eq!(refused.status().as_u16(), 401);
    let body: serde_json::Value = refused.json().await.expect("envelope");
    assert_eq!(body["errors"][0]["code"], 10000);
    assert_eq!(
        scrape(Some("a-wrong-token"))
            .await
            .expect("request")
            .status()
            .as_u16(),
        401
    );
    let served = scrape(Some("scrape-token-of-the-test"))
        .await
        .expect("request");
    assert_eq!(served.status().as_u16(), 200);
    let text = served.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("leaseq_queue_backlog_messages{")
                && l.contains("queue=\"private\"")),
        "per-queue series on the metrics address"
    );
    // The probes answer there too; the API does not.
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/openapi.json", 404)] {
        let reply = client
            .get(format!("http://127.0.0.1:{metrics_port}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(reply.status().as_u16(), status, "{path}");
    }
    // The API keeps its probes.
    let health = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn a_metrics_token_guards_metrics_on_the_api_port_too() {
    let app = spawn_app_with(|s| {
        s.metrics.token = Some("scrape-token-of-the-test".to_owned().into());
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", app.base);
    let refused = client.get(&url).send().await.expect("request");
    assert_eq!(refused.status().as_u16(), 401);
    // An API token is not the metrics token.
    let api_token = client
        .get(&url)
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("request");
    assert_eq!(api_token.status().as_u16(), 401);
    let served = client
        .get(&url)
        .bearer_auth("scrape-token-of-the-test")
        .send()
        .await
        .expect("request");
    assert_eq!(served.status().as_u16(), 200);
}

/// A signing key of the test's identity provider.
struct ProviderKey {
    algorithm: jsonwebtoken::Algorithm,
    encoding: jsonwebtoken::EncodingKey,
}

impl ProviderKey {
    fn new(algorithm: jsonwebtoken::Algorithm) -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let encoding = match algorithm {
            jsonwebtoken::Algorithm::ES256 => {
                let pem = std::fs::read(format!("{dir}/ec_private.pem")).expect("fixture");
                jsonwebtoken::EncodingKey::from_ec_pem(&pem)
            }
            _ => {
                let pem = std::fs::read(format!("{dir}/rsa_private.pem")).expect("fixture");
                jsonwebtoken::EncodingKey::from_rsa_pem(&pem)
            }
        }
        .expect("key");
        Self {
            algorithm,
            encoding,
        }
    }

    /// The public half as a JWK named `kid`.
    fn jwk(&self, kid: &str) -> serde_json::Value {
        let jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding, self.algorithm).expect("jwk");
        let mut jwk = serde_json::to_value(jwk).expect("json");
        jwk["kid"] = json!(kid);
        jwk
    }

    /// A token for the test account with every scope, naming `kid` (or none).
    fn token(&self, kid: Option<&str>) -> String {
        let now = leaseq::model::now_ms() / 1000;
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        let claims = json!({
            "sub": "idp-user", "iat": now, "exp": now + 600, "aud": "leaseq",
            "accounts": [crate::helpers::ACCOUNT], "scope": leaseq::auth::all_scopes(),
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding).expect("signed")
    }
}

#[tokio::test]
async fn tokens_are_verified_against_a_jwk_set_that_rotates_and_may_go_down() {
    use crate::helpers::eventually;
    use crate::helpers::receiver::{Answer, Receiver};
    use jsonwebtoken::Algorithm::{ES256, RS256};
    use std::time::Duration;

    let (rsa, ec) = (ProviderKey::new(RS256), ProviderKey::new(ES256));
    let set = |keys: Vec<serde_json::Value>| {
        let set = json!({"keys": keys});
        move |_: usize, _: &serde_json::Value| Answer::Json(200, set.clone())
    };
    let provider = Receiver::scripted(set(vec![rsa.jwk("rsa-1"), ec.jwk("ec-1")])).await;
    let url = format!("{}/.well-known/jwks.json", provider.url);
    let app = spawn_app_with(move |s| {
        s.auth.jwt_secret = None;
        s.auth.jwks_url = Some(url);
        s.auth.jwks_refresh_secs = 1;
        s.auth.audience = Some("leaseq".into());
    })
    .await;
    let status = |token: String| {
        let request = app.client.get(app.url("/queues")).bearer_auth(token);
        async move { request.send().await.expect("request").status().as_u16() }
    };
    // The first request may come before the first fetch ends: it waits for it.
    assert_eq!(status(rsa.token(Some("rsa-1"))).await, 200, "RS256");
    assert_eq!(status(ec.token(Some("ec-1"))).await, 200, "ES256");
    assert_eq!(
        status(rsa.token(None)).await,
        401,
        "a token must name its key"
    );
    assert_eq!(
        status(ec.token(Some("rsa-1"))).await,
        401,
        "the key's algorithm, not the token's"
    );
    assert_eq!(status(rsa.token(Some("nobody"))).await, 401);

    // The provider rotates: rsa-1 goes, rsa-2 comes (the same key material will do).
    provider.rescript(set(vec![rsa.jwk("rsa-2"), ec.jwk("ec-1")]));
    eventually(Duration::from_secs(10), || async {
        (status(rsa.token(Some("rsa-2"))).await == 200).then_some(())
    })
    .await;
    assert_eq!(
        status(rsa.token(Some("rsa-1"))).await,
        401,
        "a key gone from the set"
    );

    // The provider goes down: the keys fetched before keep working, never a 5xx.
    provider.rescript(|_, _| Answer::Status(503));
    let before = provider.requests().len();
    eventually(Duration::from_secs(10), || async {
        (provider.requests().len() >= before + 2).then_some(())
    })
    .await;
    assert_eq!(status(rsa.token(Some("rsa-2"))).await, 200);
    assert_eq!(status(ec.token(Some("ec-1"))).await, 200);
    assert_eq!(status(rsa.token(Some("rsa-3"))).await, 401);
}
