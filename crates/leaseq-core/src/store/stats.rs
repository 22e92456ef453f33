//! Every queue's figures for the Prometheus scrape: plain commands, pipelined.

use futures_util::StreamExt;
use redis::Value;

use super::keys::Role;
use super::script::{int, text};
use super::{Store, StoreError};
use crate::metrics::{QueueFigures, QueueStats};
use crate::model::{AccountId, QueueId, QueueName};

/// Queues per pipeline.
const CHUNK: usize = 250;
/// Pipelines in flight: Redis answers one while the replies of another are parsed.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The fields of a queue's meta hash a scrape reads, in the order `figures` expects.
const FIELDS: [&str; 11] = [
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
        Ok(replies.iter().filter_map(|r| decode(r)).collect())
    }
}

/// One queue's replies, in the order `chunk_stats` asks; `None` for a queue deleted
/// since it was listed.
fn decode(per_queue: &[Value]) -> Option<QueueStats> {
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
    Some(QueueStats {
        account,
        queue,
        figures: QueueFigures {
            backlog_messages: card(held),
            backlog_bytes: number(2),
            oldest_timestamp_ms,
            inflight_messages: card(leased),
            delayed_messages: card(delayed),
            pushed: number(3),
            delivered: number(4),
            acked: number(5),
            retried: number(6),
            lease_expired: number(7),
            dead_lettered: number(8).saturating_add(number(9)),
            expired: number(10),
        },
    })
}
