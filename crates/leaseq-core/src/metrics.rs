//! Prometheus metrics, owned by each `Application` (no globals, so two apps in one test
//! process keep their own counts).
//!
//! Process families (HTTP, Redis scripts) live in a registry updated as requests run.
//! Per-queue families are read from Redis at scrape time, where the scripts keep exact
//! backlog figures and lifetime counters, so every broker process reports the same.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::model::{AccountId, QueueName};

/// One queue's figures as the store reads them for a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub account: AccountId,
    pub queue: QueueName,
    pub figures: QueueFigures,
}

/// The figures behind the per-queue families; they add up, so queues past the series
/// cap can be reported as one sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub backlog_messages: u64,
    pub backlog_bytes: u64,
    /// Unix ms of the oldest unacked message; 0 when the queue is empty.
    pub oldest_timestamp_ms: u64,
    pub inflight_messages: u64,
    pub delayed_messages: u64,
    /// Message groups with visible messages waiting for a later round.
    pub visible_groups: u64,
    /// Timestamp of the grouped message next in turn (the head of the group waiting
    /// longest), Unix ms; 0: none.
    pub oldest_group_head_ms: u64,
    pub pushed: u64,
    pub delivered: u64,
    pub acked: u64,
    pub retried: u64,
    pub lease_expired: u64,
    pub dead_lettered: u64,
    pub expired: u64,
}

impl QueueFigures {
    /// Both queues' figures together: counts add up (saturating: they come from Redis),
    /// the oldest message is the older.
    fn merge(self, other: Self) -> Self {
        let earliest = |a: u64, b: u64| match (a, b) {
            (0, t) | (t, 0) => t,
            (a, b) => a.min(b),
        };
        let oldest = earliest(self.oldest_timestamp_ms, other.oldest_timestamp_ms);
        Self {
            backlog_messages: self.backlog_messages.saturating_add(other.backlog_messages),
            backlog_bytes: self.backlog_bytes.saturating_add(other.backlog_bytes),
            oldest_timestamp_ms: oldest,
            inflight_messages: self
                .inflight_messages
                .saturating_add(other.inflight_messages),
            delayed_messages: self.delayed_messages.saturating_add(other.delayed_messages),
            visible_groups: self.visible_groups.saturating_add(other.visible_groups),
            oldest_group_head_ms: earliest(self.oldest_group_head_ms, other.oldest_group_head_ms),
            pushed: self.pushed.saturating_add(other.pushed),
            delivered: self.delivered.saturating_add(other.delivered),
            acked: self.acked.saturating_add(other.acked),
            retried: self.retried.saturating_add(other.retried),
            lease_expired: self.lease_expired.saturating_add(other.lease_expired),
            dead_lettered: self.dead_lettered.saturating_add(other.dead_lettered),
            expired: self.expired.saturating_add(other.expired),
        }
    }
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

    /// The text exposition: process families, then per-queue families from `queues`,
    /// in pieces of about [`PIECE_BYTES`] so that a scrape of many queues never holds
    /// the whole text (tens of MB at 100 000 queues).
    ///
    /// With `max_queue_series` above 0 and more queues than that, only the queues with
    /// the largest backlogs get series of their own; the rest are summed into one series
    /// labelled `account="",queue="_other"` (every queue's own series has an account),
    /// so sums over a family stay exact.
    pub fn exposition(
        &self,
        queues: Arc<Vec<QueueStats>>,
        max_queue_series: usize,
        now_ms: u64,
    ) -> Result<Exposition, prometheus::Error> {
        let mut head = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut head)?;
        let mut head = String::from_utf8_lossy(&head).into_owned();
        // Writing to a String cannot fail.
        let _ = writeln!(
            head,
            "# HELP leaseq_queues Queues the per-queue families cover\n# TYPE leaseq_queues gauge\nleaseq_queues {}",
            queues.len()
        );
        let (shown, other) = select_series(&queues, max_queue_series);
        Ok(Exposition {
            head: Some(head),
            queues,
            shown,
            other,
            now_ms,
            family: 0,
            row: 0,
        })
    }
}

/// Bytes per piece of an [`Exposition`].
pub const PIECE_BYTES: usize = 64 * 1024;

/// The queue name of the series that sums the queues past the cap.
pub const OTHER_QUEUES: &str = "_other";

/// Which queues get series of their own (`None`: all, in order) and the sum of the
/// others, if any.
fn select_series(
    queues: &[QueueStats],
    max_queue_series: usize,
) -> (Option<Vec<usize>>, Option<QueueFigures>) {
    if max_queue_series == 0 || queues.len() <= max_queue_series {
        return (None, None);
    }
    let mut by_backlog: Vec<usize> = (0..queues.len()).collect();
    by_backlog.select_nth_unstable_by(max_queue_series, |&a, &b| {
        queues[b]
            .figures
            .backlog_messages
            .cmp(&queues[a].figures.backlog_messages)
    });
    let rest = by_backlog.split_off(max_queue_series);
    let other = rest.iter().fold(QueueFigures::default(), |sum, &i| {
        sum.merge(queues[i].figures)
    });
    (Some(by_backlog), Some(other))
}

/// A metrics exposition being written: an iterator over its pieces of text.
pub struct Exposition {
    /// The process families, not yet handed out.
    head: Option<String>,
    queues: Arc<Vec<QueueStats>>,
    shown: Option<Vec<usize>>,
    other: Option<QueueFigures>,
    now_ms: u64,
    /// Where writing stands: a family of `QUEUE_FAMILIES`, and a series in it.
    family: usize,
    row: usize,
}

impl Exposition {
    fn series(&self) -> usize {
        self.shown.as_ref().map_or(self.queues.len(), Vec::len) + usize::from(self.other.is_some())
    }

    /// The labels and figures of the `i`th series of each family.
    fn row(&self, i: usize) -> Option<(&str, &str, &QueueFigures)> {
        let index = match &self.shown {
            None => Some(i),
            Some(shown) => shown.get(i).copied(),
        };
        match index.and_then(|i| self.queues.get(i)) {
            Some(q) => Some((q.account.as_str(), q.queue.as_str(), &q.figures)),
            None => self.other.as_ref().map(|other| ("", OTHER_QUEUES, other)),
        }
    }
}

impl Iterator for Exposition {
    type Item = String;

    /// The next piece: the process families first, then the per-queue families written
    /// straight from the figures. (Going through a registry cost a hash map entry per
    /// series and scrape, which with many queues took seconds and hundreds of MB.)
    fn next(&mut self) -> Option<String> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        let series = self.series();
        let mut out = String::with_capacity(PIECE_BYTES + 256);
        while out.len() < PIECE_BYTES {
            let Some(family) = QUEUE_FAMILIES.get(self.family) else {
                break;
            };
            if self.row == 0 {
                let kind = match family.kind {
                    Kind::Gauge => "gauge",
                    Kind::Counter => "counter",
                };
                let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
                let _ = writeln!(out, "# TYPE {} {kind}", family.name);
            }
            let Some((account, queue, figures)) =
                (self.row < series).then(|| self.row(self.row)).flatten()
            else {
                self.family += 1;
                self.row = 0;
                continue;
            };
            out.push_str(family.name);
            out.push_str("{account=\"");
            push_label_value(&mut out, account);
            out.push_str("\",queue=\"");
            push_label_value(&mut out, queue);
            out.push_str("\"} ");
            let _ = match (family.figure)(figures, self.now_ms) {
                Figure::Count(n) => writeln!(out, "{n}"),
                Figure::Millis(ms) => writeln!(out, "{}.{:03}", ms / 1000, ms % 1000),
            };
            self.row += 1;
        }
        (!out.is_empty()).then_some(out)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// A per-queue family: its name, help, type and figure (a count, or ms shown as seconds).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    figure: fn(&QueueFigures, u64) -> Figure,
}

enum Figure {
    Count(u64),
    Millis(u64),
}

/// How long ago `timestamp_ms` was; 0 stands for "none".
fn age(timestamp_ms: u64, now_ms: u64) -> Figure {
    Figure::Millis(match timestamp_ms {
        0 => 0,
        t => now_ms.saturating_sub(t),
    })
}

const QUEUE_FAMILIES: [Family; 14] = [
    Family {
        name: "leaseq_queue_backlog_messages",
        help: "Unacked messages: ready, delayed and leased",
        kind: Kind::Gauge,
        figure: |f, _| Figure::Count(f.backlog_messages),
    },
    Family {
        name: "leaseq_queue_backlog_bytes",
        help: "Sum of the body sizes of unacked messages",
        kind: Kind::Gauge,
        figure: |f, _| Figure::Count(f.backlog_bytes),
    },
    Family {
        name: "leaseq_queue_oldest_message_age_seconds",
        help: "Age of the oldest unacked message; 0 when empty",
        kind: Kind::Gauge,
        figure: |f, now_ms| age(f.oldest_timestamp_ms, now_ms),
    },
    Family {
        name: "leaseq_queue_inflight_messages",
        help: "Messages leased to a consumer",
        kind: Kind::Gauge,
        figure: |f, _| Figure::Count(f.inflight_messages),
    },
    Family {
        name: "leaseq_queue_delayed_messages",
        help: "Messages waiting for their delay or retry delay",
        kind: Kind::Gauge,
        figure: |f, _| Figure::Count(f.delayed_messages),
    },
    Family {
        name: "leaseq_queue_visible_groups",
        help: "Message groups with visible messages waiting for a round after the one being served",
        kind: Kind::Gauge,
        figure: |f, _| Figure::Count(f.visible_groups),
    },
    Family {
        name: "leaseq_queue_group_head_wait_seconds",
        help: "Age of the grouped message next in turn (the head of the group waiting longest); 0 when none",
        kind: Kind::Gauge,
        figure: |f, now_ms| age(f.oldest_group_head_ms, now_ms),
    },
    Family {
        name: "leaseq_messages_pushed_total",
        help: "Messages stored by pushes",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.pushed),
    },
    Family {
        name: "leaseq_messages_delivered_total",
        help: "Deliveries (leases) of messages",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.delivered),
    },
    Family {
        name: "leaseq_messages_acked_total",
        help: "Messages deleted by acks",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.acked),
    },
    Family {
        name: "leaseq_messages_retried_total",
        help: "Messages retried by consumers",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.retried),
    },
    Family {
        name: "leaseq_messages_lease_expired_total",
        help: "Leases that expired unacked",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.lease_expired),
    },
    Family {
        name: "leaseq_messages_dead_lettered_total",
        help: "Messages that used up their deliveries",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.dead_lettered),
    },
    Family {
        name: "leaseq_messages_expired_total",
        help: "Messages deleted by retention",
        kind: Kind::Counter,
        figure: |f, _| Figure::Count(f.expired),
    },
];

/// A label value as the text format escapes it.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }

    fn queue(name: &str, backlog: u64, oldest_timestamp_ms: u64) -> QueueStats {
        QueueStats {
            account: AccountId::parse("acct").expect("valid"),
            queue: QueueName::parse(name).expect("valid"),
            figures: QueueFigures {
                backlog_messages: backlog,
                backlog_bytes: backlog * 10,
                oldest_timestamp_ms,
                inflight_messages: 1,
                delayed_messages: 1,
                pushed: backlog + 1,
                delivered: 2,
                acked: 1,
                ..QueueFigures::default()
            },
        }
    }

    #[test]
    fn rendering_includes_process_and_queue_families() {
        let metrics = Metrics::new().expect("metrics");
        metrics.observe_http("POST", "/x/{id}", 200, Duration::from_millis(3));
        metrics.observe_script("push", Duration::from_micros(300));
        metrics.redis_error();
        let stats = vec![queue("orders", 3, 0), queue("mails", 1, 10_000)];
        let text: String = metrics
            .exposition(Arc::new(stats), 0, 12_345)
            .expect("renders")
            .collect();
        for line in [
            r#"leaseq_http_requests_total{method="POST",route="/x/{id}",status="200"} 1"#,
            "leaseq_redis_errors_total 1",
            "leaseq_queues 2",
            "# TYPE leaseq_queue_backlog_messages gauge",
            r#"leaseq_queue_backlog_messages{account="acct",queue="orders"} 3"#,
            "# TYPE leaseq_messages_pushed_total counter",
            r#"leaseq_messages_pushed_total{account="acct",queue="orders"} 4"#,
            r#"leaseq_queue_oldest_message_age_seconds{account="acct",queue="orders"} 0.000"#,
            r#"leaseq_queue_oldest_message_age_seconds{account="acct",queue="mails"} 2.345"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn queues_past_the_cap_are_summed_into_one_series() {
        let metrics = Metrics::new().expect("metrics");
        let stats = vec![
            queue("small", 1, 5_000),
            queue("big", 100, 9_000),
            queue("middle", 10, 0),
            queue("tiny", 0, 0),
        ];
        let text: String = metrics
            .exposition(Arc::new(stats), 2, 10_000)
            .expect("renders")
            .collect();
        let backlog: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("leaseq_queue_backlog_messages{"))
            .collect();
        assert_eq!(backlog.len(), 3, "{text}");
        for line in [
            "leaseq_queues 4",
            r#"leaseq_queue_backlog_messages{account="acct",queue="big"} 100"#,
            r#"leaseq_queue_backlog_messages{account="acct",queue="middle"} 10"#,
            r#"leaseq_queue_backlog_messages{account="",queue="_other"} 1"#,
            r#"leaseq_messages_pushed_total{account="",queue="_other"} 3"#,
            // The oldest message of the summed queues.
            r#"leaseq_queue_oldest_message_age_seconds{account="",queue="_other"} 5.000"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(
            AccountId::parse("").is_none(),
            "no queue's series has the sum's empty account"
        );
    }

    #[test]
    fn many_queues_come_in_pieces_that_add_up_to_every_series() {
        let metrics = Metrics::new().expect("metrics");
        let stats: Vec<QueueStats> = (0..3_000).map(|i| queue(&format!("q{i}"), i, 0)).collect();
        let pieces: Vec<String> = metrics
            .exposition(Arc::new(stats), 0, 0)
            .expect("renders")
            .collect();
        assert!(pieces.len() > 2);
        assert!(pieces.iter().all(|p| p.len() < PIECE_BYTES + 512));
        let text = pieces.concat();
        for family in &QUEUE_FAMILIES {
            let series = text
                .lines()
                .filter(|l| l.starts_with(&format!("{}{{", family.name)))
                .count();
            assert_eq!(series, 3_000, "{}", family.name);
            assert_eq!(text.matches(&format!("# TYPE {} ", family.name)).count(), 1);
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        push_label_value(&mut out, "a\"b\\c\nd");
        assert_eq!(out, r#"a\"b\\c\nd"#);
    }
}
