//! Every queue's figures for the Prometheus scrape: plain commands, pipelined.

use redis::Value;

use super::keys::Role;
use super::script::{int, text};
use super::{Store, StoreError};
use crate::model::{AccountId, QueueId, QueueName};

impl Store {
    /// Every queue's figures for a metrics scrape, in pipelines of a few hundred queues.
    pub async fn queue_stats(
        &self,
        now_ms: u64,
    ) -> Result<Vec<crate::metrics::QueueStats>, StoreError> {
        const CHUNK: usize = 250;
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
        let ids: Vec<String> = self
            .command(
                redis::cmd("ZRANGE")
                    .arg(self.keys.sweep_schedule())
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        let ids: Vec<QueueId> = ids.iter().filter_map(|id| QueueId::parse(id)).collect();
        let mut stats = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            // One group of commands per queue: one slot each.
            let groups = chunk
                .iter()
                .map(|id| {
                    let k = self.keys.queue(*id);
                    let mut meta = redis::cmd("HMGET");
                    meta.arg(&k[Role::Meta]).arg(&FIELDS[..]);
                    let mut held = redis::cmd("HLEN");
                    held.arg(&k[Role::Msg]);
                    let mut leased = redis::cmd("ZCARD");
                    leased.arg(&k[Role::Leased]);
                    let mut delayed = redis::cmd("ZCOUNT");
                    delayed
                        .arg(&k[Role::Due])
                        .arg(format!("({now_ms}"))
                        .arg("+inf");
                    let mut oldest = redis::cmd("ZRANGE");
                    oldest.arg(&k[Role::Age]).arg(0).arg(0).arg("WITHSCORES");
                    vec![meta, held, leased, delayed, oldest]
                })
                .collect();
            let replies = self.query_groups(groups).await?;
            for per_queue in replies.iter().filter(|r| r.len() == 5) {
                let Value::Array(meta) = &per_queue[0] else {
                    continue;
                };
                let field = |i: usize| meta.get(i).and_then(|v| text(v).ok());
                let number = |i: usize| field(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let (Some(account), Some(name)) = (
                    field(0).and_then(|a| AccountId::parse(&a)),
                    field(1).and_then(|n| QueueName::parse(&n)),
                ) else {
                    continue; // deleted since it was listed
                };
                let oldest = match &per_queue[4] {
                    Value::Array(pair) => pair
                        .get(1)
                        .and_then(|v| text(v).ok())
                        .and_then(|s| s.parse::<f64>().ok())
                        .map_or(0, |f| f as u64),
                    _ => 0,
                };
                let card = |v: &Value| int(v).ok().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                stats.push(crate::metrics::QueueStats {
                    account,
                    queue: name,
                    backlog_messages: card(&per_queue[1]),
                    backlog_bytes: number(2),
                    oldest_timestamp_ms: oldest,
                    inflight_messages: card(&per_queue[2]),
                    delayed_messages: card(&per_queue[3]),
                    pushed: number(3),
                    delivered: number(4),
                    acked: number(5),
                    retried: number(6),
                    lease_expired: number(7),
                    dead_lettered: number(8) + number(9),
                    expired: number(10),
                });
            }
        }
        Ok(stats)
    }
}
