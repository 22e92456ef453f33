//! Invalid UTF-8, lone surrogates, raw control bytes and escaped NUL.

use reqwest::Method;
use serde_json::json;

use super::Sentinel;
use crate::helpers::raw::{find, refused, send_bytes};
use crate::helpers::{Ids, every_route, spawn_app};

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
    // In the fields that hold text.
    let text_fields: Vec<(Method, String, &[u8])> = vec![
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
        (
            Method::POST,
            format!("{q}/messages/batch"),
            br#"{"messages":[{"body":"x"},{"body":"@"}]}"#,
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
    ];
    let mut templates: Vec<(Method, String, Vec<u8>)> = text_fields
        .into_iter()
        .map(|(method, path, template)| (method, path, template.to_vec()))
        .collect();
    // Even in a field nobody reads, as its value or its name, on every route that reads
    // a body: the request as a whole is not JSON.
    let message = uuid::Uuid::now_v7().simple().to_string();
    let ids = Ids::new(&sentinel.queue, &consumer, &message);
    for route in every_route().iter().filter(|r| r.body.is_some()) {
        let body = route.body.expect("a body");
        let fields = body.strip_prefix('{').and_then(|b| b.strip_suffix('}'));
        let fields = fields.expect("an object").to_owned();
        let comma = if fields.is_empty() { "" } else { "," };
        for extra in [r#""extra":"@""#, r#""@":1"#] {
            let template = format!("{{{fields}{comma}{extra}}}").into_bytes();
            templates.push((route.method.clone(), route.in_account(ids), template));
        }
    }
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
