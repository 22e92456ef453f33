use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{eventually, spawn_app};

#[tokio::test]
async fn an_unacked_message_comes_back_after_its_visibility_timeout() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "job"})).await.assert_ok();
    let first = app
        .pull_messages(&queue, json!({"visibility_timeout_ms": 200}))
        .await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["attempts"], 1);
    assert!(
        app.pull_messages(&queue, json!({})).await.is_empty(),
        "hidden while leased"
    );

    let second = eventually(Duration::from_secs(5), || async {
        let got = app
            .pull_messages(&queue, json!({"visibility_timeout_ms": 60000}))
            .await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(second[0]["id"], first[0]["id"]);
    assert_eq!(second[0]["attempts"], 2);
    assert_eq!(second[0]["timestamp_ms"], first[0]["timestamp_ms"]);
    assert_ne!(
        second[0]["lease_id"], first[0]["lease_id"],
        "a new delivery has a new lease"
    );

    // The old lease can no longer retry the message ...
    let old = first[0]["lease_id"].clone();
    let reply = app
        .ack(&queue, json!({"retries": [{"lease_id": old}]}))
        .await;
    let result = reply.assert_ok();
    assert_eq!(result["retryCount"], 0);
    assert!(result["warnings"][old.as_str().expect("lease")].is_string());
    assert!(
        app.pull_messages(&queue, json!({})).await.is_empty(),
        "the stale retry changed nothing"
    );
    // ... while the current one can.
    let reply = app
        .ack(
            &queue,
            json!({"retries": [{"lease_id": second[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(reply.assert_ok()["retryCount"], 1);
    let third = app.pull_messages(&queue, json!({})).await;
    assert_eq!(third[0]["attempts"], 3);
}

#[tokio::test]
async fn an_ack_with_an_expired_but_authentic_lease_still_deletes() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "job"})).await.assert_ok();
    let first = app
        .pull_messages(&queue, json!({"visibility_timeout_ms": 50}))
        .await;
    clock.advance(Duration::from_millis(120));
    let reply = app
        .ack(
            &queue,
            json!({"acks": [{"lease_id": first[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(reply.assert_ok()["ackCount"], 1);
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
    assert!(
        app.pull_messages(&queue, json!({})).await.is_empty(),
        "the reclaimed id is skipped"
    );
    let again = app
        .ack(
            &queue,
            json!({"acks": [{"lease_id": first[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(
        again.assert_ok()["ackCount"],
        0,
        "a second ack finds nothing"
    );
}

#[tokio::test]
async fn a_retry_with_a_delay_stays_invisible_until_due() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "job"})).await.assert_ok();
    let first = app.pull_messages(&queue, json!({})).await;
    let reply = app
        .ack(
            &queue,
            json!({"retries": [{"lease_id": first[0]["lease_id"], "delay_seconds": 1}]}),
        )
        .await;
    assert_eq!(
        reply.assert_ok(),
        &json!({"ackCount": 0, "retryCount": 1, "warnings": {}})
    );
    let started = std::time::Instant::now();
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    let again = eventually(Duration::from_secs(5), || async {
        let got = app.pull_messages(&queue, json!({})).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(again[0]["attempts"], 2);
}

#[tokio::test]
async fn forged_tampered_and_foreign_leases_are_warnings_that_change_nothing() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let other = app.create_queue("other").await;
    app.push(&queue, json!({"body": "a"})).await.assert_ok();
    app.push(&other, json!({"body": "b"})).await.assert_ok();
    let mine = app.pull_messages(&queue, json!({})).await;
    let theirs = app.pull_messages(&other, json!({})).await;
    let lease = mine[0]["lease_id"].as_str().expect("lease").to_owned();
    let mut flipped = lease.clone().into_bytes();
    flipped[40] = if flipped[40] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let foreign = theirs[0]["lease_id"].as_str().expect("lease").to_owned();
    let bad = [
        flipped.clone(),
        foreign.clone(),
        "garbage".into(),
        String::new(),
        "{}*: ".into(),
    ];
    let acks: Vec<Value> = bad.iter().map(|l| json!({"lease_id": l})).collect();
    let retries: Vec<Value> = bad
        .iter()
        .map(|l| json!({"lease_id": l, "delay_seconds": 0}))
        .collect();
    let reply = app
        .ack(&queue, json!({"acks": acks, "retries": retries}))
        .await;
    let result = reply.assert_ok();
    assert_eq!(result["ackCount"], 0);
    assert_eq!(result["retryCount"], 0);
    let warnings = result["warnings"].as_object().expect("warnings");
    for l in &bad {
        assert!(
            warnings.contains_key(l.as_str()),
            "no warning for {l:?}: {result}"
        );
    }
    assert_eq!(app.metrics(&queue).await["backlog_count"], 1);
    assert_eq!(app.metrics(&other).await["backlog_count"], 1);
    // The genuine leases still work.
    assert_eq!(
        app.ack(&queue, json!({"acks": [{"lease_id": lease}]}))
            .await
            .assert_ok()["ackCount"],
        1
    );
    assert_eq!(
        app.ack(&other, json!({"acks": [{"lease_id": foreign}]}))
            .await
            .assert_ok()["ackCount"],
        1
    );
}

#[tokio::test]
async fn an_ack_without_a_lease_id_is_a_schema_error() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.ack(&queue, json!({"acks": [{}]}))
        .await
        .assert_error(400, 10207);
    app.ack(
        &queue,
        json!({"retries": [{"lease_id": "x", "delay_seconds": 86_401}]}),
    )
    .await
    .assert_error(400, 10203);
    assert_eq!(
        app.ack(&queue, json!({})).await.assert_ok(),
        &json!({"ackCount": 0, "retryCount": 0, "warnings": {}})
    );
    let missing = "0".repeat(32);
    app.ack(&missing, json!({"acks": []}))
        .await
        .assert_error(404, 10104);
}

#[tokio::test]
async fn concurrent_pullers_never_share_a_message_and_every_message_is_acked_once() {
    const MESSAGES: usize = 2_000;
    const PULLERS: usize = 8;
    let app = Arc::new(spawn_app().await);
    let queue = app.create_queue("busy").await;
    app.push_numbered(&queue, MESSAGES).await;

    let delivered: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..PULLERS {
        let app = app.clone();
        let queue = queue.clone();
        let delivered = delivered.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            let mut empty_pulls = 0;
            while empty_pulls < 3 {
                let messages = app
                    .pull_messages(
                        &queue,
                        json!({"batch_size": 17, "visibility_timeout_ms": 60000}),
                    )
                    .await;
                if messages.is_empty() {
                    empty_pulls += 1;
                    continue;
                }
                empty_pulls = 0;
                {
                    let mut seen = delivered.lock().expect("lock");
                    for m in &messages {
                        *seen
                            .entry(m["body"].as_str().expect("body").to_owned())
                            .or_default() += 1;
                    }
                }
                let acks: Vec<Value> = messages
                    .iter()
                    .map(|m| json!({"lease_id": m["lease_id"]}))
                    .collect();
                let reply = app.ack(&queue, json!({"acks": acks})).await;
                let result = reply.assert_ok();
                assert_eq!(result["warnings"], json!({}));
                acked += result["ackCount"].as_u64().expect("count") as usize;
            }
            acked
        }));
    }
    let mut total_acked = 0;
    for task in tasks {
        total_acked += task.await.expect("puller finished");
    }
    let delivered = std::mem::take(&mut *delivered.lock().expect("lock"));
    assert_eq!(delivered.len(), MESSAGES, "every message delivered");
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let expected: HashSet<String> = (0..MESSAGES).map(|i| i.to_string()).collect();
    assert_eq!(delivered.keys().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(total_acked, MESSAGES, "every message acked exactly once");
    assert_eq!(
        app.metrics(&queue).await,
        json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0,
                   "inflight_count": 0, "delayed_count": 0,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
    );
}

/// A consumer with `retry_delay_max`: retries that give no delay back off
/// exponentially (SPEC §13), and so do expired leases.
async fn backoff_queue(
    app: &crate::helpers::TestApp,
    retry_delay: u32,
    retry_delay_max: u32,
) -> String {
    let queue = app.create_queue("backoff").await;
    app.post(
        &format!("/queues/{queue}/consumers"),
        json!({"type": "http_pull", "settings": {"max_retries": 20,
               "retry_delay": retry_delay, "retry_delay_max": retry_delay_max}}),
    )
    .await
    .assert_ok();
    app.push(&queue, json!({"body": "job"})).await.assert_ok();
    queue
}

#[tokio::test]
async fn retries_without_a_delay_back_off_1_2_4_8_16_seconds() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = backoff_queue(&app, 1, 60).await;
    let mut pulled = app.pull_messages(&queue, json!({})).await;
    for (retry, wait_secs) in [1u64, 2, 4, 8, 16].into_iter().enumerate() {
        assert_eq!(pulled.len(), 1, "delivery {}", retry + 1);
        app.ack(
            &queue,
            json!({"retries": [{"lease_id": pulled[0]["lease_id"]}]}),
        )
        .await
        .assert_ok();
        clock.advance(Duration::from_millis(wait_secs * 1000 - 50));
        assert!(
            app.pull_messages(&queue, json!({})).await.is_empty(),
            "retry {} is not back before {wait_secs} s",
            retry + 1
        );
        clock.advance(Duration::from_millis(50));
        pulled = app.pull_messages(&queue, json!({})).await;
    }
    assert_eq!(pulled[0]["attempts"], 6);
}

#[tokio::test]
async fn the_backoff_stops_at_retry_delay_max_and_applies_to_expired_leases() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = backoff_queue(&app, 2, 5).await;
    // Expired leases: back after 2, then 4, then 5 (capped) seconds past the expiry.
    for wait_secs in [2u64, 4, 5, 5] {
        let pulled = app
            .pull_messages(&queue, json!({"visibility_timeout_ms": 1000}))
            .await;
        assert_eq!(pulled.len(), 1);
        clock.advance(Duration::from_millis(1000 + wait_secs * 1000 - 50));
        assert!(
            app.pull_messages(&queue, json!({})).await.is_empty(),
            "back before {wait_secs} s"
        );
        clock.advance(Duration::from_millis(50));
    }
    assert_eq!(app.pull_messages(&queue, json!({})).await.len(), 1);
    // Without retry_delay_max, an expired lease is visible at once, as before.
    let (plain, plain_clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = backoff_queue(&plain, 2, 0).await;
    plain
        .pull_messages(&queue, json!({"visibility_timeout_ms": 1000}))
        .await;
    plain_clock.advance(Duration::from_millis(1001));
    assert_eq!(plain.pull_messages(&queue, json!({})).await.len(), 1);
}
