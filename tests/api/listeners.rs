//! Listeners (SPEC §9): push delivery to real HTTP receivers on loopback.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::receiver::{Answer, Received, Receiver};
use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_app_with_clock};

const WAIT: Duration = Duration::from_secs(20);

async fn create_listener(app: &TestApp, queue: &str, body: Value) -> Value {
    app.post(&format!("/queues/{queue}/listeners"), body)
        .await
        .assert_ok()
        .clone()
}

/// Every message id a receiver got, with how many times.
fn deliveries(requests: &[Received]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in requests {
        for id in request.message_ids() {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// Standard Webhooks verification, written from the specification (not the broker's
/// code): HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed by the base64-decoded secret
/// after "whsec_"; the header lists "v1,<base64>" signatures separated by spaces.
fn verifies(secret: &str, request: &Received, body: &[u8]) -> bool {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let id = &request.headers["webhook-id"];
    let timestamp = &request.headers["webhook-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    request.headers["webhook-signature"]
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn push_texts(app: &TestApp, queue: &str, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let messages: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"body": format!("message {i}")}))
            .collect();
        app.push_batch(queue, json!({ "messages": messages }))
            .await
            .assert_ok();
    }
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_message() {
    let app = spawn_app().await;
    let queue = app.create_queue("signed").await;
    let receiver = Receiver::start().await;
    let created = create_listener(
        &app,
        &queue,
        json!({"name": "hook", "notify_url": format!("{}/hook", receiver.url)}),
    )
    .await;
    let secret = created["secret"]
        .as_str()
        .expect("secret on create")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["status"], "active");
    assert_eq!(created["settings"]["batch_size"], 10);
    let listener = created["listener_id"].as_str().expect("id").to_owned();
    // The secret is shown once.
    let read = app
        .get(&format!("/queues/{queue}/listeners/{listener}"))
        .await;
    assert!(read.assert_ok().get("secret").is_none());

    app.push(&queue, json!({"body": {"order": 7}}))
        .await
        .assert_ok();
    app.push(&queue, json!({"body": "plain text"}))
        .await
        .assert_ok();
    receiver.wait_for(WAIT, |r| deliveries(r).len() == 2).await;
    for request in receiver.requests() {
        assert_eq!(request.headers[":method"], "POST");
        assert_eq!(request.headers[":path"], "/hook");
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(request.headers["webhook-id"].starts_with("msg_"));
        assert!(verifies(&secret, &request, &request.body), "signature");
        let mut tampered = request.body.clone();
        tampered.push(b' ');
        assert!(!verifies(&secret, &request, &tampered), "tampered body");
        let body = request.json();
        assert_eq!(body["queue_id"], queue.as_str());
        assert_eq!(body["listener_id"], listener.as_str());
        for message in body["messages"].as_array().expect("messages") {
            assert_eq!(message["attempts"], 1);
            assert!(message["timestamp_ms"].as_u64().is_some());
            match message["content_type"].as_str() {
                Some("json") => assert_eq!(message["body"], json!({"order": 7})),
                Some("text") => assert_eq!(message["body"], "plain text"),
                other => panic!("content_type {other:?}"),
            }
        }
    }
    // Delivered messages leave the queue: no consumer, so no pull lane held them.
    let metrics = app.get(&format!("/queues/{queue}/metrics")).await;
    let wait_empty = async {
        loop {
            let metrics = app.get(&format!("/queues/{queue}/metrics")).await;
            if metrics.assert_ok()["backlog_count"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    metrics.assert_ok();
    tokio::time::timeout(WAIT, wait_empty)
        .await
        .expect("backlog drained");
    let log = app
        .get(&format!("/queues/{queue}/listeners/{listener}/deliveries"))
        .await;
    let log = log.assert_ok().as_array().expect("log").clone();
    assert!(!log.is_empty());
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["error"], Value::Null);
}

#[tokio::test]
async fn two_listeners_each_receive_every_message_and_the_consumer_too() {
    let app = spawn_app().await;
    let queue = app.create_queue("fanout").await;
    app.post(&format!("/queues/{queue}/consumers"), json!({}))
        .await
        .assert_ok();
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    for (name, receiver) in [("a", &a), ("b", &b)] {
        create_listener(
            &app,
            &queue,
            json!({"name": name, "notify_url": receiver.url, "settings": {"batch_size": 50}}),
        )
        .await;
    }
    push_texts(&app, &queue, 500).await;
    for receiver in [&a, &b] {
        receiver
            .wait_for(WAIT, |r| deliveries(r).len() == 500)
            .await;
        // Every attempt answered 200: nothing was delivered twice.
        assert!(deliveries(&receiver.requests()).values().all(|n| *n == 1));
    }
    // The pull consumer still gets every message, independently.
    let mut pulled = HashSet::new();
    while pulled.len() < 500 {
        let reply = app
            .post(
                &format!("/queues/{queue}/messages/pull"),
                json!({"batch_size": 100}),
            )
            .await;
        let messages = reply.assert_ok()["messages"]
            .as_array()
            .expect("messages")
            .clone();
        assert!(!messages.is_empty(), "pulled {} of 500", pulled.len());
        let acks: Vec<Value> = messages
            .iter()
            .map(|m| json!({"lease_id": m["lease_id"]}))
            .collect();
        for m in &messages {
            pulled.insert(m["id"].as_str().expect("id").to_owned());
        }
        app.post(
            &format!("/queues/{queue}/messages/ack"),
            json!({ "acks": acks }),
        )
        .await
        .assert_ok();
    }
    let delivered: HashSet<String> = deliveries(&a.requests()).into_keys().collect();
    assert_eq!(pulled, delivered);
    // Acked by the consumer and delivered to both listeners: nothing is left.
    let metrics = app.get(&format!("/queues/{queue}/metrics")).await;
    assert_eq!(metrics.assert_ok()["backlog_count"], 0);
}

#[tokio::test]
async fn a_listener_added_later_gets_only_newer_messages_and_a_deleted_one_stops() {
    let app = spawn_app().await;
    let queue = app.create_queue("later").await;
    let first = Receiver::start().await;
    let first_id = create_listener(
        &app,
        &queue,
        json!({"name": "first", "notify_url": first.url}),
    )
    .await["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push(&queue, json!({"body": "old"})).await.assert_ok();
    first.wait_for(WAIT, |r| deliveries(r).len() == 1).await;
    let second = Receiver::start().await;
    create_listener(
        &app,
        &queue,
        json!({"name": "second", "notify_url": second.url}),
    )
    .await;
    app.delete(&format!("/queues/{queue}/listeners/{first_id}"))
        .await
        .assert_ok();
    app.push(&queue, json!({"body": "new"})).await.assert_ok();
    second.wait_for(WAIT, |r| deliveries(r).len() == 1).await;
    let bodies: Vec<Value> = second
        .requests()
        .iter()
        .flat_map(|r| r.json()["messages"].as_array().cloned().unwrap_or_default())
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("new")]);
    assert_eq!(
        first.requests().len(),
        1,
        "a deleted listener gets nothing more"
    );
    app.get(&format!("/queues/{queue}/listeners/{first_id}"))
        .await
        .assert_error(404, 10140);
    let listed = app.get(&format!("/queues/{queue}/listeners")).await;
    assert_eq!(listed.assert_ok().as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn failed_attempts_are_retried_with_growing_gaps_then_delivered() {
    let (app, clock) = spawn_app_with_clock(|_| {}).await;
    let queue = app.create_queue("retried").await;
    // 500 three times, then 200.
    let receiver = Receiver::scripted(|n, _| Answer::Status(if n < 3 { 500 } else { 200 })).await;
    let listener = create_listener(
        &app,
        &queue,
        json!({"name": "flaky", "notify_url": receiver.url,
               "settings": {"retry_delay": 1, "retry_delay_max": 60, "max_retries": 5}}),
    )
    .await["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push(&queue, json!({"body": "x"})).await.assert_ok();
    // Time moves by the broker's clock, 100 ms per step, until delivered. The worker
    // looks at its schedule every 100 ms of real time: it sees a due lane up to a few
    // steps late.
    let delivered = async {
        while receiver.requests().len() < 4 {
            clock.advance(Duration::from_millis(100));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    tokio::time::timeout(WAIT, delivered)
        .await
        .expect("delivered on the 4th attempt");
    let attempts: Vec<u64> = receiver
        .requests()
        .iter()
        .map(|r| {
            r.json()["messages"][0]["attempts"]
                .as_u64()
                .expect("attempts")
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    // The receiver counts a request when it arrives; the broker logs the attempt once
    // the answer is back, a moment later.
    let log_path = format!("/queues/{queue}/listeners/{listener}/deliveries");
    let logged = async {
        loop {
            let log = app.get(&log_path).await.assert_ok().clone();
            if log.as_array().map(Vec::len) == Some(4) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let log = tokio::time::timeout(WAIT, logged)
        .await
        .expect("4 attempts logged");
    let mut times: Vec<u64> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|entry| {
            let at = entry["attempted_at"].as_str().expect("attempted_at");
            humantime::parse_rfc3339(at)
                .expect("RFC 3339")
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as u64
        })
        .collect();
    times.reverse();
    assert_eq!(times.len(), 4);
    // Gaps of 1, 2 and 4 s (times a jitter in [0.8, 1)): never early, and late by no
    // more than the worker's look at the schedule.
    for (i, gap) in times.windows(2).map(|w| w[1] - w[0]).enumerate() {
        let nominal = 1000 << i;
        assert!(
            gap >= nominal * 8 / 10 && gap <= nominal + 700,
            "gap {i}: {gap} ms for a nominal {nominal} ms ({times:?})"
        );
    }
}

#[tokio::test]
async fn a_2xx_answer_may_ask_for_some_messages_again() {
    let app = spawn_app().await;
    let queue = app.create_queue("partial").await;
    // The first answer takes the batch but asks for its first message again.
    let receiver = Receiver::scripted(|n, body| {
        if n == 0 {
            let id = body["messages"][0]["id"].clone();
            Answer::Json(200, json!({"retries": [{"id": id, "delay_seconds": 0}]}))
        } else {
            Answer::Status(200)
        }
    })
    .await;
    create_listener(
        &app,
        &queue,
        json!({"name": "picky", "notify_url": receiver.url,
               "settings": {"paused": true, "batch_size": 3}}),
    )
    .await;
    push_texts(&app, &queue, 3).await;
    let listener = app.get(&format!("/queues/{queue}/listeners")).await;
    let listener = listener.assert_ok()[0]["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.request(
        Method::PATCH,
        &format!("/queues/{queue}/listeners/{listener}"),
        Some(json!({"settings": {"paused": false}})),
    )
    .await
    .assert_ok();
    receiver.wait_for(WAIT, |r| r.len() == 2).await;
    let requests = receiver.requests();
    assert_eq!(requests[0].message_ids().len(), 3);
    assert_eq!(
        requests[1].message_ids(),
        [requests[0].message_ids()[0].clone()]
    );
    assert_eq!(requests[1].json()["messages"][0]["attempts"], 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "the others were taken the first time"
    );
}

#[tokio::test]
async fn a_receiver_that_always_fails_sends_the_message_to_the_dead_letter_queue() {
    let app = spawn_app().await;
    let queue = app.create_queue("failing").await;
    let receiver = Receiver::scripted(|_, _| Answer::Status(503)).await;
    create_listener(
        &app,
        &queue,
        json!({"name": "down", "notify_url": receiver.url, "dead_letter_queue": "failing-dlq",
               "settings": {"retry_delay": 0, "max_retries": 2}}),
    )
    .await;
    app.push(&queue, json!({"body": {"keep": "me", "n": [1, 2]}}))
        .await
        .assert_ok();
    receiver.wait_for(WAIT, |r| r.len() == 3).await;
    // The dead-letter queue holds it, body intact.
    let dlq = async {
        loop {
            let queues = app.get("/queues?name=failing-dlq").await;
            if let Some(id) = queues.assert_ok()[0]["queue_id"].as_str() {
                let peeked = app
                    .post(&format!("/queues/{id}/messages/peek"), json!({}))
                    .await;
                if let Some(message) = peeked.assert_ok()["messages"].get(0) {
                    return message.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let message = tokio::time::timeout(WAIT, dlq)
        .await
        .expect("dead-lettered");
    assert_eq!(
        serde_json::from_str::<Value>(message["body"].as_str().expect("body")).expect("JSON"),
        json!({"keep": "me", "n": [1, 2]})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.requests().len(),
        3,
        "max_retries + 1 attempts, no more"
    );
    let metrics = app.get(&format!("/queues/{queue}/metrics")).await;
    assert_eq!(metrics.assert_ok()["backlog_count"], 0);
}

#[tokio::test]
async fn a_down_listener_is_not_delivered_to_until_its_liveness_url_answers() {
    let (app, clock) = spawn_app_with_clock(|_| {}).await;
    let queue = app.create_queue("liveness").await;
    let notify = Receiver::scripted(|_, _| Answer::Status(500)).await;
    let liveness = Receiver::scripted(|_, _| Answer::Status(503)).await;
    let listener = create_listener(
        &app,
        &queue,
        json!({"name": "sleepy", "notify_url": notify.url, "liveness_url": liveness.url,
               "settings": {"retry_delay": 1, "max_retries": 3}}),
    )
    .await["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push(&queue, json!({"body": "x"})).await.assert_ok();
    notify.wait_for(WAIT, |r| r.len() == 1).await;
    liveness.wait_for(WAIT, |r| !r.is_empty()).await;
    let path = format!("/queues/{queue}/listeners/{listener}");
    let status = async {
        loop {
            if app.get(&path).await.assert_ok()["status"] == "down" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, status)
        .await
        .expect("marked down");
    // Down: minutes pass, the liveness URL is polled, and no attempt is spent.
    for _ in 0..40 {
        clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(notify.requests().len(), 1, "no delivery while down");
    assert!(liveness.requests().len() >= 2, "the liveness URL is polled");
    // Back up: the next probe succeeds and delivery resumes, at attempt 2.
    liveness.rescript(|_, _| Answer::Status(200));
    notify.rescript(|_, _| Answer::Status(200));
    let resumed = async {
        while notify.requests().len() < 2 {
            clock.advance(Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    tokio::time::timeout(WAIT, resumed)
        .await
        .expect("delivery resumed");
    let last = notify.requests().last().cloned().expect("a request");
    assert_eq!(last.json()["messages"][0]["attempts"], 2);
    assert_eq!(app.get(&path).await.assert_ok()["status"], "active");
}

#[tokio::test]
async fn a_hanging_receiver_times_out_without_slowing_another_listener() {
    let app = spawn_app().await;
    let queue = app.create_queue("hanging").await;
    let hanging = Receiver::scripted(|_, _| Answer::After(Duration::from_secs(30))).await;
    let quick = Receiver::start().await;
    let slow_id = create_listener(
        &app,
        &queue,
        json!({"name": "slow", "notify_url": hanging.url,
               "settings": {"timeout_ms": 500, "retry_delay": 60}}),
    )
    .await["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    create_listener(
        &app,
        &queue,
        json!({"name": "quick", "notify_url": quick.url}),
    )
    .await;
    push_texts(&app, &queue, 30).await;
    quick.wait_for(WAIT, |r| deliveries(r).len() == 30).await;
    let log_path = format!("/queues/{queue}/listeners/{slow_id}/deliveries");
    let timed_out = async {
        loop {
            let log = app.get(&log_path).await;
            if let Some(entry) = log.assert_ok().get(0) {
                return entry.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let entry = tokio::time::timeout(WAIT, timed_out)
        .await
        .expect("an attempt logged");
    assert_eq!(entry["status"], 0);
    assert_eq!(entry["error"], "timed out");
    let took = entry["duration_ms"].as_u64().expect("duration");
    assert!(took >= 500, "gave up after {took} ms, before timeout_ms");
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed() {
    let app = spawn_app_with(|s| s.listeners.allow_private_destinations = false).await;
    let queue = app.create_queue("ssrf").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "ftp://example.com/",
        "https://user:pass@example.com/",
        "not a url",
    ] {
        let reply = app
            .post(
                &format!("/queues/{queue}/listeners"),
                json!({"name": "x", "notify_url": url}),
            )
            .await;
        reply.assert_error(400, 10207);
    }
    let reply = app
        .post(
            &format!("/queues/{queue}/listeners"),
            json!({"name": "x", "notify_url": "https://example.com/hook", "liveness_url": "http://127.0.0.1/"}),
        )
        .await;
    reply.assert_error(400, 10207);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = spawn_app().await;
    let queue = app.create_queue("redirected").await;
    let elsewhere = Receiver::start().await;
    let target = elsewhere.url.clone();
    let redirecting = Receiver::scripted(move |_, _| Answer::Redirect(target.clone())).await;
    let id = create_listener(
        &app,
        &queue,
        json!({"name": "r", "notify_url": redirecting.url, "settings": {"retry_delay": 3600}}),
    )
    .await["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.push(&queue, json!({"body": "x"})).await.assert_ok();
    redirecting.wait_for(WAIT, |r| r.len() == 1).await;
    let log_path = format!("/queues/{queue}/listeners/{id}/deliveries");
    let entry = crate::helpers::eventually(WAIT, || async {
        app.get(&log_path).await.assert_ok().get(0).cloned()
    })
    .await;
    assert_eq!(entry["status"], 307);
    assert_eq!(entry["error"], "answered 307");
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn listeners_are_validated_updated_rotated_and_paused() {
    let app = spawn_app().await;
    let queue = app.create_queue("crud").await;
    let receiver = Receiver::start().await;
    let base = format!("/queues/{queue}/listeners");
    for bad in [
        json!({"notify_url": receiver.url}),
        json!({"name": "x"}),
        json!({"name": "", "notify_url": receiver.url}),
        json!({"name": "x", "notify_url": receiver.url, "settings": {"batch_size": 0}}),
        json!({"name": "x", "notify_url": receiver.url, "settings": {"batch_size": 101}}),
        json!({"name": "x", "notify_url": receiver.url, "settings": {"timeout_ms": 1.5}}),
        json!({"name": "x", "notify_url": receiver.url, "dead_letter_queue": "Bad Name"}),
        json!({"name": "x", "notify_url": receiver.url, "dead_letter_queue": "crud"}),
    ] {
        app.post(&base, bad.clone()).await.assert_error(400, 10207);
    }
    let created = create_listener(
        &app,
        &queue,
        json!({"name": "x", "notify_url": receiver.url, "settings": {"batch_size": 3}}),
    )
    .await;
    let id = created["listener_id"].as_str().expect("id").to_owned();
    let old_secret = created["secret"].as_str().expect("secret").to_owned();
    let path = format!("{base}/{id}");
    // PATCH keeps what it does not name; a rotation shows the new secret.
    let patched = app
        .request(
            Method::PATCH,
            &path,
            Some(json!({"settings": {"paused": true}, "rotate_secret": true})),
        )
        .await;
    let patched = patched.assert_ok();
    assert_eq!(patched["settings"]["batch_size"], 3);
    assert_eq!(patched["status"], "paused");
    let new_secret = patched["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, old_secret);
    // Paused: messages wait.
    app.push(&queue, json!({"body": "waits"})).await.assert_ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.requests().is_empty());
    assert_eq!(app.get(&path).await.assert_ok()["backlog"], 1);
    // Resumed: delivered, signed with both secrets during the rotation window.
    app.request(
        Method::PATCH,
        &path,
        Some(json!({"settings": {"paused": false}})),
    )
    .await
    .assert_ok();
    receiver.wait_for(WAIT, |r| r.len() == 1).await;
    let request = &receiver.requests()[0];
    assert!(verifies(&new_secret, request, &request.body));
    assert!(verifies(&old_secret, request, &request.body));
    assert_eq!(request.headers["webhook-signature"].split(' ').count(), 2);
    // PUT resets what it leaves out.
    let put = app
        .request(
            Method::PUT,
            &path,
            Some(json!({"name": "y", "notify_url": receiver.url})),
        )
        .await;
    let put = put.assert_ok();
    assert_eq!(put["name"], "y");
    assert_eq!(put["settings"]["batch_size"], 10);
    assert!(put.get("secret").is_none());
    app.delete(&path).await.assert_ok();
    app.delete(&path).await.assert_error(404, 10140);
    app.get(&format!("{base}/not-an-id"))
        .await
        .assert_error(404, 10140);
}

#[tokio::test]
async fn deleting_the_queue_or_the_listener_leaves_no_key_behind() {
    let app = spawn_app().await;
    let queue = app.create_queue("tidy").await;
    let receiver = Receiver::scripted(|_, _| Answer::Status(500)).await;
    let id = create_listener(
        &app,
        &queue,
        json!({"name": "x", "notify_url": receiver.url, "settings": {"retry_delay": 3600}}),
    )
    .await["listener_id"]
        .as_str()
        .expect("id")
        .to_owned();
    push_texts(&app, &queue, 20).await;
    receiver.wait_for(WAIT, |r| !r.is_empty()).await;
    app.delete(&format!("/queues/{queue}/listeners/{id}"))
        .await
        .assert_ok();
    let metrics = app.get(&format!("/queues/{queue}/metrics")).await;
    assert_eq!(
        metrics.assert_ok()["backlog_count"],
        0,
        "with its only lane gone, every message went"
    );
    app.delete(&format!("/queues/{queue}")).await.assert_ok();
    let keys = app.redis_keys().await;
    assert!(
        keys.iter().all(|k| !k.contains(&queue)),
        "left behind: {keys:?}"
    );
}
