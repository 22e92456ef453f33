//! JSON nested a hundred thousand deep, wherever it is, and brackets that are not
//! nesting.

use reqwest::Method;
use serde_json::json;

use super::Sentinel;
use crate::helpers::raw::{refused, send_bytes};
use crate::helpers::{Ids, every_route, spawn_app};

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
    let message = uuid::Uuid::now_v7().simple().to_string();
    let ids = Ids::new(&sentinel.queue, &consumer, &message);
    // As the whole body, on every route that reads one.
    for route in every_route().iter().filter(|r| r.body.is_some()) {
        let (method, path) = (&route.method, route.in_account(ids));
        for (what, body) in [
            ("a bare array", deep_array()),
            ("an unclosed array", "[".repeat(LEVELS)),
            ("an unclosed object", r#"{"a":"#.repeat(LEVELS)),
        ] {
            let reply = send_bytes(&app, method.clone(), &path, body).await;
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
