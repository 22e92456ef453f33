use std::time::Duration;

use serde_json::json;

use crate::helpers::{ACCOUNT, spawn_app};

#[tokio::test]
async fn a_missing_or_bad_token_is_401() {
    let app = spawn_app().await;
    let url = app.url("/queues");
    app.send_raw(app.client.get(&url))
        .await
        .assert_error(401, 10000);
    app.send_raw(app.client.get(&url).bearer_auth("not-a-jwt"))
        .await
        .assert_error(401, 10000);
    let foreign = leaseq::auth::TokenKeys::hs256(b"another secret")
        .mint(
            "x",
            vec![ACCOUNT.into()],
            None,
            None,
            Duration::from_secs(60),
        )
        .expect("token");
    app.send_raw(app.client.get(&url).bearer_auth(foreign))
        .await
        .assert_error(401, 10000);
    app.send_raw(app.client.get(&url).header("authorization", "Basic abc"))
        .await
        .assert_error(401, 10000);
}

#[tokio::test]
async fn a_token_for_another_account_is_403() {
    let app = spawn_app().await;
    let token = app
        .keys
        .mint(
            "x",
            vec!["someone-else".into()],
            None,
            None,
            Duration::from_secs(60),
        )
        .expect("token");
    app.send_raw(app.client.get(app.url("/queues")).bearer_auth(token))
        .await
        .assert_error(403, 9109);
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
async fn a_queue_of_another_account_is_not_found() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "secret"}))
        .await
        .assert_ok();
    let token = app
        .keys
        .mint("x", vec!["*".into()], None, None, Duration::from_secs(60))
        .expect("token");
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
    assert_eq!(app.metrics(&queue).await["backlog_count"], 1);
}
