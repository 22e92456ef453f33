use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ACCOUNT, every_route, spawn_app};

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| humantime::parse_rfc3339(s).is_ok())
}

#[tokio::test]
async fn create_returns_the_queue_in_cloudflare_shape() {
    let app = spawn_app().await;
    let reply = app.post("/queues", json!({"queue_name": "orders"})).await;
    let queue = reply.assert_ok();
    let id = queue["queue_id"].as_str().expect("queue_id");
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(queue["queue_name"], "orders");
    assert!(is_rfc3339(&queue["created_on"]), "{queue}");
    assert!(is_rfc3339(&queue["modified_on"]), "{queue}");
    assert_eq!(
        queue["settings"],
        json!({"delivery_delay": 0, "delivery_paused": false, "message_retention_period": 345600, "dedup_window_seconds": 300, "max_backlog_messages": 0, "max_backlog_bytes": 0, "group_max_inflight": 0})
    );
    assert_eq!(queue["consumers"], json!([]));
    assert_eq!(queue["consumers_total_count"], 0);
    assert_eq!(queue["producers"], json!([]));
    assert_eq!(queue["producers_total_count"], 0);
}

#[tokio::test]
async fn create_accepts_settings() {
    let app = spawn_app().await;
    let body = json!({"queue_name": "slow", "settings": {"delivery_delay": 5, "message_retention_period": 60}});
    let queue = app.post("/queues", body).await.assert_ok().clone();
    assert_eq!(queue["settings"]["delivery_delay"], 5);
    assert_eq!(queue["settings"]["message_retention_period"], 60);
    let out_of_range = json!({"queue_name": "bad", "settings": {"delivery_delay": 86401}});
    app.post("/queues", out_of_range)
        .await
        .assert_error(400, 10207);
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_that_clients_must_not_retry() {
    let app = spawn_app().await;
    app.create_queue("orders").await;
    let reply = app.post("/queues", json!({"queue_name": "orders"})).await;
    reply.assert_error(409, 10109);
    assert_eq!(
        reply
            .headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok()),
        Some("false")
    );
}

#[tokio::test]
async fn invalid_queue_names_are_refused() {
    let app = spawn_app().await;
    for name in [
        json!(""),
        json!("Upper"),
        json!("under_score"),
        json!("a".repeat(64)),
        json!(7),
        json!(null),
    ] {
        app.post("/queues", json!({"queue_name": name}))
            .await
            .assert_error(400, 10207);
    }
    app.post("/queues", json!({}))
        .await
        .assert_error(400, 10207);
}

#[tokio::test]
async fn list_returns_every_queue_unless_a_page_is_asked_for() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(app.create_queue(&format!("q-{i:02}")).await);
    }
    let all = app.get("/queues").await;
    let result = all.assert_ok().as_array().expect("array").clone();
    assert_eq!(result.len(), 25);
    let listed: Vec<&str> = result
        .iter()
        .map(|q| q["queue_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        listed,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "oldest first"
    );
    assert_eq!(all.body["result_info"]["total_count"], 25);
    assert_eq!(all.body["result_info"]["count"], 25);

    let page = app.get("/queues?page=2&per_page=10").await;
    let result = page.assert_ok().as_array().expect("array").clone();
    assert_eq!(result.len(), 10);
    assert_eq!(result[0]["queue_id"], ids[10].as_str());
    assert_eq!(
        page.body["result_info"],
        json!({"page": 2, "per_page": 10, "count": 10, "total_count": 25, "total_pages": 3})
    );
    let past_the_end = app.get("/queues?page=9&per_page=10").await;
    assert_eq!(past_the_end.assert_ok(), &json!([]));

    let named = app.get("/queues?name=q-03&name=q-07").await;
    let names: Vec<&str> = named
        .assert_ok()
        .as_array()
        .expect("array")
        .iter()
        .map(|q| q["queue_name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["q-03", "q-07"]);

    app.get("/queues?page=0").await.assert_error(400, 10207);
    app.get("/queues?per_page=abc")
        .await
        .assert_error(400, 10207);
}

#[tokio::test]
async fn get_finds_the_queue_and_refuses_unknown_or_malformed_ids() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    assert_eq!(
        app.get(&format!("/queues/{id}")).await.assert_ok()["queue_name"],
        "orders"
    );
    app.get(&format!("/queues/{}", "0".repeat(32)))
        .await
        .assert_error(404, 10104);
    app.get("/queues/not-an-id").await.assert_error(400, 10107);
}

#[tokio::test]
async fn every_route_is_served_at_the_root_too() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    let url = format!("{}/accounts/{ACCOUNT}/queues/{id}", app.base);
    let reply = app.request_url(Method::GET, &url, None).await;
    assert_eq!(reply.assert_ok()["queue_id"], id.as_str());
    for (i, route) in every_route().iter().enumerate() {
        if !route.is_account() {
            continue;
        }
        let path = app.route_on_fresh_queue(route, &format!("q{i}")).await;
        let reply = app
            .send_route(route, &format!("{}{path}", app.base), &app.token)
            .await;
        assert!(
            reply.status.is_success() && reply.body["success"] == true,
            "{} {path}: {} {}",
            route.method,
            reply.status,
            reply.body
        );
    }
}

#[tokio::test]
async fn put_replaces_settings_and_patch_changes_only_what_it_names() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    let path = format!("/queues/{id}");
    let patched = app
        .request(
            Method::PATCH,
            &path,
            Some(json!({"settings": {"delivery_delay": 9}})),
        )
        .await;
    assert_eq!(patched.assert_ok()["settings"]["delivery_delay"], 9);
    let patched = app
        .request(
            Method::PATCH,
            &path,
            Some(json!({"settings": {"delivery_paused": true}})),
        )
        .await;
    let settings = patched.assert_ok()["settings"].clone();
    assert_eq!(
        settings,
        json!({"delivery_delay": 9, "delivery_paused": true, "message_retention_period": 345600, "dedup_window_seconds": 300, "max_backlog_messages": 0, "max_backlog_bytes": 0, "group_max_inflight": 0})
    );

    let put = app
        .request(
            Method::PUT,
            &path,
            Some(json!({"queue_name": "orders", "settings": {"message_retention_period": 600}})),
        )
        .await;
    let settings = put.assert_ok()["settings"].clone();
    assert_eq!(
        settings,
        json!({"delivery_delay": 0, "delivery_paused": false, "message_retention_period": 600, "dedup_window_seconds": 300, "max_backlog_messages": 0, "max_backlog_bytes": 0, "group_max_inflight": 0})
    );
    app.request(
        Method::PATCH,
        &path,
        Some(json!({"settings": {"delivery_paused": "yes"}})),
    )
    .await
    .assert_error(400, 10207);
}

#[tokio::test]
async fn a_queue_can_be_renamed_but_not_onto_a_taken_name() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    app.create_queue("billing").await;
    let path = format!("/queues/{id}");
    app.request(Method::PATCH, &path, Some(json!({"queue_name": "billing"})))
        .await
        .assert_error(409, 10109);
    let renamed = app
        .request(
            Method::PATCH,
            &path,
            Some(json!({"queue_name": "orders-v2"})),
        )
        .await;
    assert_eq!(renamed.assert_ok()["queue_name"], "orders-v2");
    // The old name is free again, and the list shows each queue once.
    app.create_queue("orders").await;
    let names: Vec<String> = app
        .get("/queues")
        .await
        .assert_ok()
        .as_array()
        .expect("array")
        .iter()
        .map(|q| q["queue_name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["orders-v2", "billing", "orders"]);
}

#[tokio::test]
async fn delete_removes_the_queue_and_all_its_messages() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    app.push_numbered(&id, 150).await;
    app.pull_messages(&id, json!({"batch_size": 10})).await;
    let reply = app
        .request(Method::DELETE, &format!("/queues/{id}"), None)
        .await;
    assert_eq!(reply.assert_ok(), &Value::Null);
    app.get(&format!("/queues/{id}"))
        .await
        .assert_error(404, 10104);
    app.get(&format!("/queues/{id}/metrics"))
        .await
        .assert_error(404, 10104);
    app.push(&id, json!({"body": "late"}))
        .await
        .assert_error(404, 10104);
    app.request(Method::DELETE, &format!("/queues/{id}"), None)
        .await
        .assert_error(404, 10104);
    assert!(
        app.redis_keys().await.iter().all(|k| !k.contains(&id)),
        "keys of the deleted queue remain"
    );
    // The name can be used again.
    app.create_queue("orders").await;
}

#[tokio::test]
async fn a_delete_with_a_json_content_type_and_no_body_is_valid() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    let request = app
        .client
        .delete(app.url(&format!("/queues/{id}")))
        .bearer_auth(&app.token)
        .header("content-type", "application/json");
    app.send_raw(request).await.assert_ok();
}

#[tokio::test]
async fn metrics_of_a_new_queue_are_zero() {
    let app = spawn_app().await;
    let id = app.create_queue("orders").await;
    assert_eq!(
        app.metrics(&id).await,
        json!({"backlog_count": 0, "backlog_bytes": 0, "oldest_message_timestamp_ms": 0,
               "inflight_count": 0, "delayed_count": 0,
                   "visible_group_count": 0, "oldest_group_head_timestamp_ms": 0})
    );
}

#[tokio::test]
async fn the_queue_limit_per_account_is_enforced() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.queues_per_account = 2).await;
    app.create_queue("a").await;
    app.create_queue("b").await;
    app.post("/queues", json!({"queue_name": "c"}))
        .await
        .assert_error(409, 10110);
}

#[tokio::test]
async fn metrics_also_count_leased_and_delayed_messages() {
    let app = spawn_app().await;
    let queue = app.create_queue("figures").await;
    app.push_numbered(&queue, 2).await;
    app.push(&queue, json!({"body": "later", "delay_seconds": 600}))
        .await
        .assert_ok();
    let pulled = app.pull_messages(&queue, json!({"batch_size": 1})).await;
    assert_eq!(pulled.len(), 1);
    let metrics = app.metrics(&queue).await;
    assert_eq!(metrics["backlog_count"], 3, "{metrics}");
    assert_eq!(metrics["inflight_count"], 1, "{metrics}");
    assert_eq!(metrics["delayed_count"], 1, "{metrics}");
}
