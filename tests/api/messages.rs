use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{eventually, spawn_app};

#[tokio::test]
async fn a_pushed_message_is_pulled_with_every_cloudflare_field() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let before = leaseq::model::now_ms();
    let pushed = app
        .push(
            &queue,
            json!({"body": "hello world", "content_type": "text"}),
        )
        .await;
    assert_eq!(
        pushed.assert_ok(),
        &json!({"metadata": {"metrics": {"backlog_count": 1, "backlog_bytes": 11, "oldest_message_timestamp_ms": pushed.result()["metadata"]["metrics"]["oldest_message_timestamp_ms"]}}})
    );
    let oldest = pushed.result()["metadata"]["metrics"]["oldest_message_timestamp_ms"]
        .as_u64()
        .expect("ms");
    assert!(oldest >= before && oldest <= leaseq::model::now_ms());

    let reply = app
        .pull(
            &queue,
            json!({"batch_size": 10, "visibility_timeout_ms": 60000}),
        )
        .await;
    let result = reply.assert_ok();
    assert_eq!(result["message_backlog_count"], 1);
    assert_eq!(
        result["metadata"]["metrics"],
        json!({"backlog_count": 1, "backlog_bytes": 11, "oldest_message_timestamp_ms": oldest})
    );
    let messages = result["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["id"].as_str().map(str::len), Some(32));
    assert_eq!(m["body"], "hello world");
    assert_eq!(m["attempts"], 1);
    assert_eq!(m["timestamp_ms"], oldest);
    assert_eq!(
        m["metadata"],
        json!({"CF-Content-Type": "text", "CF-sourceMessageSource": "api"})
    );
    let lease = m["lease_id"].as_str().expect("lease_id");
    assert!(!lease.is_empty());

    let acked = app
        .ack(&queue, json!({"acks": [{"lease_id": lease}]}))
        .await;
    assert_eq!(
        acked.assert_ok(),
        &json!({"ackCount": 1, "retryCount": 0, "warnings": {}})
    );
    assert_eq!(
        app.metrics(&queue).await,
        json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0,
                   "inflight_count": 0, "delayed_count": 0,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
    );
}

#[tokio::test]
async fn empty_bodies_can_be_acked_and_deleted() {
    let app = spawn_app().await;
    let queue = app.create_queue("empties").await;
    for _ in 0..2 {
        app.push(&queue, json!({"body": ""})).await.assert_ok();
    }
    let pulled = app.pull_messages(&queue, json!({"batch_size": 1})).await;
    let acked = app
        .ack(
            &queue,
            json!({"acks": [{"lease_id": pulled[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 1);
    let listed = app.get(&format!("/queues/{queue}/messages")).await;
    let id = listed.assert_ok()[0]["id"].as_str().expect("id").to_owned();
    app.request(
        reqwest::Method::DELETE,
        &format!("/queues/{queue}/messages/{id}"),
        None,
    )
    .await
    .assert_ok();
    let metrics = app.metrics(&queue).await;
    assert_eq!(
        (&metrics["backlog_count"], &metrics["backlog_bytes"]),
        (&json!(0), &json!(0))
    );
}

#[tokio::test]
async fn json_bodies_are_delivered_as_their_json_text() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let raw = r#"{"body": {"user": 42, "tags": ["a", "b"]}, "content_type": "json"}"#;
    let path = app.url(&format!("/queues/{queue}/messages"));
    app.send_raw(app.client.post(&path).bearer_auth(&app.token).body(raw))
        .await
        .assert_ok();
    app.push(&queue, json!({"body": "quoted", "content_type": "json"}))
        .await
        .assert_ok();
    app.push(&queue, json!({"body": [1, 2]})).await.assert_ok();
    let messages = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    let bodies: Vec<&str> = messages
        .iter()
        .map(|m| m["body"].as_str().expect("string body"))
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"user": 42, "tags": ["a", "b"]}"#,
            r#""quoted""#,
            "[1,2]"
        ],
        "kept as sent"
    );
    for m in &messages {
        assert_eq!(m["metadata"]["CF-Content-Type"], "json");
    }
    let parsed: Value = serde_json::from_str(bodies[0]).expect("valid JSON");
    assert_eq!(parsed["user"], 42);
}

#[tokio::test]
async fn a_batch_is_stored_in_order_and_counted() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let messages: Vec<Value> = (0..100)
        .map(|i| json!({"body": format!("m{i:03}")}))
        .collect();
    let pushed = app.push_batch(&queue, json!({"messages": messages})).await;
    assert_eq!(
        pushed.assert_ok()["metadata"]["metrics"]["backlog_count"],
        100
    );
    assert_eq!(pushed.result()["metadata"]["metrics"]["backlog_bytes"], 400);
    let first = app.pull_messages(&queue, json!({"batch_size": 100})).await;
    let bodies: Vec<String> = first
        .iter()
        .map(|m| m["body"].as_str().expect("body").to_owned())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn a_batch_with_one_invalid_message_stores_nothing() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let cases = [
        (
            json!({"messages": [{"body": "ok"}, {"body": "x", "content_type": "bytes"}]}),
            400,
            10203,
        ),
        (
            json!({"messages": [{"body": "ok"}, {"body": "x", "delay_seconds": 86_401}]}),
            400,
            10203,
        ),
        (
            json!({"messages": [{"body": "ok"}, {"content_type": "text"}]}),
            400,
            10207,
        ),
        (
            json!({"messages": [{"body": "ok"}, {"body": "x".repeat(128_001)}]}),
            413,
            10204,
        ),
        (
            json!({"messages": [{"body": "ok"}, {"body": {}, "content_type": "text"}]}),
            400,
            10203,
        ),
        (
            json!({"messages": [{"body": "ok"}], "delay_seconds": -5}),
            400,
            10202,
        ),
        (json!({"messages": [{"body": "ok"}, 7]}), 400, 10207),
    ];
    for (body, status, code) in cases {
        app.push_batch(&queue, body)
            .await
            .assert_error(status, code);
    }
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
    assert!(
        app.pull_messages(&queue, json!({"batch_size": 100}))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn batch_limits_are_enforced() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let too_many: Vec<Value> = (0..101).map(|_| json!({"body": "x"})).collect();
    app.push_batch(&queue, json!({"messages": too_many}))
        .await
        .assert_error(400, 10206);
    let too_big: Vec<Value> = (0..3)
        .map(|_| json!({"body": "x".repeat(100_000)}))
        .collect();
    app.push_batch(&queue, json!({"messages": too_big}))
        .await
        .assert_error(413, 10205);
    app.push_batch(&queue, json!({"messages": []}))
        .await
        .assert_error(400, 10207);
    app.push_batch(&queue, json!({}))
        .await
        .assert_error(400, 10207);
    app.push(&queue, json!({"body": "x".repeat(128_001)}))
        .await
        .assert_error(413, 10204);
    // Exactly at the limit is fine.
    app.push(&queue, json!({"body": "x".repeat(128_000)}))
        .await
        .assert_ok();
}

#[tokio::test]
async fn pull_without_a_body_uses_the_defaults() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push_numbered(&queue, 8).await;
    let path = app.url(&format!("/queues/{queue}/messages/pull"));
    let no_body = app
        .send_raw(app.client.post(&path).bearer_auth(&app.token))
        .await;
    assert_eq!(
        no_body.assert_ok()["messages"].as_array().map(Vec::len),
        Some(5),
        "default batch_size is 5"
    );
    let empty_object = app.pull_messages(&queue, json!({})).await;
    assert_eq!(empty_object.len(), 3);
    let empty = app.pull(&queue, json!({})).await;
    assert_eq!(empty.assert_ok()["messages"], json!([]));
    assert_eq!(empty.result()["message_backlog_count"], 8);
}

#[tokio::test]
async fn pull_uses_the_consumer_settings_when_the_request_does_not_say() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.post(
        &format!("/queues/{queue}/consumers"),
        json!({"type": "http_pull", "settings": {"batch_size": 2, "visibility_timeout_ms": 100}}),
    )
    .await
    .assert_ok();
    app.push_numbered(&queue, 5).await;
    let first = app.pull_messages(&queue, json!({})).await;
    assert_eq!(first.len(), 2);
    let rest = app
        .pull_messages(
            &queue,
            json!({"batch_size": 5, "visibility_timeout_ms": 60000}),
        )
        .await;
    assert_eq!(rest.len(), 3);
    // The consumer's 100 ms visibility timeout applied to the first pull: those come back.
    let again = eventually(Duration::from_secs(5), || async {
        let got = app
            .pull_messages(
                &queue,
                json!({"batch_size": 5, "visibility_timeout_ms": 60000}),
            )
            .await;
        (got.len() == 2).then_some(got)
    })
    .await;
    let mut again_ids: Vec<&Value> = again.iter().map(|m| &m["id"]).collect();
    let mut first_ids: Vec<&Value> = first.iter().map(|m| &m["id"]).collect();
    again_ids.sort_by_key(|v| v.to_string());
    first_ids.sort_by_key(|v| v.to_string());
    assert_eq!(again_ids, first_ids);
    assert!(again.iter().all(|m| m["attempts"] == 2));
}

#[tokio::test]
async fn pull_bounds_are_validated() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    for body in [
        json!({"batch_size": 0}),
        json!({"batch_size": 101}),
        json!({"batch_size": 2.5}),
        json!({"batch_size": "5"}),
        json!({"visibility_timeout_ms": 0}),
        json!({"visibility_timeout_ms": 43_200_001}),
        json!({"visibility_timeout_ms": -1}),
    ] {
        app.pull(&queue, body).await.assert_error(400, 10207);
    }
}

#[tokio::test]
async fn peek_shows_messages_without_leasing_them() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push_numbered(&queue, 3).await;
    let peeked = app
        .post(
            &format!("/queues/{queue}/messages/peek"),
            json!({"batch_size": 2}),
        )
        .await;
    let messages = peeked.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["body"], "0");
    assert!(messages[0].get("lease_id").is_none());
    assert_eq!(messages[0]["attempts"], 0);
    let pulled = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(pulled.len(), 3, "peek leased nothing");
    let after = app
        .post(&format!("/queues/{queue}/messages/peek"), json!({}))
        .await;
    assert_eq!(after.assert_ok()["messages"], json!([]));
}

#[tokio::test]
async fn a_delayed_push_stays_invisible_until_due() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "later", "delay_seconds": 1}))
        .await
        .assert_ok();
    app.push_batch(&queue, json!({"delay_seconds": 1, "messages": [{"body": "batch-later"}, {"body": "now", "delay_seconds": 0}]}))
        .await
        .assert_ok();
    let now = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    let bodies: Vec<&str> = now
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["now"]);
    assert_eq!(
        app.metrics(&queue).await["backlog_count"],
        3,
        "delayed messages count in the backlog"
    );
    let started = std::time::Instant::now();
    let later = std::sync::Mutex::new(Vec::new());
    eventually(Duration::from_secs(5), || async {
        let got = app.pull_messages(&queue, json!({"batch_size": 10})).await;
        let mut later = later.lock().expect("lock");
        later.extend(got);
        (later.len() == 2).then_some(())
    })
    .await;
    let later = later.into_inner().expect("lock");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "delivered too early"
    );
    assert!(later.iter().all(|m| m["attempts"] == 1));
}

#[tokio::test]
async fn the_queue_delivery_delay_applies_unless_a_message_says_zero() {
    let app = spawn_app().await;
    let queue = app
        .post(
            "/queues",
            json!({"queue_name": "slow", "settings": {"delivery_delay": 60}}),
        )
        .await
        .assert_ok()["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push(&queue, json!({"body": "waits"})).await.assert_ok();
    app.push(&queue, json!({"body": "now", "delay_seconds": 0}))
        .await
        .assert_ok();
    let messages = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    let bodies: Vec<&str> = messages
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["now"]);
}

#[tokio::test]
async fn metrics_are_exact_after_pushes_pulls_acks_and_retries() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    // Bodies of 1, 2, .. 10 bytes: 55 bytes in all.
    let messages: Vec<Value> = (1..=10).map(|n| json!({"body": "x".repeat(n)})).collect();
    app.push_batch(&queue, json!({"messages": messages}))
        .await
        .assert_ok();
    let first = app.metrics(&queue).await;
    assert_eq!(first["backlog_count"], 10);
    assert_eq!(first["backlog_bytes"], 55);
    let oldest = first["oldest_message_timestamp_ms"].as_u64().expect("ms");

    let pulled = app
        .pull_messages(
            &queue,
            json!({"batch_size": 4, "visibility_timeout_ms": 60000}),
        )
        .await;
    let leased = app.metrics(&queue).await;
    for field in [
        "backlog_count",
        "backlog_bytes",
        "oldest_message_timestamp_ms",
    ] {
        assert_eq!(
            leased[field], first[field],
            "leased messages are still backlog"
        );
    }
    assert_eq!(leased["inflight_count"], 4);
    // Ack the 1- and 2-byte messages, retry the 3-byte one with a delay, keep the 4-byte one leased.
    let lease = |i: usize| pulled[i]["lease_id"].clone();
    let reply = app
        .ack(&queue, json!({"acks": [{"lease_id": lease(0)}, {"lease_id": lease(1)}], "retries": [{"lease_id": lease(2), "delay_seconds": 30}]}))
        .await;
    assert_eq!(
        reply.assert_ok(),
        &json!({"ackCount": 2, "retryCount": 1, "warnings": {}})
    );
    assert_eq!(
        app.metrics(&queue).await,
        json!({"backlog_count": 8, "backlog_bytes": 52, "oldest_message_timestamp_ms": oldest,
               "inflight_count": 1, "delayed_count": 1,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
    );

    // A later push does not change the oldest timestamp; acking everything empties it all.
    app.push(&queue, json!({"body": "12345"})).await.assert_ok();
    assert_eq!(app.metrics(&queue).await["backlog_bytes"], 57);
    let rest = app.pull_messages(&queue, json!({"batch_size": 100})).await;
    assert_eq!(
        rest.len(),
        7,
        "6 ready originals and the new one; the retried one is delayed"
    );
    let mut acks: Vec<Value> = rest
        .iter()
        .map(|m| json!({"lease_id": m["lease_id"]}))
        .collect();
    acks.push(json!({"lease_id": lease(3)}));
    let reply = app.ack(&queue, json!({"acks": acks})).await;
    assert_eq!(reply.assert_ok()["ackCount"], 8);
    let remaining = app.metrics(&queue).await;
    assert_eq!(remaining["backlog_count"], 1, "the delayed retry");
    assert_eq!(remaining["backlog_bytes"], 3);
    assert_eq!(
        remaining["oldest_message_timestamp_ms"], oldest,
        "the retried message is the oldest"
    );
}

#[tokio::test]
async fn the_oldest_timestamp_follows_the_oldest_unacked_message() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let mut stamps = Vec::new();
    for body in ["first", "second", "third"] {
        let pushed = app.push(&queue, json!({"body": body})).await;
        stamps
            .push(pushed.assert_ok()["metadata"]["metrics"]["oldest_message_timestamp_ms"].clone());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let messages = app.pull_messages(&queue, json!({"batch_size": 3})).await;
    let lease = |i: usize| json!({"lease_id": messages[i]["lease_id"]});
    assert_eq!(
        app.metrics(&queue).await["oldest_message_timestamp_ms"],
        stamps[0]
    );
    // Acking the middle one changes nothing; acking the first moves to the third's time.
    app.ack(&queue, json!({"acks": [lease(1)]}))
        .await
        .assert_ok();
    assert_eq!(
        app.metrics(&queue).await["oldest_message_timestamp_ms"],
        messages[0]["timestamp_ms"]
    );
    app.ack(&queue, json!({"acks": [lease(0)]}))
        .await
        .assert_ok();
    assert_eq!(
        app.metrics(&queue).await["oldest_message_timestamp_ms"],
        messages[2]["timestamp_ms"]
    );
    app.ack(&queue, json!({"acks": [lease(2)]}))
        .await
        .assert_ok();
    assert_eq!(app.metrics(&queue).await["oldest_message_timestamp_ms"], 0);
    let leftovers: Vec<String> = app
        .redis_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(&queue) && !k.ends_with(":meta"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "an empty queue keeps only its metadata: {leftovers:?}"
    );
}
