//! `--scenario listeners`: push delivery to a local receiver that answers 200 at once.
//!
//! Throughput: N messages are queued behind a paused listener, which is then resumed;
//! the figure is N over the time until the receiver has them all. Latency: single
//! messages pushed at a steady rate, each carrying its send time; the receiver records
//! how long after its push each message arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    messages: AtomicU64,
    /// Push-to-delivery latencies, µs.
    latency: Mutex<Vec<u64>>,
}

/// A minimal HTTP/1.1 receiver: keep-alive, `Content-Length` bodies, 200 with no body.
/// Lean on purpose: it shares the machine with the broker being measured.
async fn receiver(base: Instant) -> Result<(String, Arc<Seen>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/hook",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = shared.clone();
            tokio::spawn(async move {
                let _ = serve(stream, seen, base).await;
            });
        }
    });
    Ok((url, seen))
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    seen: Arc<Seen>,
    base: Instant,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Head.
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let arrived = base.elapsed().as_micros() as u64;
        if let Ok(delivery) = serde_json::from_slice::<Value>(&buffer[head_end..head_end + length])
            && let Some(messages) = delivery["messages"].as_array()
        {
            seen.messages
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            let mut latency = seen.latency.lock().unwrap_or_else(|e| e.into_inner());
            for message in messages {
                if let Some(sent) = message["body"].as_str().and_then(|b| b.parse::<u64>().ok()) {
                    latency.push(arrived.saturating_sub(sent));
                }
            }
        }
        buffer.drain(..head_end + length);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

#[derive(Debug, Serialize)]
pub struct DeliveryThroughput {
    pub batch_size: u32,
    pub max_concurrency: u32,
    pub messages: u64,
    pub runs_msgs_per_sec: Vec<f64>,
    pub median_msgs_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct DeliveryLatency {
    pub rate_per_sec: u64,
    pub seconds: u64,
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ListenerResults {
    pub throughput: Vec<DeliveryThroughput>,
    pub latency: DeliveryLatency,
}

struct Api<'a> {
    client: &'a reqwest::Client,
    accounts: String,
    token: &'a str,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let response = self
            .client
            .request(method, format!("{}{path}", self.accounts))
            .bearer_auth(self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: {status}: {body}"));
        }
        Ok(body["result"].clone())
    }

    async fn queue_with_listener(
        &self,
        name: &str,
        hook: &str,
        settings: Value,
    ) -> Result<(String, String), String> {
        let queue = self
            .call(
                reqwest::Method::POST,
                "/queues",
                json!({"queue_name": name}),
            )
            .await?;
        let queue = queue["queue_id"].as_str().ok_or("queue_id")?.to_owned();
        let listener = self
            .call(
                reqwest::Method::POST,
                &format!("/queues/{queue}/listeners"),
                json!({"name": "bench", "notify_url": hook, "settings": settings}),
            )
            .await?;
        let listener = listener["listener_id"]
            .as_str()
            .ok_or("listener_id")?
            .to_owned();
        Ok((queue, listener))
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    account: &str,
    runs: usize,
) -> Result<ListenerResults, String> {
    let base = Instant::now();
    let (hook, seen) = receiver(base).await?;
    let api = Api {
        client,
        accounts: format!("{url}/client/v4/accounts/{account}"),
        token,
    };
    let mut throughput = Vec::new();
    for (batch_size, messages) in [(100u32, 100_000u64), (1, 20_000)] {
        let max_concurrency = 8;
        let mut rates = Vec::new();
        for run in 0..runs {
            let name = format!(
                "lst-{batch_size}-{run}-{}",
                &uuid::Uuid::now_v7().simple().to_string()[24..]
            );
            let (queue, listener) = api
                .queue_with_listener(
                    &name,
                    &hook,
                    json!({"batch_size": batch_size, "max_concurrency": max_concurrency,
                           "paused": true}),
                )
                .await?;
            let body = "x".repeat(256);
            for _ in 0..messages / 100 {
                let batch: Vec<Value> = (0..100).map(|_| json!({"body": body})).collect();
                api.call(
                    reqwest::Method::POST,
                    &format!("/queues/{queue}/messages/batch"),
                    json!({"messages": batch}),
                )
                .await?;
            }
            let before = seen.messages.load(Ordering::Relaxed);
            let started = Instant::now();
            api.call(
                reqwest::Method::PATCH,
                &format!("/queues/{queue}/listeners/{listener}"),
                json!({"settings": {"paused": false}}),
            )
            .await?;
            while seen.messages.load(Ordering::Relaxed) - before < messages {
                if started.elapsed() > Duration::from_secs(300) {
                    return Err("deliveries stalled".into());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let rate = messages as f64 / started.elapsed().as_secs_f64();
            eprintln!("listeners: batch {batch_size}, run {run}: {rate:.0} msg/s");
            rates.push(rate);
            api.call(
                reqwest::Method::DELETE,
                &format!("/queues/{queue}"),
                json!({}),
            )
            .await?;
        }
        throughput.push(DeliveryThroughput {
            batch_size,
            max_concurrency,
            messages,
            median_msgs_per_sec: median(&rates),
            runs_msgs_per_sec: rates,
        });
    }

    // Latency at a steady 1 000 messages a second, single-message pushes from 4 tasks.
    let (rate, seconds) = (1_000u64, 10u64);
    let name = format!(
        "lst-latency-{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    let (queue, _) = api.queue_with_listener(&name, &hook, json!({})).await?;
    seen.latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    let per_task = rate / 4;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let push_url = format!("{}/queues/{queue}/messages", api.accounts);
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_task));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..per_task * seconds {
                tick.tick().await;
                let sent = base.elapsed().as_micros() as u64;
                let _ = client
                    .post(&push_url)
                    .bearer_auth(&token)
                    .json(&json!({"body": sent.to_string()}))
                    .send()
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let expected = per_task * 4 * seconds;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.latency.lock().unwrap_or_else(|e| e.into_inner()).len() as u64) < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let samples = seen
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut histogram = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for us in &samples {
        histogram.saturating_record(*us);
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(ListenerResults {
        throughput,
        latency: DeliveryLatency {
            rate_per_sec: rate,
            seconds,
            samples: samples.len() as u64,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: histogram.max() as f64 / 1000.0,
        },
    })
}
