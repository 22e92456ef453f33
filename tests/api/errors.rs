use reqwest::Method;
use serde_json::json;

use crate::helpers::{ACCOUNT, spawn_app};

#[tokio::test]
async fn a_body_that_is_not_json_is_10208_and_the_wrong_shape_is_10207() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let path = app.url(&format!("/queues/{queue}/messages"));
    for (raw, code) in [
        ("{", 10208),
        ("not json", 10208),
        ("[1,2]", 10207),
        ("\"text\"", 10207),
        (r#"{"body": "x", "delay_seconds": "soon"}"#, 10207),
    ] {
        let request = app.client.post(&path).bearer_auth(&app.token).body(raw);
        app.send_raw(request).await.assert_error(400, code);
    }
    let invalid_utf8 = app
        .client
        .post(&path)
        .bearer_auth(&app.token)
        .body(vec![b'{', 0xff, 0xfe, b'}']);
    app.send_raw(invalid_utf8).await.assert_error(400, 10208);
    // Deep nesting where a number belongs is refused, not recursed into.
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let pull = app.url(&format!("/queues/{queue}/messages/pull"));
    let request = app
        .client
        .post(&pull)
        .bearer_auth(&app.token)
        .body(format!(r#"{{"batch_size": {deep}}}"#));
    app.send_raw(request).await.assert_error(400, 10207);
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_413_before_parsing() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let path = app.url(&format!("/queues/{queue}/messages/batch"));
    let huge = vec![b'x'; 1024 * 1024 + 1];
    let reply = app
        .send_raw(app.client.post(&path).bearer_auth(&app.token).body(huge))
        .await;
    reply.assert_error(413, 10209);
}

#[tokio::test]
async fn ids_that_could_break_a_redis_key_are_refused_before_reaching_redis() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let keys_before = app.redis_keys().await;
    for bad in [
        "%7Babc%7D",
        "abc%7D",
        "*",
        "a:b",
        "a%20b",
        "%00",
        "..",
        &"a".repeat(33),
    ] {
        let reply = app.get(&format!("/queues/{bad}")).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 404),
            "{bad}: {}",
            reply.status
        );
        assert_eq!(reply.body["success"], json!(false), "{bad}: {}", reply.body);
        let reply = app.push(bad, json!({"body": "x"})).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 404),
            "{bad}: {}",
            reply.status
        );
        let url = format!(
            "{}/client/v4/accounts/{bad}/queues/{queue}/messages",
            app.base
        );
        let reply = app
            .request_url(Method::POST, &url, Some(json!({"body": "x"})))
            .await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 403 | 404),
            "{bad}: {}",
            reply.status
        );
        assert_eq!(reply.body["success"], json!(false), "{bad}: {}", reply.body);
    }
    assert_eq!(app.redis_keys().await, keys_before, "no key was created");
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
}

#[tokio::test]
async fn an_invalid_account_id_is_refused_even_with_a_wildcard_token() {
    let app = spawn_app().await;
    let token = app.mint(&["*"], &leaseq::auth::all_scopes(), None);
    let url = format!("{}/client/v4/accounts/a%7Bb%7D/queues", app.base);
    let request = app.client.get(&url).bearer_auth(&token);
    app.send_raw(request).await.assert_error(400, 7003);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.get("/nothing-here").await.assert_error(404, 7003);
    let reply = app
        .request_url(
            Method::GET,
            &format!("{}/client/v4/unknown", app.base),
            None,
        )
        .await;
    reply.assert_error(404, 7003);
    app.request(Method::DELETE, &format!("/queues/{queue}/messages"), None)
        .await
        .assert_error(404, 7003);
    app.request(Method::GET, &format!("/queues/{queue}/messages/pull"), None)
        .await
        .assert_error(404, 7003);
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    app.push(&queue, json!({"body": "x", "extra": {"nested": true}}))
        .await
        .assert_ok();
    let messages = app
        .pull_messages(&queue, json!({"batch_size": 1, "unknown": 1}))
        .await;
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn hostile_numbers_are_400s_not_500s() {
    let app = spawn_app().await;
    let queue = app.create_queue("orders").await;
    let path = app.url(&format!("/queues/{queue}/messages/pull"));
    for raw in [
        r#"{"batch_size": 1e400}"#,
        r#"{"batch_size": -0.5}"#,
        r#"{"batch_size": 18446744073709551616}"#,
        r#"{"visibility_timeout_ms": 1e20}"#,
        r#"{"batch_size": NaN}"#,
    ] {
        let reply = app
            .send_raw(app.client.post(&path).bearer_auth(&app.token).body(raw))
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{raw}: {}", reply.body);
    }
    let _ = ACCOUNT;
}

#[tokio::test]
async fn a_broken_redis_gives_a_fast_503_envelope() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.redis.url = "redis://127.0.0.1:1".into();
        s.redis.timeout_ms = 300;
    })
    .await;
    let started = std::time::Instant::now();
    let reply = app.post("/queues", json!({"queue_name": "orders"})).await;
    reply.assert_error(503, 15000);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let ready = app
        .send_raw(app.client.get(format!("{}/readyz", app.base)))
        .await;
    assert_eq!(ready.status.as_u16(), 503);
    let health = app
        .send_raw(app.client.get(format!("{}/healthz", app.base)))
        .await;
    assert_eq!(health.status.as_u16(), 200);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.rate_limits.queue_per_sec = 1.0;
        s.rate_limits.queue_burst = 3.0;
        s.rate_limits.account_per_sec = 1.0;
        s.rate_limits.account_burst = 8.0;
    })
    .await;
    let queue = app.create_queue("orders").await;
    for _ in 0..3 {
        app.push(&queue, json!({"body": "x"})).await.assert_ok();
    }
    let limited = app.push(&queue, json!({"body": "x"})).await;
    limited.assert_error(429, 971);
    let retry_after: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another queue of the account has its own bucket, until the account's runs out.
    let other = app.create_queue("billing").await;
    app.push(&other, json!({"body": "x"})).await.assert_ok();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.get("/queues").await.status.as_u16());
    }
    assert!(
        statuses.contains(&429),
        "the account limit applies to every route: {statuses:?}"
    );
}

#[tokio::test]
async fn a_client_that_sends_its_body_too_slowly_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(|s| s.server.client_timeout_secs = 1).await;
    let queue = app.create_queue("orders").await;
    let addr = crate::helpers::raw::addr(&app);
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /client/v4/accounts/{ACCOUNT}/queues/{queue}/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"body\":",
        app.token
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("10210"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(app.metrics(&queue).await["backlog_count"], 0);
}

#[tokio::test]
async fn rate_limits_hold_across_three_brokers_sharing_one_redis() {
    const RATE: f64 = 50.0;
    // A burst of a fifth of a second's worth absorbs the short stalls of a loaded
    // machine: a client held up for a moment catches up instead of leaving the rate
    // unused.
    const BURST: f64 = RATE / 5.0;
    let first = crate::helpers::spawn_app_with(|s| {
        s.rate_limits.account_per_sec = RATE;
        s.rate_limits.account_burst = BURST;
    })
    .await;
    let mut brokers = vec![first];
    for _ in 0..2 {
        let prefix = brokers[0].prefix.clone();
        brokers.push(
            crate::helpers::spawn_app_with(move |s| {
                s.redis.key_prefix = prefix;
                s.rate_limits.account_per_sec = RATE;
                s.rate_limits.account_burst = BURST;
            })
            .await,
        );
    }
    let started = std::time::Instant::now();
    let window = std::time::Duration::from_secs(5);
    let mut load = tokio::task::JoinSet::new();
    for app in brokers {
        load.spawn(async move {
            let (mut admitted, mut limited) = (0u64, 0u64);
            while started.elapsed() < window {
                let reply = app.get("/queues").await;
                match reply.status.as_u16() {
                    200 => admitted += 1,
                    429 => {
                        reply.assert_error(429, 971);
                        assert!(reply.headers.contains_key("retry-after"));
                        limited += 1;
                    }
                    other => panic!("unexpected {other}: {}", reply.body),
                }
            }
            (admitted, limited)
        });
    }
    let (mut admitted, mut limited) = (0, 0);
    while let Some(result) = load.join_next().await {
        let (a, l) = result.expect("no panic");
        admitted += a;
        limited += l;
    }
    // Measured against the window the requests really spanned: the rate, plus the
    // burst the limit starts with.
    let expected = RATE * started.elapsed().as_secs_f64();
    let admitted = admitted as f64;
    assert!(
        (expected * 0.9..=expected * 1.1 + BURST).contains(&admitted),
        "admitted {admitted} of {} requests, expected about {expected:.0} (+ a burst of {BURST})",
        admitted as u64 + limited
    );
    assert!(limited > 0, "the brokers were pushed past the rate");
}

#[tokio::test]
async fn per_process_rate_limits_remain_an_option() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.rate_limits.shared = false;
        s.rate_limits.queue_per_sec = 1.0;
        s.rate_limits.queue_burst = 2.0;
    })
    .await;
    let queue = app.create_queue("orders").await;
    for _ in 0..2 {
        app.push(&queue, json!({"body": "x"})).await.assert_ok();
    }
    let limited = app.push(&queue, json!({"body": "x"})).await;
    limited.assert_error(429, 971);
    assert!(limited.headers.contains_key("retry-after"));
    // Counted in this process alone: nothing about them is in Redis.
    assert!(
        app.redis_keys().await.iter().all(|k| !k.ends_with(":rate")),
        "no shared state"
    );
}
