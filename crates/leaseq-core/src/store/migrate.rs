//! Moving data written by an earlier version onto today's layout, on start-up.
//!
//! Queues of layout 1 kept ready ids on a LIST that deletes could not clean (so an id
//! could be delivered twice in one pull) and delayed ids apart. Each broker process
//! moves every queue onto layout 2 in bounded steps (`lua/migrate.lua`) in the
//! background, then marks the deployment done, so later starts cost one GET.

use redis::ScriptInvocation;

use super::codec::{CorruptData, LAYOUT};
use super::keys::Keys;
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
    /// Moves every queue onto today's layout. Returns how many queues were looked at (0
    /// when the deployment was done already).
    pub async fn migrate_storage(&self, now_ms: impl Fn() -> u64) -> Result<u64, StoreError> {
        let done: Option<String> = self
            .command(redis::cmd("GET").arg(self.keys.layout()))
            .await?;
        if done.as_deref() == Some(&LAYOUT.to_string()) {
            return Ok(0);
        }
        // Every queue is on the retention schedule from its creation to its deletion.
        let ids: Vec<String> = self
            .command(
                redis::cmd("ZRANGE")
                    .arg(self.keys.sweep_schedule())
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        let queues: Vec<QueueId> = ids.iter().filter_map(|id| QueueId::parse(id)).collect();
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
