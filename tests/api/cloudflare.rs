//! The parts of today's Cloudflare API that its TypeScript SDK 7.x and wrangler use
//! beyond the messages reference: peek refs and purge by ref, `jurisdiction`, and the
//! account, membership and token-verify routes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ACCOUNT, spawn_app, spawn_app_with};

#[tokio::test]
async fn peeked_messages_carry_refs_that_purge_exactly_them() {
    let app = spawn_app().await;
    let queue = app.create_queue("refs").await;
    app.push_numbered(&queue, 3).await;
    let peeked = app
        .post(
            &format!("/queues/{queue}/messages/peek"),
            json!({"batch_size": 3}),
        )
        .await;
    let messages = peeked.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m["lease_id"].is_null()));
    let refs: Vec<&str> = messages
        .iter()
        .map(|m| m["ref"].as_str().expect("ref"))
        .collect();
    // A leased message is purged all the same; a ref is not a lease.
    let pulled = app.pull_messages(&queue, json!({"batch_size": 1})).await;
    let acked = app
        .ack(&queue, json!({"acks": [{"lease_id": refs[0]}]}))
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 0);
    let purged = app
        .post(
            &format!("/queues/{queue}/messages/purge"),
            json!({"refs": [{"ref": refs[0]}, {"ref": refs[1]}]}),
        )
        .await;
    let purged = purged.assert_ok();
    assert_eq!(purged["errors"], json!([]));
    assert_eq!(purged["warnings"], json!({}));
    assert_eq!(purged["purgeCount"], 2);
    let metrics = app.metrics(&queue).await;
    assert_eq!(metrics["backlog_count"], 1);
    // The pulled message's lease no longer acks anything if it was purged.
    let lease = pulled[0]["lease_id"].as_str().expect("lease");
    let id = pulled[0]["id"].as_str().expect("id");
    let was_purged = messages[..2].iter().any(|m| m["id"] == id);
    let ack = app
        .ack(&queue, json!({"acks": [{"lease_id": lease}]}))
        .await;
    assert_eq!(ack.assert_ok()["ackCount"], if was_purged { 0 } else { 1 });
    // Stale, forged and foreign refs are warnings and delete nothing.
    let other = app.create_queue("refs-other").await;
    app.push_numbered(&other, 1).await;
    let foreign = app
        .post(&format!("/queues/{other}/messages/peek"), json!({}))
        .await;
    let foreign = foreign.assert_ok()["messages"][0]["ref"]
        .as_str()
        .expect("ref")
        .to_owned();
    let again = app
        .post(
            &format!("/queues/{queue}/messages/purge"),
            json!({"refs": [{"ref": refs[0]}, {"ref": "r-forged"}, {"ref": foreign}]}),
        )
        .await;
    let again = again.assert_ok();
    assert_eq!(again["purgeCount"], 0);
    let warnings = again["warnings"].as_object().expect("warnings");
    assert_eq!(warnings.len(), 3);
    assert!(
        warnings[refs[0]]
            .as_str()
            .expect("why")
            .contains("not found")
    );
    assert_eq!(app.metrics(&other).await["backlog_count"], 1);
    // A ref is required; a non-list is the wrong shape; the queue must exist.
    app.post(
        &format!("/queues/{queue}/messages/purge"),
        json!({"refs": [{}]}),
    )
    .await
    .assert_error(400, 10207);
    app.post(
        &format!("/queues/{queue}/messages/purge"),
        json!({"refs": "x"}),
    )
    .await
    .assert_error(400, 10207);
    let missing = "0".repeat(32);
    app.post(
        &format!("/queues/{missing}/messages/purge"),
        json!({"refs": []}),
    )
    .await
    .assert_error(404, 10104);
}

#[tokio::test]
async fn a_jurisdiction_is_stored_returned_and_never_changes() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/queues",
            json!({"queue_name": "in-eu", "jurisdiction": "eu"}),
        )
        .await;
    let queue = created.assert_ok()["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(created.result()["jurisdiction"], "eu");
    assert_eq!(
        app.get(&format!("/queues/{queue}")).await.assert_ok()["jurisdiction"],
        "eu"
    );
    let listed = app.get("/queues").await;
    assert_eq!(listed.assert_ok()[0]["jurisdiction"], "eu");
    // Repeating it is fine; changing it is not; leaving it out keeps it.
    app.request(
        Method::PATCH,
        &format!("/queues/{queue}"),
        Some(json!({"jurisdiction": "eu", "settings": {"delivery_delay": 1}})),
    )
    .await
    .assert_ok();
    app.request(
        Method::PUT,
        &format!("/queues/{queue}"),
        Some(json!({"jurisdiction": "us"})),
    )
    .await
    .assert_error(400, 10207);
    let kept = app
        .request(Method::PUT, &format!("/queues/{queue}"), Some(json!({})))
        .await;
    assert_eq!(kept.assert_ok()["jurisdiction"], "eu");
    for bad in [json!("mars"), json!("EU"), json!(1)] {
        app.post(
            "/queues",
            json!({"queue_name": "nowhere", "jurisdiction": bad}),
        )
        .await
        .assert_error(400, 10207);
    }
    // Without one, none is shown.
    let plain = app.post("/queues", json!({"queue_name": "anywhere"})).await;
    assert!(plain.assert_ok().get("jurisdiction").is_none());
}

#[tokio::test]
async fn a_deployment_may_take_only_some_jurisdictions() {
    let app = spawn_app_with(|s| s.limits.jurisdictions = vec!["eu".into()]).await;
    app.post("/queues", json!({"queue_name": "a", "jurisdiction": "eu"}))
        .await
        .assert_ok();
    let refused = app
        .post(
            "/queues",
            json!({"queue_name": "b", "jurisdiction": "fedramp"}),
        )
        .await;
    refused.assert_error(400, 10207);
}

async fn get_root(
    app: &crate::helpers::TestApp,
    path: &str,
    token: Option<&str>,
) -> crate::helpers::Reply {
    let mut request = app.client.get(format!("{}/client/v4{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    app.send_raw(request).await
}

#[tokio::test]
async fn accounts_memberships_and_token_verify_answer_about_the_token() {
    let app = spawn_app().await;
    let accounts = get_root(&app, "/accounts", Some(&app.token)).await;
    assert_eq!(
        accounts.assert_ok(),
        &json!([{"id": ACCOUNT, "name": ACCOUNT, "type": "standard"}])
    );
    assert_eq!(accounts.body["result_info"]["count"], 1);
    let memberships = get_root(&app, "/memberships", Some(&app.token)).await;
    let membership = &memberships.assert_ok()[0];
    assert_eq!(membership["account"]["id"], ACCOUNT);
    assert_eq!(membership["status"], "accepted");
    assert_eq!(
        membership["permissions"],
        json!([
            "queues:read",
            "queues:write",
            "messages:push",
            "messages:pull"
        ])
    );
    let verified = get_root(&app, "/user/tokens/verify", Some(&app.token)).await;
    let verified = verified.assert_ok();
    assert_eq!(verified["status"], "active");
    assert_eq!(verified["id"].as_str().map(str::len), Some(32));
    assert!(
        verified["expires_on"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    // Served at the root too; a read-only token may ask; no token is 401.
    let read_only = app.mint(&[ACCOUNT, "second"], "queues:read", None);
    let at_root = app
        .send_raw(
            app.client
                .get(format!("{}/accounts", app.base))
                .bearer_auth(&read_only),
        )
        .await;
    let ids: Vec<Value> = at_root
        .assert_ok()
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(ids, [json!(ACCOUNT), json!("second")]);
    for path in ["/accounts", "/memberships", "/user/tokens/verify"] {
        get_root(&app, path, None).await.assert_error(401, 10000);
        get_root(&app, path, Some("not-a-token"))
            .await
            .assert_error(401, 10000);
    }
    // A token for every account names none: leaseq keeps no list of accounts.
    let everything = app.mint(&["*"], "queues:read", None);
    let none = get_root(&app, "/accounts", Some(&everything)).await;
    assert_eq!(none.assert_ok(), &json!([]));
}
