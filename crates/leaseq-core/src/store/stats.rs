//! Every queue's figures for the Prometheus scrape: plain commands, pipelined.

use futures_util::StreamExt;
use redis::Value;

use super::keys::Role;
use super::script::{int, text};
use super::{Store, StoreError};
use crate::metrics::{QueueFigures, QueueStats};
use crate::model::{Access, AccountId, QueueId, QueueName};

/// Queues per pipeline.
const CHUNK: usize = 250;
/// Pipelines in flight: Redis answers one while the replies of another are parsed.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Metrics script calls in flight for the queues of a chunk that have message groups.
const GROUPED_IN_FLIGHT: usize = 8;

/// The fields of a queue's meta hash a scrape reads, in the order `figures` expects.
const FIELDS: [&str; 12] = [
    "account",
    "name",
    "bytes",
    "pushed",
    "delivered",
    "acked",
    "retried",
    "lease_expired",
    "dead_lettered",
    "dead_dropped",
    "expired",
    "grouped",
];

impl Store {
    /// Every queue's figures for a metrics scrape, in pipelines of a few hundred queues.
    pub async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError> {
        let ids = self.queue_ids().await?;
        let chunks: Vec<Vec<QueueStats>> = futures_util::stream::iter(ids.chunks(CHUNK))
            .map(|chunk| self.chunk_stats(chunk, now_ms))
            .buffered(CHUNKS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok(chunks.into_iter().flatten().collect())
    }

    async fn chunk_stats(
        &self,
        ids: &[QueueId],
        now_ms: u64,
    ) -> Result<Vec<QueueStats>, StoreError> {
        let after_now = format!("({now_ms}");
        // One group of commands per queue: one slot each.
        let groups = ids
            .iter()
            .map(|&id| {
                let key = |role| self.keys.queue_key(id, role);
                let mut meta = redis::cmd("HMGET");
                meta.arg(key(Role::Meta)).arg(&FIELDS[..]);
                let mut held = redis::cmd("HLEN");
                held.arg(key(Role::Msg));
                let mut leased = redis::cmd("ZCARD");
                leased.arg(key(Role::Leased));
                let mut delayed = redis::cmd("ZCOUNT");
                delayed.arg(key(Role::Due)).arg(&after_now).arg("+inf");
                let mut oldest = redis::cmd("ZRANGE");
                oldest.arg(key(Role::Age)).arg(0).arg(0).arg("WITHSCORES");
                vec![meta, held, leased, delayed, oldest]
            })
            .collect();
        let replies = self.query_groups(groups).await?;
        let mut stats = Vec::with_capacity(ids.len());
        let mut grouped = Vec::new();
        for (id, reply) in ids.iter().zip(&replies) {
            if let Some((queue, has_groups)) = decode(reply) {
                if has_groups {
                    grouped.push((*id, stats.len()));
                }
                stats.push(queue);
            }
        }
        // Queues with message groups have more to count (most have none): the figures
        // `metrics.lua` gives the queue's own metrics route.
        let figures: Vec<_> = futures_util::stream::iter(grouped)
            .map(|(id, at)| {
                let access = Access::account(stats[at].account.clone());
                async move { (at, self.metrics(&access, id, now_ms).await) }
            })
            .buffered(GROUPED_IN_FLIGHT)
            .collect()
            .await;
        for (at, metrics) in figures {
            if let Some(metrics) = metrics? {
                let queue = &mut stats[at].figures;
                queue.delayed_messages = metrics.delayed_count;
                queue.visible_groups = metrics.visible_group_count;
                queue.oldest_group_head_ms = metrics.oldest_group_head_timestamp_ms;
            }
        }
        Ok(stats)
    }
}

/// One queue's replies, in the order `chunk_stats` asks, and whether it has message
/// groups; `None` for a queue deleted since it was listed.
fn decode(per_queue: &[Value]) -> Option<(QueueStats, bool)> {
    let [Value::Array(meta), held, leased, delayed, oldest] = per_queue else {
        return None;
    };
    let field = |i: usize| meta.get(i).and_then(|v| text(v).ok());
    let number = |i: usize| field(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let account = field(0).and_then(|a| AccountId::parse(&a))?;
    let queue = field(1).and_then(|n| QueueName::parse(&n))?;
    let oldest_timestamp_ms = match oldest {
        Value::Array(pair) => pair
            .get(1)
            .and_then(|v| text(v).ok())
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(0, |f| f as u64),
        _ => 0,
    };
    let card = |v: &Value| int(v).ok().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let stats = QueueStats {
        account,
        queue,
        figures: QueueFigures {
            backlog_messages: card(held),
            backlog_bytes: number(2),
            oldest_timestamp_ms,
            inflight_messages: card(leased),
            delayed_messages: card(delayed),
            visible_groups: 0,
            oldest_group_head_ms: 0,
            pushed: number(3),
            delivered: number(4),
            acked: number(5),
            retried: number(6),
            lease_expired: number(7),
            dead_lettered: number(8).saturating_add(number(9)),
            expired: number(10),
        },
    };
    Some((stats, field(11).as_deref() == Some("1")))
}
