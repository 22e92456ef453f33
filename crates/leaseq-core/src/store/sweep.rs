//! Retention: the schedule of queues to sweep, and the sweep of one queue.

use redis::ScriptInvocation;

use super::codec::CorruptData;
use super::keys::{Keys, Schedule};
use super::script::{KeySet, Op, Reply, code, lua_script, text};
use super::{Store, StoreError};
use crate::model::{AccountId, QueueId};

/// What one retention sweep of a queue did.
#[derive(Debug, Clone)]
pub struct Expired {
    pub account: AccountId,
    pub expired: u64,
    /// When the oldest remaining message expires (or, if none, a new one would).
    pub next_due_ms: u64,
    /// More expired messages remain than one call handles.
    pub more_due: bool,
    /// Dead letters waiting to move to the dead-letter queue.
    pub dead_outbox: u64,
}

struct Expire {
    queue: QueueId,
    now_ms: u64,
    max_timestamps: u32,
    min_retention_secs: u64,
}

impl Op for Expire {
    lua_script!("expire", KeySet::Queue);
    /// `None`: no such queue.
    type Output = Option<Expired>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(self.now_ms)
            .arg(self.max_timestamps)
            .arg(self.min_retention_secs);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let account = reply.text(1)?;
        Ok(Some(Expired {
            account: AccountId::parse(&account)
                .ok_or_else(|| CorruptData(format!("queue {} account", self.queue)))?,
            expired: reply.count(2)?,
            next_due_ms: reply.count(3)?,
            more_due: reply.count(4)? == 1,
            dead_outbox: reply.count(5)?,
        }))
    }
}

impl Store {
    /// Schedules the queue's next retention sweep at `at_ms`.
    pub async fn schedule_sweep(&self, queue: QueueId, at_ms: u64) -> Result<(), StoreError> {
        self.command(
            redis::cmd("ZADD")
                .arg(self.keys.queue_schedule(Schedule::Sweep, queue))
                .arg(at_ms)
                .arg(queue.to_string()),
        )
        .await
    }

    pub async fn unschedule_sweep(&self, queue: QueueId) -> Result<(), StoreError> {
        self.command(
            redis::cmd("ZREM")
                .arg(self.keys.queue_schedule(Schedule::Sweep, queue))
                .arg(queue.to_string()),
        )
        .await
    }

    /// Every queue's id: each queue is on the retention schedule from its creation to its
    /// deletion.
    pub async fn queue_ids(&self) -> Result<Vec<QueueId>, StoreError> {
        let listings = self
            .keys
            .schedule_shards()
            .map(|shard| {
                let mut list = redis::cmd("ZRANGE");
                list.arg(self.keys.schedule(Schedule::Sweep, shard))
                    .arg(0)
                    .arg(-1);
                vec![list]
            })
            .collect();
        let replies = self.query_groups(listings).await?;
        Ok(replies
            .iter()
            .flatten()
            .filter_map(|listing| match listing {
                redis::Value::Array(ids) => Some(ids),
                _ => None,
            })
            .flatten()
            .filter_map(|id| text(id).ok())
            .filter_map(|id| QueueId::parse(&id))
            .collect())
    }

    /// Claims up to `max` queues due for a sweep from each schedule shard, holding them
    /// for `hold_ms`.
    pub async fn claim_sweeps(
        &self,
        now_ms: u64,
        max: u32,
        hold_ms: u64,
    ) -> Result<Vec<QueueId>, StoreError> {
        let shares = self.keys.schedule_shards().map(|shard| (shard, max));
        let entries = self
            .claim_due(Schedule::Sweep, shares, now_ms, hold_ms)
            .await?;
        // Entries that are not queue ids can name no queue: skip them.
        Ok(entries.iter().filter_map(|e| QueueId::parse(e)).collect())
    }

    /// Deletes the queue's messages past retention. `None`: no such queue.
    pub async fn expire(
        &self,
        queue: QueueId,
        now_ms: u64,
        max_timestamps: u32,
        min_retention_secs: u64,
    ) -> Result<Option<Expired>, StoreError> {
        self.call(Expire {
            queue,
            now_ms,
            max_timestamps,
            min_retention_secs,
        })
        .await
    }
}
