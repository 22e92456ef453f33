//! Prometheus metrics, owned by each `Application` (no globals, so two apps in one test
//! process keep their own counts).
//!
//! Process families (HTTP, Redis scripts) live in a registry updated as requests run.
//! Per-queue families are read from Redis at scrape time, where the scripts keep exact
//! backlog figures and lifetime counters, so every broker process reports the same.

use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::{AccountId, QueueName, now_ms};

/// One queue's figures as the store reads them for a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub account: AccountId,
    pub queue: QueueName,
    pub backlog_messages: u64,
    pub backlog_bytes: u64,
    /// Unix ms of the oldest unacked message; 0 when the queue is empty.
    pub oldest_timestamp_ms: u64,
    pub inflight_messages: u64,
    pub delayed_messages: u64,
    pub pushed: u64,
    pub delivered: u64,
    pub acked: u64,
    pub retried: u64,
    pub lease_expired: u64,
    pub dead_lettered: u64,
    pub expired: u64,
}

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    script_duration: HistogramVec,
    redis_errors: IntCounter,
    listener_deliveries: IntCounterVec,
    listener_backlog: IntGaugeVec,
    listener_duration: HistogramVec,
}

/// What became of a message in one delivery attempt to a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    Retried,
    DeadLettered,
    Dropped,
}

impl DeliveryOutcome {
    fn label(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::DeadLettered => "dead_lettered",
            DeliveryOutcome::Dropped => "dropped",
        }
    }
}

/// HTTP methods as labels; anything else is "other", so a client cannot add series.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "leaseq_http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "leaseq_http_request_duration_seconds",
                "HTTP request latency",
            ),
            &["method", "route", "status"],
        )?;
        let script_duration = HistogramVec::new(
            HistogramOpts::new(
                "leaseq_redis_script_duration_seconds",
                "Redis script latency",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["script"],
        )?;
        let redis_errors = IntCounter::new(
            "leaseq_redis_errors_total",
            "Redis calls that failed or timed out",
        )?;
        let listener_deliveries = IntCounterVec::new(
            Opts::new(
                "leaseq_listener_deliveries_total",
                "Messages handled by delivery attempts to listeners, by outcome",
            ),
            &["account", "queue", "listener", "outcome"],
        )?;
        let listener_backlog = IntGaugeVec::new(
            Opts::new(
                "leaseq_listener_backlog_messages",
                "Messages a listener's lane holds, as this process last saw it",
            ),
            &["account", "queue", "listener"],
        )?;
        let listener_duration = HistogramVec::new(
            HistogramOpts::new(
                "leaseq_listener_delivery_duration_seconds",
                "Duration of delivery requests to listeners",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["result"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(script_duration.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(listener_deliveries.clone()))?;
        registry.register(Box::new(listener_backlog.clone()))?;
        registry.register(Box::new(listener_duration.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            script_duration,
            redis_errors,
            listener_deliveries,
            listener_backlog,
            listener_duration,
        })
    }

    /// `route` is the matched route template, never the raw path.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method_label(method), route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_script(&self, script: &'static str, elapsed: Duration) {
        self.script_duration
            .with_label_values(&[script])
            .observe(elapsed.as_secs_f64());
    }

    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// `count` messages of one attempt to a listener ended as `outcome`.
    pub fn listener_messages(&self, lane: [&str; 3], outcome: DeliveryOutcome, count: u64) {
        if count > 0 {
            let [account, queue, listener] = lane;
            self.listener_deliveries
                .with_label_values(&[account, queue, listener, outcome.label()])
                .inc_by(count);
        }
    }

    pub fn listener_backlog(&self, lane: [&str; 3], messages: u64) {
        self.listener_backlog
            .with_label_values(&lane)
            .set(i64::try_from(messages).unwrap_or(i64::MAX));
    }

    /// One delivery request: `ok` when it was answered 2xx.
    pub fn listener_request(&self, ok: bool, elapsed: Duration) {
        self.listener_duration
            .with_label_values(&[if ok { "2xx" } else { "failed" }])
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition: process families, then per-queue families from `queues`.
    pub fn render(&self, queues: &[QueueStats]) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        families.extend(queue_families(queues)?.gather());
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Per-queue families, built fresh for each scrape from figures kept in Redis.
fn queue_families(queues: &[QueueStats]) -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    let labels = &["account", "queue"];
    let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(c.clone()))?;
        Ok(c)
    };
    let backlog = gauge(
        "leaseq_queue_backlog_messages",
        "Unacked messages: ready, delayed and leased",
    )?;
    let bytes = gauge(
        "leaseq_queue_backlog_bytes",
        "Sum of the body sizes of unacked messages",
    )?;
    let age = gauge(
        "leaseq_queue_oldest_message_age_seconds",
        "Age of the oldest unacked message; 0 when empty",
    )?;
    let inflight = gauge(
        "leaseq_queue_inflight_messages",
        "Messages leased to a consumer",
    )?;
    let delayed = gauge(
        "leaseq_queue_delayed_messages",
        "Messages waiting for their delay or retry delay",
    )?;
    let pushed = counter("leaseq_messages_pushed_total", "Messages stored by pushes")?;
    let delivered = counter(
        "leaseq_messages_delivered_total",
        "Deliveries (leases) of messages",
    )?;
    let acked = counter("leaseq_messages_acked_total", "Messages deleted by acks")?;
    let retried = counter(
        "leaseq_messages_retried_total",
        "Messages retried by consumers",
    )?;
    let lease_expired = counter(
        "leaseq_messages_lease_expired_total",
        "Leases that expired unacked",
    )?;
    let dead = counter(
        "leaseq_messages_dead_lettered_total",
        "Messages that used up their deliveries",
    )?;
    let expired = counter(
        "leaseq_messages_expired_total",
        "Messages deleted by retention",
    )?;
    let now = now_ms();
    for q in queues {
        let l = [q.account.as_str(), q.queue.as_str()];
        backlog.with_label_values(&l).set(q.backlog_messages as f64);
        bytes.with_label_values(&l).set(q.backlog_bytes as f64);
        let age_ms = if q.oldest_timestamp_ms == 0 {
            0
        } else {
            now.saturating_sub(q.oldest_timestamp_ms)
        };
        age.with_label_values(&l).set(age_ms as f64 / 1000.0);
        inflight
            .with_label_values(&l)
            .set(q.inflight_messages as f64);
        delayed.with_label_values(&l).set(q.delayed_messages as f64);
        pushed.with_label_values(&l).inc_by(q.pushed);
        delivered.with_label_values(&l).inc_by(q.delivered);
        acked.with_label_values(&l).inc_by(q.acked);
        retried.with_label_values(&l).inc_by(q.retried);
        lease_expired.with_label_values(&l).inc_by(q.lease_expired);
        dead.with_label_values(&l).inc_by(q.dead_lettered);
        expired.with_label_values(&l).inc_by(q.expired);
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }

    #[test]
    fn rendering_includes_process_and_queue_families() {
        let metrics = Metrics::new().expect("metrics");
        metrics.observe_http("POST", "/x/{id}", 200, Duration::from_millis(3));
        metrics.observe_script("push", Duration::from_micros(300));
        metrics.redis_error();
        let stats = QueueStats {
            account: AccountId::parse("acct").expect("valid"),
            queue: QueueName::parse("orders").expect("valid"),
            backlog_messages: 3,
            backlog_bytes: 30,
            oldest_timestamp_ms: 0,
            inflight_messages: 1,
            delayed_messages: 1,
            pushed: 4,
            delivered: 2,
            acked: 1,
            retried: 0,
            lease_expired: 0,
            dead_lettered: 0,
            expired: 0,
        };
        let text = metrics.render(&[stats]).expect("renders");
        assert!(
            text.contains(
                r#"leaseq_http_requests_total{method="POST",route="/x/{id}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("leaseq_redis_errors_total 1"), "{text}");
        assert!(
            text.contains(r#"leaseq_queue_backlog_messages{account="acct",queue="orders"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"leaseq_messages_pushed_total{account="acct",queue="orders"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"leaseq_queue_oldest_message_age_seconds{account="acct",queue="orders"} 0"#
            ),
            "{text}"
        );
    }
}
