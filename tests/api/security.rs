//! Regression tests of the security review (issue 19): each reproduces a finding.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ACCOUNT, Reply, TestApp, spawn_app};

const ALL_SCOPES: &str = "queues:read queues:write messages:push messages:pull";

/// A request with `token` instead of the app's own.
async fn send_as(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    app.send_raw(request).await
}

/// Pulls everything from `queue` with `token` and retries it, so that with
/// `max_retries: 0` every message is dead-lettered.
async fn pull_and_retry_all(app: &TestApp, token: &str, queue: &str) {
    let pulled = send_as(
        app,
        token,
        Method::POST,
        &format!("/queues/{queue}/messages/pull"),
        Some(json!({"batch_size": 100})),
    )
    .await;
    let retries: Vec<Value> = pulled.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| json!({"lease_id": m["lease_id"]}))
        .collect();
    assert!(!retries.is_empty());
    let acked = send_as(
        app,
        token,
        Method::POST,
        &format!("/queues/{queue}/messages/ack"),
        Some(json!({"retries": retries})),
    )
    .await;
    assert_eq!(acked.assert_ok()["retryCount"], retries.len());
}

#[tokio::test]
async fn a_queue_limited_token_cannot_name_a_dead_letter_queue_outside_its_queues() {
    let app = spawn_app().await;
    let a = app.create_queue("a").await;
    let payments = app.create_queue("payments").await;
    let limited = app.mint(&[ACCOUNT], ALL_SCOPES, Some(&["a"]));

    // Into an existing queue the token cannot see, by create and by replace.
    let create = send_as(
        &app,
        &limited,
        Method::POST,
        &format!("/queues/{a}/consumers"),
        Some(json!({"type": "http_pull", "dead_letter_queue": "payments", "settings": {"max_retries": 0}})),
    )
    .await;
    create.assert_error(403, 9109);
    let consumer = app
        .post(
            &format!("/queues/{a}/consumers"),
            json!({"type": "http_pull"}),
        )
        .await;
    let consumer_id = consumer.assert_ok()["consumer_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let replace = send_as(
        &app,
        &limited,
        Method::PUT,
        &format!("/queues/{a}/consumers/{consumer_id}"),
        Some(json!({"type": "http_pull", "dead_letter_queue": "payments", "settings": {"max_retries": 0}})),
    )
    .await;
    replace.assert_error(403, 9109);

    // Nothing it does can then move a message into `payments`.
    send_as(
        &app,
        &limited,
        Method::POST,
        &format!("/queues/{a}/messages"),
        Some(json!({"body": "x"})),
    )
    .await
    .assert_ok();
    pull_and_retry_all(&app, &limited, &a).await;
    assert_eq!(app.metrics(&payments).await["backlog_count"], 0);
}

#[tokio::test]
async fn a_queue_limited_token_cannot_create_a_queue_through_a_dead_letter_queue_name() {
    let app = spawn_app().await;
    let a = app.create_queue("a").await;
    let limited = app.mint(&[ACCOUNT], ALL_SCOPES, Some(&["a"]));
    send_as(
        &app,
        &limited,
        Method::POST,
        "/queues",
        Some(json!({"queue_name": "evil-new-queue"})),
    )
    .await
    .assert_error(403, 9109);
    send_as(
        &app,
        &limited,
        Method::POST,
        &format!("/queues/{a}/consumers"),
        Some(json!({"type": "http_pull", "dead_letter_queue": "evil-new-queue", "settings": {"max_retries": 0}})),
    )
    .await
    .assert_error(403, 9109);
    let names: Vec<Value> = app
        .get("/queues")
        .await
        .assert_ok()
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["queue_name"].clone())
        .collect();
    assert_eq!(names, [json!("a")]);
}

#[tokio::test]
async fn a_dead_letter_queue_inside_the_tokens_queues_is_accepted() {
    let app = spawn_app().await;
    let a = app.create_queue("a").await;
    let limited = app.mint(&[ACCOUNT], ALL_SCOPES, Some(&["a", "a-dead"]));
    send_as(
        &app,
        &limited,
        Method::POST,
        &format!("/queues/{a}/consumers"),
        Some(json!({"type": "http_pull", "dead_letter_queue": "a-dead", "settings": {"max_retries": 0}})),
    )
    .await
    .assert_ok();
    send_as(
        &app,
        &limited,
        Method::POST,
        &format!("/queues/{a}/messages"),
        Some(json!({"body": "x"})),
    )
    .await
    .assert_ok();
    pull_and_retry_all(&app, &limited, &a).await;
    let queues = send_as(&app, &limited, Method::GET, "/queues", None).await;
    let dead = queues
        .assert_ok()
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue_name"] == "a-dead")
        .expect("the dead-letter queue was created")["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.metrics(&dead).await["backlog_count"], 1);
}

#[tokio::test]
async fn a_redrive_never_writes_into_a_queue_outside_the_tokens_queues() {
    let app = spawn_app().await;
    let payments = app.create_queue("payments").await;
    let dead = app.create_queue("dead").await;
    app.post(
        &format!("/queues/{payments}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "dead", "settings": {"max_retries": 0}}),
    )
    .await
    .assert_ok();
    app.push(&payments, json!({"body": "invoice"}))
        .await
        .assert_ok();
    pull_and_retry_all(&app, &app.token, &payments).await;
    assert_eq!(app.metrics(&dead).await["backlog_count"], 1);

    let limited = app.mint(&[ACCOUNT], ALL_SCOPES, Some(&["dead"]));
    let path = format!("/queues/{dead}/redrive");
    send_as(
        &app,
        &limited,
        Method::POST,
        &path,
        Some(json!({"source_queue_id": payments})),
    )
    .await
    .assert_error(404, 10104);
    let any = send_as(&app, &limited, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(any.assert_ok(), &json!({"redriven": 0, "more": false}));
    assert_eq!(app.metrics(&payments).await["backlog_count"], 0);
    assert_eq!(app.metrics(&dead).await["backlog_count"], 1);

    // The whole account may.
    let all = app.post(&path, json!({"source_queue_id": payments})).await;
    assert_eq!(all.assert_ok(), &json!({"redriven": 1, "more": false}));
    assert_eq!(app.metrics(&payments).await["backlog_count"], 1);
}

#[tokio::test]
async fn a_pull_only_token_can_neither_list_bodies_nor_delete_messages_without_a_lease() {
    let app = spawn_app().await;
    let q = app.create_queue("jobs").await;
    app.push(&q, json!({"body": "secret"})).await.assert_ok();
    let message = app
        .post(&format!("/queues/{q}/messages/peek"), json!({}))
        .await;
    let id = message.assert_ok()["messages"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let consumer = app.mint(&[ACCOUNT], "messages:pull", None);
    let list = format!("/queues/{q}/messages");
    let one = format!("/queues/{q}/messages/{id}");
    send_as(&app, &consumer, Method::GET, &list, None)
        .await
        .assert_error(403, 9109);
    send_as(&app, &consumer, Method::DELETE, &one, None)
        .await
        .assert_error(403, 9109);
    assert_eq!(app.metrics(&q).await["backlog_count"], 1);

    let admin = app.mint(&[ACCOUNT], "queues:write", None);
    let page = send_as(&app, &admin, Method::GET, &list, None).await;
    assert_eq!(page.assert_ok()[0]["body"], "secret");
    send_as(&app, &admin, Method::DELETE, &one, None)
        .await
        .assert_ok();
    assert_eq!(app.metrics(&q).await["backlog_count"], 0);
}

#[tokio::test]
async fn concurrent_creates_never_overshoot_the_queues_per_account_limit() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.queues_per_account = 20).await;
    let creates = (0..80).map(|i| app.post("/queues", json!({"queue_name": format!("q-{i}")})));
    let replies = futures_util::future::join_all(creates).await;
    let created = replies.iter().filter(|r| r.status.is_success()).count();
    for refused in replies.iter().filter(|r| !r.status.is_success()) {
        refused.assert_error(409, 10110);
    }
    assert_eq!(created, 20);
    let listed = app.get("/queues").await;
    assert_eq!(listed.assert_ok().as_array().expect("queues").len(), 20);
}

#[tokio::test]
async fn a_lease_from_before_a_dead_letter_move_and_redrive_acks_nothing() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let q = app.create_queue("jobs").await;
    let dead = app.create_queue("jobs-dead").await;
    app.post(
        &format!("/queues/{q}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "jobs-dead", "settings": {"max_retries": 0}}),
    )
    .await
    .assert_ok();
    app.push(&q, json!({"body": "work"})).await.assert_ok();
    let first = app
        .pull_messages(&q, json!({"visibility_timeout_ms": 1}))
        .await;
    let old_lease = first[0]["lease_id"].clone();
    // The lease expires; the next pull finds the last delivery failed and dead-letters it.
    clock.advance(std::time::Duration::from_millis(10));
    assert!(app.pull_messages(&q, json!({})).await.is_empty());
    assert_eq!(app.metrics(&dead).await["backlog_count"], 1);
    let redriven = app
        .post(&format!("/queues/{dead}/redrive"), json!({}))
        .await;
    assert_eq!(redriven.assert_ok(), &json!({"redriven": 1, "more": false}));

    let stale = app
        .ack(&q, json!({"acks": [{"lease_id": old_lease}]}))
        .await;
    let stale = stale.assert_ok();
    assert_eq!(
        (stale["ackCount"].clone(), stale["retryCount"].clone()),
        (json!(0), json!(0))
    );
    assert!(stale["warnings"][old_lease.as_str().expect("lease")].is_string());
    assert_eq!(
        app.metrics(&q).await["backlog_count"],
        1,
        "the redriven message stays"
    );

    let again = app.pull_messages(&q, json!({})).await;
    assert_eq!(
        (again[0]["body"].clone(), again[0]["attempts"].clone()),
        (json!("work"), json!(1))
    );
    let fresh = app
        .ack(&q, json!({"acks": [{"lease_id": again[0]["lease_id"]}]}))
        .await;
    assert_eq!(fresh.assert_ok()["ackCount"], 1);
    assert_eq!(app.metrics(&q).await["backlog_count"], 0);
}

#[tokio::test]
async fn records_written_before_the_entry_generation_existed_still_pull_and_ack() {
    let app = spawn_app().await;
    let q = app.create_queue("jobs").await;
    app.push(&q, json!({"body": "a:1:b"})).await.assert_ok();
    let peeked = app
        .post(&format!("/queues/{q}/messages/peek"), json!({}))
        .await;
    let peeked = &peeked.assert_ok()["messages"][0];
    let (id, timestamp) = (peeked["id"].as_str().expect("id"), &peeked["timestamp_ms"]);
    // Rewrite the record in the version 1 layout: no version byte, no entry generation.
    let client = redis::Client::open(app.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:{{{q}}}:msg", app.prefix))
        .arg(id)
        .arg(format!("t{timestamp}:0:0:a:1:b"))
        .query_async(&mut conn)
        .await
        .expect("HSET");

    let pulled = app.pull_messages(&q, json!({})).await;
    assert_eq!(
        (pulled[0]["body"].clone(), pulled[0]["attempts"].clone()),
        (json!("a:1:b"), json!(1))
    );
    let acked = app
        .ack(&q, json!({"acks": [{"lease_id": pulled[0]["lease_id"]}]}))
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 1);
    assert_eq!(app.metrics(&q).await["backlog_count"], 0);
}

/// Bodies of `size` bytes, numbered, `n` of them, pushed two per batch.
async fn push_large(app: &TestApp, queue: &str, n: usize, size: usize) {
    for pair in (0..n).collect::<Vec<_>>().chunks(2) {
        let messages: Vec<Value> = pair
            .iter()
            .map(|i| json!({"body": format!("{i:04}{}", "x".repeat(size - 4))}))
            .collect();
        app.push_batch(queue, json!({"messages": messages}))
            .await
            .assert_ok();
    }
}

fn body_bytes(messages: &[Value]) -> usize {
    messages
        .iter()
        .map(|m| m["body"].as_str().expect("body").len())
        .sum()
}

#[tokio::test]
async fn pull_peek_and_list_replies_are_capped_by_bytes_and_lose_nothing() {
    const BUDGET: usize = 300_000;
    const SIZE: usize = 30_000;
    let app = crate::helpers::spawn_app_with(|s| s.limits.reply_bytes = BUDGET).await;
    let q = app.create_queue("big").await;
    push_large(&app, &q, 40, SIZE).await;

    let peeked = app
        .post(
            &format!("/queues/{q}/messages/peek"),
            json!({"batch_size": 100}),
        )
        .await;
    let peeked = peeked.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert!(
        !peeked.is_empty() && body_bytes(&peeked) <= BUDGET,
        "peek: {}",
        peeked.len()
    );

    // Pages of the listing stay near the budget and, followed by cursor, cover everything
    // once. A page ends with a whole HSCAN step, which may hold a few records past the
    // budget (more while Redis is rehashing the hash), never more than ten.
    let mut listed = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = app
            .get(&format!(
                "/queues/{q}/messages?per_page=1000&cursor={cursor}"
            ))
            .await;
        let messages = page.assert_ok().as_array().expect("page").clone();
        assert!(
            body_bytes(&messages) <= BUDGET + 10 * SIZE,
            "a page of {} messages, {} bytes",
            messages.len(),
            body_bytes(&messages)
        );
        listed.extend(
            messages
                .iter()
                .map(|m| m["body"].as_str().expect("body")[..4].to_owned()),
        );
        cursor = page.body["result_info"]["cursor"]
            .as_str()
            .expect("cursor")
            .to_owned();
        if cursor == "0" {
            break;
        }
    }
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), 40);

    // Pulls return at most the budget; what does not fit stays at the head, in order.
    let mut pulled = Vec::new();
    while pulled.len() < 40 {
        let batch = app.pull_messages(&q, json!({"batch_size": 100})).await;
        assert!(
            !batch.is_empty() && body_bytes(&batch) <= BUDGET,
            "pull: {}",
            batch.len()
        );
        pulled.extend(
            batch
                .iter()
                .map(|m| m["body"].as_str().expect("body")[..4].to_owned()),
        );
    }
    let expected: Vec<String> = (0..40).map(|i| format!("{i:04}")).collect();
    assert_eq!(pulled, expected);
    assert_eq!(app.metrics(&q).await["backlog_count"], 40);
}

#[tokio::test]
async fn a_message_larger_than_the_reply_budget_is_still_delivered_alone() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.reply_bytes = 128_000).await;
    let q = app.create_queue("big").await;
    push_large(&app, &q, 2, 127_990).await;
    for _ in 0..2 {
        assert_eq!(
            app.pull_messages(&q, json!({"batch_size": 10})).await.len(),
            1
        );
    }
}

#[tokio::test]
async fn dead_letter_moves_and_redrives_go_in_capped_steps_and_move_everything() {
    const BUDGET: usize = 300_000;
    let app = crate::helpers::spawn_app_with(|s| s.limits.reply_bytes = BUDGET).await;
    let q = app.create_queue("big").await;
    let dead = app.create_queue("big-dead").await;
    app.post(
        &format!("/queues/{q}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "big-dead", "settings": {"max_retries": 0}}),
    )
    .await
    .assert_ok();
    push_large(&app, &q, 40, 30_000).await;
    // Lease everything, then retry it all in one ack: 40 dead letters (1.2 MB) at once.
    let mut leases = Vec::new();
    while leases.len() < 40 {
        let batch = app.pull_messages(&q, json!({"batch_size": 100})).await;
        leases.extend(batch.iter().map(|m| json!({"lease_id": m["lease_id"]})));
    }
    let retried = app.ack(&q, json!({"retries": leases})).await;
    assert_eq!(retried.assert_ok()["retryCount"], 40);
    assert_eq!(app.metrics(&dead).await["backlog_count"], 40);

    let mut redriven = 0;
    loop {
        let step = app
            .post(&format!("/queues/{dead}/redrive"), json!({}))
            .await;
        let n = step.assert_ok()["redriven"].as_u64().expect("count");
        assert!(n <= 10, "one step moved {n}");
        redriven += n;
        if step.result()["more"] == false {
            break;
        }
    }
    assert_eq!(redriven, 40);
    assert_eq!(app.metrics(&q).await["backlog_count"], 40);
    assert_eq!(app.metrics(&dead).await["backlog_count"], 0);
}

#[tokio::test]
async fn a_full_queue_refuses_pushes_whole_until_consumers_catch_up() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/queues",
            json!({"queue_name": "small", "settings": {"max_backlog_messages": 3, "max_backlog_bytes": 1000}}),
        )
        .await;
    let settings = &reply.assert_ok()["settings"];
    assert_eq!(
        (
            settings["max_backlog_messages"].clone(),
            settings["max_backlog_bytes"].clone()
        ),
        (json!(3), json!(1000))
    );
    let q = reply.result()["queue_id"].as_str().expect("id").to_owned();

    app.push_batch(
        &q,
        json!({"messages": [{"body": "a", "dedup_id": "a"}, {"body": "b"}]}),
    )
    .await
    .assert_ok();
    let over = app
        .push_batch(&q, json!({"messages": [{"body": "c"}, {"body": "d"}]}))
        .await;
    over.assert_error(429, 10260);
    assert_eq!(app.metrics(&q).await["backlog_count"], 2, "all or nothing");
    // A repeat of a dedup id stores nothing, so it is accepted even when full.
    app.push(&q, json!({"body": "c"})).await.assert_ok();
    app.push(&q, json!({"body": "d"}))
        .await
        .assert_error(429, 10260);
    app.push(&q, json!({"body": "a", "dedup_id": "a"}))
        .await
        .assert_ok();

    // Acks make room.
    let pulled = app.pull_messages(&q, json!({"batch_size": 1})).await;
    app.ack(&q, json!({"acks": [{"lease_id": pulled[0]["lease_id"]}]}))
        .await
        .assert_ok();
    app.push(&q, json!({"body": "d"})).await.assert_ok();

    // The byte quota counts bodies.
    let bytes = app
        .post(
            "/queues",
            json!({"queue_name": "bytes", "settings": {"max_backlog_bytes": 10}}),
        )
        .await;
    let b = bytes.assert_ok()["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push(&b, json!({"body": "12345678"})).await.assert_ok();
    app.push(&b, json!({"body": "abc"}))
        .await
        .assert_error(429, 10260);
    app.push(&b, json!({"body": "ab"})).await.assert_ok();
}

#[tokio::test]
async fn the_deployments_backlog_quota_applies_to_every_queue_and_caps_their_settings() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.max_backlog_messages = 2).await;
    let q = app.create_queue("capped").await;
    app.push_numbered(&q, 2).await;
    app.push(&q, json!({"body": "3"}))
        .await
        .assert_error(429, 10260);
    app.post(
        "/queues",
        json!({"queue_name": "greedy", "settings": {"max_backlog_messages": 3}}),
    )
    .await
    .assert_error(400, 10207);
    app.request(
        Method::PATCH,
        &format!("/queues/{q}"),
        Some(json!({"settings": {"max_backlog_messages": 1}})),
    )
    .await
    .assert_ok();
    let pulled = app.pull_messages(&q, json!({"batch_size": 1})).await;
    app.ack(&q, json!({"acks": [{"lease_id": pulled[0]["lease_id"]}]}))
        .await
        .assert_ok();
    app.push(&q, json!({"body": "4"}))
        .await
        .assert_error(429, 10260);
}

#[tokio::test]
async fn a_push_wakes_as_many_long_polls_as_it_made_messages_visible() {
    const WAITERS: usize = 400;
    let app = std::sync::Arc::new(spawn_app().await);
    let q = app.create_queue("herd").await;
    let mut polls = tokio::task::JoinSet::new();
    for _ in 0..WAITERS {
        let (app, q) = (app.clone(), q.clone());
        polls.spawn(async move {
            app.pull_messages(&q, json!({"batch_size": 1, "wait_time_ms": 20000}))
                .await
                .len()
        });
    }
    // Each poll runs one pull before it waits.
    crate::helpers::eventually(std::time::Duration::from_secs(20), || async {
        (app.script_calls("pull").await >= WAITERS as f64).then_some(())
    })
    .await;
    let before = app.script_calls("pull").await;
    for i in 0..20 {
        app.push(&q, json!({"body": format!("m{i}")}))
            .await
            .assert_ok();
    }
    let mut delivered = 0;
    while delivered < 20 {
        delivered += polls.join_next().await.expect("a poll").expect("no panic");
    }
    let scripts = app.script_calls("pull").await - before;
    // 20 wake-ups, each a pull; a few more when a woken pull lost the race. Not 8 000.
    assert!(
        (20.0..=60.0).contains(&scripts),
        "{scripts} pull scripts for 20 pushes"
    );
    polls.abort_all();
}

#[tokio::test]
async fn long_polls_beyond_the_per_queue_and_per_account_caps_get_429() {
    let app = std::sync::Arc::new(
        crate::helpers::spawn_app_with(|s| {
            s.limits.long_polls_per_queue = 2;
            s.limits.long_polls_per_account = 3;
        })
        .await,
    );
    let a = app.create_queue("a").await;
    let b = app.create_queue("b").await;
    let mut waiting = tokio::task::JoinSet::new();
    for q in [&a, &a, &b] {
        let (app, q) = (app.clone(), q.clone());
        waiting.spawn(async move {
            app.pull(&q, json!({"wait_time_ms": 20000})).await;
        });
    }
    // A waiting pull is admitted right after its first (empty) pull script.
    crate::helpers::eventually(std::time::Duration::from_secs(20), || async {
        (app.script_calls("pull").await >= 3.0).then_some(())
    })
    .await;
    let over_queue = app.pull(&a, json!({"wait_time_ms": 10})).await;
    over_queue.assert_error(429, 971);
    assert_eq!(over_queue.headers["retry-after"], "1");
    assert!(
        over_queue.body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("queue")
    );
    let c = app.create_queue("c").await;
    let over_account = app.pull(&c, json!({"wait_time_ms": 10})).await;
    over_account.assert_error(429, 971);
    assert!(
        over_account.body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("account")
    );
    // A pull that does not wait, or finds a message at once, is never refused.
    app.pull(&a, json!({})).await.assert_ok();
    app.push(&c, json!({"body": "x"})).await.assert_ok();
    let found = app.pull_messages(&c, json!({"wait_time_ms": 20000})).await;
    assert_eq!(found.len(), 1);
    waiting.abort_all();
}
