//! Message groups (SPEC §13): `group_id` on push, round-robin pulls across groups, and
//! `group_max_inflight` (1: strict FIFO per group).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leaseq::model::ManualClock;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::helpers::{TestApp, spawn_app, spawn_app_with_clock};

/// A queue with an `http_pull` consumer and, when above 0, `group_max_inflight`.
async fn grouped_queue(app: &TestApp, name: &str, group_max_inflight: u32) -> String {
    let queue = app.create_queue(name).await;
    app.request(
        reqwest::Method::PATCH,
        &format!("/queues/{queue}"),
        Some(json!({"settings": {"group_max_inflight": group_max_inflight}})),
    )
    .await
    .assert_ok();
    app.post(
        &format!("/queues/{queue}/consumers"),
        json!({"type": "http_pull", "settings": {"max_retries": 100}}),
    )
    .await
    .assert_ok();
    queue
}

/// Pushes `count` messages of `group` (bodies `<group>-<n>`, n from 0), 100 per request.
async fn push_group(app: &TestApp, queue: &str, group: Option<&str>, count: usize) {
    let mut n = 0;
    while n < count {
        let messages: Vec<Value> = (n..count.min(n + 100))
            .map(|i| {
                let mut m = json!({"body": format!("{}-{i}", group.unwrap_or("none"))});
                if let Some(group) = group {
                    m["group_id"] = json!(group);
                }
                m
            })
            .collect();
        n += messages.len();
        app.push_batch(queue, json!({"messages": messages}))
            .await
            .assert_ok();
    }
}

fn group_of(message: &Value) -> String {
    message["group_id"].as_str().unwrap_or("none").to_owned()
}

/// The sequence number in a body `<group>-<n>`.
fn seq_of(message: &Value) -> usize {
    let body = message["body"].as_str().expect("body");
    body.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("numbered body")
}

#[tokio::test]
async fn a_group_with_100_000_messages_delays_ten_small_groups_by_at_most_one_round() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "fair", 0).await;
    push_group(&app, &queue, Some("A"), 100_000).await;
    let small: Vec<String> = ('B'..='K').map(String::from).collect();
    for group in &small {
        push_group(&app, &queue, Some(group), 10).await;
    }
    let mut first = Vec::new();
    while first.len() < 110 {
        let pulled = app.pull_messages(&queue, json!({"batch_size": 100})).await;
        assert!(!pulled.is_empty(), "the queue ran dry");
        first.extend(pulled);
    }
    first.truncate(110);
    let from_small = first.iter().filter(|m| group_of(m) != "A").count();
    assert_eq!(from_small, 100, "all 100 of B..K among the first 110");
    // Each group's messages come in push order (one lane each, oldest first).
    let mut next: HashMap<String, usize> = HashMap::new();
    for m in &first {
        let expected = next.entry(group_of(m)).or_default();
        assert_eq!(seq_of(m), *expected, "{m}");
        *expected += 1;
    }
}

#[tokio::test]
async fn ungrouped_messages_are_one_more_lane_in_the_rotation() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "lanes", 0).await;
    push_group(&app, &queue, None, 50).await;
    push_group(&app, &queue, Some("g1"), 5).await;
    push_group(&app, &queue, Some("g2"), 5).await;
    let metrics = app.metrics(&queue).await;
    assert_eq!(metrics["visible_group_count"], 2, "{metrics}");
    assert!(
        metrics["oldest_group_head_timestamp_ms"].as_u64() > Some(0),
        "{metrics}"
    );
    let scraped = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        scraped
            .lines()
            .any(|l| l.starts_with("leaseq_queue_visible_groups{")
                && l.contains("queue=\"lanes\"")
                && l.ends_with(" 2")),
        "{scraped}"
    );
    let pulled = app.pull_messages(&queue, json!({"batch_size": 12})).await;
    let groups: Vec<String> = pulled.iter().map(group_of).collect();
    // Round by round: the ungrouped lane was waiting first, then g1, then g2.
    assert_eq!(groups, ["none", "g1", "g2"].repeat(4), "{pulled:?}");
    // The groups run dry after five rounds; the ungrouped lane then fills the batch.
    let rest = app.pull_messages(&queue, json!({"batch_size": 20})).await;
    let counts = rest.iter().fold(BTreeMap::new(), |mut c, m| {
        *c.entry(group_of(m)).or_insert(0) += 1;
        c
    });
    assert_eq!(
        counts,
        BTreeMap::from([("g1".into(), 1), ("g2".into(), 1), ("none".into(), 18)])
    );
}

#[tokio::test]
async fn group_id_is_returned_by_pull_peek_and_get_and_validated_on_push() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "shown", 0).await;
    app.push(&queue, json!({"body": "a", "group_id": "customer-7"}))
        .await
        .assert_ok();
    app.push(&queue, json!({"body": "b"})).await.assert_ok();
    let peeked = app
        .post(&format!("/queues/{queue}/messages/peek"), json!({}))
        .await;
    let peeked = peeked.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert_eq!(peeked.len(), 2);
    let grouped = peeked
        .iter()
        .find(|m| m["body"] == "a")
        .expect("the grouped message");
    assert_eq!(grouped["group_id"], "customer-7");
    let plain = peeked.iter().find(|m| m["body"] == "b").expect("plain");
    assert!(plain.get("group_id").is_none(), "{plain}");
    let id = grouped["id"].as_str().expect("id");
    let got = app.get(&format!("/queues/{queue}/messages/{id}")).await;
    assert_eq!(got.assert_ok()["group_id"], "customer-7");
    let pulled = app.pull_messages(&queue, json!({})).await;
    assert!(pulled.iter().any(|m| m["group_id"] == "customer-7"));

    for bad in [
        json!(""),
        json!("x".repeat(129)),
        json!("a\u{0}b"),
        json!("line\nbreak"),
        json!(7),
    ] {
        let reply = app
            .push(&queue, json!({"body": "c", "group_id": bad}))
            .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(reply.body["success"], false);
    }
    let batch = app
        .push_batch(
            &queue,
            json!({"messages": [{"body": "ok", "group_id": "g"}, {"body": "bad", "group_id": ""}]}),
        )
        .await;
    assert_eq!(batch.status, 400);
    assert!(
        batch.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("messages[1].group_id"),
        "{}",
        batch.body
    );
    let setting = app
        .request(
            reqwest::Method::PATCH,
            &format!("/queues/{queue}"),
            Some(json!({"settings": {"group_max_inflight": -1}})),
        )
        .await;
    assert_eq!(setting.status, 400);
}

#[tokio::test]
async fn group_max_inflight_caps_the_leases_of_each_group() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "capped", 2).await;
    push_group(&app, &queue, Some("g"), 10).await;
    push_group(&app, &queue, None, 3).await;
    let first = app.pull_messages(&queue, json!({"batch_size": 100})).await;
    let of_g: Vec<usize> = first
        .iter()
        .filter(|m| group_of(m) == "g")
        .map(seq_of)
        .collect();
    assert_eq!(of_g, [0, 1], "two of g, the oldest");
    assert_eq!(first.len(), 5, "and every ungrouped message: {first:?}");
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    // An ack frees one place.
    let lease = first.iter().find(|m| group_of(m) == "g").expect("g")["lease_id"].clone();
    app.ack(&queue, json!({"acks": [{"lease_id": lease}]}))
        .await
        .assert_ok();
    let next = app.pull_messages(&queue, json!({"batch_size": 100})).await;
    assert_eq!(next.iter().map(seq_of).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn strict_fifo_keeps_a_retried_or_expired_message_at_the_head_of_its_group() {
    let (app, clock) = spawn_app_with_clock(|_| {}).await;
    let queue = grouped_queue(&app, "fifo", 1).await;
    push_group(&app, &queue, Some("order-1"), 3).await;
    let pulled = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(pulled.iter().map(seq_of).collect::<Vec<_>>(), [0]);
    // Retried with a delay: nothing of the group until it is over, then the same head.
    app.ack(
        &queue,
        json!({"retries": [{"lease_id": pulled[0]["lease_id"], "delay_seconds": 5}]}),
    )
    .await
    .assert_ok();
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    let metrics = app.metrics(&queue).await;
    assert_eq!(metrics["delayed_count"], 1, "{metrics}");
    clock.advance(Duration::from_secs(5));
    let again = app
        .pull_messages(&queue, json!({"visibility_timeout_ms": 1000}))
        .await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (seq_of(&again[0]), again[0]["attempts"].clone()),
        (0, json!(2))
    );
    // Its lease expires: still the head.
    clock.advance(Duration::from_millis(1001));
    let third = app.pull_messages(&queue, json!({})).await;
    assert_eq!(
        (seq_of(&third[0]), third[0]["attempts"].clone()),
        (0, json!(3))
    );
    app.ack(
        &queue,
        json!({"acks": [{"lease_id": third[0]["lease_id"]}]}),
    )
    .await
    .assert_ok();
    let fourth = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(fourth.iter().map(seq_of).collect::<Vec<_>>(), [1]);
}

/// What the FIFO consumers share: which message of each group a consumer holds (none
/// may be delivered while another is), the next first delivery each group expects, and
/// how many messages are done.
#[derive(Default)]
struct Ledger {
    /// group -> (message id, abandoned: left to expire rather than acked or retried)
    held: HashMap<String, (String, bool)>,
    next_first: HashMap<String, usize>,
    acked: usize,
}

/// 20 groups × 500 messages, `group_max_inflight` 1, 8 consumers that ack, retry or
/// abandon (the lease then expires) at random.
#[tokio::test]
async fn strict_fifo_under_eight_concurrent_consumers_with_retries_and_expiries() {
    const GROUPS: usize = 20;
    const PER_GROUP: usize = 500;
    let (app, clock) = spawn_app_with_clock(|_| {}).await;
    let queue = grouped_queue(&app, "fifo-load", 1).await;
    // Push order within each group: message k of the stream is group k % 20.
    let mut k = 0;
    while k < GROUPS * PER_GROUP {
        let messages: Vec<Value> = (k..k + 100)
            .map(|i| json!({"body": format!("g{}-{}", i % GROUPS, i / GROUPS), "group_id": format!("g{}", i % GROUPS)}))
            .collect();
        k += 100;
        app.push_batch(&queue, json!({"messages": messages}))
            .await
            .assert_ok();
    }
    let app = Arc::new(app);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // Consumers hold it for reading from a pull until their batch is settled; moving the
    // clock past every lease takes it for writing, so no lease expires under a consumer.
    let expiry_gate = Arc::new(RwLock::new(()));
    let mut consumers = Vec::new();
    for c in 0..8u64 {
        let (app, queue, ledger, gate, clock) = (
            app.clone(),
            queue.clone(),
            ledger.clone(),
            expiry_gate.clone(),
            clock.clone(),
        );
        consumers.push(tokio::spawn(async move {
            fifo_consumer(c, &app, &queue, &ledger, &gate, &clock, GROUPS * PER_GROUP).await
        }));
    }
    for consumer in consumers {
        consumer.await.expect("consumer task");
    }
    let ledger = ledger.lock().expect("ledger");
    assert_eq!(ledger.acked, GROUPS * PER_GROUP);
    for g in 0..GROUPS {
        assert_eq!(ledger.next_first[&format!("g{g}")], PER_GROUP);
    }
}

async fn fifo_consumer(
    seed: u64,
    app: &TestApp,
    queue: &str,
    ledger: &Mutex<Ledger>,
    gate: &RwLock<()>,
    clock: &ManualClock,
    total: usize,
) {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut random = move |n: u64| {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    };
    loop {
        if ledger.lock().expect("ledger").acked >= total {
            return;
        }
        let reading = gate.read().await;
        let batch = 1 + random(10);
        let pulled = app
            .pull_messages(
                queue,
                json!({"batch_size": batch, "visibility_timeout_ms": 30_000}),
            )
            .await;
        if pulled.is_empty() {
            drop(reading);
            // Every group is leased, held or done: let abandoned leases expire.
            let _moving = gate.write().await;
            clock.advance(Duration::from_millis(31_000));
            ledger
                .lock()
                .expect("ledger")
                .held
                .retain(|_, (_, abandoned)| !*abandoned);
            continue;
        }
        let (mut acks, mut retries) = (Vec::new(), Vec::new());
        {
            let mut ledger = ledger.lock().expect("ledger");
            for m in &pulled {
                let group = group_of(m);
                let id = m["id"].as_str().expect("id").to_owned();
                if let Some((other, _)) = ledger.held.get(&group) {
                    panic!("{id} of {group} delivered while {other} is leased");
                }
                if m["attempts"] == 1 {
                    let expected = ledger.next_first.entry(group.clone()).or_default();
                    assert_eq!(
                        seq_of(m),
                        *expected,
                        "first delivery out of push order: {m}"
                    );
                    *expected += 1;
                }
                match random(10) {
                    0 => {
                        ledger.held.insert(group, (id, true));
                    }
                    1 | 2 => {
                        retries.push(json!({"lease_id": m["lease_id"], "delay_seconds": random(2)}))
                    }
                    _ => {
                        ledger.acked += 1;
                        acks.push(json!({"lease_id": m["lease_id"]}));
                    }
                }
            }
        }
        // Settled before the broker hears of it, so a pull that follows never sees it held.
        if !acks.is_empty() || !retries.is_empty() {
            let reply = app
                .ack(queue, json!({"acks": acks, "retries": retries}))
                .await;
            let warnings = &reply.assert_ok()["warnings"];
            assert!(
                *warnings == json!({}) || *warnings == json!([]),
                "{}",
                reply.body
            );
        }
        drop(reading);
    }
}

#[tokio::test]
async fn a_queue_purged_of_its_groups_serves_oldest_first_again() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "reset", 0).await;
    push_group(&app, &queue, Some("g"), 3).await;
    app.post(&format!("/queues/{queue}/purge"), json!({}))
        .await
        .assert_ok();
    push_group(&app, &queue, None, 3).await;
    let pulled = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(pulled.iter().map(seq_of).collect::<Vec<_>>(), [0, 1, 2]);
    let keys = app.redis_keys().await;
    assert!(
        !keys
            .iter()
            .any(|k| k.ends_with(":rounds") || k.ends_with(":groups")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn grouped_messages_keep_their_group_through_the_dead_letter_queue() {
    let app = spawn_app().await;
    let queue = app.create_queue("src").await;
    app.post(
        &format!("/queues/{queue}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "src-dlq", "settings": {"max_retries": 0}}),
    )
    .await
    .assert_ok();
    app.push(&queue, json!({"body": "x", "group_id": "tenant-1"}))
        .await
        .assert_ok();
    let pulled = app.pull_messages(&queue, json!({})).await;
    app.ack(
        &queue,
        json!({"retries": [{"lease_id": pulled[0]["lease_id"]}]}),
    )
    .await
    .assert_ok();
    let queues = app.get("/queues?per_page=100").await;
    let dlq = queues
        .assert_ok()
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue_name"] == "src-dlq")
        .expect("the dead-letter queue")["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let dead = crate::helpers::eventually(Duration::from_secs(10), || async {
        let got = app.pull_messages(&dlq, json!({})).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(dead[0]["group_id"], "tenant-1");
    assert_eq!(dead[0]["body"], "x");
}

#[tokio::test]
async fn a_lifted_cap_frees_the_messages_it_held_back_at_once() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "lifted", 1).await;
    push_group(&app, &queue, Some("g"), 3).await;
    let first = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(first.len(), 1);
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    app.request(
        reqwest::Method::PATCH,
        &format!("/queues/{queue}"),
        Some(json!({"settings": {"group_max_inflight": 0}})),
    )
    .await
    .assert_ok();
    // Without a cap the group gives all it has, its first lease still out.
    let rest = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(rest.iter().map(seq_of).collect::<Vec<_>>(), [1, 2]);
    app.ack(
        &queue,
        json!({"acks": [{"lease_id": first[0]["lease_id"]}]}),
    )
    .await
    .assert_ok();
    // A cap set again counts the leases made from then on.
    app.request(
        reqwest::Method::PATCH,
        &format!("/queues/{queue}"),
        Some(json!({"settings": {"group_max_inflight": 1}})),
    )
    .await
    .assert_ok();
    push_group(&app, &queue, Some("g"), 2).await;
    let capped = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(capped.len(), 1, "{capped:?}");
}

#[tokio::test]
async fn a_raised_cap_gives_a_full_group_room_at_once() {
    let app = spawn_app().await;
    let queue = grouped_queue(&app, "raised", 1).await;
    push_group(&app, &queue, Some("g"), 4).await;
    let first = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(first.iter().map(seq_of).collect::<Vec<_>>(), [0]);
    app.request(
        reqwest::Method::PATCH,
        &format!("/queues/{queue}"),
        Some(json!({"settings": {"group_max_inflight": 3}})),
    )
    .await
    .assert_ok();
    // Its first lease still counts: two more, in order, and no third.
    let more = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    assert_eq!(more.iter().map(seq_of).collect::<Vec<_>>(), [1, 2]);
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
}

/// Leases that expire, a strict FIFO hold, parked messages, ungrouped ones beside them:
/// once every message is acked, nothing of the groups is left in Redis.
#[tokio::test]
async fn a_drained_grouped_queue_leaves_no_group_keys() {
    let (app, clock) = spawn_app_with_clock(|_| {}).await;
    let queue = grouped_queue(&app, "tidy", 1).await;
    for group in ["a", "b", "c"] {
        push_group(&app, &queue, Some(group), 5).await;
    }
    push_group(&app, &queue, None, 3).await;
    let first = app
        .pull_messages(
            &queue,
            json!({"batch_size": 10, "visibility_timeout_ms": 1000}),
        )
        .await;
    let held = first.iter().find(|m| group_of(m) == "a").expect("a's head");
    app.ack(
        &queue,
        json!({"retries": [{"lease_id": held["lease_id"], "delay_seconds": 2}]}),
    )
    .await
    .assert_ok();
    // The other leases expire.
    clock.advance(Duration::from_millis(1001));
    let mut acked = 0;
    for _ in 0..50 {
        clock.advance(Duration::from_secs(3));
        let pulled = app.pull_messages(&queue, json!({"batch_size": 100})).await;
        if pulled.is_empty() && acked == 18 {
            break;
        }
        let acks: Vec<Value> = pulled
            .iter()
            .map(|m| json!({"lease_id": m["lease_id"]}))
            .collect();
        app.ack(&queue, json!({"acks": acks})).await.assert_ok();
        acked += pulled.len();
    }
    assert_eq!(acked, 18);
    let keys = app.redis_keys().await;
    let left: Vec<&String> = keys
        .iter()
        .filter(|k| {
            [
                ":rounds",
                ":groups",
                ":group_delayed",
                ":parked",
                ":round_of",
                ":group_parked",
                ":group_inflight",
                ":group_hold",
            ]
            .iter()
            .any(|suffix| k.ends_with(suffix))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
