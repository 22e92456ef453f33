//! Rate limits shared by every broker process: one GCRA state per account or queue.

use std::time::Duration;

use redis::ScriptInvocation;

use super::codec::CorruptData;
use super::keys::Keys;
use super::script::{KeySet, Op, Reply, code, lua_script};
use super::{Store, StoreError};
use crate::model::{AccountId, QueueId};

/// What a rate limit is counted for.
#[derive(Debug, Clone, Copy)]
pub enum RateSubject<'a> {
    Account(&'a AccountId),
    Queue(QueueId),
}

struct RateAdmit<'a> {
    subject: RateSubject<'a>,
    interval_us: u64,
    tolerance_us: u64,
}

impl Op for RateAdmit<'_> {
    lua_script!("rate_admit", KeySet::One("RATE"));
    /// `Err`: how long until a request would be admitted.
    type Output = Result<(), Duration>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        vec![match self.subject {
            RateSubject::Account(account) => keys.account_rate(account),
            RateSubject::Queue(queue) => keys.queue_rate(queue),
        }]
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(self.interval_us).arg(self.tolerance_us);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        Ok(match reply.code()? {
            code::LIMITED => Err(Duration::from_micros(reply.count(1)?)),
            _ => Ok(()),
        })
    }
}

impl Store {
    /// Admits one request of `subject` at `per_sec` with `burst` requests of tolerance,
    /// counted across every process sharing this Redis.
    pub async fn admit(
        &self,
        subject: RateSubject<'_>,
        per_sec: f64,
        burst: f64,
    ) -> Result<Result<(), Duration>, StoreError> {
        let interval_us = (1_000_000.0 / per_sec).max(1.0);
        // A burst of b requests at once is b - 1 intervals early.
        let tolerance_us = interval_us * (burst - 1.0).max(0.0);
        self.call(RateAdmit {
            subject,
            interval_us: interval_us as u64,
            tolerance_us: tolerance_us as u64,
        })
        .await
    }
}
