//! Hand-written hostile input, proven against the real app.
//!
//! The promise: bad input gets a clear 4xx Cloudflare envelope (never a 5xx, never a
//! hang), and nothing is lost or corrupted. Each burst runs against a queue holding
//! "sentinel" messages pushed beforehand; afterwards the queue, its consumer, its metrics
//! and every Redis key under the test prefix are exactly as before, and the sentinels are
//! pulled back byte for byte and acked.
//!
//! What reqwest cannot send (dot segments it would normalise, broken framing, a body that
//! trickles in) goes over a raw `TcpStream` (`crate::helpers::raw`). Errors that actix-http's parser raises before
//! a request exists (a malformed head, a head over 128 KiB or with more than 96 headers, a
//! head not received within `server.client_timeout_secs`) are a bare status with the
//! connection closed: no handler, hence no envelope, can run for them.
//!
//! This module holds the sentinel queue and its snapshot; the cases are in its
//! submodules, by theme.

mod encodings;
mod headers;
mod lease_ids;
mod nesting;
mod numbers;
mod paths;
mod size;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::raw::send_bytes;

// ---- sentinels ----------------------------------------------------------------------

/// A text body with everything a record codec could trip on: the record separator,
/// NUL, quotes, backslashes, brackets and characters outside the BMP.
const TEXT_SENTINEL: &str = "sentinel ✓ 😀 \u{0} \"quoted\" :0:0: {[( \\ \u{7f}";

/// A JSON body, sent as raw text: escapes and spacing must come back as sent.
const JSON_SENTINEL: &str =
    r#"{"a": [1, 2.50, "\u00e9\ud83d\ude00\u0000"], "b" : null, "deep": [[[{"x": "]]]"}]]]}"#;

/// Everything observable about a queue, compared before and after a burst.
#[derive(Debug, PartialEq)]
struct Snapshot {
    queue: Value,
    metrics: Value,
    consumers: Value,
    queue_count: usize,
    keys: Vec<String>,
}

async fn snapshot(app: &TestApp, queue: &str) -> Snapshot {
    // The deployment's layout marker is written once by a background task at start-up,
    // whenever it gets there; it is no queue's state.
    let layout = format!("{}:layout", app.prefix);
    let mut keys: Vec<String> = app
        .redis_keys()
        .await
        .into_iter()
        .filter(|k| *k != layout)
        .collect();
    keys.sort();
    Snapshot {
        queue: app
            .get(&format!("/queues/{queue}"))
            .await
            .assert_ok()
            .clone(),
        metrics: app.metrics(queue).await,
        consumers: app
            .get(&format!("/queues/{queue}/consumers"))
            .await
            .assert_ok()
            .clone(),
        queue_count: app
            .get("/queues")
            .await
            .assert_ok()
            .as_array()
            .expect("queues")
            .len(),
        keys,
    }
}

/// A queue holding two sentinel messages, with its snapshot.
struct Sentinel {
    queue: String,
    before: Snapshot,
}

impl Sentinel {
    async fn plant(app: &TestApp, name: &str) -> Self {
        let queue = app.create_queue(name).await;
        app.push(&queue, json!({"body": TEXT_SENTINEL}))
            .await
            .assert_ok();
        let raw = format!(r#"{{"body": {JSON_SENTINEL}, "content_type": "json"}}"#);
        send_bytes(app, Method::POST, &format!("/queues/{queue}/messages"), raw)
            .await
            .assert_ok();
        let before = snapshot(app, &queue).await;
        assert_eq!(before.metrics["backlog_count"], 2);
        assert_eq!(
            before.metrics["backlog_bytes"],
            TEXT_SENTINEL.len() + JSON_SENTINEL.len()
        );
        Self { queue, before }
    }

    /// Nothing about the queue changed: settings, consumer, metrics, Redis keys.
    async fn assert_untouched(&self, app: &TestApp) {
        assert_eq!(snapshot(app, &self.queue).await, self.before);
    }

    /// Untouched, and both sentinels come back byte for byte on their first delivery,
    /// then ack cleanly and leave the metrics at zero.
    async fn assert_delivered_intact(&self, app: &TestApp) {
        self.assert_untouched(app).await;
        let messages = app
            .pull_messages(&self.queue, json!({"batch_size": 10}))
            .await;
        let got: Vec<(&str, &str, u64)> = messages
            .iter()
            .map(|m| {
                (
                    m["body"].as_str().expect("body"),
                    m["metadata"]["CF-Content-Type"].as_str().expect("type"),
                    m["attempts"].as_u64().expect("attempts"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [(TEXT_SENTINEL, "text", 1), (JSON_SENTINEL, "json", 1)]
        );
        let oldest = messages
            .iter()
            .filter_map(|m| m["timestamp_ms"].as_u64())
            .min();
        assert_eq!(
            self.before.metrics["oldest_message_timestamp_ms"].as_u64(),
            oldest
        );
        let acks: Vec<Value> = messages
            .iter()
            .map(|m| json!({"lease_id": m["lease_id"]}))
            .collect();
        let acked = app.ack(&self.queue, json!({"acks": acks})).await;
        assert_eq!(
            acked.assert_ok(),
            &json!({"ackCount": 2, "retryCount": 0, "warnings": {}})
        );
        assert_eq!(
            app.metrics(&self.queue).await,
            json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0,
                   "inflight_count": 0, "delayed_count": 0,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
        );
    }
}
