//! The storage core (issue 11): indexes without leftovers, and data of layout 1 moved
//! onto today's layout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with};

async fn redis(app: &TestApp) -> redis::aio::MultiplexedConnection {
    redis::Client::open(app.redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

fn lease_ids(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| json!({"lease_id": m["lease_id"]}))
        .collect()
}

#[tokio::test]
async fn a_message_dead_lettered_twice_and_redriven_is_delivered_once_per_pull() {
    let app = spawn_app().await;
    let q = app.create_queue("jobs").await;
    let dead = app.create_queue("dead").await;
    app.post(
        &format!("/queues/{q}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "dead", "settings": {"max_retries": 0}}),
    )
    .await
    .assert_ok();
    app.push(&q, json!({"body": "once"})).await.assert_ok();
    for _ in 0..2 {
        let pulled = app.pull_messages(&q, json!({"batch_size": 10})).await;
        assert_eq!(pulled.len(), 1);
        app.ack(&q, json!({"retries": lease_ids(&pulled)}))
            .await
            .assert_ok();
        assert_eq!(app.metrics(&dead).await["backlog_count"], 1);
        let redriven = app
            .post(&format!("/queues/{dead}/redrive"), json!({}))
            .await;
        assert_eq!(redriven.assert_ok()["redriven"], 1);
    }
    let pulled = app.pull_messages(&q, json!({"batch_size": 10})).await;
    assert_eq!(pulled.len(), 1, "{pulled:?}");
    app.ack(&q, json!({"retries": lease_ids(&pulled)}))
        .await
        .assert_ok();
    let from_dead = app.pull_messages(&dead, json!({"batch_size": 10})).await;
    assert_eq!(from_dead.len(), 1, "{from_dead:?}");
    assert_eq!(from_dead[0]["body"], "once");
    assert_eq!(app.metrics(&dead).await["backlog_count"], 1);
    assert_eq!(app.metrics(&q).await["backlog_count"], 0);
}

#[tokio::test]
async fn an_ack_after_a_lease_expired_leaves_nothing_behind_in_any_index() {
    let (app, clock) = crate::helpers::spawn_app_with_clock(|_| {}).await;
    let q = app.create_queue("jobs").await;
    app.push_numbered(&q, 3).await;
    let first = app
        .pull_messages(&q, json!({"batch_size": 3, "visibility_timeout_ms": 1}))
        .await;
    // The leases expire and the messages are due again; acking the old leases deletes
    // them (the work was done) from every index at once.
    clock.advance(Duration::from_millis(10));
    let peeked = app
        .post(
            &format!("/queues/{q}/messages/peek"),
            json!({"batch_size": 10}),
        )
        .await;
    assert_eq!(
        peeked.assert_ok()["messages"].as_array().map(Vec::len),
        Some(3)
    );
    let acked = app.ack(&q, json!({"acks": lease_ids(&first)})).await;
    assert_eq!(acked.assert_ok()["ackCount"], 3);
    let mut conn = redis(&app).await;
    for role in ["msg", "due", "leased", "age", "age_ids"] {
        let key = format!("{}:{{{q}}}:{role}", app.prefix);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(!exists, "{key} still holds something");
    }
    assert!(
        app.pull_messages(&q, json!({"batch_size": 10}))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_queue_of_layout_1_with_100_000_stale_ids_is_served_and_moved_in_bounded_steps() {
    let app = spawn_app().await;
    let q = app.create_queue("old").await;
    app.push_numbered(&q, 5).await;
    app.push(&q, json!({"body": "later", "delay_seconds": 3600}))
        .await
        .assert_ok();
    // Rewrite the queue into layout 1: ready ids on a LIST (behind 100 000 ids of
    // messages long deleted, and one id twice), delayed ids in their own ZSET, no
    // layout mark, and no deployment mark.
    let mut conn = redis(&app).await;
    let key = |role: &str| format!("{}:{{{q}}}:{role}", app.prefix);
    let due: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key("due"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .expect("ZRANGE");
    let soon = leaseq::model::now_ms() as f64 + 60_000.0;
    let (delayed, ready): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, at)| *at > soon);
    assert_eq!((ready.len(), delayed.len()), (5, 1));
    let stale: Vec<String> = (0..100_000)
        .map(|i| format!("{:032x}", 0xdead_0000_0000u64 + i))
        .collect();
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(key("due")).ignore();
    for chunk in stale.chunks(10_000) {
        pipe.cmd("RPUSH").arg(key("ready")).arg(chunk).ignore();
    }
    for (id, _) in &ready {
        pipe.cmd("RPUSH").arg(key("ready")).arg(id).ignore();
    }
    pipe.cmd("RPUSH")
        .arg(key("ready"))
        .arg(&ready[0].0)
        .ignore();
    pipe.cmd("ZADD")
        .arg(key("delayed"))
        .arg(delayed[0].1)
        .arg(&delayed[0].0)
        .ignore();
    pipe.cmd("HDEL").arg(key("meta")).arg("layout").ignore();
    pipe.cmd("DEL")
        .arg(format!("{}:layout", app.prefix))
        .ignore();
    let () = pipe.query_async(&mut conn).await.expect("layout 1 written");

    // Until it is moved, the old list is never read: a pull answers at once, empty.
    assert!(
        app.pull_messages(&q, json!({"batch_size": 10}))
            .await
            .is_empty()
    );
    assert_eq!(app.metrics(&q).await["backlog_count"], 6, "nothing lost");

    // A broker starting on this Redis moves the queue in steps of at most 1 000 ids.
    let prefix = app.prefix.clone();
    let upgraded = spawn_app_with(move |s| s.redis.key_prefix = prefix).await;
    let url = |path: &str| {
        format!(
            "{}/client/v4/accounts/{}{path}",
            upgraded.base,
            crate::helpers::ACCOUNT
        )
    };
    eventually(Duration::from_secs(60), || async {
        let marked: Option<String> = redis::cmd("GET")
            .arg(format!("{}:layout", app.prefix))
            .query_async(&mut redis(&app).await)
            .await
            .ok()?;
        (marked.as_deref() == Some("2")).then_some(())
    })
    .await;
    let steps = upgraded.script_calls("migrate").await;
    assert!(steps >= 100.0, "{steps} steps for 100 006 ids");
    for role in ["ready", "delayed", "age_count"] {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key(role))
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(!exists, "{role} is gone after the move");
    }

    let pulled = upgraded
        .request_url(
            reqwest::Method::POST,
            &url(&format!("/queues/{q}/messages/pull")),
            Some(json!({"batch_size": 10})),
        )
        .await;
    let bodies: Vec<&str> = pulled.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["0", "1", "2", "3", "4"], "each once, in order");
    let metrics = upgraded
        .request_url(
            reqwest::Method::GET,
            &url(&format!("/queues/{q}/metrics")),
            None,
        )
        .await;
    assert_eq!(metrics.assert_ok()["backlog_count"], 6);
}

#[tokio::test]
async fn a_redrive_examines_a_bounded_number_of_dead_letters_per_call() {
    let app = spawn_app().await;
    let busy = app.create_queue("busy").await;
    let rare = app.create_queue("rare").await;
    let dead = app.create_queue("dead").await;
    for q in [&busy, &rare] {
        app.post(
            &format!("/queues/{q}/consumers"),
            json!({"type": "http_pull", "dead_letter_queue": "dead", "settings": {"max_retries": 0}}),
        )
        .await
        .assert_ok();
    }
    app.push_numbered(&busy, 2500).await;
    app.push(&rare, json!({"body": "the one"}))
        .await
        .assert_ok();
    for q in [&busy, &rare] {
        loop {
            let pulled = app.pull_messages(q, json!({"batch_size": 100})).await;
            if pulled.is_empty() {
                break;
            }
            app.ack(q, json!({"retries": lease_ids(&pulled)}))
                .await
                .assert_ok();
        }
    }
    assert_eq!(app.metrics(&dead).await["backlog_count"], 2501);

    // Only the rare source's letter is wanted: finding it takes several bounded calls.
    let path = format!("/queues/{dead}/redrive");
    let (mut calls, mut moved) = (0, 0);
    loop {
        let step = app.post(&path, json!({"source_queue_id": rare})).await;
        let step = step.assert_ok().clone();
        calls += 1;
        moved += step["redriven"].as_u64().expect("count");
        if step["more"] == false {
            break;
        }
        assert!(calls < 100, "the scan never ends");
    }
    assert_eq!(moved, 1);
    assert!(
        calls >= 3,
        "{calls} calls for 2 501 dead letters, 1 000 at most per call"
    );
    assert_eq!(app.metrics(&rare).await["backlog_count"], 1);
    assert_eq!(app.metrics(&dead).await["backlog_count"], 2500);
}
