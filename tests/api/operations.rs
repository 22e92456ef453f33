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
