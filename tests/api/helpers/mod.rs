//! `spawn_app()`: the real application on port 0, against the real Redis, under a fresh
//! key prefix, with one method per endpoint. `raw`: HTTP byte for byte. `routes`: the
//! one list of every route, for the tests that walk them all.

pub mod raw;
pub mod receiver;
pub mod routes;

pub use routes::{Ids, Route, every_route};

use std::sync::Arc;
use std::time::Duration;

use leaseq::auth::{TokenKeys, TokenRequest, all_scopes};
use leaseq::config::{JwtKey, Settings};
use leaseq::model::{Clock, ManualClock, SystemClock};
use leaseq::startup::Application;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const ACCOUNT: &str = "acct-test";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    pub keys: TokenKeys,
    pub prefix: String,
    pub redis_url: String,
    /// `metrics.bind`'s port, when the test set it.
    pub metrics_port: Option<u16>,
}

/// A JSON response: status, headers and body (`Value::Null` when the body is not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn result(&self) -> &Value {
        &self.body["result"]
    }

    /// Asserts a Cloudflare error envelope with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: u64) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["success"], json!(false), "body: {}", self.body);
        assert_eq!(
            self.body["errors"][0]["code"],
            json!(code),
            "body: {}",
            self.body
        );
        assert!(
            self.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(self.body["messages"], json!([]));
        assert_eq!(self.body["result"], Value::Null);
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        assert_eq!(self.body["success"], json!(true), "body: {}", self.body);
        assert_eq!(self.body["errors"], json!([]));
        assert_eq!(self.body["messages"], json!([]));
        self.result()
    }
}

pub fn redis_url() -> String {
    std::env::var("LEASEQ__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// With `LEASEQ_TEST_CLUSTER_NODES` set (`make test-cluster`: comma-separated Redis
/// URLs), every app of the suite runs on that Redis Cluster.
fn test_cluster_nodes() -> Vec<String> {
    std::env::var("LEASEQ_TEST_CLUSTER_NODES")
        .map(|nodes| {
            nodes
                .split(',')
                .filter(|n| !n.trim().is_empty())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(adjust, Arc::new(SystemClock)).await
}

/// An app whose broker reads the time from the returned clock: tests move it instead
/// of sleeping.
pub async fn spawn_app_with_clock(adjust: impl FnOnce(&mut Settings)) -> (TestApp, ManualClock) {
    let clock = ManualClock::new();
    (spawn(adjust, Arc::new(clock.clone())).await, clock)
}

async fn spawn(adjust: impl FnOnce(&mut Settings), clock: Arc<dyn Clock>) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        leaseq::telemetry::init(leaseq::config::LogFormat::Text, "debug");
    }
    let mut settings = Settings::defaults().expect("default settings");
    let prefix = format!("lqtest:{}", uuid::Uuid::now_v7().simple());
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 2;
    settings.redis.url = redis_url().into();
    settings.redis.key_prefix = prefix.clone();
    settings.redis.cluster_nodes = test_cluster_nodes().into_iter().map(Into::into).collect();
    settings.auth.jwt_secret = Some(SecretString::from(format!(
        "jwt-{}",
        uuid::Uuid::now_v7().simple()
    )));
    settings.auth.lease_secret = Some(SecretString::from(format!(
        "lease-{}",
        uuid::Uuid::now_v7().simple()
    )));
    // Test receivers listen on loopback.
    settings.listeners.allow_private_destinations = true;
    adjust(&mut settings);
    let secrets = settings.secrets(false).expect("secrets");
    let keys = settings.token_keys(&secrets).expect("token keys");
    let app =
        Application::build_with_clock(&settings, &secrets, clock).expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until_stopped());
    let mut test_app = TestApp {
        base,
        client: reqwest::Client::new(),
        token: String::new(),
        keys,
        prefix,
        // On a Cluster, the seed node: the one each broker subscribes to for wake-ups.
        redis_url: test_cluster_nodes()
            .into_iter()
            .next()
            .unwrap_or_else(redis_url),
        metrics_port,
    };
    // With only a public key configured the app cannot mint; such tests sign their own.
    if matches!(secrets.jwt, JwtKey::Secret(_)) {
        test_app.token = test_app.mint(&[ACCOUNT], &all_scopes(), None);
    }
    test_app
}

impl TestApp {
    /// A token from this app's key for `accounts`, with `scope`, limited to `queues`.
    pub fn mint(&self, accounts: &[&str], scope: &str, queues: Option<&[&str]>) -> String {
        self.keys
            .mint(&TokenRequest {
                subject: "test".into(),
                accounts: accounts.iter().map(|a| a.to_string()).collect(),
                scope: scope.into(),
                queues: queues.map(|q| q.iter().map(|n| n.to_string()).collect()),
                ttl: Duration::from_secs(3600),
            })
            .expect("token")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/client/v4/accounts/{ACCOUNT}{path}", self.base)
    }

    pub async fn send_raw(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request to an absolute URL with the test token.
    pub async fn request_url(&self, method: Method, url: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send_raw(request).await
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.request_url(method, &self.url(path), body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn create_queue(&self, name: &str) -> String {
        let reply = self.post("/queues", json!({"queue_name": name})).await;
        reply.assert_ok()["queue_id"]
            .as_str()
            .expect("queue_id")
            .to_owned()
    }

    pub async fn push(&self, queue: &str, body: Value) -> Reply {
        self.post(&format!("/queues/{queue}/messages"), body).await
    }

    pub async fn push_batch(&self, queue: &str, body: Value) -> Reply {
        self.post(&format!("/queues/{queue}/messages/batch"), body)
            .await
    }

    /// Pushes `n` text messages "0".."n-1" in batches of 100.
    pub async fn push_numbered(&self, queue: &str, n: usize) {
        let numbers: Vec<usize> = (0..n).collect();
        for chunk in numbers.chunks(100) {
            let messages: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"body": i.to_string()}))
                .collect();
            self.push_batch(queue, json!({"messages": messages}))
                .await
                .assert_ok();
        }
    }

    pub async fn pull(&self, queue: &str, body: Value) -> Reply {
        self.post(&format!("/queues/{queue}/messages/pull"), body)
            .await
    }

    /// The messages of a successful pull.
    pub async fn pull_messages(&self, queue: &str, body: Value) -> Vec<Value> {
        let reply = self.pull(queue, body).await;
        reply.assert_ok()["messages"]
            .as_array()
            .expect("messages")
            .clone()
    }

    pub async fn ack(&self, queue: &str, body: Value) -> Reply {
        self.post(&format!("/queues/{queue}/messages/ack"), body)
            .await
    }

    pub async fn metrics(&self, queue: &str) -> Value {
        self.get(&format!("/queues/{queue}/metrics"))
            .await
            .assert_ok()
            .clone()
    }

    /// How many times this app has run the script `name` (from its own /metrics).
    pub async fn script_calls(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let series = format!(r#"leaseq_redis_script_duration_seconds_count{{script="{name}"}} "#);
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Every Redis key under this test's prefix (test-only: KEYS is fine here).
    pub async fn redis_keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS")
    }
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
