//! Moving data written by an earlier version onto today's layout, on start-up.
//!
//! Queues of layout 1 kept ready ids on a LIST that deletes could not clean (so an id
//! could be delivered twice in one pull) and delayed ids apart. Each broker process
//! moves every queue onto layout 2 in bounded steps (`lua/migrate.lua`) in the
//! background, then marks the deployment done, so later starts cost one GET.
//!
//! On a Cluster, each start also moves whatever the unsharded schedules hold (written by
//! a version before the schedules were sharded, or by a single node whose data was
//! moved onto the Cluster) into the shards; when there is nothing, that costs one
//! `ZRANGE` per schedule.

use redis::ScriptInvocation;

use super::codec::{CorruptData, LAYOUT};
use std::collections::BTreeMap;

use super::keys::{Keys, Schedule};
use super::listeners::LaneRef;
use super::script::{KeySet, Op, Reply, code, lua_script};
use super::{Store, StoreError};
use crate::model::QueueId;

/// Ids (or age buckets) one migration step handles.
const STEP: u32 = 1000;

struct Migrate {
    queue: QueueId,
    now_ms: u64,
}

impl Op for Migrate {
    lua_script!("migrate", KeySet::Queue);
    /// Whether the queue is done (or gone).
    type Output = bool;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(self.now_ms).arg(STEP);
    }

    fn decode(&self, reply: Reply) -> Result<bool, CorruptData> {
        Ok(reply.code()? != code::OK || reply.count(1)? == 1)
    }
}

impl Store {
    /// Moves the entries of the unsharded schedules into the shards of a Cluster, in
    /// steps of [`STEP`]; returns how many moved. Each entry keeps the earlier of its two
    /// times (a visit sooner than needed is harmless, a later one could hide work), and
    /// leaves the unsharded schedule only once it is in its shard.
    async fn shard_schedules(&self) -> Result<u64, StoreError> {
        if self.keys.schedule_shards().len() == 1 {
            return Ok(0); // one node: the unsharded schedules are the schedules
        }
        let mut moved = 0;
        for schedule in Schedule::ALL {
            let unsharded = self.keys.unsharded_schedule(schedule);
            loop {
                let entries: Vec<(String, f64)> = self
                    .command(
                        redis::cmd("ZRANGE")
                            .arg(&unsharded)
                            .arg(0)
                            .arg(STEP - 1)
                            .arg("WITHSCORES"),
                    )
                    .await?;
                if entries.is_empty() {
                    break;
                }
                let mut by_shard: BTreeMap<u8, redis::Cmd> = BTreeMap::new();
                for (entry, at) in &entries {
                    let queue = match schedule {
                        Schedule::Sweep => QueueId::parse(entry),
                        Schedule::Deliveries => LaneRef::parse(entry).map(|lane| lane.queue),
                    };
                    // An entry naming no queue names no work: it is only removed.
                    let Some(queue) = queue else { continue };
                    let shard = self.keys.schedule_shard(queue);
                    by_shard
                        .entry(shard)
                        .or_insert_with(|| {
                            let mut add = redis::cmd("ZADD");
                            add.arg(self.keys.schedule(schedule, shard)).arg("LT");
                            add
                        })
                        .arg(*at as u64)
                        .arg(entry);
                }
                self.query_groups(by_shard.into_values().map(|add| vec![add]).collect())
                    .await?;
                let mut remove = redis::cmd("ZREM");
                remove.arg(&unsharded);
                for (entry, _) in &entries {
                    remove.arg(entry);
                }
                self.command::<()>(&remove).await?;
                moved += entries.len() as u64;
            }
        }
        Ok(moved)
    }

    /// Moves every queue onto today's layout. Returns how many queues were looked at (0
    /// when the deployment was done already).
    pub async fn migrate_storage(&self, now_ms: impl Fn() -> u64) -> Result<u64, StoreError> {
        let moved = self.shard_schedules().await?;
        if moved > 0 {
            tracing::info!(entries = moved, "moved schedule entries into their shards");
        }
        let done: Option<String> = self
            .command(redis::cmd("GET").arg(self.keys.layout()))
            .await?;
        if done.as_deref() == Some(&LAYOUT.to_string()) {
            return Ok(0);
        }
        let queues = self.queue_ids().await?;
        for &queue in &queues {
            while !self
                .call(Migrate {
                    queue,
                    now_ms: now_ms(),
                })
                .await?
            {}
        }
        self.command::<()>(redis::cmd("SET").arg(self.keys.layout()).arg(LAYOUT))
            .await?;
        Ok(queues.len() as u64)
    }
}
