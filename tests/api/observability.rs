use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ACCOUNT, eventually, spawn_app_with};

/// The value of the series whose line starts with `series` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_show_exact_backlog_counters_and_request_counts() {
    let app = spawn_app_with(|s| s.metrics.cache_ms = 0).await;
    let queue = app.create_queue("orders").await;
    let messages: Vec<_> = (0..5).map(|i| json!({"body": format!("m{i}")})).collect();
    app.push_batch(&queue, json!({"messages": messages}))
        .await
        .assert_ok();
    let pulled = app.pull_messages(&queue, json!({"batch_size": 3})).await;
    app.ack(&queue, json!({"acks": [{"lease_id": pulled[0]["lease_id"]}], "retries": [{"lease_id": pulled[1]["lease_id"], "delay_seconds": 30}]}))
        .await
        .assert_ok();
    for _ in 0..3 {
        app.get("/no/such/route/at/all").await;
        app.get(&format!("/no-{}", uuid::Uuid::now_v7().simple()))
            .await;
    }

    let text = app
        .send_raw(app.client.get(format!("{}/metrics", app.base)))
        .await;
    assert_eq!(text.status.as_u16(), 200);
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let q = format!(r#"{{account="{ACCOUNT}",queue="orders"}}"#);
    let value = |name: &str| sample(&text, &format!("{name}{q}"));
    assert_eq!(value("leaseq_queue_backlog_messages"), Some(4.0), "{text}");
    assert_eq!(value("leaseq_queue_backlog_bytes"), Some(8.0));
    assert_eq!(value("leaseq_queue_inflight_messages"), Some(1.0));
    assert_eq!(value("leaseq_queue_delayed_messages"), Some(1.0));
    assert_eq!(value("leaseq_messages_pushed_total"), Some(5.0));
    assert_eq!(value("leaseq_messages_delivered_total"), Some(3.0));
    assert_eq!(value("leaseq_messages_acked_total"), Some(1.0));
    assert_eq!(value("leaseq_messages_retried_total"), Some(1.0));
    assert_eq!(value("leaseq_messages_expired_total"), Some(0.0));
    assert!(
        value("leaseq_queue_oldest_message_age_seconds")
            .is_some_and(|age| (0.0..60.0).contains(&age))
    );
    let push = r#"leaseq_http_requests_total{method="POST",route="/client/v4/accounts/{account_id}/queues/{queue_id}/messages/batch",status="200"}"#;
    assert_eq!(sample(&text, push), Some(1.0), "{text}");
    let unmatched = r#"leaseq_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(
        sample(&text, unmatched),
        Some(6.0),
        "unknown paths share one series"
    );
    assert!(!text.contains("/no/such"), "raw paths never become labels");
    assert!(
        sample(
            &text,
            r#"leaseq_redis_script_duration_seconds_count{script="pull"}"#
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert!(text.contains("leaseq_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn past_the_series_cap_the_smallest_backlogs_are_summed_into_one_series() {
    let app = spawn_app_with(|s| {
        s.metrics.cache_ms = 0;
        s.metrics.max_queue_series = 2;
    })
    .await;
    for (name, backlog) in [("big", 3), ("middle", 2), ("small", 1), ("empty", 0)] {
        let queue = app.create_queue(name).await;
        let messages: Vec<_> = (0..backlog)
            .map(|i| json!({"body": format!("m{i}")}))
            .collect();
        if backlog > 0 {
            app.push_batch(&queue, json!({"messages": messages}))
                .await
                .assert_ok();
        }
    }
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let backlog = |queue: &str| {
        sample(
            &text,
            &format!(r#"leaseq_queue_backlog_messages{{account="{ACCOUNT}",queue="{queue}"}}"#),
        )
    };
    assert_eq!(backlog("big"), Some(3.0), "{text}");
    assert_eq!(backlog("middle"), Some(2.0));
    assert_eq!(backlog("small"), None);
    assert_eq!(backlog("empty"), None);
    let other = |family: &str| sample(&text, &format!(r#"{family}{{account="",queue="_other"}}"#));
    assert_eq!(other("leaseq_queue_backlog_messages"), Some(1.0));
    assert_eq!(other("leaseq_messages_pushed_total"), Some(1.0));
    assert_eq!(sample(&text, "leaseq_queues"), Some(4.0));
}

#[tokio::test]
async fn the_request_id_is_echoed() {
    let app = crate::helpers::spawn_app().await;
    let reply = app
        .send_raw(
            app.client
                .get(app.url("/queues"))
                .bearer_auth(&app.token)
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(
        reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    let reply = app.get("/queues").await;
    assert!(
        reply
            .headers
            .get("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );
}

/// A redis-server of this test's own, on a free port, persisting to a temp dir.
struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnRedis {
    fn start(port: Option<u16>, dir: Option<std::path::PathBuf>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        });
        let dir = dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("leaseq-redis-{}", uuid::Uuid::now_v7().simple()))
        });
        std::fs::create_dir_all(&dir).expect("dir");
        let status = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--appendonly",
                "yes",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .status()
            .expect("redis-server runs");
        assert!(status.success());
        Self { port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&self) {
        let _ = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown"])
            .status();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn while_redis_is_down_calls_fail_fast_with_503_and_service_resumes_after() {
    let redis = OwnRedis::start(None, None);
    let url = redis.url();
    let app = spawn_app_with(move |s| s.redis.url = url.into()).await;
    let queue = eventually(Duration::from_secs(5), || async {
        let reply = app.post("/queues", json!({"queue_name": "orders"})).await;
        reply
            .status
            .is_success()
            .then(|| reply.body["result"]["queue_id"].as_str().map(str::to_owned))
            .flatten()
    })
    .await;
    app.push(&queue, json!({"body": "before"}))
        .await
        .assert_ok();

    redis.stop();
    eventually(Duration::from_secs(5), || async {
        let ready = app
            .send_raw(app.client.get(format!("{}/readyz", app.base)))
            .await;
        (ready.status.as_u16() == 503).then_some(())
    })
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let reply = app.push(&queue, json!({"body": "during"})).await;
        reply.assert_error(503, 15000);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            !reply
                .body
                .to_string()
                .to_lowercase()
                .contains("connection refused"),
            "no Redis errors leak: {}",
            reply.body
        );
    }
    let health = app
        .send_raw(app.client.get(format!("{}/healthz", app.base)))
        .await;
    assert_eq!(health.status.as_u16(), 200, "the process itself is alive");

    let _restarted = OwnRedis::start(Some(redis.port), Some(redis.dir.clone()));
    eventually(Duration::from_secs(10), || async {
        app.push(&queue, json!({"body": "after"}))
            .await
            .status
            .is_success()
            .then_some(())
    })
    .await;
    let ready = app
        .send_raw(app.client.get(format!("{}/readyz", app.base)))
        .await;
    assert_eq!(ready.status.as_u16(), 200);
    let bodies: Vec<String> = app
        .pull_messages(&queue, json!({"batch_size": 10}))
        .await
        .iter()
        .map(|m| m["body"].as_str().expect("body").to_owned())
        .collect();
    assert_eq!(
        bodies,
        ["before", "after"],
        "the acknowledged push survived (AOF)"
    );
    let _ = Method::GET;
}

/// Secrets are at least 32 bytes.
const SIGTERM_JWT_SECRET: &str = "sigterm-test-secret-of-at-least-32-bytes";

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let binary = env!("CARGO_BIN_EXE_leaseq");
    let prefix = format!("lqtest:{}", uuid::Uuid::now_v7().simple());
    let mut child = tokio::process::Command::new(binary)
        .arg("serve")
        .env("LEASEQ__SERVER__BIND", "127.0.0.1:0")
        .env("LEASEQ__REDIS__URL", crate::helpers::redis_url())
        .env("LEASEQ__REDIS__KEY_PREFIX", &prefix)
        .env("LEASEQ__AUTH__JWT_SECRET", SIGTERM_JWT_SECRET)
        .env(
            "LEASEQ__AUTH__LEASE_SECRET",
            "sigterm-lease-secret-of-at-least-32-bytes",
        )
        .env("LEASEQ__LOG__FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("broker starts");
    let stdout = child.stdout.take().expect("stdout");
    // Read the logs as they come, so a full pipe never blocks the broker.
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut logs).await;
        logs
    });
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let base = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("a listening line");
        if let Some(base) = line.strip_prefix("leaseq listening on ") {
            break base.to_owned();
        }
    };
    let keys = leaseq::auth::TokenKeys::hs256(
        SIGTERM_JWT_SECRET.as_bytes(),
        leaseq::auth::TokenPolicy {
            leeway_secs: 30,
            ..Default::default()
        },
    );
    let token = keys
        .mint(&leaseq::auth::TokenRequest {
            subject: "t".into(),
            accounts: vec![ACCOUNT.into()],
            scope: leaseq::auth::all_scopes(),
            queues: None,
            ttl: Duration::from_secs(60),
        })
        .expect("token");
    let client = reqwest::Client::new();
    let api = format!("{base}/client/v4/accounts/{ACCOUNT}/queues");
    let created: serde_json::Value = client
        .post(&api)
        .bearer_auth(&token)
        .json(&json!({"queue_name": "slow"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let queue = created["result"]["queue_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A long poll that will still be waiting when SIGTERM arrives.
    let poll = {
        let request = client
            .post(format!("{api}/{queue}/messages/pull"))
            .bearer_auth(&token)
            .json(&json!({"wait_time_ms": 1500}));
        tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = poll
        .await
        .expect("poll task")
        .expect("the request got an answer");
    assert_eq!(status, 200, "the in-flight request finished");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(exit.success(), "graceful exit: {exit:?}");
    // One log line per request, with its route, status, account and queue; never the token.
    let logs = logs.await.expect("logs");
    let pull_line = logs
        .lines()
        .find(|l| l.contains("/messages/pull") && l.contains(r#""message":"close""#))
        .unwrap_or_else(|| panic!("no request line for the pull in:\n{logs}"));
    let line: serde_json::Value = serde_json::from_str(pull_line).expect("a JSON log line");
    assert_eq!(line["span"]["account"], ACCOUNT, "{pull_line}");
    assert_eq!(line["span"]["queue"], queue.as_str(), "{pull_line}");
    assert_eq!(line["span"]["http.status_code"], 200, "{pull_line}");
    assert!(!logs.contains(&token), "a token was logged");
}
