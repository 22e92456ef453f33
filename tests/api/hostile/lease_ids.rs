//! Hostile lease ids on ack, retry and extend.

use serde_json::{Value, json};

use super::TEXT_SENTINEL;
use crate::helpers::{Reply, spawn_app};

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
