//! The seeds' own APIs (SPEC §10), driven with the seeds' requests: only scheme, host
//! and prefix changed.

use serde_json::{Value, json};

use crate::helpers::{ACCOUNT, TestApp, spawn_app};

/// The seed's request: `Authorization` without `Bearer`, JSON:API media types.
async fn elastic(app: &TestApp, path: &str, body: &str) -> (u16, Value, String) {
    let response = app
        .client
        .post(format!("{}/elasticqueue/v1{path}", app.base))
        .header("Accept", "application/vnd.api+json")
        .header("Content-Type", "application/vnd.api+json")
        .header("Authorization", &app.token)
        .body(body.to_owned())
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, content_type)
}

/// The seed's enqueue example, verbatim (its `wait-until` is in milliseconds, in 2016).
const SEED_ENQUEUE: &str = r#"{
  "data": {
    "type": "message",
    "attributes": {
      "body": "body-of-message-1",
      "wait-until": 1459121798238
    }
  }
}"#;

/// The seed's bulk example, verbatim.
const SEED_BULK: &str = r#"{
  "data": [
    {
      "type": "message",
      "attributes": {
        "body": "body-of-message-1",
        "wait-until": 1459121798238
      }
    },
    {
      "type": "message",
      "attributes": {
        "body": "body-of-message-2",
        "wait-until": 1459121798238
      }
    }
  ]
}"#;

#[tokio::test]
async fn elasticqueue_enqueue_and_bulk_as_the_seed_writes_them() {
    let app = spawn_app().await;
    let queue = app.create_queue("queue-name").await;
    let (status, body, content_type) =
        elastic(&app, "/queues/queue-name/messages", SEED_ENQUEUE).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(content_type, "application/vnd.api+json");
    assert_eq!(body["data"]["type"], "message");
    let id = body["data"]["id"].as_str().expect("id").to_owned();
    assert!(body["data"]["links"]["self"].as_str().is_some_and(|l| {
        l.ends_with(&format!("/elasticqueue/v1/queues/queue-name/messages/{id}"))
    }));
    let (status, body, _) = elastic(&app, "/queues/queue-name/messages/_bulk", SEED_BULK).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    // A wait-until in the past means now: all three are visible, bodies as sent.
    let pulled = app.pull_messages(&queue, json!({"batch_size": 10})).await;
    let mut bodies: Vec<&str> = pulled
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            "body-of-message-1",
            "body-of-message-1",
            "body-of-message-2"
        ]
    );
    assert!(pulled.iter().any(|m| m["id"] == id.as_str()));
}

#[tokio::test]
async fn elasticqueue_wait_until_takes_seconds_or_milliseconds() {
    let app = spawn_app().await;
    let queue = app.create_queue("later").await;
    let now_s = leaseq::model::now_ms() / 1000;
    for wait_until in [json!(now_s + 3600), json!((now_s + 3600) * 1000)] {
        let body = json!({"data": {"type": "message", "attributes": {"body": "x", "wait-until": wait_until}}});
        let (status, reply, _) = elastic(&app, "/queues/later/messages", &body.to_string()).await;
        assert_eq!(status, 202, "{reply}");
    }
    // Both wait an hour: nothing is visible, both are delayed about 3 600 s.
    assert!(app.pull_messages(&queue, json!({})).await.is_empty());
    let listed = app.get(&format!("/queues/{queue}/messages")).await;
    for message in listed.assert_ok().as_array().expect("messages") {
        assert_eq!(message["state"], "delayed");
        let until = message["visible_at_ms"].as_u64().expect("until");
        let wait = until.saturating_sub(leaseq::model::now_ms());
        assert!((3_500_000..=3_600_000).contains(&wait), "waits {wait} ms");
    }
}

#[tokio::test]
async fn elasticqueue_bulk_is_all_or_nothing_and_errors_are_json_api() {
    let app = spawn_app().await;
    let queue = app.create_queue("strict").await;
    // The second message waits too long (more than a day): nothing is stored.
    let far = leaseq::model::now_ms() / 1000 + 3 * 86_400;
    let bad = json!({"data": [
        {"type": "message", "attributes": {"body": "fine"}},
        {"type": "message", "attributes": {"body": "too late", "wait-until": far}},
    ]});
    let (status, body, content_type) =
        elastic(&app, "/queues/strict/messages/_bulk", &bad.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(content_type, "application/vnd.api+json");
    let error = &body["errors"][0];
    assert_eq!(error["status"], "400");
    assert_eq!(error["title"], "Bad Request");
    assert!(
        error["detail"]
            .as_str()
            .is_some_and(|d| d.contains("data[1]")),
        "{error}"
    );
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
    // Other refusals: a wrong type, no body, an unknown queue, no token.
    for (path, body, status) in [
        (
            "/queues/strict/messages",
            r#"{"data":{"type":"note","attributes":{"body":"x"}}}"#,
            400,
        ),
        (
            "/queues/strict/messages",
            r#"{"data":{"type":"message","attributes":{}}}"#,
            400,
        ),
        ("/queues/strict/messages", "{", 400),
        ("/queues/nope/messages", SEED_ENQUEUE, 404),
        ("/queues/Not%20A%20Name/messages", SEED_ENQUEUE, 404),
    ] {
        let (got, reply, _) = elastic(&app, path, body).await;
        assert_eq!(got, status, "{path} {body}: {reply}");
        assert_eq!(reply["errors"][0]["status"], status.to_string());
    }
    let anonymous = app
        .client
        .post(format!(
            "{}/elasticqueue/v1/queues/strict/messages",
            app.base
        ))
        .body(SEED_ENQUEUE)
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status().as_u16(), 401);
    // A token for every account cannot say which account is meant.
    let wildcard = app.mint(&["*"], "messages:push", None);
    let refused = app
        .client
        .post(format!(
            "{}/elasticqueue/v1/queues/strict/messages",
            app.base
        ))
        .header("Authorization", wildcard)
        .body(SEED_ENQUEUE)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status().as_u16(), 403);
    let _ = ACCOUNT;
}

/// A discue request as its seeds write them: `X-API-KEY`, JSON.
async fn discue(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value, String) {
    let mut request = app
        .client
        .request(method, format!("{}/discue/v1{path}", app.base))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("X-API-KEY", &app.token);
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

#[tokio::test]
async fn discue_queue_listener_and_message_as_the_seeds_write_them() {
    use crate::helpers::receiver::Receiver;
    use reqwest::Method;
    let app = spawn_app().await;
    // Seed 003: create a queue.
    let (status, created, _) = discue(
        &app,
        Method::POST,
        "/queues",
        Some(
            r#"{
  "name": "myapp.io/deletion-request-queue"
}"#,
        ),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let queue = created["queue"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["queue"]["name"], "myapp.io/deletion-request-queue");
    assert_eq!(created["queue"]["listeners"], json!([]));
    assert!(
        created["_links"]["self"]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("/discue/v1/queues/{queue}")))
    );
    // The Cloudflare routes show the name as it is.
    let cf = app.get(&format!("/queues/{queue}")).await;
    assert_eq!(
        cf.assert_ok()["queue_name"],
        "myapp.io/deletion-request-queue"
    );
    // Seed 001: add a listener (its notify_url here: a receiver of the test's).
    let receiver = Receiver::start().await;
    let listener_body = format!(
        r#"{{
  "name": "myapp.io/deletion-request-listener",
  "notify_url": "{}/deletion/listener",
  "liveness_url": "{}/live"
}}"#,
        receiver.url, receiver.url
    );
    let (status, listener, _) = discue(
        &app,
        Method::POST,
        &format!("/queues/{queue}/listeners"),
        Some(&listener_body),
    )
    .await;
    assert_eq!(status, 200, "{listener}");
    assert_eq!(
        listener["listener"]["name"],
        "myapp.io/deletion-request-listener"
    );
    let listener_id = listener["listener"]["id"].as_str().expect("id").to_owned();
    // The queue now names it in its links.
    let (_, got, _) = discue(&app, Method::GET, &format!("/queues/{queue}"), None).await;
    assert_eq!(got["queue"]["listeners"][0]["id"], listener_id.as_str());
    assert!(got["_links"]["myapp.io/deletion-request-listener"]["href"].is_string());
    // Seed 000: add a message; the listener receives it.
    let (status, message, _) = discue(
        &app,
        Method::POST,
        &format!("/queues/{queue}/messages"),
        Some(
            r#"{
  "name": "string",
  "data": "{ \"userId\": \"481512342\" }"
}"#,
        ),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["message"]["name"], "string");
    let id = message["message"]["id"].as_str().expect("id").to_owned();
    receiver
        .wait_for(std::time::Duration::from_secs(20), |r| !r.is_empty())
        .await;
    let delivery = receiver.requests()[0].json();
    assert_eq!(delivery["messages"][0]["id"], id.as_str());
    assert_eq!(
        delivery["messages"][0]["body"],
        "{ \"userId\": \"481512342\" }"
    );
    assert_eq!(delivery["listener_id"], listener_id.as_str());
}

#[tokio::test]
async fn discue_errors_are_title_and_status_and_pretty_prints() {
    use reqwest::Method;
    let app = spawn_app().await;
    let (status, body, _) = discue(
        &app,
        Method::GET,
        &format!("/queues/{}", "0".repeat(32)),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["title"], "Not Found");
    assert_eq!(body["status"], 404);
    let (status, body, _) = discue(&app, Method::POST, "/queues", Some(r#"{"name": "a b"}"#)).await;
    assert_eq!((status, body["title"].clone()), (400, json!("Bad Request")));
    let (status, body, _) = discue(&app, Method::GET, "/queues/not-an-id/messages/x", None).await;
    assert_eq!((status, body["status"].clone()), (404, json!(404)));
    let anonymous = app
        .client
        .get(format!("{}/discue/v1/queues", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status().as_u16(), 401);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["title"], "Unauthorized");
    // ?pretty=true indents answers and errors.
    discue(
        &app,
        Method::POST,
        "/queues",
        Some(r#"{"name": "pretty.queue"}"#),
    )
    .await;
    let (status, listed, text) = discue(&app, Method::GET, "/queues?pretty=true", None).await;
    assert_eq!(status, 200);
    assert!(text.contains("\n  "), "{text}");
    assert_eq!(listed["queues"][0]["name"], "pretty.queue");
    let (_, _, compact) = discue(&app, Method::GET, "/queues", None).await;
    assert!(!compact.contains('\n'));
    let (_, _, error) = discue(&app, Method::GET, "/queues/x?pretty=true", None).await;
    assert!(error.contains("\n  "), "{error}");
    // Renaming, messages read back and deleted.
    let queue = listed["queues"][0]["id"].as_str().expect("id").to_owned();
    let (status, renamed, _) = discue(
        &app,
        Method::PUT,
        &format!("/queues/{queue}"),
        Some(r#"{"name": "renamed/q"}"#),
    )
    .await;
    assert_eq!(
        (status, renamed["queue"]["name"].clone()),
        (200, json!("renamed/q"))
    );
    let (_, pushed, _) = discue(
        &app,
        Method::POST,
        &format!("/queues/{queue}/messages"),
        Some(r#"{"name": "n", "data": {"k": 1}}"#),
    )
    .await;
    let id = pushed["message"]["id"].as_str().expect("id").to_owned();
    let (status, got, _) = discue(
        &app,
        Method::GET,
        &format!("/queues/{queue}/messages/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, got["message"]["data"].clone()),
        (200, json!({"k": 1}))
    );
    assert_eq!(got["message"]["name"], "n", "the name is kept");
    let (_, listed, _) = discue(
        &app,
        Method::GET,
        &format!("/queues/{queue}/messages"),
        None,
    )
    .await;
    assert_eq!(listed["messages"].as_array().map(Vec::len), Some(1));
    let (status, _, _) = discue(
        &app,
        Method::DELETE,
        &format!("/queues/{queue}/messages/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = discue(
        &app,
        Method::GET,
        &format!("/queues/{queue}/messages/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = discue(&app, Method::DELETE, &format!("/queues/{queue}"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn each_dialect_serves_its_own_openapi_document_of_every_route() {
    let app = spawn_app().await;
    let expected: [(&str, &[(&str, &str)]); 2] = [
        (
            "/discue/v1",
            &[
                ("post", "/queues"),
                ("get", "/queues"),
                ("get", "/queues/{queue_id}"),
                ("put", "/queues/{queue_id}"),
                ("delete", "/queues/{queue_id}"),
                ("post", "/queues/{queue_id}/messages"),
                ("get", "/queues/{queue_id}/messages"),
                ("get", "/queues/{queue_id}/messages/{message_id}"),
                ("delete", "/queues/{queue_id}/messages/{message_id}"),
                ("post", "/queues/{queue_id}/listeners"),
                ("get", "/queues/{queue_id}/listeners/{listener_id}"),
                ("put", "/queues/{queue_id}/listeners/{listener_id}"),
                ("delete", "/queues/{queue_id}/listeners/{listener_id}"),
            ],
        ),
        (
            "/elasticqueue/v1",
            &[
                ("post", "/queues/{queue_name}/messages"),
                ("post", "/queues/{queue_name}/messages/_bulk"),
            ],
        ),
    ];
    for (prefix, routes) in expected {
        // No token: the documents are public.
        let response = reqwest::get(format!("{}{prefix}/openapi.json", app.base))
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 200, "{prefix}");
        let doc: Value = response.json().await.expect("JSON");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        assert_eq!(doc["servers"][0]["url"], prefix);
        let paths = doc["paths"].as_object().expect("paths");
        let documented: usize = paths
            .values()
            .filter_map(Value::as_object)
            .map(|o| o.len())
            .sum();
        assert_eq!(documented, routes.len(), "{prefix}: {:?}", paths.keys());
        for (method, path) in routes {
            let operation = &paths[*path][*method];
            assert!(
                operation.is_object(),
                "{prefix}: {method} {path} undocumented"
            );
            assert!(
                operation["security"].is_array(),
                "{prefix}: {method} {path}"
            );
            let tag = prefix.trim_start_matches('/').trim_end_matches("/v1");
            assert_eq!(operation["tags"][0], tag, "{prefix}: {method} {path}");
        }
    }
}
