//! Claiming due entries of a schedule (`lua/schedule_claim.lua`): the retention sweep's
//! queues and the delivery workers' lanes, over the schedule's shards.

use redis::ScriptInvocation;

use super::codec::CorruptData;
use super::keys::{Keys, Schedule};
use super::script::{KeySet, Op, Reply, lua_script, text};
use super::{Store, StoreError};

struct Claim {
    schedule: Schedule,
    shard: u8,
    now_ms: u64,
    max: u32,
    hold_ms: u64,
}

impl Op for Claim {
    lua_script!("schedule_claim", KeySet::One("SCHEDULE"));
    /// The claimed entries, as the schedule names them.
    type Output = Vec<String>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        vec![keys.schedule(self.schedule, self.shard)]
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(self.now_ms).arg(self.max).arg(self.hold_ms);
    }

    fn decode(&self, reply: Reply) -> Result<Vec<String>, CorruptData> {
        Ok(reply.rest(1).iter().filter_map(|v| text(v).ok()).collect())
    }
}

impl Store {
    /// Claims due entries of `schedule`, up to `max` from each `(shard, max)` of
    /// `shares`, all at once, holding each for `hold_ms`: another process claims it
    /// only once that passes (if its claimer died, say).
    pub(super) async fn claim_due(
        &self,
        schedule: Schedule,
        shares: impl IntoIterator<Item = (u8, u32)>,
        now_ms: u64,
        hold_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let claims = shares.into_iter().map(|(shard, max)| {
            self.call(Claim {
                schedule,
                shard,
                now_ms,
                max,
                hold_ms,
            })
        });
        Ok(futures_util::future::try_join_all(claims)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}
