use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, spawn_app};

async fn consumer(app: &TestApp, queue: &str, body: Value) {
    app.post(&format!("/queues/{queue}/consumers"), body)
        .await
        .assert_ok();
}

async fn queue_id(app: &TestApp, name: &str) -> Option<String> {
    let listed = app.get(&format!("/queues?name={name}")).await;
    listed.assert_ok().as_array()?.first()?["queue_id"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_message_is_delivered_max_retries_plus_one_times_then_lands_in_the_dlq() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    consumer(&app, &queue, json!({"type": "http_pull", "dead_letter_queue": "jobs-dlq", "settings": {"max_retries": 2, "visibility_timeout_ms": 200}})).await;
    app.push(&queue, json!({"body": {"job": 1}, "content_type": "json"}))
        .await
        .assert_ok();
    let first = app.pull_messages(&queue, json!({})).await;
    let (id, timestamp) = (first[0]["id"].clone(), first[0]["timestamp_ms"].clone());

    // Delivery 1 fails by retry, delivery 2 by lease expiry, delivery 3 by retry: gone.
    app.ack(
        &queue,
        json!({"retries": [{"lease_id": first[0]["lease_id"]}]}),
    )
    .await
    .assert_ok();
    let second = app.pull_messages(&queue, json!({})).await;
    assert_eq!(second[0]["attempts"], 2);
    let third = eventually(Duration::from_secs(5), || async {
        let got = app.pull_messages(&queue, json!({})).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(third[0]["attempts"], 3);
    let reply = app
        .ack(
            &queue,
            json!({"retries": [{"lease_id": third[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(reply.assert_ok()["retryCount"], 1);
    assert!(
        app.pull_messages(&queue, json!({})).await.is_empty(),
        "never a fourth delivery"
    );
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);

    let dlq = queue_id(&app, "jobs-dlq")
        .await
        .expect("the dead-letter queue was created");
    let dead = app.pull_messages(&dlq, json!({})).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], id, "the id is kept");
    assert_eq!(dead[0]["timestamp_ms"], timestamp);
    assert_eq!(dead[0]["body"], r#"{"job":1}"#);
    assert_eq!(dead[0]["metadata"]["CF-Content-Type"], "json");
    assert_eq!(
        dead[0]["attempts"], 1,
        "deliveries start over in the dead-letter queue"
    );
    assert_eq!(
        app.metrics(&dlq).await["oldest_message_timestamp_ms"],
        timestamp
    );
}

#[tokio::test]
async fn a_message_whose_last_lease_expires_moves_to_an_existing_dlq() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = app.create_queue("jobs").await;
    let dlq = app.create_queue("graveyard").await;
    consumer(&app, &queue, json!({"type": "http_pull", "dead_letter_queue": "graveyard", "settings": {"max_retries": 0}})).await;
    app.push_numbered(&queue, 3).await;
    let pulled = app
        .pull_messages(
            &queue,
            json!({"batch_size": 3, "visibility_timeout_ms": 100}),
        )
        .await;
    assert_eq!(pulled.len(), 3);
    clock.advance(Duration::from_millis(150));
    // The next pull reclaims the expired leases: with max_retries 0 they are dead.
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
    let dead = app.pull_messages(&dlq, json!({"batch_size": 10})).await;
    let mut bodies: Vec<&str> = dead
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["0", "1", "2"]);
}

#[tokio::test]
async fn without_a_dlq_an_exhausted_message_is_deleted() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    consumer(
        &app,
        &queue,
        json!({"type": "http_pull", "settings": {"max_retries": 1}}),
    )
    .await;
    app.push(&queue, json!({"body": "x"})).await.assert_ok();
    for attempt in 1..=2 {
        let got = app.pull_messages(&queue, json!({})).await;
        assert_eq!(got[0]["attempts"], attempt);
        app.ack(
            &queue,
            json!({"retries": [{"lease_id": got[0]["lease_id"]}]}),
        )
        .await
        .assert_ok();
    }
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    assert_eq!(
        app.metrics(&queue).await,
        json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0,
                   "inflight_count": 0, "delayed_count": 0,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
    );
    let names: Vec<String> = app
        .get("/queues")
        .await
        .assert_ok()
        .as_array()
        .expect("array")
        .iter()
        .map(|q| q["queue_name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["jobs"], "no queue was created");
}

#[tokio::test]
async fn a_queue_cannot_be_its_own_dlq() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    app.post(
        &format!("/queues/{queue}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "jobs"}),
    )
    .await
    .assert_error(400, 10207);
}

#[tokio::test]
async fn a_paused_queue_accepts_pushes_and_refuses_pulls() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    let path = format!("/queues/{queue}");
    app.request(
        Method::PATCH,
        &path,
        Some(json!({"settings": {"delivery_paused": true}})),
    )
    .await
    .assert_ok();
    app.push(&queue, json!({"body": "waiting"}))
        .await
        .assert_ok();
    let refused = app.pull(&queue, json!({})).await;
    refused.assert_error(409, 10252);
    assert_eq!(
        refused
            .headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok()),
        Some("false")
    );
    app.request(
        Method::PATCH,
        &path,
        Some(json!({"settings": {"delivery_paused": false}})),
    )
    .await
    .assert_ok();
    assert_eq!(
        app.pull_messages(&queue, json!({})).await[0]["body"],
        "waiting"
    );
}

#[tokio::test]
async fn purge_deletes_ready_delayed_and_leased_messages() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    let path = format!("/queues/{queue}/purge");
    let status = app.get(&path).await;
    assert_eq!(
        status.assert_ok(),
        &json!({"completed": "true", "started_at": null})
    );
    app.push_numbered(&queue, 10).await;
    app.push(&queue, json!({"body": "later", "delay_seconds": 600}))
        .await
        .assert_ok();
    let leased = app.pull_messages(&queue, json!({"batch_size": 3})).await;
    assert_eq!(app.metrics(&queue).await["backlog_count"], 11);

    app.post(&path, json!({"delete_messages_permanently": false}))
        .await
        .assert_error(400, 10207);
    let purged = app
        .post(&path, json!({"delete_messages_permanently": true}))
        .await;
    assert_eq!(purged.assert_ok()["queue_id"], queue.as_str());
    assert_eq!(
        app.metrics(&queue).await,
        json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0,
                   "inflight_count": 0, "delayed_count": 0,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
    );
    assert!(
        app.pull_messages(&queue, json!({"batch_size": 100}))
            .await
            .is_empty()
    );
    let reply = app
        .ack(
            &queue,
            json!({"acks": [{"lease_id": leased[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(
        reply.assert_ok()["ackCount"],
        0,
        "a lease of a purged message acks nothing"
    );
    let status = app.get(&path).await;
    assert_eq!(status.assert_ok()["completed"], "true");
    assert!(
        status.result()["started_at"]
            .as_str()
            .is_some_and(|s| humantime::parse_rfc3339(s).is_ok())
    );
    // The queue works after a purge.
    app.push(&queue, json!({"body": "fresh"})).await.assert_ok();
    assert_eq!(app.metrics(&queue).await["backlog_bytes"], 5);
}

#[tokio::test]
async fn extend_keeps_a_message_hidden_past_its_original_timeout() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = app.create_queue("jobs").await;
    app.push(&queue, json!({"body": "long job"}))
        .await
        .assert_ok();
    let leased = app
        .pull_messages(&queue, json!({"visibility_timeout_ms": 300}))
        .await;
    let lease = leased[0]["lease_id"].clone();
    let path = format!("/queues/{queue}/messages/extend");
    let extend = |body: Value| app.post(&path, body);
    for _ in 0..3 {
        clock.advance(Duration::from_millis(150));
        let reply =
            extend(json!({"leases": [{"lease_id": lease, "visibility_timeout_ms": 300}]})).await;
        assert_eq!(
            reply.assert_ok(),
            &json!({"extendCount": 1, "warnings": {}})
        );
    }
    // 450 ms after the pull, well past the original 300 ms: still hidden.
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    let bad = extend(json!({"leases": [{"lease_id": "forged"}, {"lease_id": lease, "visibility_timeout_ms": 0}]})).await;
    bad.assert_error(400, 10207);
    let forged = extend(json!({"leases": [{"lease_id": "forged"}]})).await;
    assert_eq!(forged.assert_ok()["extendCount"], 0);
    assert!(forged.result()["warnings"]["forged"].is_string());
    // Once the lease has run out, extending it is a warning and the message comes back.
    clock.advance(Duration::from_millis(400));
    let stale = extend(json!({"leases": [{"lease_id": lease}]})).await;
    assert_eq!(stale.assert_ok()["extendCount"], 0);
    assert_eq!(app.pull_messages(&queue, json!({})).await[0]["attempts"], 2);
}

#[tokio::test]
async fn deliver_at_ms_schedules_the_first_delivery() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    let at = leaseq::model::now_ms() + 800;
    app.push(&queue, json!({"body": "scheduled", "deliver_at_ms": at}))
        .await
        .assert_ok();
    app.push(&queue, json!({"body": "overdue", "deliver_at_ms": 1}))
        .await
        .assert_ok();
    let now: Vec<Value> = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["body"], "overdue", "a past time delivers at once");
    let later = eventually(Duration::from_secs(5), || async {
        let got = app.pull_messages(&queue, json!({})).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(leaseq::model::now_ms() >= at);
    assert_eq!(later[0]["body"], "scheduled");
    app.push(
        &queue,
        json!({"body": "x", "deliver_at_ms": at, "delay_seconds": 1}),
    )
    .await
    .assert_error(400, 10203);
}

/// Two brokers on one Redis, one key prefix and one set of keys.
async fn two_brokers() -> (TestApp, TestApp) {
    let jwt = format!("jwt-{}", uuid::Uuid::now_v7().simple());
    let lease = format!("lease-{}", uuid::Uuid::now_v7().simple());
    let (jwt_b, lease_b) = (jwt.clone(), lease.clone());
    let a = crate::helpers::spawn_app_with(move |s| {
        s.auth.jwt_secret = Some(jwt.into());
        s.auth.lease_secret = Some(lease.into());
    })
    .await;
    let prefix = a.prefix.clone();
    let b = crate::helpers::spawn_app_with(move |s| {
        s.auth.jwt_secret = Some(jwt_b.into());
        s.auth.lease_secret = Some(lease_b.into());
        s.redis.key_prefix = prefix;
    })
    .await;
    (a, b)
}

/// Waits until both brokers' wake-up subscriptions are live.
async fn subscribed(app: &TestApp, queue: &str) {
    let client = redis::Client::open(app.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let channel = format!("{}:{{{queue}}}:due", app.prefix);
    eventually(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        let channel = channel.clone();
        async move {
            let receivers: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg("0")
                .query_async(&mut conn)
                .await
                .ok()?;
            (receivers >= 2).then_some(())
        }
    })
    .await;
    let _ = &mut conn;
}

#[tokio::test]
async fn a_long_poll_is_woken_by_a_push_to_another_broker() {
    let (a, b) = two_brokers().await;
    let queue = a.create_queue("jobs").await;
    subscribed(&a, &queue).await;
    let started = std::time::Instant::now();
    let poll = {
        let url = a.url(&format!("/queues/{queue}/messages/pull"));
        let request = a
            .client
            .post(url)
            .bearer_auth(&a.token)
            .json(&json!({"wait_time_ms": 10_000}));
        tokio::spawn(async move {
            let response = request.send().await.expect("pull");
            let body: Value = response.json().await.expect("json");
            (std::time::Instant::now(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pushed_at = std::time::Instant::now();
    b.push(&queue, json!({"body": "wake up"})).await.assert_ok();
    let (returned_at, body) = poll.await.expect("poll finished");
    assert_eq!(body["result"]["messages"][0]["body"], "wake up", "{body}");
    assert!(
        pushed_at.duration_since(started) >= Duration::from_millis(300),
        "the pull waited"
    );
    let lag = returned_at.duration_since(pushed_at);
    // Woken by the push, not by its 10 s deadline; the bound leaves a loaded machine room.
    assert!(
        lag <= Duration::from_secs(2),
        "returned {lag:?} after the push"
    );
}

#[tokio::test]
async fn a_long_poll_ends_empty_at_its_deadline_or_early_when_a_delay_comes_due() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    let started = std::time::Instant::now();
    let empty = app
        .pull_messages(&queue, json!({"wait_time_ms": 300}))
        .await;
    assert!(empty.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    app.push(
        &queue,
        json!({"body": "soon", "deliver_at_ms": leaseq::model::now_ms() + 400}),
    )
    .await
    .assert_ok();
    let started = std::time::Instant::now();
    let got = app
        .pull_messages(&queue, json!({"wait_time_ms": 5_000}))
        .await;
    assert_eq!(got[0]["body"], "soon");
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "{:?}",
        started.elapsed()
    );
    app.pull(&queue, json!({"wait_time_ms": 20_001}))
        .await
        .assert_error(400, 10207);
}

#[tokio::test]
async fn retention_deletes_ready_delayed_and_leased_messages_and_counts_them() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.min_retention_period = 1;
        s.retention.sweep_interval_ms = 50;
    })
    .await;
    let queue = app
        .post(
            "/queues",
            json!({"queue_name": "short", "settings": {"message_retention_period": 2}}),
        )
        .await
        .assert_ok()["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push_numbered(&queue, 2).await;
    app.push(&queue, json!({"body": "delayed", "delay_seconds": 600}))
        .await
        .assert_ok();
    let leased = app
        .pull_messages(
            &queue,
            json!({"batch_size": 1, "visibility_timeout_ms": 600_000}),
        )
        .await;
    assert_eq!(leased.len(), 1);
    let pushed = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    app.push(&queue, json!({"body": "young"})).await.assert_ok();
    assert_eq!(app.metrics(&queue).await["backlog_count"], 4);

    eventually(Duration::from_secs(5), || async {
        (app.metrics(&queue).await["backlog_count"] == 1).then_some(())
    })
    .await;
    assert!(
        pushed.elapsed() >= Duration::from_millis(1_900),
        "expired too early: {:?}",
        pushed.elapsed()
    );
    let remaining = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    let bodies: Vec<&str> = remaining
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["young"], "only the young message is left");
    assert_eq!(app.metrics(&queue).await["backlog_bytes"], 5);
    let reply = app
        .ack(
            &queue,
            json!({"acks": [{"lease_id": leased[0]["lease_id"]}]}),
        )
        .await;
    assert_eq!(
        reply.assert_ok()["ackCount"],
        0,
        "the leased message expired too"
    );

    let client = redis::Client::open(app.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let counted: u64 = redis::cmd("HGET")
        .arg(format!("{}:{{{queue}}}:meta", app.prefix))
        .arg("expired")
        .query_async(&mut conn)
        .await
        .expect("counter");
    assert_eq!(counted, 3);
}

#[tokio::test]
async fn a_repeated_dedup_id_within_the_window_is_stored_once() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let queue = app
        .post(
            "/queues",
            json!({"queue_name": "idem", "settings": {"dedup_window_seconds": 1}}),
        )
        .await
        .assert_ok()["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // An SDK retrying a POST sends the same message twice; a batch may repeat too.
    app.push(&queue, json!({"body": "charge #7", "dedup_id": "order-7"}))
        .await
        .assert_ok();
    let again = app
        .push(&queue, json!({"body": "charge #7", "dedup_id": "order-7"}))
        .await;
    assert_eq!(
        again.assert_ok()["metadata"]["metrics"]["backlog_count"],
        1,
        "accepted, not stored"
    );
    let batch = json!({"messages": [
        {"body": "a", "dedup_id": "x"}, {"body": "a again", "dedup_id": "x"},
        {"body": "b", "dedup_id": "order-7"}, {"body": "no id"}, {"body": "no id"}
    ]});
    app.push_batch(&queue, batch).await.assert_ok();
    let bodies: Vec<String> = app
        .pull_messages(&queue, json!({"batch_size": 10}))
        .await
        .iter()
        .map(|m| m["body"].as_str().expect("body").to_owned())
        .collect();
    assert_eq!(bodies, ["charge #7", "a", "no id", "no id"]);
    // After the window the id may be used again.
    clock.advance(Duration::from_millis(1_100));
    app.push(&queue, json!({"body": "new charge", "dedup_id": "order-7"}))
        .await
        .assert_ok();
    assert_eq!(app.metrics(&queue).await["backlog_count"], 5);
    app.push(&queue, json!({"body": "x", "dedup_id": ""}))
        .await
        .assert_error(400, 10203);
    app.push(&queue, json!({"body": "x", "dedup_id": "a".repeat(129)}))
        .await
        .assert_error(400, 10203);
}

#[tokio::test]
async fn two_brokers_reclaiming_at_once_never_double_deliver_or_lose_a_message() {
    const N: usize = 400;
    let (a, b) = two_brokers().await;
    let queue = a.create_queue("shared").await;
    a.push_numbered(&queue, N).await;
    // Lease everything briefly and let every lease expire.
    let mut first = 0;
    while first < N {
        first += a
            .pull_messages(
                &queue,
                json!({"batch_size": 100, "visibility_timeout_ms": 100}),
            )
            .await
            .len();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Both brokers reclaim and deliver concurrently.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let mut tasks = Vec::new();
    for app in [a, b] {
        let app = std::sync::Arc::new(app);
        for _ in 0..3 {
            let (app, queue, seen) = (app.clone(), queue.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                let mut empty = 0;
                while empty < 3 {
                    let got = app
                        .pull_messages(
                            &queue,
                            json!({"batch_size": 7, "visibility_timeout_ms": 60_000}),
                        )
                        .await;
                    if got.is_empty() {
                        empty += 1;
                        continue;
                    }
                    empty = 0;
                    for m in &got {
                        assert_eq!(m["attempts"], 2);
                        *seen
                            .lock()
                            .expect("lock")
                            .entry(m["body"].as_str().expect("body").to_owned())
                            .or_default() += 1;
                    }
                    let acks: Vec<Value> = got
                        .iter()
                        .map(|m| json!({"lease_id": m["lease_id"]}))
                        .collect();
                    let reply = app.ack(&queue, json!({"acks": acks})).await;
                    assert_eq!(
                        reply.assert_ok()["ackCount"].as_u64(),
                        Some(got.len() as u64)
                    );
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("consumer");
    }
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.len(), N, "every message redelivered");
    assert!(
        seen.values().all(|&n| n == 1),
        "a message was delivered twice"
    );
}

#[tokio::test]
async fn single_messages_can_be_read_listed_and_deleted_in_any_state() {
    let app = spawn_app().await;
    let queue = app.create_queue("jobs").await;
    app.push_numbered(&queue, 5).await;
    app.push(&queue, json!({"body": "later", "delay_seconds": 600}))
        .await
        .assert_ok();
    let leased = app.pull_messages(&queue, json!({"batch_size": 2})).await;

    // A paginated listing sees all six, with their states, and leases nothing.
    let mut seen = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = app
            .get(&format!(
                "/queues/{queue}/messages?per_page=2&cursor={cursor}"
            ))
            .await;
        seen.extend(page.assert_ok().as_array().expect("array").clone());
        cursor = page.body["result_info"]["cursor"]
            .as_str()
            .expect("cursor")
            .to_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 6);
    let state_of = |body: &str| {
        seen.iter()
            .find(|m| m["body"] == body)
            .map(|m| m["state"].clone())
    };
    assert_eq!(state_of("later"), Some(json!("delayed")));
    assert_eq!(
        state_of(leased[0]["body"].as_str().expect("body")),
        Some(json!("leased"))
    );
    assert_eq!(seen.iter().filter(|m| m["state"] == "ready").count(), 3);
    assert!(seen.iter().all(|m| m.get("lease_id").is_none()));

    let id = leased[0]["id"].as_str().expect("id");
    let one = app.get(&format!("/queues/{queue}/messages/{id}")).await;
    let one = one.assert_ok().clone();
    assert_eq!(one["state"], "leased");
    assert!(
        one["visible_at_ms"]
            .as_u64()
            .is_some_and(|t| t > leaseq::model::now_ms())
    );
    assert_eq!(one["attempts"], 1);

    // Delete a leased one and the delayed one; metrics follow.
    app.request(
        Method::DELETE,
        &format!("/queues/{queue}/messages/{id}"),
        None,
    )
    .await
    .assert_ok();
    let delayed_id = seen
        .iter()
        .find(|m| m["body"] == "later")
        .and_then(|m| m["id"].as_str())
        .expect("id")
        .to_owned();
    app.request(
        Method::DELETE,
        &format!("/queues/{queue}/messages/{delayed_id}"),
        None,
    )
    .await
    .assert_ok();
    assert_eq!(app.metrics(&queue).await["backlog_count"], 4);
    app.get(&format!("/queues/{queue}/messages/{id}"))
        .await
        .assert_error(404, 10130);
    app.request(
        Method::DELETE,
        &format!("/queues/{queue}/messages/{id}"),
        None,
    )
    .await
    .assert_error(404, 10130);
    app.get(&format!("/queues/{queue}/messages/not-an-id"))
        .await
        .assert_error(404, 10130);
    app.get(&format!("/queues/{queue}/messages?cursor=x"))
        .await
        .assert_error(400, 10207);
    // One past u64::MAX: refused here, not handed to HSCAN (a Redis error, so a 503).
    app.get(&format!(
        "/queues/{queue}/messages?cursor=18446744073709551616"
    ))
    .await
    .assert_error(400, 10207);
    // The lease of the deleted message acks nothing; the rest pull normally.
    assert_eq!(
        app.ack(
            &queue,
            json!({"acks": [{"lease_id": leased[0]["lease_id"]}]})
        )
        .await
        .assert_ok()["ackCount"],
        0
    );
    assert_eq!(
        app.pull_messages(&queue, json!({"batch_size": 10}))
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn redrive_moves_dead_letters_back_to_their_source_with_attempts_reset() {
    let app = spawn_app().await;
    let orders = app.create_queue("orders").await;
    let billing = app.create_queue("billing").await;
    let dlq = app.create_queue("dead").await;
    for queue in [&orders, &billing] {
        consumer(&app, queue, json!({"type": "http_pull", "dead_letter_queue": "dead", "settings": {"max_retries": 0}})).await;
    }
    app.push_numbered(&orders, 3).await;
    app.push(&billing, json!({"body": "invoice"}))
        .await
        .assert_ok();
    for queue in [&orders, &billing] {
        let got = app.pull_messages(queue, json!({"batch_size": 10})).await;
        let retries: Vec<Value> = got
            .iter()
            .map(|m| json!({"lease_id": m["lease_id"]}))
            .collect();
        app.ack(queue, json!({"retries": retries}))
            .await
            .assert_ok();
    }
    assert_eq!(app.metrics(&dlq).await["backlog_count"], 4);

    let path = format!("/queues/{dlq}/redrive");
    let only_billing = app.post(&path, json!({"source_queue_id": billing})).await;
    assert_eq!(
        only_billing.assert_ok(),
        &json!({"redriven": 1, "more": false})
    );
    let back = app.pull_messages(&billing, json!({})).await;
    assert_eq!(back[0]["body"], "invoice");
    assert_eq!(back[0]["attempts"], 1, "attempts start over");

    let rest = app.post(&path, json!({"max_messages": 2})).await;
    assert_eq!(rest.assert_ok(), &json!({"redriven": 2, "more": true}));
    let rest = app.post(&path, json!({})).await;
    assert_eq!(rest.assert_ok(), &json!({"redriven": 1, "more": false}));
    assert_eq!(app.metrics(&dlq).await["backlog_count"], 0);
    let mut bodies: Vec<String> = app
        .pull_messages(&orders, json!({"batch_size": 10}))
        .await
        .iter()
        .map(|m| m["body"].as_str().expect("body").to_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["0", "1", "2"]);
    app.post(&path, json!({"source_queue_id": "nope"}))
        .await
        .assert_error(400, 10207);
    app.post(&path, json!({"max_messages": 0}))
        .await
        .assert_error(400, 10207);
}

#[tokio::test]
async fn idle_queues_are_not_due_for_a_retention_sweep() {
    let app = spawn_app().await;
    for i in 0..50 {
        let queue = app.create_queue(&format!("idle-{i}")).await;
        if i % 10 == 0 {
            app.push(&queue, json!({"body": "resting"}))
                .await
                .assert_ok();
        }
    }
    let client = redis::Client::open(app.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let schedule = format!("{}:sweep", app.prefix);
    let scheduled: u64 = redis::cmd("ZCARD")
        .arg(&schedule)
        .query_async(&mut conn)
        .await
        .expect("ZCARD");
    assert_eq!(scheduled, 50, "every queue has one entry");
    let due: u64 = redis::cmd("ZCOUNT")
        .arg(&schedule)
        .arg("-inf")
        .arg(leaseq::model::now_ms())
        .query_async(&mut conn)
        .await
        .expect("ZCOUNT");
    assert_eq!(
        due, 0,
        "nothing for a sweep to look at until a retention period has passed"
    );
}
