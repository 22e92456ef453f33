//! Security review, issue 19: token headers, token lifetimes, log hygiene, client IPs.

use reqwest::header::{HeaderMap, HeaderValue};

use crate::helpers::{ACCOUNT, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_token_in_two_different_headers_is_401_even_when_both_are_good() {
    let app = spawn_app().await;
    let url = app.url("/queues");
    let other = app.mint(&[ACCOUNT], "queues:read", None);
    let bearer = format!("Bearer {}", app.token);
    let pairs: [(&str, &str, &str, &str); 5] = [
        ("authorization", &bearer, "x-api-key", &app.token),
        ("authorization", &bearer, "x-auth-key", &app.token),
        ("x-auth-key", &app.token, "x-api-key", &app.token),
        ("authorization", &bearer, "x-api-key", &other),
        ("authorization", "Basic abc", "x-api-key", &app.token),
    ];
    for (first, first_value, second, second_value) in pairs {
        let mut headers = HeaderMap::new();
        headers.insert(first, HeaderValue::from_str(first_value).expect("header"));
        headers.insert(second, HeaderValue::from_str(second_value).expect("header"));
        let reply = app.send_raw(app.client.get(&url).headers(headers)).await;
        assert_eq!(
            reply.status.as_u16(),
            401,
            "{first} + {second}: {}",
            reply.body
        );
        reply.assert_error(401, 10000);
    }
    // One header at a time still works, whichever it is.
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("x-auth-key", app.token.as_str()),
        ("x-api-key", app.token.as_str()),
    ] {
        app.send_raw(app.client.get(&url).header(name, value))
            .await
            .assert_ok();
    }
}

fn now() -> u64 {
    leaseq::model::now_ms() / 1000
}

/// An HS256 secret the tests know, of the length every secret must have.
const KNOWN_SECRET: &str = "security-auth-known-secret-0123456789abcdef";

/// A token signed with [`KNOWN_SECRET`] granting everything on [`ACCOUNT`], with these
/// `iat` (`None`: absent) and `exp`.
fn signed(iat: Option<u64>, exp: u64) -> String {
    let mut claims = serde_json::json!({
        "sub": "t",
        "exp": exp,
        "accounts": [ACCOUNT],
        "scope": leaseq::auth::all_scopes(),
    });
    if let Some(iat) = iat {
        claims["iat"] = iat.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(KNOWN_SECRET.as_bytes()),
    )
    .expect("encodes")
}

#[tokio::test]
async fn a_token_living_longer_than_max_token_ttl_secs_is_401() {
    let app = spawn_app_with(|s| {
        s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into());
        s.auth.max_token_ttl_secs = 3600;
    })
    .await;
    let url = app.url("/queues");
    let get = |token: String| app.send_raw(app.client.get(&url).bearer_auth(token));
    get(signed(Some(now()), now() + 3600)).await.assert_ok();
    get(signed(Some(now()), now() + 3601))
        .await
        .assert_error(401, 10000);
    // A far-away exp hidden behind an iat in the future.
    let later = now() + 365 * 86_400;
    get(signed(Some(later), later + 60))
        .await
        .assert_error(401, 10000);
}

#[tokio::test]
async fn a_token_without_iat_is_401_while_lifetimes_are_capped() {
    let app = spawn_app_with(|s| s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into())).await;
    let url = app.url("/queues");
    let reply = app
        .send_raw(app.client.get(&url).bearer_auth(signed(None, now() + 60)))
        .await;
    reply.assert_error(401, 10000);
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("iat")),
        "{}",
        reply.body
    );
    // With the cap turned off, the same token is fine.
    let uncapped = spawn_app_with(|s| {
        s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into());
        s.auth.max_token_ttl_secs = 0;
    })
    .await;
    uncapped
        .send_raw(
            uncapped
                .client
                .get(uncapped.url("/queues"))
                .bearer_auth(signed(None, now() + 60)),
        )
        .await
        .assert_ok();
}
