use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_consumer_is_created_with_default_settings() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let reply = app
        .post(
            &format!("/queues/{queue}/consumers"),
            json!({"type": "http_pull"}),
        )
        .await;
    let consumer = reply.assert_ok().clone();
    assert_eq!(consumer["consumer_id"].as_str().map(str::len), Some(32));
    assert_eq!(consumer["type"], "http_pull");
    assert_eq!(consumer["queue_name"], "orders");
    assert_eq!(consumer["dead_letter_queue"], "");
    assert!(
        consumer["created_on"]
            .as_str()
            .is_some_and(|s| humantime::parse_rfc3339(s).is_ok())
    );
    assert_eq!(
        consumer["settings"],
        json!({"batch_size": 5, "max_retries": 3, "retry_delay": 0, "retry_delay_max": 0, "visibility_timeout_ms": 30000})
    );
    // The queue lists it.
    let queue_json = app
        .get(&format!("/queues/{queue}"))
        .await
        .assert_ok()
        .clone();
    assert_eq!(queue_json["consumers"], json!([consumer]));
    assert_eq!(queue_json["consumers_total_count"], 1);
}

#[tokio::test]
async fn consumers_can_be_listed_read_replaced_and_deleted() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let body = json!({"type": "http_pull", "dead_letter_queue": "orders-dlq", "settings": {"batch_size": 50, "max_retries": 7, "retry_delay": 2, "retry_delay_max": 0, "visibility_timeout_ms": 1000}});
    let created = app
        .post(&format!("/queues/{queue}/consumers"), body)
        .await
        .assert_ok()
        .clone();
    let id = created["consumer_id"].as_str().expect("id").to_owned();
    assert_eq!(created["dead_letter_queue"], "orders-dlq");
    assert_eq!(created["settings"]["batch_size"], 50);

    let list = app.get(&format!("/queues/{queue}/consumers")).await;
    assert_eq!(list.assert_ok(), &json!([created.clone()]));
    assert_eq!(list.body["result_info"]["total_count"], 1);
    let path = format!("/queues/{queue}/consumers/{id}");
    assert_eq!(app.get(&path).await.assert_ok(), &created);

    let replaced = app
        .request(
            Method::PUT,
            &path,
            Some(json!({"type": "http_pull", "settings": {"batch_size": 10}})),
        )
        .await;
    let replaced = replaced.assert_ok().clone();
    assert_eq!(replaced["consumer_id"], id.as_str());
    assert_eq!(replaced["created_on"], created["created_on"]);
    assert_eq!(replaced["dead_letter_queue"], "");
    assert_eq!(
        replaced["settings"],
        json!({"batch_size": 10, "max_retries": 3, "retry_delay": 0, "retry_delay_max": 0, "visibility_timeout_ms": 30000})
    );

    app.request(Method::DELETE, &path, None).await.assert_ok();
    app.get(&path).await.assert_error(404, 10120);
    app.request(Method::DELETE, &path, None)
        .await
        .assert_error(404, 10120);
    assert_eq!(
        app.get(&format!("/queues/{queue}/consumers"))
            .await
            .assert_ok(),
        &json!([])
    );
}

#[tokio::test]
async fn a_queue_has_at_most_one_consumer() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let path = format!("/queues/{queue}/consumers");
    app.post(&path, json!({"type": "http_pull"}))
        .await
        .assert_ok();
    let second = app.post(&path, json!({"type": "http_pull"})).await;
    second.assert_error(409, 10121);
    assert_eq!(
        second
            .headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok()),
        Some("false")
    );
    let other_id = "0".repeat(32);
    app.request(
        Method::PUT,
        &format!("{path}/{other_id}"),
        Some(json!({"type": "http_pull"})),
    )
    .await
    .assert_error(409, 10121);
}

#[tokio::test]
async fn put_creates_the_consumer_when_the_queue_has_none() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let id = "0190a1b2c3d4e5f60718293a4b5c6d7e";
    let reply = app
        .request(
            Method::PUT,
            &format!("/queues/{queue}/consumers/{id}"),
            Some(json!({"type": "http_pull"})),
        )
        .await;
    assert_eq!(reply.assert_ok()["consumer_id"], id);
}

#[tokio::test]
async fn invalid_consumers_are_refused() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let path = format!("/queues/{queue}/consumers");
    app.post(&path, json!({"type": "worker", "script_name": "x"}))
        .await
        .assert_error(400, 10207);
    app.post(
        &path,
        json!({"type": "http_pull", "settings": {"batch_size": 101}}),
    )
    .await
    .assert_error(400, 10207);
    app.post(
        &path,
        json!({"type": "http_pull", "settings": {"max_retries": -1}}),
    )
    .await
    .assert_error(400, 10207);
    app.post(
        &path,
        json!({"type": "http_pull", "settings": {"visibility_timeout_ms": 43_200_001}}),
    )
    .await
    .assert_error(400, 10207);
    app.post(
        &path,
        json!({"type": "http_pull", "dead_letter_queue": "Bad Name"}),
    )
    .await
    .assert_error(400, 10207);
    let missing = format!("/queues/{}/consumers", "0".repeat(32));
    app.post(&missing, json!({"type": "http_pull"}))
        .await
        .assert_error(404, 10104);
    app.get(&format!("{path}/not-an-id"))
        .await
        .assert_error(404, 10120);
}
