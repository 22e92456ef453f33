//! Hand-written hostile input, proven against the real app.
//!
//! The promise: bad input gets a clear 4xx Cloudflare envelope (never a 5xx, never a
//! hang), and nothing is lost or corrupted. Each burst runs against a queue holding
//! "sentinel" messages pushed beforehand; afterwards the queue, its consumer, its metrics
//! and every Redis key under the test prefix are exactly as before, and the sentinels are
//! pulled back byte for byte and acked.
//!
//! What reqwest cannot send (dot segments it would normalise, broken framing, a body that
//! trickles in) goes over a raw `TcpStream`. Errors that actix-http's parser raises before
//! a request exists (a malformed head, a head over 128 KiB or with more than 96 headers, a
//! head not received within `server.client_timeout_secs`) are a bare status with the
//! connection closed: no handler, hence no envelope, can run for them.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{ACCOUNT, Reply, TestApp, spawn_app, spawn_app_with};

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
            json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0})
        );
    }
}

// ---- requests -------------------------------------------------------------------------

/// Raw bytes as a JSON request body, with the test token.
async fn send_bytes(app: &TestApp, method: Method, path: &str, body: impl Into<Vec<u8>>) -> Reply {
    let request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(body.into());
    app.send_raw(request).await
}

/// Asserts the envelope with this status and code, naming the case when it is not.
#[track_caller]
fn refused(reply: &Reply, status: u16, code: u64, case: &str) {
    assert_eq!(
        (reply.status.as_u16(), &reply.body["errors"][0]["code"]),
        (status, &json!(code)),
        "{case}: {}",
        reply.body
    );
    reply.assert_error(status, code);
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// An HTTP/1.1 request, byte for byte: `target` is sent as given, and `headers` are
/// `Name: value\r\n` lines added after Host, Authorization and `Connection: close`.
fn http(app: &TestApp, method: &str, target: &[u8], headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
            addr(app),
            app.token,
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response (head, then `Content-Length` bytes of body); `None` when the
/// server closed the connection without answering. Panics after 5 s: a hang.
async fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').expect("header line");
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
                HeaderValue::from_str(value.trim()).expect("header value"),
            );
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        body.truncate(length);
        Some(Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        })
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server answers or closes within 5 s")
}

/// Whether the server closes the connection (EOF or reset) within 5 s.
async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

/// Sends `request` on a fresh connection and reads the answer.
async fn raw(app: &TestApp, request: &[u8]) -> (Option<Reply>, TcpStream) {
    let mut stream = TcpStream::connect(addr(app)).await.expect("connect");
    // The server may answer and close before it has read everything: that is allowed.
    let _ = stream.write_all(request).await;
    let reply = read_reply(&mut stream).await;
    (reply, stream)
}

/// A bare status from actix-http's parser: no envelope, and the connection closed.
async fn assert_parser_refusal(
    reply: Option<Reply>,
    mut stream: TcpStream,
    statuses: &[u16],
    case: &str,
) {
    let reply = reply.unwrap_or_else(|| panic!("{case}: no answer"));
    assert!(
        statuses.contains(&reply.status.as_u16()) && reply.body.is_null(),
        "{case}: {} {}",
        reply.status,
        reply.body
    );
    assert!(
        closes(&mut stream).await,
        "{case}: the connection is closed"
    );
}

// ---- numbers and types ------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Takes {
    Number,
    Text,
    Bool,
    Object,
    List,
}

/// A place in a request where a hostile value goes: `@` in `template`.
struct Slot {
    method: Method,
    path: String,
    template: &'static str,
    takes: Takes,
    /// The code for a number out of range (for number slots).
    range_code: u64,
}

fn slot(method: Method, path: &str, template: &'static str, takes: Takes, range_code: u64) -> Slot {
    Slot {
        method,
        path: path.to_owned(),
        template,
        takes,
        range_code,
    }
}

/// Every body field of every route that takes one, on `queue` (which has no consumer).
fn slots(queue: &str, consumer: &str) -> Vec<Slot> {
    use Takes::*;
    let q = format!("/queues/{queue}");
    let post = |path: &str, template, takes, code| slot(Method::POST, path, template, takes, code);
    let push = format!("{q}/messages");
    let batch = format!("{q}/messages/batch");
    let pull = format!("{q}/messages/pull");
    let ack = format!("{q}/messages/ack");
    let extend = format!("{q}/messages/extend");
    let redrive = format!("{q}/redrive");
    let mut slots = vec![
        post(&push, r#"{"body":"x","delay_seconds":@}"#, Number, 10203),
        post(&push, r#"{"body":"x","deliver_at_ms":@}"#, Number, 10203),
        post(&push, r#"{"body":"x","content_type":@}"#, Text, 10207),
        post(&push, r#"{"body":"x","dedup_id":@}"#, Text, 10207),
        post(
            &batch,
            r#"{"messages":[{"body":"x"}],"delay_seconds":@}"#,
            Number,
            10202,
        ),
        post(
            &batch,
            r#"{"messages":[{"body":"x","delay_seconds":@}]}"#,
            Number,
            10203,
        ),
        post(&batch, r#"{"messages":@}"#, List, 10207),
        post(&batch, r#"{"messages":[@]}"#, Object, 10207),
        post(&pull, r#"{"batch_size":@}"#, Number, 10207),
        post(&pull, r#"{"visibility_timeout_ms":@}"#, Number, 10207),
        post(&pull, r#"{"wait_time_ms":@}"#, Number, 10207),
        post(
            &format!("{q}/messages/peek"),
            r#"{"batch_size":@}"#,
            Number,
            10207,
        ),
        post(&ack, r#"{"acks":@}"#, List, 10207),
        post(&ack, r#"{"acks":[@]}"#, Object, 10207),
        post(&ack, r#"{"acks":[{"lease_id":@}]}"#, Text, 10207),
        post(
            &ack,
            r#"{"retries":[{"lease_id":"x","delay_seconds":@}]}"#,
            Number,
            10203,
        ),
        post(
            &extend,
            r#"{"leases":[{"lease_id":"x","visibility_timeout_ms":@}]}"#,
            Number,
            10207,
        ),
        post(&extend, r#"{"leases":[@]}"#, Object, 10207),
        // Were any of these accepted, the sentinels would be purged.
        post(
            &format!("{q}/purge"),
            r#"{"delete_messages_permanently":@}"#,
            Bool,
            10207,
        ),
        post(&redrive, r#"{"max_messages":@}"#, Number, 10207),
        post(&redrive, r#"{"source_queue_id":@}"#, Text, 10207),
        post("/queues", r#"{"queue_name":@}"#, Text, 10207),
        post(
            "/queues",
            r#"{"queue_name":"hostile","settings":@}"#,
            Object,
            10207,
        ),
    ];
    for method in [Method::POST, Method::PUT, Method::PATCH] {
        let path = if method == Method::POST {
            "/queues"
        } else {
            q.as_str()
        };
        for (template, takes) in [
            (
                r#"{"queue_name":"hostile","settings":{"delivery_delay":@}}"#,
                Number,
            ),
            (
                r#"{"queue_name":"hostile","settings":{"message_retention_period":@}}"#,
                Number,
            ),
            (
                r#"{"queue_name":"hostile","settings":{"dedup_window_seconds":@}}"#,
                Number,
            ),
            (
                r#"{"queue_name":"hostile","settings":{"delivery_paused":@}}"#,
                Bool,
            ),
        ] {
            slots.push(slot(method.clone(), path, template, takes, 10207));
        }
    }
    let put_consumer = format!("{q}/consumers/{consumer}");
    for (method, path) in [
        (Method::POST, format!("{q}/consumers")),
        (Method::PUT, put_consumer),
    ] {
        for (template, takes) in [
            (r#"{"settings":{"batch_size":@}}"#, Number),
            (r#"{"settings":{"max_retries":@}}"#, Number),
            (r#"{"settings":{"retry_delay":@}}"#, Number),
            (r#"{"settings":{"visibility_timeout_ms":@}}"#, Number),
            (r#"{"type":@}"#, Text),
            (r#"{"dead_letter_queue":@}"#, Text),
            (r#"{"settings":@}"#, Object),
        ] {
            slots.push(slot(method.clone(), &path, template, takes, 10207));
        }
    }
    slots
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Valid JSON of the right type for a number, out of range or not whole.
    OutOfRange,
    /// Valid JSON of another type.
    WrongType(Takes),
    /// Not JSON at all (or a number JSON cannot hold).
    NotJson,
    /// A JSON number followed by junk: where a number goes the junk is the first error
    /// (10208); anywhere else the number already is (10207).
    JunkAfterNumber,
}

const HOSTILE_VALUES: &[(&str, Hostile)] = &[
    ("1e308", Hostile::OutOfRange),
    ("-1e308", Hostile::OutOfRange),
    ("18446744073709551616", Hostile::OutOfRange),
    ("-9223372036854775809", Hostile::OutOfRange),
    ("1.5", Hostile::OutOfRange),
    ("-1", Hostile::OutOfRange),
    ("1e-7", Hostile::OutOfRange),
    ("4294967296000000", Hostile::OutOfRange),
    ("1e400", Hostile::NotJson),
    ("-1e400", Hostile::NotJson),
    ("NaN", Hostile::NotJson),
    ("-NaN", Hostile::NotJson),
    ("Infinity", Hostile::NotJson),
    ("-Infinity", Hostile::NotJson),
    ("+1", Hostile::NotJson),
    ("0x10", Hostile::JunkAfterNumber),
    (".5", Hostile::NotJson),
    ("01", Hostile::NotJson),
    ("1.", Hostile::NotJson),
    ("1e", Hostile::NotJson),
    ("--1", Hostile::NotJson),
    ("undefined", Hostile::NotJson),
    (r#""5""#, Hostile::WrongType(Takes::Text)),
    (r#""1e308""#, Hostile::WrongType(Takes::Text)),
    (r#""NaN""#, Hostile::WrongType(Takes::Text)),
    ("[5]", Hostile::WrongType(Takes::List)),
    (r#"[[5]]"#, Hostile::WrongType(Takes::List)),
    (
        r#"[{"body":"x","lease_id":"x"}]"#,
        Hostile::WrongType(Takes::List),
    ),
    ("{}", Hostile::WrongType(Takes::Object)),
    (r#"{"n":5}"#, Hostile::WrongType(Takes::Object)),
    ("true", Hostile::WrongType(Takes::Bool)),
];

#[tokio::test]
async fn hostile_numbers_and_wrong_types_in_every_field_are_400_envelopes_and_change_nothing() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let mut cases = 0;
    for slot in slots(&sentinel.queue, &consumer) {
        for (value, kind) in HOSTILE_VALUES {
            let code = match *kind {
                // A well-typed value is not hostile here (a list where a list goes).
                Hostile::WrongType(takes) if takes == slot.takes => continue,
                Hostile::WrongType(_) => 10207,
                Hostile::OutOfRange if slot.takes == Takes::Number => slot.range_code,
                Hostile::OutOfRange => 10207,
                Hostile::NotJson => 10208,
                Hostile::JunkAfterNumber if slot.takes == Takes::Number => 10208,
                Hostile::JunkAfterNumber => 10207,
            };
            let body = slot.template.replace('@', value);
            let reply = send_bytes(&app, slot.method.clone(), &slot.path, body.clone()).await;
            refused(
                &reply,
                400,
                code,
                &format!("{} {} {body}", slot.method, slot.path),
            );
            cases += 1;
        }
    }
    assert!(cases > 900, "{cases} cases");
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn hostile_query_strings_on_both_lists_are_400_envelopes() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let messages = format!("/queues/{}/messages", sentinel.queue);
    let numbers = [
        "0",
        "-1",
        "1.5",
        "1e3",
        "1e400",
        "NaN",
        "Infinity",
        "18446744073709551616",
        "",
        "%00",
        "%ff",
        "abc",
        "0x10",
        "1%20",
    ];
    for value in numbers {
        for query in [
            format!("{messages}?per_page={value}"),
            format!("/queues?page={value}"),
            format!("/queues?per_page={value}"),
        ] {
            refused(&app.get(&query).await, 400, 10207, &query);
        }
    }
    for query in [
        format!("{messages}?per_page=4294967296"),
        format!("{messages}?per_page=1001"),
        "/queues?per_page=1001".to_owned(),
    ] {
        refused(&app.get(&query).await, 400, 10207, &query);
    }
    for cursor in [
        "-1",
        "1.5",
        "abc",
        "%00",
        "%7B%7D",
        "*",
        "",
        "99999999999999999999",
        "184467440737095516150",
        "%ff%fe",
        "0%200",
    ] {
        let query = format!("{messages}?cursor={cursor}");
        refused(&app.get(&query).await, 400, 10207, &query);
    }
    let long = format!("{messages}?cursor={}", "9".repeat(10_000));
    refused(&app.get(&long).await, 400, 10207, "a 10 000-digit cursor");
    refused(
        &app.get(&format!("{messages}?per_page=1&per_page=2")).await,
        400,
        10207,
        "a repeated per_page",
    );
    // A page past the end is empty, not an error, however far past.
    let far = app.get("/queues?page=4294967296").await;
    assert_eq!(far.assert_ok(), &json!([]));
    assert_eq!(far.body["result_info"]["total_count"], 1);
    // The largest cursor Redis can hold is a cursor: some page of the queue, no error.
    let last = app
        .get(&format!("{messages}?cursor=18446744073709551615"))
        .await;
    assert!(
        last.assert_ok()
            .as_array()
            .is_some_and(|page| page.len() <= 2)
    );
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn null_in_an_optional_field_means_absent_and_in_a_required_one_is_10207() {
    let app = spawn_app().await;
    let queue = app.create_queue("nulls").await;
    let q = format!("/queues/{queue}");
    // The whole body null is not an object.
    for path in [
        format!("{q}/messages"),
        format!("{q}/messages/batch"),
        format!("{q}/messages/pull"),
        format!("{q}/messages/ack"),
        format!("{q}/messages/peek"),
        format!("{q}/messages/extend"),
        format!("{q}/consumers"),
        "/queues".to_owned(),
    ] {
        refused(
            &send_bytes(&app, Method::POST, &path, "null").await,
            400,
            10207,
            &path,
        );
    }
    for (path, body) in [
        ("/messages", r#"{"body":null}"#),
        ("/messages/batch", r#"{"messages":null}"#),
        ("/messages/batch", r#"{"messages":[null]}"#),
        ("/messages/ack", r#"{"acks":[null]}"#),
        ("/messages/ack", r#"{"acks":[{"lease_id":null}]}"#),
        ("/messages/ack", r#"{"retries":[{"lease_id":null}]}"#),
        ("/messages/extend", r#"{"leases":[{"lease_id":null}]}"#),
    ] {
        let reply = send_bytes(&app, Method::POST, &format!("{q}{path}"), body).await;
        refused(&reply, 400, 10207, body);
    }
    refused(
        &send_bytes(&app, Method::POST, "/queues", r#"{"queue_name":null}"#).await,
        400,
        10207,
        "queue_name null",
    );
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);

    // Optional fields set to null behave as if absent.
    let every_null = r#"{"body":"n","content_type":null,"delay_seconds":null,"deliver_at_ms":null,"dedup_id":null}"#;
    send_bytes(&app, Method::POST, &format!("{q}/messages"), every_null)
        .await
        .assert_ok();
    send_bytes(
        &app,
        Method::POST,
        &format!("{q}/messages/batch"),
        r#"{"messages":[{"body":"m","delay_seconds":null}],"delay_seconds":null}"#,
    )
    .await
    .assert_ok();
    let peeked = send_bytes(
        &app,
        Method::POST,
        &format!("{q}/messages/peek"),
        r#"{"batch_size":null}"#,
    )
    .await;
    assert_eq!(
        peeked.assert_ok()["messages"].as_array().map(Vec::len),
        Some(2)
    );
    let pulled = send_bytes(
        &app,
        Method::POST,
        &format!("{q}/messages/pull"),
        r#"{"batch_size":null,"visibility_timeout_ms":null,"wait_time_ms":null}"#,
    )
    .await;
    let messages = pulled.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .clone();
    let bodies: Vec<&str> = messages.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["n", "m"]);
    for m in &messages {
        assert_eq!(m["metadata"]["CF-Content-Type"], "text");
        assert_eq!(m["attempts"], 1);
    }
    for body in [r#"{"acks":null,"retries":null}"#, r#"{"leases":null}"#] {
        let path = if body.contains("leases") {
            "extend"
        } else {
            "ack"
        };
        let reply = send_bytes(&app, Method::POST, &format!("{q}/messages/{path}"), body).await;
        assert_eq!(reply.assert_ok()["warnings"], json!({}), "{body}");
    }
    let retry = json!({"retries": [{"lease_id": messages[0]["lease_id"], "delay_seconds": null}]});
    assert_eq!(app.ack(&queue, retry).await.assert_ok()["retryCount"], 1);
    let ack = json!({"acks": [{"lease_id": messages[1]["lease_id"]}]});
    assert_eq!(app.ack(&queue, ack).await.assert_ok()["ackCount"], 1);
    assert_eq!(app.metrics(&queue).await["backlog_count"], 1);

    let created = send_bytes(
        &app,
        Method::POST,
        "/queues",
        r#"{"queue_name":"nulls-2","settings":{"delivery_delay":null,"delivery_paused":null,"message_retention_period":null,"dedup_window_seconds":null}}"#,
    )
    .await;
    let defaults = app.create_queue("nulls-3").await;
    let defaults = app.get(&format!("/queues/{defaults}")).await;
    assert_eq!(
        created.assert_ok()["settings"],
        defaults.assert_ok()["settings"]
    );
    let before = app.get(&q).await.assert_ok().clone();
    let patched = send_bytes(
        &app,
        Method::PATCH,
        &q,
        r#"{"queue_name":null,"settings":null}"#,
    )
    .await;
    assert_eq!(patched.assert_ok()["queue_name"], "nulls");
    assert_eq!(patched.result()["settings"], before["settings"]);
    let consumer = send_bytes(
        &app,
        Method::POST,
        &format!("{q}/consumers"),
        r#"{"type":null,"dead_letter_queue":null,"settings":{"batch_size":null,"max_retries":null,"retry_delay":null,"visibility_timeout_ms":null}}"#,
    )
    .await;
    let consumer = consumer.assert_ok();
    assert_eq!(consumer["type"], "http_pull");
    assert_eq!(consumer["dead_letter_queue"], "");
    assert_eq!(
        consumer["settings"],
        json!({"batch_size": 5, "max_retries": 3, "retry_delay": 0, "visibility_timeout_ms": 30000})
    );
}

#[tokio::test]
async fn arrays_are_not_objects_even_with_every_field_in_order() {
    let app = spawn_app().await;
    let queue = app.create_queue("arrays").await;
    let q = format!("/queues/{queue}");
    app.push(&queue, json!({"body": "leased"}))
        .await
        .assert_ok();
    let lease = app.pull_messages(&queue, json!({})).await[0]["lease_id"]
        .as_str()
        .expect("lease")
        .to_owned();
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let before = snapshot(&app, &queue).await;
    for (method, path, body) in [
        (
            Method::POST,
            format!("{q}/messages/batch"),
            json!({"messages": [["x", "text", 0, null, null]]}),
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            json!({"acks": [[lease]]}),
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            json!({"retries": [[lease, 0]]}),
        ),
        (
            Method::POST,
            format!("{q}/messages/extend"),
            json!({"leases": [[lease, 60_000]]}),
        ),
        (
            Method::POST,
            "/queues".to_owned(),
            json!({"queue_name": "arr", "settings": [5, false, 60, 300]}),
        ),
        (
            Method::PATCH,
            q.clone(),
            json!({"settings": [5, true, 60, 300]}),
        ),
        (
            Method::POST,
            format!("{q}/consumers"),
            json!({"settings": [5, 3, 0, 30_000]}),
        ),
        (
            Method::PUT,
            format!("{q}/consumers/{consumer}"),
            json!({"settings": [5, 3, 0, 30_000]}),
        ),
    ] {
        let case = format!("{method} {path} {body}");
        refused(
            &app.request(method, &path, Some(body)).await,
            400,
            10207,
            &case,
        );
    }
    assert_eq!(snapshot(&app, &queue).await, before);
    let acked = app
        .ack(&queue, json!({"acks": [{"lease_id": lease}]}))
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 1);
}

// ---- nesting ----------------------------------------------------------------------------

const LEVELS: usize = 100_000;

fn deep_array() -> String {
    "[".repeat(LEVELS) + &"]".repeat(LEVELS)
}

fn deep_object() -> String {
    r#"{"a":"#.repeat(LEVELS) + "1" + &"}".repeat(LEVELS)
}

#[tokio::test]
async fn json_nested_a_hundred_thousand_deep_is_refused_wherever_it_is() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = format!("/queues/{}", sentinel.queue);
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let routes = [
        (Method::POST, format!("{q}/messages")),
        (Method::POST, format!("{q}/messages/batch")),
        (Method::POST, format!("{q}/messages/pull")),
        (Method::POST, format!("{q}/messages/ack")),
        (Method::POST, format!("{q}/messages/peek")),
        (Method::POST, format!("{q}/messages/extend")),
        (Method::POST, format!("{q}/purge")),
        (Method::POST, format!("{q}/consumers")),
        (Method::PUT, format!("{q}/consumers/{consumer}")),
        (Method::PUT, q.clone()),
        (Method::PATCH, q.clone()),
        (Method::POST, "/queues".to_owned()),
    ];
    for (method, path) in &routes {
        for (what, body) in [
            ("a bare array", deep_array()),
            ("an unclosed array", "[".repeat(LEVELS)),
            ("an unclosed object", r#"{"a":"#.repeat(LEVELS)),
        ] {
            let reply = send_bytes(&app, method.clone(), path, body).await;
            let code = if what == "a bare array" { 10207 } else { 10208 };
            refused(&reply, 400, code, &format!("{method} {path}, {what}"));
        }
    }
    // As an unknown field (which is skipped, see below), where a field is required.
    for (path, required) in [
        (format!("{q}/messages"), "body"),
        (format!("{q}/messages/batch"), "messages"),
        ("/queues".to_owned(), "queue_name"),
    ] {
        for (what, body) in [
            ("objects", deep_object()),
            ("arrays", format!(r#"{{"extra": {}}}"#, deep_array())),
        ] {
            let reply = send_bytes(&app, Method::POST, &path, body).await;
            refused(
                &reply,
                400,
                10207,
                &format!("{path} without {required}, {what}"),
            );
        }
    }
    // In the fields of each route: a message body is checked for depth (10207; 10203
    // when declared text), every other field is of the wrong type (10207).
    let deep = deep_array();
    let deep_obj = deep_object();
    for (method, path, template, code) in [
        (
            Method::POST,
            format!("{q}/messages"),
            r#"{"body":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            r#"{"body":{"k":@}}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            r#"{"body":@,"content_type":"text"}"#,
            10203,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            r#"{"body":"x","delay_seconds":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            r#"{"body":"x","dedup_id":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/batch"),
            r#"{"messages":[{"body":"ok"},{"body":@}]}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/batch"),
            r#"{"messages":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/pull"),
            r#"{"visibility_timeout_ms":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            r#"{"acks":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            r#"{"acks":[{"lease_id":@}]}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            r#"{"retries":[{"lease_id":"x","delay_seconds":@}]}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/peek"),
            r#"{"batch_size":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/messages/extend"),
            r#"{"leases":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/consumers"),
            r#"{"settings":@}"#,
            10207,
        ),
        (
            Method::POST,
            format!("{q}/consumers"),
            r#"{"dead_letter_queue":@}"#,
            10207,
        ),
        (
            Method::PUT,
            format!("{q}/consumers/{consumer}"),
            r#"{"type":@}"#,
            10207,
        ),
        (
            Method::PATCH,
            q.clone(),
            r#"{"settings":{"delivery_delay":@}}"#,
            10207,
        ),
        (Method::PUT, q.clone(), r#"{"queue_name":@}"#, 10207),
        (
            Method::POST,
            "/queues".to_owned(),
            r#"{"queue_name":"deep","settings":@}"#,
            10207,
        ),
    ] {
        // Deep objects where an object goes are unknown fields, skipped (see below).
        let objects_are_unknown_fields = template.ends_with(r#""settings":@}"#);
        for (what, nested) in [("arrays", &deep), ("objects", &deep_obj)] {
            if what == "objects" && objects_are_unknown_fields {
                continue;
            }
            let body = template.replace('@', nested);
            let reply = send_bytes(&app, method.clone(), &path, body).await;
            refused(
                &reply,
                400,
                code,
                &format!("{method} {path} {template} with {what}"),
            );
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn a_deeply_nested_unknown_field_is_skipped_without_recursion() {
    let app = spawn_app().await;
    let queue = app.create_queue("unknown").await;
    let q = format!("/queues/{queue}");
    let push = format!(r#"{{"body":"kept","extra":{}}}"#, deep_array());
    send_bytes(&app, Method::POST, &format!("{q}/messages"), push)
        .await
        .assert_ok();
    // Unknown fields are ignored (SPEC §2), however deep: the whole request is the
    // unknown field here, so this is a pull with the defaults.
    let pulled = send_bytes(
        &app,
        Method::POST,
        &format!("{q}/messages/pull"),
        deep_object(),
    )
    .await;
    let messages = pulled.assert_ok()["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "kept");
    let ack = format!(
        r#"{{"acks":[{{"lease_id":"{}","extra":{}}}]}}"#,
        messages[0]["lease_id"].as_str().expect("lease"),
        deep_object()
    );
    let acked = send_bytes(&app, Method::POST, &format!("{q}/messages/ack"), ack).await;
    assert_eq!(acked.assert_ok()["ackCount"], 1);
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
}

#[tokio::test]
async fn brackets_inside_strings_are_not_nesting_and_come_back_verbatim() {
    let app = spawn_app().await;
    let queue = app.create_queue("brackets").await;
    let text = "[".repeat(LEVELS);
    let json_body = format!(r#"{{"s":"{}","t":"\"[{{"}}"#, "[{".repeat(1000));
    app.push(&queue, json!({"body": text})).await.assert_ok();
    let raw = format!(r#"{{"content_type":"json","body":{json_body}}}"#);
    send_bytes(
        &app,
        Method::POST,
        &format!("/queues/{queue}/messages"),
        raw,
    )
    .await
    .assert_ok();
    let messages = app.pull_messages(&queue, json!({"batch_size": 2})).await;
    let bodies: Vec<&str> = messages.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, [text.as_str(), json_body.as_str()]);
}

// ---- encodings --------------------------------------------------------------------------

#[tokio::test]
async fn invalid_utf8_anywhere_in_a_body_is_10208_on_every_route() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = format!("/queues/{}", sentinel.queue);
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let bad: [&[u8]; 6] = [
        b"\xff\xfe",
        b"\xc0\x80",         // an overlong NUL
        b"\xed\xa0\x80",     // a surrogate, encoded as if it were a character
        b"\xe2\x82",         // a truncated character
        b"\xf4\x90\x80\x80", // past U+10FFFF
        b"ok\x80",
    ];
    let templates: Vec<(Method, String, &[u8])> = vec![
        (Method::POST, format!("{q}/messages"), br#"{"body":"@"}"#),
        (
            Method::POST,
            format!("{q}/messages"),
            br#"{"body":{"@":1},"content_type":"json"}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            br#"{"body":"x","content_type":"@"}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            br#"{"body":"x","dedup_id":"@"}"#,
        ),
        // Even in a field nobody reads: the request as a whole is not JSON.
        (
            Method::POST,
            format!("{q}/messages"),
            br#"{"body":"x","extra":"@"}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages"),
            br#"{"body":"x","@":1}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages/batch"),
            br#"{"messages":[{"body":"x"},{"body":"@"}]}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages/pull"),
            br#"{"batch_size":1,"extra":"@"}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            br#"{"acks":[{"lease_id":"@"}]}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages/ack"),
            br#"{"retries":[{"lease_id":"@"}]}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages/extend"),
            br#"{"leases":[{"lease_id":"@"}]}"#,
        ),
        (
            Method::POST,
            format!("{q}/messages/peek"),
            br#"{"note":"@"}"#,
        ),
        (Method::POST, format!("{q}/consumers"), br#"{"type":"@"}"#),
        (
            Method::PUT,
            format!("{q}/consumers/{consumer}"),
            br#"{"dead_letter_queue":"@"}"#,
        ),
        (Method::PATCH, q.clone(), br#"{"queue_name":"@"}"#),
        (
            Method::PATCH,
            q.clone(),
            br#"{"settings":{"delivery_paused":false,"x":"@"}}"#,
        ),
        (
            Method::POST,
            "/queues".to_owned(),
            br#"{"queue_name":"fine","comment":"@"}"#,
        ),
        (Method::POST, format!("{q}/purge"), br#"{"why":"@"}"#),
    ];
    for (method, path, template) in &templates {
        for bytes in bad {
            let at = find(template, b"@").expect("@");
            let body = [&template[..at], bytes, &template[at + 1..]].concat();
            let case = format!("{method} {path} {}", String::from_utf8_lossy(&body));
            refused(
                &send_bytes(&app, method.clone(), path, body).await,
                400,
                10208,
                &case,
            );
        }
    }
    // A body that is valid JSON followed by junk, or a byte-order mark, is not JSON either.
    for body in [
        &b"{\"body\":\"x\"}\xff"[..],
        b"\xef\xbb\xbf{\"body\":\"x\"}",
        b"{\"body\":\"x\"}\0",
    ] {
        let reply = send_bytes(&app, Method::POST, &format!("{q}/messages"), body).await;
        refused(&reply, 400, 10208, &String::from_utf8_lossy(body));
    }
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn lone_surrogates_and_raw_control_bytes_are_refused_and_escaped_nul_round_trips() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = format!("/queues/{}", sentinel.queue);
    for (path, body, code) in [
        // As text, a lone surrogate cannot become a string.
        ("/messages", r#"{"body":"\ud800"}"#, 10203),
        ("/messages", r#"{"body":"a\udc00b"}"#, 10203),
        ("/messages", r#"{"body":"\ud83d"}"#, 10203),
        (
            "/messages/batch",
            r#"{"messages":[{"body":"ok"},{"body":"\udfff"}]}"#,
            10203,
        ),
        // Anywhere else a string is read, the request is not JSON.
        ("/messages", r#"{"body":"x","dedup_id":"\ud800"}"#, 10208),
        (
            "/messages",
            r#"{"body":"x","content_type":"\ud800"}"#,
            10208,
        ),
        (
            "/messages/ack",
            r#"{"acks":[{"lease_id":"\ud800"}]}"#,
            10208,
        ),
        (
            "/messages/extend",
            r#"{"leases":[{"lease_id":"\udbff"}]}"#,
            10208,
        ),
        ("/consumers", r#"{"dead_letter_queue":"\ud800"}"#, 10208),
        // A raw control byte inside a string is not JSON.
        ("/messages", "{\"body\":\"a\0b\"}", 10208),
        ("/messages", "{\"body\":\"a\nb\"}", 10208),
        ("/messages/ack", "{\"acks\":[{\"lease_id\":\"\0\"}]}", 10208),
        ("/consumers", "{\"type\":\"http_pull\0\"}", 10208),
        // Escaped NUL is a character, but not one a name or a dedup id may hold.
        ("/messages", r#"{"body":"x","dedup_id":"a\u0000b"}"#, 10203),
        ("/consumers", r#"{"dead_letter_queue":"dlq\u0000"}"#, 10207),
    ] {
        let reply = send_bytes(&app, Method::POST, &format!("{q}{path}"), body).await;
        refused(&reply, 400, code, body);
    }
    for body in [r#"{"queue_name":"\ud800"}"#, r#"{"queue_name":"a\u0000b"}"#] {
        let reply = send_bytes(&app, Method::POST, "/queues", body).await;
        let code = if body.contains("u0000") { 10207 } else { 10208 };
        refused(&reply, 400, code, body);
    }
    // An escaped NUL in a lease id is just a lease id nobody issued.
    let reply = app
        .ack(&sentinel.queue, json!({"acks": [{"lease_id": "\u{0}"}]}))
        .await;
    assert_eq!(
        reply.assert_ok(),
        &json!({"ackCount": 0, "retryCount": 0, "warnings": {"\u{0}": "lease id is not valid for this queue"}})
    );
    sentinel.assert_delivered_intact(&app).await;
}

// ---- size ------------------------------------------------------------------------------

const TEN_MB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn a_ten_megabyte_body_is_413_at_once_and_the_app_and_its_clients_carry_on() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let target = format!(
        "/client/v4/accounts/{ACCOUNT}/queues/{}/messages",
        sentinel.queue
    );

    // Declared with Content-Length: refused from the head alone, before any body byte.
    let mut head = http(&app, "POST", target.as_bytes(), "", b"");
    let cl = find(&head, b"Content-Length: 0").expect("content-length");
    head.splice(
        cl..,
        format!("Content-Length: {TEN_MB}\r\n\r\n").into_bytes(),
    );
    let started = Instant::now();
    let (reply, mut stream) = raw(&app, &head).await;
    let reply = reply.expect("an answer");
    refused(&reply, 413, 10209, "declared 10 MB");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The unread body cannot be told from the next request: the server hangs up.
    assert!(closes(&mut stream).await);

    // Sent whole by reqwest: the same 413, however much of the body got written.
    let started = Instant::now();
    let reply = send_bytes(
        &app,
        Method::POST,
        &format!("/queues/{}/messages", sentinel.queue),
        vec![b' '; TEN_MB],
    )
    .await;
    refused(&reply, 413, 10209, "10 MB through reqwest");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Chunked, without Content-Length: refused once the limit is crossed, and the
    // connection closed rather than the rest drained for as long as the client sends.
    let stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        addr(&app),
        app.token
    );
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = [b' '; 64 * 1024];
        for _ in 0..TEN_MB / chunk.len() {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    // Reset or EOF, either way the server hung up.
    let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
        .await
        .expect("the server hangs up within 10 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let _ = writing.await.expect("writer");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains(r#""code":10209"#), "{text}");

    sentinel.assert_delivered_intact(&app).await;
}

// ---- slow clients ----------------------------------------------------------------------

/// Sends `head` then `body` one byte every `gap`, until the server hangs up; returns
/// what the server answered and how long after the first byte.
async fn trickle(addr: String, head: Vec<u8>, body: Vec<u8>, gap: Duration) -> (String, Duration) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        writer.write_all(&head).await?;
        for byte in body {
            tokio::time::sleep(gap).await;
            writer.write_all(&[byte]).await?;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), reader.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(
        read.is_ok(),
        "the server neither answered nor hung up within 8 s: {}",
        String::from_utf8_lossy(&answer)
    );
    (String::from_utf8_lossy(&answer).into_owned(), elapsed)
}

/// The ways a client can be slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slow {
    /// Its body, a byte at a time (`Content-Length`): our 408 envelope.
    Body,
    /// Its body, a one-byte chunk at a time: our 408 envelope.
    ChunkedBody,
    /// Its head, a byte at a time: actix-http's bare 408.
    Head,
    /// A chunked body, a byte at a time, to a route that reads none: answered at once.
    UnreadChunkedBody,
}

#[tokio::test]
async fn slowloris_bodies_and_heads_are_cut_off_within_the_client_timeout_while_others_are_served()
{
    let app = spawn_app_with(|s| s.server.client_timeout_secs = 1).await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let queue = format!("/client/v4/accounts/{ACCOUNT}/queues/{}", sentinel.queue);
    let (host, token) = (addr(&app), app.token.clone());
    let body = br#"{"body":"this arrives one byte at a time, far too slowly"}"#.to_vec();
    let head = format!(
        "POST {queue}/messages HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let chunked_head = |method: &str, path: &str| {
        format!("{method} {queue}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes()
    };
    let chunked_body: Vec<u8> = body
        .iter()
        .flat_map(|b| [b"1\r\n".as_slice(), std::slice::from_ref(b), b"\r\n"].concat())
        .collect();
    let gap = Duration::from_millis(50);

    // Many slow clients at once, in every way, while ordinary requests go on. Each
    // would take seconds more to finish sending.
    let mut slow = Vec::new();
    for (i, kind) in [
        Slow::Body,
        Slow::ChunkedBody,
        Slow::Head,
        Slow::UnreadChunkedBody,
    ]
    .into_iter()
    .cycle()
    .take(40)
    .enumerate()
    {
        let (head, body) = match kind {
            Slow::Body => (head.clone().into_bytes(), body.clone()),
            Slow::ChunkedBody => (chunked_head("POST", "/messages"), chunked_body.clone()),
            Slow::Head => (Vec::new(), [head.as_bytes(), &body].concat()),
            Slow::UnreadChunkedBody => (chunked_head("GET", "/metrics"), chunked_body.clone()),
        };
        let host = host.clone();
        // Staggered, so the cut-offs do not all land at once.
        let gap = gap + Duration::from_millis(i as u64 % 7);
        slow.push(tokio::spawn(async move {
            (kind, trickle(host, head, body, gap).await)
        }));
    }
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(700) {
        let asked = Instant::now();
        assert_eq!(app.metrics(&sentinel.queue).await["backlog_count"], 2);
        assert!(
            asked.elapsed() < Duration::from_millis(300),
            "{:?}",
            asked.elapsed()
        );
        served += 1;
    }
    assert!(
        served >= 5,
        "only {served} requests served alongside the slow clients"
    );
    for handle in slow {
        let (kind, (answer, elapsed)) = handle.await.expect("slow client");
        assert!(
            elapsed < Duration::from_millis(2500),
            "{kind:?}: cut off after {elapsed:?}: {answer}"
        );
        match kind {
            Slow::Body | Slow::ChunkedBody => {
                assert!(answer.starts_with("HTTP/1.1 408"), "{kind:?}: {answer}");
                assert!(answer.contains(r#""code":10210"#), "{kind:?}: {answer}");
            }
            Slow::Head => assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{kind:?}: {answer}"
            ),
            Slow::UnreadChunkedBody => {
                assert!(answer.starts_with("HTTP/1.1 200"), "{kind:?}: {answer}");
                assert!(answer.contains("connection: close"), "{kind:?}: {answer}");
            }
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}

// ---- paths ------------------------------------------------------------------------------

/// Every Redis key, anywhere, matching `pattern` (test-only: KEYS is fine here).
async fn global_keys(app: &TestApp, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(app.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS")
}

fn account_id_is_valid(segment: &str) -> bool {
    (1..=64).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[tokio::test]
async fn hostile_path_segments_are_envelopes_in_every_id_position_and_reach_no_redis_key() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = sentinel.queue.clone();
    let marker = format!("hostile{}", uuid::Uuid::now_v7().simple());
    let mut segments: Vec<String> = [
        "{}",
        "*",
        "..",
        ".",
        "%00",
        "%2F",
        "a%2Fb",
        "%7B%7D",
        "%2e%2e",
        "%ff%fe",
        "%E2%9C%93",
        "%F0%9F%98%80",
        "%",
        "%zz",
        "a:b",
        "%20",
        "%0D%0A",
        "~",
        "'",
        "%22",
        ";",
        "+",
        "@",
        "%5C",
        "%25",
        "%3F",
        "%23",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    segments.extend([
        format!("%7B{q}%7D"),
        q.to_uppercase(),
        format!("{q}%00"),
        format!("{q}%20"),
        format!("{q}a"),
        format!("{}{marker}", "a".repeat(10_000)),
        format!("%E2%9C%93{marker}"),
        format!("{marker}*"),
    ]);
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let message = uuid::Uuid::now_v7().simple().to_string();
    let push = br#"{"body":"must not be stored"}"#;
    let mut cases_run = 0;
    for segment in &segments {
        let a = format!("/client/v4/accounts/{segment}");
        let s = segment;
        let queue_routes: Vec<(&str, String, &[u8])> = vec![
            ("GET", format!("/queues/{s}"), b""),
            (
                "PUT",
                format!("/queues/{s}"),
                br#"{"queue_name":"renamed"}"#,
            ),
            (
                "PATCH",
                format!("/queues/{s}"),
                br#"{"settings":{"delivery_paused":true}}"#,
            ),
            ("DELETE", format!("/queues/{s}"), b""),
            ("GET", format!("/queues/{s}/metrics"), b""),
            ("POST", format!("/queues/{s}/messages"), push),
            (
                "POST",
                format!("/queues/{s}/messages/batch"),
                br#"{"messages":[{"body":"x"}]}"#,
            ),
            ("POST", format!("/queues/{s}/messages/pull"), b"{}"),
            (
                "POST",
                format!("/queues/{s}/messages/ack"),
                br#"{"acks":[{"lease_id":"x"}]}"#,
            ),
            ("POST", format!("/queues/{s}/messages/peek"), b"{}"),
            (
                "POST",
                format!("/queues/{s}/messages/extend"),
                br#"{"leases":[]}"#,
            ),
            ("GET", format!("/queues/{s}/messages"), b""),
            ("GET", format!("/queues/{s}/messages/{message}"), b""),
            ("DELETE", format!("/queues/{s}/messages/{message}"), b""),
            ("POST", format!("/queues/{s}/purge"), b"{}"),
            ("GET", format!("/queues/{s}/purge"), b""),
            ("POST", format!("/queues/{s}/consumers"), b"{}"),
            ("GET", format!("/queues/{s}/consumers"), b""),
            ("PUT", format!("/queues/{s}/consumers/{consumer}"), b"{}"),
            ("POST", format!("/queues/{s}/redrive"), b"{}"),
        ];
        let mut cases: Vec<(&str, String, &[u8], &str)> = Vec::new();
        for (method, path, body) in queue_routes {
            cases.push((
                method,
                format!("/client/v4/accounts/{ACCOUNT}{path}"),
                body,
                "queue",
            ));
        }
        for (method, path, body) in [
            ("GET", format!("/queues/{q}/consumers/{s}"), &b""[..]),
            ("PUT", format!("/queues/{q}/consumers/{s}"), b"{}"),
            ("DELETE", format!("/queues/{q}/consumers/{s}"), b""),
        ] {
            cases.push((
                method,
                format!("/client/v4/accounts/{ACCOUNT}{path}"),
                body,
                "consumer",
            ));
        }
        for (method, path) in [
            ("GET", format!("/queues/{q}/messages/{s}")),
            ("DELETE", format!("/queues/{q}/messages/{s}")),
        ] {
            cases.push((
                method,
                format!("/client/v4/accounts/{ACCOUNT}{path}"),
                b"",
                "message",
            ));
        }
        for (method, path, body) in [
            ("GET", format!("{a}/queues"), &b""[..]),
            ("POST", format!("{a}/queues"), br#"{"queue_name":"pathq"}"#),
            ("POST", format!("{a}/queues/{q}/messages"), push),
            (
                "POST",
                format!("/accounts/{s}/queues/{q}/messages/pull"),
                b"{}",
            ),
            ("DELETE", format!("{a}/queues/{q}"), b""),
        ] {
            cases.push((method, path, body, "account"));
        }
        for (method, target, body, position) in cases {
            let (status, code) = match position {
                "queue" => (400, 10107),
                "consumer" => (404, 10120),
                "message" => (404, 10130),
                // Well-formed, but not an account the token grants.
                _ if account_id_is_valid(segment) => (403, 9109),
                _ => (400, 7003),
            };
            let (reply, _) = raw(&app, &http(&app, method, target.as_bytes(), "", body)).await;
            let short: String = target.chars().take(120).collect();
            refused(
                &reply.expect("an answer"),
                status,
                code,
                &format!("{method} {short}"),
            );
            cases_run += 1;
        }
    }
    assert_eq!(cases_run, segments.len() * 30);
    // Bytes that must be percent-encoded in a request target: actix-http's parser refuses
    // the request line (a bare 400, connection closed) before any handler runs.
    for target in [
        format!("/client/v4/accounts/{ACCOUNT}/queues/\u{2713}/metrics").into_bytes(),
        [
            format!("/client/v4/accounts/{ACCOUNT}/queues/").as_bytes(),
            b"\xff\xfe/metrics",
        ]
        .concat(),
        [
            b"/client/v4/accounts/\xe2\x9c\x93".as_slice(),
            format!("/queues/{q}/metrics").as_bytes(),
        ]
        .concat(),
        [
            format!("/client/v4/accounts/{ACCOUNT}/queues/{q}/messages/").as_bytes(),
            b"\xc0\x80",
        ]
        .concat(),
    ] {
        let case = String::from_utf8_lossy(&target).into_owned();
        let (reply, stream) = raw(&app, &http(&app, "GET", &target, "", b"")).await;
        assert_parser_refusal(reply, stream, &[400], &case).await;
    }
    assert!(global_keys(&app, &format!("*{marker}*")).await.is_empty());
    assert!(global_keys(&app, "*{}*").await.is_empty());
    sentinel.assert_delivered_intact(&app).await;
}

// ---- headers ----------------------------------------------------------------------------

fn b64url(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT with this header and payload text, HS256-signed with `secret`.
fn hs256(header: &str, payload: &str, secret: &[u8]) -> String {
    use hmac::Mac;
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
}

const SECRET: &[u8] = b"hostile-known-secret-of-at-least-32-bytes";

#[tokio::test]
async fn hostile_tokens_are_401_envelopes_on_every_route() {
    let app = spawn_app_with(|s| {
        s.auth.jwt_secret = Some(String::from_utf8_lossy(SECRET).into_owned().into())
    })
    .await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = sentinel.queue.clone();
    let iat = leaseq::model::now_ms() / 1000;
    let exp = iat + 3600;
    // `iat` too: tokens without one are refused while auth.max_token_ttl_secs is set.
    let claims = |extra: &str| {
        format!(
            r#"{{"sub":"t","iat":{iat},"exp":{exp},"accounts":["{ACCOUNT}"],"scope":"queues:read queues:write messages:push messages:pull"{extra}}}"#
        )
    };
    let good = claims("");
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    assert_eq!(
        app.send_raw(
            app.client
                .get(app.url("/queues"))
                .bearer_auth(hs256(hs, &good, SECRET))
        )
        .await
        .status,
        200,
        "the hand-made token is right"
    );
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
            b64url(good.as_bytes())
        )
    };
    let deep = claims("").replace(
        &format!("[\"{ACCOUNT}\"]"),
        &("[".repeat(10_000) + &"]".repeat(10_000)),
    );
    let tokens: Vec<(&str, String)> = vec![
        ("alg none", unsigned("none")),
        ("alg NONE", unsigned("NONE")),
        ("alg None", unsigned("None")),
        ("alg none with the real signature", {
            let real = hs256(hs, &good, SECRET);
            let sig = real.rsplit('.').next().expect("sig").to_owned();
            unsigned("none") + &sig
        }),
        (
            "alg HS512 by the same key",
            hs256(r#"{"alg":"HS512"}"#, &good, SECRET),
        ),
        (
            "a path as kid",
            hs256(
                r#"{"alg":"HS256","kid":"../../../../dev/null"}"#,
                &good,
                b"",
            ),
        ),
        (
            "a jku to elsewhere",
            hs256(
                r#"{"alg":"HS256","jku":"http://127.0.0.1:1/"}"#,
                &good,
                b"x",
            ),
        ),
        (
            "exp 1e400",
            hs256(hs, &claims("").replace(&exp.to_string(), "1e400"), SECRET),
        ),
        (
            "exp a string",
            hs256(
                hs,
                &claims("").replace(&exp.to_string(), "\"never\""),
                SECRET,
            ),
        ),
        (
            "exp negative",
            hs256(hs, &claims("").replace(&exp.to_string(), "-1"), SECRET),
        ),
        (
            "exp 1.5",
            hs256(hs, &claims("").replace(&exp.to_string(), "1.5"), SECRET),
        ),
        (
            "exp null",
            hs256(hs, &claims("").replace(&exp.to_string(), "null"), SECRET),
        ),
        (
            "exp NaN",
            hs256(hs, &claims("").replace(&exp.to_string(), "NaN"), SECRET),
        ),
        (
            "accounts a string",
            hs256(
                hs,
                &claims("").replace(&format!("[\"{ACCOUNT}\"]"), &format!("\"{ACCOUNT}\"")),
                SECRET,
            ),
        ),
        (
            "accounts [null]",
            hs256(
                hs,
                &claims("").replace(&format!("[\"{ACCOUNT}\"]"), "[null]"),
                SECRET,
            ),
        ),
        (
            "scope a number",
            hs256(hs, &claims(r#","scope":5"#), SECRET),
        ),
        ("accounts nested 10 000 deep", hs256(hs, &deep, SECRET)),
        ("claims not JSON", hs256(hs, "not json", SECRET)),
        ("claims an array", hs256(hs, "[1,2]", SECRET)),
        ("claims invalid UTF-8", {
            let t = hs256(hs, "x", SECRET);
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            parts[1] = b64url(b"{\"exp\":1,\"sub\":\"\xff\"}");
            parts.join(".")
        }),
        ("a header that is not JSON", hs256("{", &good, SECRET)),
        ("four segments", hs256(hs, &good, SECRET) + ".x"),
        (
            "two segments",
            format!("{}.{}", b64url(hs.as_bytes()), b64url(good.as_bytes())),
        ),
        ("dots only", "...".into()),
        ("a.b.c", "a.b.c".into()),
        ("padding and symbols", "e30=.e30=.+/+/".into()),
        ("20 000 dots", ".".repeat(20_000)),
        ("100 KB of junk", "x".repeat(100 * 1024)),
        (
            "the real token with junk after it",
            hs256(hs, &good, SECRET) + &"A".repeat(64 * 1024),
        ),
    ];
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/queues".into(), None),
        (
            Method::POST,
            "/queues".into(),
            Some(json!({"queue_name": "made-by-a-bad-token"})),
        ),
        (Method::GET, format!("/queues/{q}/metrics"), None),
        (
            Method::POST,
            format!("/queues/{q}/messages"),
            Some(json!({"body": "x"})),
        ),
        (
            Method::POST,
            format!("/queues/{q}/messages/pull"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/queues/{q}/messages/ack"),
            Some(json!({"acks": []})),
        ),
        (
            Method::POST,
            format!("/queues/{q}/messages/extend"),
            Some(json!({"leases": []})),
        ),
        (Method::POST, format!("/queues/{q}/purge"), Some(json!({}))),
        (Method::DELETE, format!("/queues/{q}"), None),
    ];
    for (what, token) in &tokens {
        for (method, path, body) in &routes {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let reply = app.send_raw(request).await;
            refused(&reply, 401, 10000, &format!("{what}: {method} {path}"));
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn hostile_header_values_and_counts_get_401_or_a_parser_refusal_never_a_5xx() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let metrics = app.url(&format!("/queues/{}/metrics", sentinel.queue));
    let send = |headers: Vec<(&'static str, Vec<u8>)>| {
        let mut request = app.client.get(&metrics);
        for (name, value) in headers {
            request = request.header(name, HeaderValue::from_bytes(&value).expect("value"));
        }
        app.send_raw(request)
    };
    let token = app.token.clone().into_bytes();
    let bearer = |t: &[u8]| [b"Bearer ".as_slice(), t].concat();
    for (what, headers) in [
        ("no scheme", vec![("authorization", token.clone())]),
        (
            "Basic",
            vec![("authorization", [b"Basic ".as_slice(), &token].concat())],
        ),
        (
            "Bearer and nothing",
            vec![("authorization", b"Bearer".to_vec())],
        ),
        (
            "Bearer and spaces",
            vec![("authorization", b"Bearer    ".to_vec())],
        ),
        (
            "bytes that are not UTF-8",
            vec![("authorization", bearer(b"\xff\xfe\xfd"))],
        ),
        (
            "UTF-8 that is not ASCII",
            vec![("authorization", bearer("jwt\u{2713}".as_bytes()))],
        ),
        (
            "tab-separated",
            vec![("authorization", [b"Bearer\t".as_slice(), &token].concat())],
        ),
        ("junk in the API key", vec![("x-api-key", b"junk".to_vec())]),
        (
            "junk in the auth key",
            vec![("x-auth-key", b"\xff".to_vec())],
        ),
        (
            "junk Authorization wins over a good API key",
            vec![
                ("authorization", bearer(b"junk")),
                ("x-api-key", token.clone()),
            ],
        ),
        (
            "a junk token, then the good one",
            vec![
                ("authorization", bearer(b"junk")),
                ("authorization", bearer(&token)),
            ],
        ),
        (
            "the good token, then a junk one",
            vec![
                ("authorization", bearer(&token)),
                ("authorization", bearer(b"junk")),
            ],
        ),
        (
            "two good tokens",
            vec![
                ("authorization", bearer(&token)),
                ("authorization", bearer(&token)),
            ],
        ),
        (
            "two API keys",
            vec![
                ("x-api-key", token.clone()),
                ("x-api-key", b"junk".to_vec()),
            ],
        ),
    ] {
        refused(&send(headers).await, 401, 10000, what);
    }
    // The scheme is case-insensitive and spaces around the token do not matter.
    let loose = vec![(
        "authorization",
        [b"bEaReR   ".as_slice(), &token, b"  "].concat(),
    )];
    assert_eq!(send(loose).await.assert_ok(), &sentinel.before.metrics);
    // 90 copies of one header: within actix-http's 96, so the app answers.
    let many: Vec<(&str, Vec<u8>)> = std::iter::repeat_n(("x-junk", b"x".to_vec()), 90)
        .chain([("authorization", bearer(&token))])
        .collect();
    assert_eq!(send(many).await.assert_ok(), &sentinel.before.metrics);
    let many: Vec<(&str, Vec<u8>)> =
        std::iter::repeat_n(("authorization", bearer(&token)), 90).collect();
    refused(&send(many).await, 401, 10000, "90 Authorization headers");
    // Past the parser's limits, or malformed: actix-http answers before any handler, with
    // a bare status, and closes the connection.
    let target = format!(
        "/client/v4/accounts/{ACCOUNT}/queues/{}/metrics",
        sentinel.queue
    );
    for (what, extra, status) in [
        ("200 headers", "X-Junk: x\r\n".repeat(200), 431),
        (
            "a 200 KB header",
            format!("X-Junk: {}\r\n", "x".repeat(200 * 1024)),
            431,
        ),
        (
            "a 200 KB token",
            format!("X-Api-Key: {}\r\n", "x".repeat(200 * 1024)),
            431,
        ),
        (
            "two different Content-Lengths",
            "Content-Length: 5\r\n".to_owned(),
            400,
        ),
        ("a header with no colon", "Junk\r\n".to_owned(), 400),
        (
            "a header name with a space",
            "X Junk: x\r\n".to_owned(),
            400,
        ),
        ("NUL in a value", "X-Junk: a\0b\r\n".to_owned(), 400),
        ("a bare CR in a value", "X-Junk: a\rb\r\n".to_owned(), 400),
        (
            "an obsolete folded line",
            "X-Junk: a\r\n b\r\n".to_owned(),
            400,
        ),
    ] {
        let (reply, stream) = raw(&app, &http(&app, "GET", target.as_bytes(), &extra, b"")).await;
        assert_parser_refusal(reply, stream, &[status], what).await;
    }
    // Just under the limit, a 100 KB token reaches the app and is refused properly.
    let big = vec![("authorization", bearer(&vec![b'x'; 100 * 1024]))];
    refused(&send(big).await, 401, 10000, "a 100 KB token");
    sentinel.assert_delivered_intact(&app).await;
}

/// Splits what the server sent on one connection into its responses.
fn responses(bytes: &[u8]) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(end) = find(rest, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let length = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body = &rest[end + 4..(end + 4 + length).min(rest.len())];
        out.push((status, serde_json::from_slice(body).unwrap_or(Value::Null)));
        rest = &rest[(end + 4 + length).min(rest.len())..];
    }
    out
}

/// What one framing case must get back.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// actix-http's parser: a bare 400, connection closed.
    Refused,
    /// The body could not be read: our 400 envelope.
    Unreadable,
    /// The peek is served (after a `100 Continue` when asked).
    Served,
}

#[tokio::test]
async fn transfer_encoding_and_content_length_tricks_are_refused_and_smuggle_nothing() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = sentinel.queue.clone();
    let peek = format!("/client/v4/accounts/{ACCOUNT}/queues/{q}/messages/peek");
    let host = addr(&app);
    let auth = format!("Authorization: Bearer {}\r\n", app.token);
    let post = |headers: &str, body: &str| {
        format!("POST {peek} HTTP/1.1\r\nHost: {host}\r\n{auth}{headers}\r\n{body}")
    };
    // A push to the sentinel queue hidden where a body should be: were it ever run as a
    // request, the sentinel's metrics would show it.
    let hidden = r#"{"body":"smuggled"}"#;
    let smuggled = format!(
        "POST /client/v4/accounts/{ACCOUNT}/queues/{q}/messages HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    let end_then_smuggle = format!("0\r\n\r\n{smuggled}");
    let both = format!("Content-Length: {}\r\n", end_then_smuggle.len());
    use Framing::*;
    let cases: Vec<(&str, String, Framing)> = vec![
        (
            "TE then CL",
            post(
                &format!("Transfer-Encoding: chunked\r\n{both}"),
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "CL then TE",
            post(
                &format!("{both}Transfer-Encoding: chunked\r\n"),
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "TE xchunked",
            post("Transfer-Encoding: xchunked\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE chunked, identity",
            post(
                "Transfer-Encoding: chunked, identity\r\n",
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "TE identity",
            post("Transfer-Encoding: identity\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE gzip, chunked",
            post("Transfer-Encoding: gzip, chunked\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "TE with a space before the colon",
            post("Transfer-Encoding : chunked\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE on HTTP/1.0",
            post("Transfer-Encoding: chunked\r\n", &end_then_smuggle)
                .replacen("HTTP/1.1", "HTTP/1.0", 1),
            Refused,
        ),
        (
            "CL with a plus",
            post("Content-Length: +2\r\n", "{}"),
            Refused,
        ),
        ("CL negative", post("Content-Length: -1\r\n", "{}"), Refused),
        (
            "CL past u64",
            post("Content-Length: 99999999999999999999999\r\n", "{}"),
            Refused,
        ),
        (
            "CL as a list",
            post("Content-Length: 2, 2\r\n", "{}"),
            Refused,
        ),
        (
            "a chunk size past u64",
            post(
                "Transfer-Encoding: chunked\r\n",
                "fffffffffffffffff1\r\n{}\r\n0\r\n\r\n",
            ),
            Unreadable,
        ),
        (
            "a negative chunk size",
            post("Transfer-Encoding: chunked\r\n", "-2\r\n{}\r\n0\r\n\r\n"),
            Unreadable,
        ),
        (
            "a chunk size with junk",
            post("Transfer-Encoding: chunked\r\n", "2x\r\n{}\r\n0\r\n\r\n"),
            Unreadable,
        ),
        (
            "a chunk shorter than declared",
            post("Transfer-Encoding: chunked\r\n", "5\r\n{}\r\n0\r\n\r\n"),
            Unreadable,
        ),
        (
            "chunk lines ending in LF only",
            post("Transfer-Encoding: chunked\r\n", "2\n{}\n0\n\n"),
            Unreadable,
        ),
        (
            "TE in capitals",
            post("Transfer-Encoding: CHUNKED\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            Served,
        ),
        (
            "TE after a tab",
            post("Transfer-Encoding:\tchunked\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            Served,
        ),
        (
            "a 5 KB chunk extension",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("2;{}\r\n{{}}\r\n0\r\n\r\n", "x=y;".repeat(1250)),
            ),
            Served,
        ),
        (
            "trailers, one a Content-Length",
            post(
                "Transfer-Encoding: chunked\r\n",
                "2\r\n{}\r\n0\r\nX-Trailer: evil\r\nContent-Length: 99\r\n\r\n",
            ),
            Served,
        ),
        (
            "Expect: 100-continue",
            post("Expect: 100-continue\r\nContent-Length: 2\r\n", "{}"),
            Served,
        ),
        (
            "an unknown Expect",
            post("Expect: 999-nonsense\r\nContent-Length: 2\r\n", "{}"),
            Served,
        ),
        (
            "an h2c upgrade",
            post(
                "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 2\r\n",
                "{}",
            ),
            Served,
        ),
        // An upgrade makes the rest of the connection the body: it ends unfinished.
        (
            "a websocket upgrade on a POST",
            post(
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 2\r\n",
                "{}",
            ),
            Unreadable,
        ),
        (
            "a websocket upgrade on a GET",
            format!(
                "GET /client/v4/accounts/{ACCOUNT}/queues/{q}/metrics HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            Served,
        ),
        // A body on a route that reads none: never run as the next request.
        (
            "a request as the body",
            post(
                &format!("Content-Length: {}\r\n", smuggled.len()),
                &smuggled,
            )
            .replacen(
                &format!("POST {peek}"),
                &format!("GET /client/v4/accounts/{ACCOUNT}/queues/{q}/metrics"),
                1,
            ),
            Served,
        ),
    ];
    for (what, request, expected) in cases {
        let mut stream = TcpStream::connect(&host).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
            .await
            .unwrap_or_else(|_| panic!("{what}: no hang-up within 5 s"))
            .expect("read");
        let mut got = responses(&all);
        if got.first().is_some_and(|(status, _)| *status == 100) {
            assert!(what.contains("100-continue"), "{what}: {got:?}");
            got.remove(0);
        }
        assert_eq!(
            got.len(),
            1,
            "{what}: one response, nothing smuggled: {got:?}"
        );
        let (status, body) = got.remove(0);
        let reply = Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body,
        };
        match expected {
            Refused => assert_eq!((status, &reply.body), (400, &Value::Null), "{what}"),
            Unreadable => refused(&reply, 400, 10207, what),
            Served => {
                assert_eq!(status, 200, "{what}: {}", reply.body);
                let result = reply.assert_ok();
                let count = result
                    .get("messages")
                    .map_or(result["backlog_count"].clone(), |m| {
                        json!(m.as_array().map_or(0, Vec::len))
                    });
                assert_eq!(count, 2, "{what}: {result}");
            }
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn content_type_is_not_trusted_and_content_encoding_is_not_decoded() {
    let app = spawn_app().await;
    let queue = app.create_queue("types").await;
    let path = app.url(&format!("/queues/{queue}/messages"));
    let long_type = format!("application/{}", "x".repeat(8 * 1024));
    let content_types: [&[u8]; 9] = [
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=----",
        b"application/xml",
        b"image/png",
        b"",
        b";;;===",
        b"application/json; charset=\xff",
        long_type.as_bytes(),
    ];
    for content_type in content_types {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&app.token)
            .header(
                "content-type",
                HeaderValue::from_bytes(content_type).expect("value"),
            )
            .body(r#"{"body":"typed"}"#);
        let reply = app.send_raw(request).await;
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            String::from_utf8_lossy(content_type),
            reply.body
        );
    }
    // What the body's bytes are decides, not what the headers claim.
    let utf16: Vec<u8> = r#"{"body":"x"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let gzip_magic = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00".to_vec();
    for (what, header, value, body) in [
        (
            "UTF-16 as its charset says",
            "content-type",
            "application/json; charset=utf-16le",
            utf16,
        ),
        ("gzip", "content-encoding", "gzip", gzip_magic.clone()),
        ("br", "content-encoding", "br", gzip_magic.clone()),
        (
            "deflate, twice",
            "content-encoding",
            "deflate, deflate",
            gzip_magic,
        ),
    ] {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&app.token)
            .header(header, value)
            .body(body);
        refused(&app.send_raw(request).await, 400, 10208, what);
    }
    // Transfer-Encoding headers reqwest lets a caller set: hyper frames the body as they
    // say, and actix-http accepts only plain `chunked`.
    for (value, status) in [("chunked", 200), ("gzip, chunked", 400), ("identity", 400)] {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&app.token)
            .header("transfer-encoding", value)
            .body(r#"{"body":"typed"}"#);
        match request.send().await {
            Ok(response) => assert_eq!(response.status(), status, "transfer-encoding: {value}"),
            // The parser refuses and hangs up at once, maybe before hyper is done writing.
            Err(e) if status == 400 && e.is_request() => {}
            Err(e) => panic!("transfer-encoding: {value}: {e}"),
        }
    }
    let stored = app.metrics(&queue).await;
    assert_eq!(stored["backlog_count"], content_types.len() + 1);
    let messages = app.pull_messages(&queue, json!({"batch_size": 100})).await;
    assert!(messages.iter().all(|m| m["body"] == "typed"));
}

// ---- lease ids --------------------------------------------------------------------------

#[tokio::test]
async fn hostile_lease_ids_are_warnings_on_ack_retry_and_extend_and_the_message_is_untouched() {
    let app = spawn_app().await;
    let queue = app.create_queue("leased").await;
    let other = app.create_queue("other").await;
    app.push(&queue, json!({"body": TEXT_SENTINEL}))
        .await
        .assert_ok();
    app.push(&other, json!({"body": "theirs"}))
        .await
        .assert_ok();
    let mine = app
        .pull_messages(&queue, json!({"visibility_timeout_ms": 600_000}))
        .await;
    let theirs = app
        .pull_messages(&other, json!({"visibility_timeout_ms": 600_000}))
        .await;
    let lease = mine[0]["lease_id"].as_str().expect("lease").to_owned();
    let id = mine[0]["id"].as_str().expect("id").to_owned();
    let foreign = theirs[0]["lease_id"].as_str().expect("lease").to_owned();
    assert_eq!(lease.len(), 80);
    let with = |i: usize, c: char| {
        let mut l: Vec<char> = lease.chars().collect();
        l[i] = c;
        l.into_iter().collect::<String>()
    };
    let flip = |i: usize| {
        with(
            i,
            if lease.as_bytes()[i] == b'0' {
                '1'
            } else {
                '0'
            },
        )
    };
    let generation: u64 = u64::from_str_radix(&lease[32..48], 16).expect("generation");
    let hostile: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("a space", " ".into()),
        ("10 000 characters", "a".repeat(10_000)),
        ("10 000 zeros", "0".repeat(10_000)),
        ("80 characters, not hex", "z".repeat(80)),
        ("80 zeros", "0".repeat(80)),
        ("the lease in capitals", lease.to_uppercase()),
        ("the lease with a wrong MAC", flip(79)),
        ("the lease with its MAC's first character changed", flip(48)),
        (
            "the lease with the next generation",
            format!("{}{:016x}{}", &lease[..32], generation + 1, &lease[48..]),
        ),
        (
            "the lease with another message id",
            format!("{}{}", "0".repeat(32), &lease[32..]),
        ),
        ("the lease, one character short", lease[..79].to_owned()),
        ("the lease and one more", format!("{lease}0")),
        ("the lease and a space", format!("{lease} ")),
        ("the lease with a NUL in it", with(60, '\u{0}')),
        ("the lease with a sign in its generation", with(32, '+')),
        ("80 bytes of two-byte characters", "é".repeat(40)),
        (
            "79 bytes and a two-byte character",
            format!("{}é", &lease[..78]),
        ),
        ("the lease of another queue", foreign.clone()),
        ("the message id", id.clone()),
        ("braces and stars", "{*}:..".into()),
        ("80 bytes of four-byte characters", "😀".repeat(20)),
    ];
    let get_message = format!("/queues/{queue}/messages/{id}");
    let before = app.get(&get_message).await.assert_ok().clone();
    assert_eq!(before["state"], "leased");
    let metrics = app.metrics(&queue).await;
    for (what, bad) in &hostile {
        let expect_warning = |reply: &Reply, count: &str| {
            let result = reply.assert_ok();
            assert_eq!(result[count], 0, "{what}: {result}");
            assert_eq!(
                result["warnings"],
                json!({ bad.as_str(): "lease id is not valid for this queue" }),
                "{what}"
            );
        };
        let acked = app.ack(&queue, json!({"acks": [{"lease_id": bad}]})).await;
        expect_warning(&acked, "ackCount");
        let retried = app
            .ack(
                &queue,
                json!({"retries": [{"lease_id": bad, "delay_seconds": 0}]}),
            )
            .await;
        expect_warning(&retried, "retryCount");
        let extended = app
            .post(
                &format!("/queues/{queue}/messages/extend"),
                json!({"leases": [{"lease_id": bad, "visibility_timeout_ms": 1}]}),
            )
            .await;
        expect_warning(&extended, "extendCount");
    }
    // All of them at once, next to nothing valid: still only warnings.
    let all: Vec<Value> = hostile
        .iter()
        .map(|(_, l)| json!({"lease_id": l}))
        .collect();
    let reply = app.ack(&queue, json!({"acks": all, "retries": all})).await;
    let result = reply.assert_ok();
    assert_eq!(
        (result["ackCount"].clone(), result["retryCount"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        result["warnings"].as_object().map(|w| w.len()),
        Some(hostile.len())
    );
    // Nothing moved: same state, same deadline, same attempts; the other queue's too.
    assert_eq!(app.get(&get_message).await.assert_ok(), &before);
    assert_eq!(app.metrics(&queue).await, metrics);
    assert_eq!(app.metrics(&other).await["backlog_count"], 1);
    // The real leases still work, on their own queues.
    let acked = app
        .ack(&queue, json!({"acks": [{"lease_id": lease}]}))
        .await;
    assert_eq!(
        acked.assert_ok(),
        &json!({"ackCount": 1, "retryCount": 0, "warnings": {}})
    );
    let acked = app
        .ack(&other, json!({"acks": [{"lease_id": foreign}]}))
        .await;
    assert_eq!(acked.assert_ok()["ackCount"], 1);
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
}
