//! Numbers out of range or not whole, values of the wrong type, `null`, positional
//! arrays: in every body field and query parameter.

use reqwest::Method;
use serde_json::json;

use super::{Sentinel, snapshot};
use crate::helpers::raw::{refused, send_bytes};
use crate::helpers::spawn_app;

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
        json!({"batch_size": 5, "max_retries": 3, "retry_delay": 0, "retry_delay_max": 0, "visibility_timeout_ms": 30000})
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
