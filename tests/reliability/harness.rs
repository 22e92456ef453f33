//! The load every run applies: producers pushing numbered messages, consumers pulling
//! and acking them, each request sent to the brokers in turn and retried on the next
//! one when it fails; then the checks against what the brokers report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use leaseq::auth::{TokenKeys, TokenPolicy, TokenRequest, all_scopes};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ledger::{Ledger, Verdict};

pub const ACCOUNT: &str = "reliability";

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// How much load, and its shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadShape {
    pub messages: u64,
    pub producers: u64,
    pub consumers: u64,
    pub pull_batch: u64,
    pub visibility_timeout_ms: u64,
    /// Every this many pulls a consumer "crashes": it drops its batch unacked, and the
    /// messages come back when their leases expire.
    pub abandon_every: u64,
    /// Longest the queue may take to drain once every push is done.
    pub drain_timeout_secs: u64,
}

impl LoadShape {
    pub fn from_env() -> Self {
        Self {
            messages: env_u64("LEASEQ_RELIABILITY_MESSAGES", 20_000),
            producers: 4,
            consumers: 4,
            pull_batch: 50,
            visibility_timeout_ms: 3_000,
            abandon_every: 25,
            drain_timeout_secs: env_u64("LEASEQ_RELIABILITY_DRAIN_SECS", 300),
        }
    }
}

/// Environment for broker processes sharing one Redis, key prefix and secrets.
pub fn broker_env(redis_url: &str, prefix: &str, jwt_secret: &str) -> Vec<(String, String)> {
    [
        ("LEASEQ__REDIS__URL", redis_url.to_owned()),
        ("LEASEQ__REDIS__KEY_PREFIX", prefix.to_owned()),
        ("LEASEQ__AUTH__JWT_SECRET", jwt_secret.to_owned()),
        ("LEASEQ__AUTH__LEASE_SECRET", format!("lease-{prefix}")),
        ("LEASEQ__SERVER__WORKERS", "1".to_owned()),
        ("LEASEQ__SERVER__SHUTDOWN_TIMEOUT_SECS", "1".to_owned()),
        ("LEASEQ__LOG__LEVEL", "warn".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn token(jwt_secret: &str) -> String {
    TokenKeys::hs256(jwt_secret.as_bytes(), TokenPolicy::default())
        .mint(&TokenRequest {
            subject: "reliability".into(),
            accounts: vec![ACCOUNT.into()],
            scope: all_scopes(),
            queues: None,
            ttl: Duration::from_secs(24 * 3600),
        })
        .expect("token")
}

/// A request's outcome: a reply, or no reply at all.
enum Sent {
    Reply(u16, Value),
    NoReply,
}

/// The clients' side of a run.
pub struct Load {
    pub shape: LoadShape,
    brokers: Vec<String>,
    client: reqwest::Client,
    token: String,
    pub queue_id: String,
    pub queue_name: String,
    pub dlq_name: String,
    pub ledger: Ledger,
    pushes_done: AtomicBool,
    drained: AtomicBool,
    next_broker: AtomicU64,
}

impl Load {
    /// Creates the queue (with a dedup window, so retried pushes store one copy) and its
    /// consumer (with a dead-letter queue and retries enough that nothing is
    /// dead-lettered by the kills).
    pub async fn setup(shape: LoadShape, brokers: Vec<String>, token: String) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let mut load = Self {
            ledger: Ledger::new(shape.messages),
            shape,
            brokers,
            client,
            token,
            queue_id: String::new(),
            queue_name: format!("rel-{}", &suffix[20..]),
            dlq_name: format!("rel-dlq-{}", &suffix[20..]),
            pushes_done: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            next_broker: AtomicU64::new(0),
        };
        let queue = load
            .must(
                Method::POST,
                "/queues",
                json!({"queue_name": load.queue_name,
                       "settings": {"dedup_window_seconds": 86_400}}),
            )
            .await;
        load.queue_id = queue["queue_id"].as_str().expect("queue_id").to_owned();
        load.must(
            Method::POST,
            &format!("/queues/{}/consumers", load.queue_id),
            json!({"type": "http_pull", "dead_letter_queue": load.dlq_name,
                   "settings": {"max_retries": 100,
                                "visibility_timeout_ms": load.shape.visibility_timeout_ms}}),
        )
        .await;
        Arc::new(load)
    }

    fn url(&self, broker: usize, path: &str) -> String {
        format!(
            "{}/client/v4/accounts/{ACCOUNT}{path}",
            self.brokers[broker % self.brokers.len()]
        )
    }

    fn pick(&self) -> usize {
        self.next_broker.fetch_add(1, Ordering::Relaxed) as usize % self.brokers.len()
    }

    async fn send(&self, broker: usize, method: Method, path: &str, body: &Value) -> Sent {
        let request = self
            .client
            .request(method, self.url(broker, path))
            .bearer_auth(&self.token)
            .json(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                self.ledger.status(status);
                match response.bytes().await {
                    Ok(bytes) => Sent::Reply(
                        status,
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    ),
                    Err(_) => {
                        self.ledger
                            .connection_errors
                            .fetch_add(1, Ordering::Relaxed);
                        Sent::NoReply
                    }
                }
            }
            Err(e) => {
                if e.is_timeout() {
                    self.ledger.timeouts.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.ledger
                        .connection_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
                Sent::NoReply
            }
        }
    }

    /// Sends until some broker answers 2xx, for requests that are safe to repeat.
    /// Panics on a 4xx: the harness sends only valid requests.
    async fn must(&self, method: Method, path: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.send(self.pick(), method.clone(), path, &body).await {
                Sent::Reply(200..=299, reply) => return reply["result"].clone(),
                Sent::Reply(status @ 400..=499, reply) if status != 429 => {
                    panic!("{method} {path} answered {status}: {reply}")
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "{method} {path}: no broker answered for 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Producers, consumers and the drain watcher; returns once the queue is empty after
    /// every push was confirmed, or panics at the drain deadline.
    pub async fn drive(self: Arc<Self>) {
        let producers: Vec<_> = (0..self.shape.producers)
            .map(|p| tokio::spawn(self.clone().produce(p)))
            .collect();
        let consumers: Vec<_> = (0..self.shape.consumers)
            .map(|c| tokio::spawn(self.clone().consume(c)))
            .collect();
        for producer in producers {
            producer.await.expect("producer task");
        }
        self.pushes_done.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(self.shape.drain_timeout_secs);
        while !self.is_drained().await {
            assert!(
                Instant::now() < deadline,
                "the queue did not drain within {} s",
                self.shape.drain_timeout_secs
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.drained.store(true, Ordering::Relaxed);
        for consumer in consumers {
            consumer.await.expect("consumer task");
        }
    }

    async fn is_drained(&self) -> bool {
        let path = format!("/queues/{}/metrics", self.queue_id);
        match self
            .send(self.pick(), Method::GET, &path, &json!(null))
            .await
        {
            Sent::Reply(200, reply) => reply["result"]["backlog_count"] == json!(0),
            _ => false,
        }
    }

    /// Batches of 1 (the single-message route), 7, 50 and 100 in turn; text and JSON
    /// bodies; every message with a `dedup_id`, so a retried push stores nothing twice.
    async fn produce(self: Arc<Self>, producer: u64) {
        const SIZES: [u64; 4] = [1, 7, 50, 100];
        let chunk: u64 = SIZES.iter().sum();
        let mut start = producer * chunk;
        while start < self.shape.messages {
            let mut from = start;
            for size in SIZES {
                let to = (from + size).min(self.shape.messages);
                if from < to {
                    self.push((from..to).collect()).await;
                }
                from = to;
            }
            start += chunk * self.shape.producers;
        }
    }

    async fn push(&self, numbers: Vec<u64>) {
        let (path, body) = if let [n] = numbers[..] {
            // A text body, delivered as is: the same JSON text a JSON body becomes.
            let mut message = message(n);
            message["body"] = json!(message["body"].to_string());
            message["content_type"] = json!("text");
            (format!("/queues/{}/messages", self.queue_id), message)
        } else {
            let messages: Vec<Value> = numbers.iter().map(|&n| message(n)).collect();
            (
                format!("/queues/{}/messages/batch", self.queue_id),
                json!({ "messages": messages }),
            )
        };
        loop {
            self.ledger.push_requests.fetch_add(1, Ordering::Relaxed);
            match self.send(self.pick(), Method::POST, &path, &body).await {
                Sent::Reply(200, _) => {
                    self.ledger.confirm_push(&numbers);
                    return;
                }
                Sent::Reply(status @ 400..=499, reply) if status != 429 => {
                    panic!("push answered {status}: {reply}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn consume(self: Arc<Self>, consumer: u64) {
        let pull_path = format!("/queues/{}/messages/pull", self.queue_id);
        let pull_body = json!({"batch_size": self.shape.pull_batch,
                               "visibility_timeout_ms": self.shape.visibility_timeout_ms});
        // Consumers crash at different moments.
        let mut pulls = consumer * self.shape.abandon_every / self.shape.consumers.max(1);
        while !self.drained.load(Ordering::Relaxed) {
            let sent = Instant::now();
            self.ledger.pull_requests.fetch_add(1, Ordering::Relaxed);
            let reply = match self
                .send(self.pick(), Method::POST, &pull_path, &pull_body)
                .await
            {
                Sent::Reply(200, reply) => reply,
                Sent::Reply(status @ 400..=499, reply) if status != 429 => {
                    panic!("pull answered {status}: {reply}")
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let messages = reply["result"]["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let mut delivered = Vec::with_capacity(messages.len());
            let mut leases = Vec::with_capacity(messages.len());
            for m in &messages {
                let Some(n) = number_of(m, self.shape.messages) else {
                    self.ledger.corrupt.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let id = m["id"].as_str().unwrap_or_default().to_owned();
                let attempts = m["attempts"].as_u64().unwrap_or(0);
                delivered.push((n, id, attempts));
                leases.push((n, m["lease_id"].as_str().unwrap_or_default().to_owned()));
            }
            self.ledger.delivered(sent, &delivered);
            pulls += 1;
            if pulls.is_multiple_of(self.shape.abandon_every) {
                let numbers: Vec<u64> = leases.iter().map(|(n, _)| *n).collect();
                self.ledger.abandoned(&numbers);
            } else {
                self.ack(leases).await;
            }
        }
    }

    /// Acks until a broker answers; an ack is idempotent, so resending is safe.
    async fn ack(&self, leases: Vec<(u64, String)>) {
        let path = format!("/queues/{}/messages/ack", self.queue_id);
        let acks: Vec<Value> = leases.iter().map(|(_, l)| json!({"lease_id": l})).collect();
        let body = json!({ "acks": acks });
        let numbers: Vec<u64> = leases.iter().map(|(n, _)| *n).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.ledger.ack_requests.fetch_add(1, Ordering::Relaxed);
            match self.send(self.pick(), Method::POST, &path, &body).await {
                Sent::Reply(200, reply) => {
                    let at = Instant::now();
                    let warned = &reply["result"]["warnings"];
                    let acked: Vec<u64> = leases
                        .iter()
                        .filter(|(_, lease)| warned.get(lease.as_str()).is_none())
                        .map(|(n, _)| *n)
                        .collect();
                    self.ledger.acked(&acked, at);
                    return;
                }
                Sent::Reply(status @ 400..=499, reply) if status != 429 => {
                    panic!("ack answered {status}: {reply}")
                }
                _ => self.ledger.ack_failed(&numbers),
            }
            // Past the deadline the leases expire and the messages come back anyway.
            if Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The queue's figures and the Prometheus series after the run, retried while
    /// brokers come up and the scrape cache refreshes. Returns the final figures.
    pub async fn final_figures(&self) -> FinalFigures {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let figures = self.read_final_figures().await;
            if figures.as_ref().is_some_and(FinalFigures::settled) || Instant::now() > deadline {
                return figures.expect("brokers answer after the run");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn read_final_figures(&self) -> Option<FinalFigures> {
        let broker = self.pick();
        let Sent::Reply(200, metrics) = self
            .send(
                broker,
                Method::GET,
                &format!("/queues/{}/metrics", self.queue_id),
                &json!(null),
            )
            .await
        else {
            return None;
        };
        let Sent::Reply(200, queues) = self
            .send(
                broker,
                Method::GET,
                &format!("/queues?name={}", self.dlq_name),
                &json!(null),
            )
            .await
        else {
            return None;
        };
        let dlq_backlog = match queues["result"].as_array().and_then(|q| q.first()) {
            None => 0,
            Some(dlq) => {
                let path = format!("/queues/{}/metrics", dlq["queue_id"].as_str()?);
                match self.send(broker, Method::GET, &path, &json!(null)).await {
                    Sent::Reply(200, m) => m["result"]["backlog_count"].as_u64()?,
                    _ => return None,
                }
            }
        };
        let text = self
            .client
            .get(format!("{}/metrics", self.brokers[broker]))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let series = |name: &str| prometheus_value(&text, name, &self.queue_name);
        Some(FinalFigures {
            backlog_count: metrics["result"]["backlog_count"].as_u64()?,
            backlog_bytes: metrics["result"]["backlog_bytes"].as_u64()?,
            oldest_message_timestamp_ms: metrics["result"]["oldest_message_timestamp_ms"]
                .as_u64()?,
            dlq_backlog,
            gauge_backlog: series("leaseq_queue_backlog_messages")?,
            gauge_backlog_bytes: series("leaseq_queue_backlog_bytes")?,
            gauge_inflight: series("leaseq_queue_inflight_messages")?,
            gauge_delayed: series("leaseq_queue_delayed_messages")?,
            pushed_total: series("leaseq_messages_pushed_total")?,
            delivered_total: series("leaseq_messages_delivered_total")?,
            acked_total: series("leaseq_messages_acked_total")?,
            dead_lettered_total: series("leaseq_messages_dead_lettered_total").unwrap_or(0),
            expired_total: series("leaseq_messages_expired_total").unwrap_or(0),
        })
    }
}

/// What the brokers report once the run is over.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinalFigures {
    pub backlog_count: u64,
    pub backlog_bytes: u64,
    pub oldest_message_timestamp_ms: u64,
    pub dlq_backlog: u64,
    pub gauge_backlog: u64,
    pub gauge_backlog_bytes: u64,
    pub gauge_inflight: u64,
    pub gauge_delayed: u64,
    pub pushed_total: u64,
    pub delivered_total: u64,
    pub acked_total: u64,
    pub dead_lettered_total: u64,
    pub expired_total: u64,
}

impl FinalFigures {
    fn settled(&self) -> bool {
        self.backlog_count == 0
            && self.gauge_backlog == 0
            && self.gauge_backlog_bytes == 0
            && self.gauge_inflight == 0
            && self.gauge_delayed == 0
    }
}

/// The value of `name{account="reliability",queue="<queue>"}` in a Prometheus scrape.
fn prometheus_value(text: &str, name: &str, queue: &str) -> Option<u64> {
    let queue_label = format!("queue=\"{queue}\"");
    let account_label = format!("account=\"{ACCOUNT}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| l.contains(&queue_label) && l.contains(&account_label))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Message `n`: a body whose length varies with `n`, so corruption or a mix-up shows.
fn message(n: u64) -> Value {
    json!({
        "body": {"n": n, "pad": "x".repeat((n % 97) as usize)},
        "content_type": "json",
        "dedup_id": format!("n{n}"),
    })
}

/// The number a delivered message carries, if its body is exactly what was pushed.
fn number_of(m: &Value, messages: u64) -> Option<u64> {
    let body: Value = serde_json::from_str(m["body"].as_str()?).ok()?;
    let n = body["n"].as_u64()?;
    (n < messages && body == message(n)["body"]).then_some(n)
}

/// One run's figures, printed and appended to `LEASEQ_RELIABILITY_REPORT` when set.
pub fn report(
    run: &str,
    shape: &LoadShape,
    extra: Value,
    verdict: &Verdict,
    figures: &FinalFigures,
) {
    let line = json!({
        "run": run,
        "shape": shape,
        "chaos": extra,
        "verdict": verdict,
        "final": figures,
        // Deliveries the brokers made whose pull reply never reached a client (cut by a
        // kill): those messages came back when their leases expired.
        "pull_replies_lost": figures.delivered_total.saturating_sub(verdict.deliveries),
    });
    println!(
        "{run}: {}",
        serde_json::to_string_pretty(&line).unwrap_or_default()
    );
    if let Ok(path) = std::env::var("LEASEQ_RELIABILITY_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// The properties every run must have.
#[track_caller]
pub fn assert_nothing_lost(verdict: &Verdict, figures: &FinalFigures, allowed_5xx: &[u16]) {
    let all = || format!("{verdict:#?}\n{figures:#?}");
    assert_eq!(
        verdict.lost,
        0,
        "confirmed pushes never delivered: {}",
        all()
    );
    assert_eq!(verdict.corrupt, 0, "corrupt deliveries: {}", all());
    assert_eq!(
        verdict.unjustified_duplicates,
        0,
        "redelivered after a confirmed ack: {}",
        all()
    );
    assert_eq!(
        verdict.stored_twice,
        0,
        "a retried push was stored twice: {}",
        all()
    );
    assert_eq!(
        verdict.same_delivery_twice,
        0,
        "one delivery leased twice: {}",
        all()
    );
    assert_eq!(
        verdict.server_errors(allowed_5xx),
        0,
        "unexpected 5xx: {}",
        all()
    );
    assert_eq!(verdict.timeouts, 0, "requests that hung: {}", all());
    assert_eq!(verdict.pushed_confirmed, verdict.delivered, "{}", all());
    // Only an ack deletes here (no retention, no purge, nothing dead-lettered), so an
    // empty queue means every message was acked.
    assert_eq!(figures.backlog_count, 0, "{}", all());
    assert_eq!(figures.backlog_bytes, 0, "{}", all());
    assert_eq!(figures.oldest_message_timestamp_ms, 0, "{}", all());
    assert_eq!(figures.dlq_backlog, 0, "{}", all());
    assert_eq!(figures.dead_lettered_total, 0, "{}", all());
    assert_eq!(figures.expired_total, 0, "{}", all());
    assert_eq!(figures.gauge_backlog, 0, "{}", all());
    assert_eq!(figures.gauge_backlog_bytes, 0, "{}", all());
    assert_eq!(figures.gauge_inflight, 0, "{}", all());
    assert_eq!(figures.gauge_delayed, 0, "{}", all());
    assert_eq!(
        figures.pushed_total,
        verdict.pushed_confirmed,
        "dedup: one store per number: {}",
        all()
    );
    assert_eq!(figures.acked_total, verdict.pushed_confirmed, "{}", all());
    assert!(figures.delivered_total >= verdict.deliveries, "{}", all());
    assert_eq!(
        verdict.abandoned_never_redelivered,
        0,
        "a dropped lease never expired: {}",
        all()
    );
    assert!(
        verdict.duplicates_after_abandoned_lease > 0,
        "no consumer dropped a batch, so lease expiry went untested: {}",
        all()
    );
}
