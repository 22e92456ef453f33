//! The broker on a Redis Cluster (`scripts/cluster.sh`: 3 masters, 3 replicas on
//! loopback ports 7100-7105, started here when not running): queues, messages, long
//! polls, listeners and the metrics scrape, with each queue's keys on one slot.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use crate::helpers::receiver::Receiver;
use crate::helpers::{TestApp, spawn_app_with};

fn cluster_nodes() -> Vec<String> {
    static STARTED: OnceLock<Vec<String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let root = env!("CARGO_MANIFEST_DIR");
            let status = std::process::Command::new(format!("{root}/scripts/cluster.sh"))
                .arg("start")
                .current_dir(root)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("scripts/cluster.sh runs");
            assert!(status.success(), "the local Redis Cluster did not start");
            (7100..7103)
                .map(|port| format!("redis://127.0.0.1:{port}"))
                .collect()
        })
        .clone()
}

async fn on_cluster() -> TestApp {
    let nodes = cluster_nodes();
    spawn_app_with(move |s| {
        s.redis.cluster_nodes = nodes.into_iter().map(Into::into).collect();
    })
    .await
}

#[tokio::test]
async fn the_broker_serves_queues_messages_and_listeners_from_a_cluster() {
    let app = on_cluster().await;
    // Enough queues that they land on every master.
    let mut queues = Vec::new();
    for i in 0..6 {
        queues.push(app.create_queue(&format!("c{i}")).await);
    }
    for queue in &queues {
        app.push_numbered(queue, 5).await;
    }
    let listed = app.get("/queues").await;
    assert_eq!(listed.assert_ok().as_array().map(Vec::len), Some(6));
    for queue in &queues {
        let pulled = app.pull_messages(queue, json!({"batch_size": 10})).await;
        assert_eq!(pulled.len(), 5);
        let acks: Vec<_> = pulled
            .iter()
            .map(|m| json!({"lease_id": m["lease_id"]}))
            .collect();
        let acked = app.ack(queue, json!({ "acks": acks })).await;
        assert_eq!(acked.assert_ok()["ackCount"], 5);
        assert_eq!(app.metrics(queue).await["backlog_count"], 0);
    }
    // A long poll is woken by a push (the wake-up crosses the Cluster's nodes).
    let waiting = {
        let queue = queues[0].clone();
        let url = app.url(&format!("/queues/{queue}/messages/pull"));
        let (client, token) = (app.client.clone(), app.token.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"wait_time_ms": 10_000}))
                .send()
                .await
                .expect("pull")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.push(&queues[0], json!({"body": "wake"}))
        .await
        .assert_ok();
    let woken = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken before the wait ended")
        .expect("joined");
    assert_eq!(woken["result"]["messages"][0]["body"], "wake");
    // A listener delivers from the Cluster.
    let receiver = Receiver::start().await;
    app.post(
        &format!("/queues/{}/listeners", queues[1]),
        json!({"name": "c", "notify_url": receiver.url}),
    )
    .await
    .assert_ok();
    app.push_numbered(&queues[1], 3).await;
    receiver
        .wait_for(Duration::from_secs(20), |r| {
            r.iter().map(|r| r.message_ids().len()).sum::<usize>() >= 3
        })
        .await;
    // The scrape reads every queue, whichever node holds it.
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for i in 0..6 {
        assert!(
            metrics.contains(&format!("queue=\"c{i}\"")),
            "c{i} missing from the scrape"
        );
    }
}

#[tokio::test]
async fn with_wait_replicas_writes_are_answered_once_a_replica_has_them() {
    let nodes = cluster_nodes();
    let app = spawn_app_with(move |s| {
        s.redis.cluster_nodes = nodes.into_iter().map(Into::into).collect();
        s.durability.wait_replicas = 1;
    })
    .await;
    let queue = app.create_queue("replicated").await;
    app.push_numbered(&queue, 3).await;
    let pulled = app.pull_messages(&queue, json!({"batch_size": 3})).await;
    assert_eq!(pulled.len(), 3);
}

#[tokio::test]
async fn without_the_replicas_asked_for_a_write_is_a_prompt_503() {
    // The test Redis has no replica: no write can be acknowledged by one.
    let app = spawn_app_with(|s| {
        s.durability.wait_replicas = 1;
        s.redis.timeout_ms = 400;
    })
    .await;
    let started = std::time::Instant::now();
    let reply = app
        .post("/queues", json!({"queue_name": "unreplicated"}))
        .await;
    reply.assert_error(503, 15000);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered promptly"
    );
}

#[tokio::test]
async fn reads_do_not_wait_for_replicas() {
    // A broker without wait_replicas fills a queue; one asking for a replica the test
    // Redis does not have reads it: reads answer, writes are refused.
    let writer = spawn_app_with(|_| {}).await;
    let queue = writer.create_queue("read-only").await;
    writer.push_numbered(&queue, 2).await;
    let prefix = writer.prefix.clone();
    let reader = spawn_app_with(move |s| {
        s.redis.key_prefix = prefix;
        s.durability.wait_replicas = 1;
        s.redis.timeout_ms = 400;
    })
    .await;
    assert_eq!(reader.metrics(&queue).await["backlog_count"], 2);
    reader
        .get(&format!("/queues/{queue}/messages"))
        .await
        .assert_ok();
    reader
        .push(&queue, json!({"body": "unreplicated"}))
        .await
        .assert_error(503, 15000);
}

/// The schedule shard of a queue on a Cluster: the last byte of its id, mod 16.
fn schedule_shard(queue: &str) -> u8 {
    u8::from_str_radix(&queue[30..], 16).expect("hex id") % 16
}

#[tokio::test]
async fn entries_of_the_unsharded_schedules_move_into_their_shards() {
    let app = on_cluster().await;
    let queue = app.create_queue("resharded").await;
    let client = redis::cluster::ClusterClient::new(cluster_nodes()).expect("cluster client");
    let mut redis = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    // As a version before the sharding (or a single node's copied data) left them.
    let shard = schedule_shard(&queue);
    let sharded_sweep = format!("{}:{{s:{shard}}}:sweep", app.prefix);
    let sharded_deliveries = format!("{}:{{s:{shard}}}:deliveries", app.prefix);
    let lane = format!("{}/{queue}/{}", crate::helpers::ACCOUNT, "0".repeat(32));
    let _: () = redis::cmd("ZREM")
        .arg(&sharded_sweep)
        .arg(&queue)
        .query_async(&mut redis)
        .await
        .expect("off its shard");
    let _: () = redis::cmd("ZADD")
        .arg(format!("{}:sweep", app.prefix))
        .arg(1)
        .arg(&queue)
        .arg(2)
        .arg("not-a-queue")
        .query_async(&mut redis)
        .await
        .expect("old sweep schedule");
    let _: () = redis::cmd("ZADD")
        .arg(format!("{}:deliveries", app.prefix))
        .arg(5)
        .arg(&lane)
        .query_async(&mut redis)
        .await
        .expect("old delivery schedule");

    // Every broker start moves them.
    let prefix = app.prefix.clone();
    let nodes = cluster_nodes();
    let _restarted = spawn_app_with(move |s| {
        s.redis.key_prefix = prefix;
        s.redis.cluster_nodes = nodes.into_iter().map(Into::into).collect();
    })
    .await;
    crate::helpers::eventually(Duration::from_secs(10), || {
        let mut redis = redis.clone();
        let old = [
            format!("{}:sweep", app.prefix),
            format!("{}:deliveries", app.prefix),
        ];
        async move {
            let left: usize = redis::cmd("EXISTS")
                .arg(&old[0])
                .query_async::<usize>(&mut redis)
                .await
                .ok()?
                + redis::cmd("EXISTS")
                    .arg(&old[1])
                    .query_async::<usize>(&mut redis)
                    .await
                    .ok()?;
            (left == 0).then_some(())
        }
    })
    .await;
    let swept: Option<f64> = redis::cmd("ZSCORE")
        .arg(&sharded_sweep)
        .arg(&queue)
        .query_async(&mut redis)
        .await
        .expect("zscore");
    // The retention sweep may have visited the queue since: due at 1, or rescheduled.
    assert!(
        swept.is_some(),
        "the queue is on its shard's sweep schedule"
    );
    let due: Option<f64> = redis::cmd("ZSCORE")
        .arg(&sharded_deliveries)
        .arg(&lane)
        .query_async(&mut redis)
        .await
        .expect("zscore");
    assert!(
        due.is_some(),
        "the lane is on its shard's delivery schedule"
    );
    // The queue still serves, and its retention schedule still finds it.
    app.push_numbered(&queue, 1).await;
    assert_eq!(app.metrics(&queue).await["backlog_count"], 1);
}
