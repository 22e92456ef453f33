use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use leaseq::auth::{Claims, all_scopes};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ACCOUNT, Ids, every_route, spawn_app, spawn_app_with};

fn now() -> u64 {
    leaseq::model::now_ms() / 1000
}

fn claims(exp: u64) -> Claims {
    Claims {
        sub: "t".into(),
        exp,
        iat: now(),
        nbf: None,
        iss: None,
        aud: None,
        accounts: vec![ACCOUNT.into()],
        scope: Some(all_scopes()),
        queues: None,
    }
}

fn sign(header: Header, claims: &Claims, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("encodes")
}

fn b64(bytes: &[u8]) -> String {
    use std::fmt::Write;
    // URL-safe base64 without padding, enough for hand-made tokens.
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let _ = write!(
                out,
                "{}",
                TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char
            );
        }
    }
    out
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = spawn_app().await;
    let url = app.url("/queues");
    let secret = EncodingKey::from_secret(b"another secret");
    let rsa =
        EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa_private.pem")).expect("rsa key");
    let payload = serde_json::to_vec(&claims(now() + 600)).expect("json");
    let cases: Vec<(&str, String)> = vec![
        ("not a JWT", "not-a-jwt".into()),
        (
            "wrong signature",
            sign(Header::new(Algorithm::HS256), &claims(now() + 600), &secret),
        ),
        (
            "wrong algorithm",
            sign(Header::new(Algorithm::RS256), &claims(now() + 600), &rsa),
        ),
        (
            "expired",
            sign(
                Header::new(Algorithm::HS256),
                &claims(now() - 3600),
                &secret,
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(&payload)
            ),
        ),
        ("truncated", app.token[..app.token.len() - 5].to_owned()),
    ];
    for (what, token) in cases {
        let reply = app.send_raw(app.client.get(&url).bearer_auth(&token)).await;
        assert_eq!(reply.status.as_u16(), 401, "{what}: {}", reply.body);
        reply.assert_error(401, 10000);
    }
    app.send_raw(app.client.get(&url))
        .await
        .assert_error(401, 10000);
    app.send_raw(app.client.get(&url).header("authorization", "Basic abc"))
        .await
        .assert_error(401, 10000);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_of_the_right_key_are_401() {
    // At least 32 bytes, as every HS256 secret must be.
    const KNOWN: &str = "known-secret-of-at-least-32-bytes-0123456789";
    let app = spawn_app_with(|s| s.auth.jwt_secret = Some(KNOWN.to_owned().into())).await;
    let key = EncodingKey::from_secret(KNOWN.as_bytes());
    let url = app.url("/queues");
    let good = sign(Header::new(Algorithm::HS256), &claims(now() + 600), &key);
    app.send_raw(app.client.get(&url).bearer_auth(good))
        .await
        .assert_ok();
    let expired = sign(Header::new(Algorithm::HS256), &claims(now() - 3600), &key);
    app.send_raw(app.client.get(&url).bearer_auth(expired))
        .await
        .assert_error(401, 10000);
    let mut early = claims(now() + 7200);
    early.nbf = Some(now() + 3600);
    let early = sign(Header::new(Algorithm::HS256), &early, &key);
    app.send_raw(app.client.get(&url).bearer_auth(early))
        .await
        .assert_error(401, 10000);
    let mut no_exp = serde_json::to_value(claims(0)).expect("json");
    no_exp.as_object_mut().expect("object").remove("exp");
    let no_exp =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &no_exp, &key).expect("encodes");
    app.send_raw(app.client.get(&url).bearer_auth(no_exp))
        .await
        .assert_error(401, 10000);
}

#[tokio::test]
async fn a_token_for_another_account_is_403() {
    let app = spawn_app().await;
    let token = app.mint(&["someone-else"], &all_scopes(), None);
    app.send_raw(app.client.get(app.url("/queues")).bearer_auth(token))
        .await
        .assert_error(403, 9109);
}

#[tokio::test]
async fn every_route_needs_its_scope() {
    let app = spawn_app().await;
    for (i, route) in every_route().iter().enumerate() {
        let Some(scope) = route.scope else {
            continue; // a public route
        };
        let path = app.route_on_fresh_queue(route, &format!("q{i}")).await;
        let url = format!("{}/client/v4{path}", app.base);
        let method = &route.method;
        let others: Vec<&str> = all_scopes()
            .leak()
            .split(' ')
            .filter(|s| *s != scope)
            .collect();
        let without = app.mint(&[ACCOUNT], &others.join(" "), None);
        let reply = app.send_route(route, &url, &without).await;
        assert_eq!(
            reply.status.as_u16(),
            403,
            "{method} {path} without {scope}: {}",
            reply.body
        );
        reply.assert_error(403, 9109);
        let with = app.mint(&[ACCOUNT], scope, None);
        let reply = app.send_route(route, &url, &with).await;
        assert!(
            reply.status.is_success(),
            "{method} {path} with {scope}: {}",
            reply.body
        );
    }
    let scopeless = app.mint(&[ACCOUNT], "", None);
    app.send_raw(app.client.get(app.url("/queues")).bearer_auth(scopeless))
        .await
        .assert_error(403, 9109);
}

#[tokio::test]
async fn a_token_limited_to_some_queues_sees_only_those() {
    let app = spawn_app().await;
    let orders = app.create_queue("orders").await;
    let billing = app.create_queue("billing").await;
    app.push(&billing, json!({"body": "private"}))
        .await
        .assert_ok();
    let token = app.mint(&[ACCOUNT], &all_scopes(), Some(&["orders", "orders-dlq"]));
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        app.send_raw(request)
    };
    let listed = call(Method::GET, "/queues".into(), None).await;
    let names: Vec<&str> = listed
        .assert_ok()
        .as_array()
        .expect("array")
        .iter()
        .map(|q| q["queue_name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["orders"]);
    call(
        Method::POST,
        format!("/queues/{orders}/messages"),
        Some(json!({"body": "ok"})),
    )
    .await
    .assert_ok();
    // Every route on a queue outside the token's: as if it did not exist.
    let unknown = "0".repeat(32);
    for route in every_route().iter().filter(|r| r.names("{queue_id}")) {
        let path = route.path(Ids::new(&billing, &unknown, &unknown));
        let reply = app
            .send_route(route, &format!("{}/client/v4{path}", app.base), &token)
            .await;
        assert_eq!(
            reply.status.as_u16(),
            404,
            "{} {path}: {}",
            route.method,
            reply.body
        );
        reply.assert_error(404, 10104);
    }
    call(
        Method::POST,
        "/queues".into(),
        Some(json!({"queue_name": "elsewhere"})),
    )
    .await
    .assert_error(403, 9109);
    call(
        Method::PATCH,
        format!("/queues/{orders}"),
        Some(json!({"queue_name": "renamed"})),
    )
    .await
    .assert_error(403, 9109);
    call(
        Method::POST,
        "/queues".into(),
        Some(json!({"queue_name": "orders-dlq"})),
    )
    .await
    .assert_ok();
    assert_eq!(
        app.metrics(&billing).await["backlog_count"],
        1,
        "billing untouched"
    );
}

#[tokio::test]
async fn the_token_is_also_accepted_in_api_key_headers() {
    let app = spawn_app().await;
    let url = app.url("/queues");
    app.send_raw(app.client.get(&url).header("x-auth-key", &app.token))
        .await
        .assert_ok();
    app.send_raw(app.client.get(&url).header("x-api-key", &app.token))
        .await
        .assert_ok();
}

#[tokio::test]
async fn another_accounts_queues_messages_and_leases_are_out_of_reach() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "secret"}))
        .await
        .assert_ok();
    let leased = app.pull_messages(&queue, json!({})).await;
    let lease = leased[0]["lease_id"].clone();
    let token = app.mint(&["*"], &all_scopes(), None);
    let other = |path: &str| format!("{}/client/v4/accounts/other-acct/queues{path}", app.base);
    let get = app
        .client
        .get(other(&format!("/{queue}")))
        .bearer_auth(&token);
    app.send_raw(get).await.assert_error(404, 10104);
    let pull = app
        .client
        .post(other(&format!("/{queue}/messages/pull")))
        .bearer_auth(&token)
        .json(&json!({}));
    app.send_raw(pull).await.assert_error(404, 10104);
    let push = app
        .client
        .post(other(&format!("/{queue}/messages")))
        .bearer_auth(&token)
        .json(&json!({"body": "x"}));
    app.send_raw(push).await.assert_error(404, 10104);
    let list = app.client.get(other("")).bearer_auth(&token);
    assert_eq!(app.send_raw(list).await.assert_ok(), &json!([]));
    // The other account's queue of the same id space cannot take this lease either.
    let theirs = app
        .send_raw(
            app.client
                .post(other(""))
                .bearer_auth(&token)
                .json(&json!({"queue_name": "orders"})),
        )
        .await;
    let their_queue = theirs.assert_ok()["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ack = app
        .client
        .post(other(&format!("/{their_queue}/messages/ack")))
        .bearer_auth(&token)
        .json(&json!({"acks": [{"lease_id": lease}]}));
    let reply = app.send_raw(ack).await;
    assert_eq!(reply.assert_ok()["ackCount"], 0);
    assert!(reply.result()["warnings"][lease.as_str().expect("lease")].is_string());
    assert_eq!(app.metrics(&queue).await["backlog_count"], 1);
}

#[tokio::test]
async fn asymmetric_keys_verify_and_refuse_algorithm_confusion() {
    let dir = std::env::temp_dir().join(format!("leaseq-keys-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (algorithm, name, public, private) in [
        (
            Algorithm::RS256,
            "RS256",
            include_bytes!("../fixtures/rsa_public.pem").as_slice(),
            include_bytes!("../fixtures/rsa_private.pem").as_slice(),
        ),
        (
            Algorithm::ES256,
            "ES256",
            include_bytes!("../fixtures/ec_public.pem").as_slice(),
            include_bytes!("../fixtures/ec_private.pem").as_slice(),
        ),
        (
            Algorithm::EdDSA,
            "EdDSA",
            include_bytes!("../fixtures/ed25519_public.pem").as_slice(),
            include_bytes!("../fixtures/ed25519_private.pem").as_slice(),
        ),
    ] {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, public).expect("write key");
        let app = spawn_app_with(|s| {
            s.auth.jwt_secret = None;
            s.auth.jwt_public_key_file = Some(path.clone());
            s.auth.jwt_algorithm = Some(name.into());
            s.auth.issuer = Some("https://issuer.test".into());
            s.auth.audience = Some("leaseq".into());
        })
        .await;
        let url = app.url("/queues");
        let mut good = claims(now() + 600);
        good.iss = Some("https://issuer.test".into());
        good.aud = Some("leaseq".into());
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(private),
            Algorithm::ES256 => EncodingKey::from_ec_pem(private),
            _ => EncodingKey::from_ed_pem(private),
        }
        .expect("private key");
        let token = sign(Header::new(algorithm), &good, &key);
        app.send_raw(app.client.get(&url).bearer_auth(&token))
            .await
            .assert_ok();
        // HS256 "signed" with the public key itself: the classic confusion attack.
        let confused = sign(
            Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(public),
        );
        app.send_raw(app.client.get(&url).bearer_auth(confused))
            .await
            .assert_error(401, 10000);
        // Right key, wrong issuer or audience.
        let mut wrong_iss = good.clone();
        wrong_iss.iss = Some("https://evil.test".into());
        app.send_raw(app.client.get(&url).bearer_auth(sign(
            Header::new(algorithm),
            &wrong_iss,
            &key,
        )))
        .await
        .assert_error(401, 10000);
        let mut wrong_aud = good.clone();
        wrong_aud.aud = None;
        app.send_raw(app.client.get(&url).bearer_auth(sign(
            Header::new(algorithm),
            &wrong_aud,
            &key,
        )))
        .await
        .assert_error(401, 10000);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_token_command_mints_with_every_claim() {
    let app = spawn_app().await;
    let token = app.mint(&[ACCOUNT], "queues:read", Some(&["orders"]));
    let claims = app.keys.verify(&token).expect("verifies");
    assert_eq!(claims.accounts, [ACCOUNT]);
    assert_eq!(claims.scope.as_deref(), Some("queues:read"));
    assert_eq!(claims.queues.as_deref(), Some(&["orders".to_owned()][..]));
    assert!(claims.exp > now() && claims.exp <= now() + 3600);
    let _ = Duration::ZERO;
}
