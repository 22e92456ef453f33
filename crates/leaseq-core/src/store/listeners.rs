//! Listeners: their records, their lanes (fan-out), and the schedule delivery workers
//! claim lanes from.

use std::sync::atomic::Ordering;

use redis::ScriptInvocation;
use serde::{Deserialize, Serialize};

use super::codec::{self, CorruptData};
use super::keys::{Keys, Schedule};
use super::script::{KeySet, Op, Reply, access_arg, bytes, code, lua_script, text};
use super::{Store, StoreError};
use crate::model::{
    Access, AccountId, Listener, ListenerHealth, ListenerId, ListenerSettings, QueueId, QueueName,
    StoredMessage, WebhookSecret,
};

/// A listener as kept in the queue's `listeners` hash: JSON, read and written by Rust
/// only (Lua never looks inside).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    name: String,
    notify_url: String,
    liveness_url: Option<String>,
    dead_letter_queue: Option<String>,
    created_ms: u64,
    modified_ms: u64,
    settings: ListenerSettings,
    secret: String,
    #[serde(default)]
    previous_secret: Option<(String, u64)>,
    /// Present while the listener is down: since when, next probe, next backoff.
    #[serde(default)]
    down: Option<(u64, u64, u64)>,
}

fn encode(listener: &Listener) -> String {
    let record = Record {
        name: listener.name.clone(),
        notify_url: listener.notify_url.clone(),
        liveness_url: listener.liveness_url.clone(),
        dead_letter_queue: listener.dead_letter_queue.as_ref().map(|q| q.to_string()),
        created_ms: listener.created_ms,
        modified_ms: listener.modified_ms,
        settings: listener.settings,
        secret: listener.secret.0.clone(),
        previous_secret: listener
            .previous_secret
            .as_ref()
            .map(|(s, until)| (s.0.clone(), *until)),
        down: match listener.health {
            ListenerHealth::Up => None,
            ListenerHealth::Down {
                since_ms,
                next_probe_ms,
                probe_backoff_ms,
            } => Some((since_ms, next_probe_ms, probe_backoff_ms)),
        },
    };
    // A struct of strings and numbers always serializes.
    serde_json::to_string(&record).unwrap_or_default()
}

fn decode(id: ListenerId, raw: &[u8], backlog: u64) -> Result<Listener, CorruptData> {
    let record: Record = serde_json::from_slice(raw)
        .map_err(|e| CorruptData(format!("listener {id} record: {e}")))?;
    let dead_letter_queue = record
        .dead_letter_queue
        .map(|name| {
            QueueName::parse(&name)
                .ok_or_else(|| CorruptData(format!("listener {id} dead-letter queue")))
        })
        .transpose()?;
    Ok(Listener {
        id,
        name: record.name,
        notify_url: record.notify_url,
        liveness_url: record.liveness_url,
        dead_letter_queue,
        created_ms: record.created_ms,
        modified_ms: record.modified_ms,
        settings: record.settings,
        secret: WebhookSecret(record.secret),
        previous_secret: record
            .previous_secret
            .map(|(s, until)| (WebhookSecret(s), until)),
        health: match record.down {
            None => ListenerHealth::Up,
            Some((since_ms, next_probe_ms, probe_backoff_ms)) => ListenerHealth::Down {
                since_ms,
                next_probe_ms,
                probe_backoff_ms,
            },
        },
        backlog,
    })
}

/// A listener as read, with the exact record text a compare-and-set write checks.
#[derive(Debug, Clone)]
pub struct ListenerRead {
    pub listener: Listener,
    pub record: String,
    /// Its delivery log, newest first, when asked for.
    pub log: Vec<String>,
}

/// What creating a listener did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerCreate {
    Created,
    QueueNotFound,
    /// The queue has as many listeners as it may.
    TooMany,
}

/// What a compare-and-set write of a listener did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerWrite {
    Written,
    QueueNotFound,
    ListenerNotFound,
    /// The record changed since it was read: read again.
    Changed,
}

/// A message claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message: StoredMessage,
    /// This listener's attempts at it, this one included.
    pub attempts: u32,
}

/// What a claim on a listener's lane returned.
#[derive(Debug, Clone)]
pub enum DeliveryClaim {
    QueueNotFound,
    ListenerNotFound,
    Claimed {
        messages: Vec<Claimed>,
        /// When the lane's earliest message is due (0: the lane is empty).
        next_due_ms: u64,
    },
}

/// How one delivery attempt ended, per message.
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub acked: Vec<String>,
    /// `(id, delay_ms)`.
    pub retried: Vec<(String, u64)>,
    /// Attempts allowed per message (`max_retries + 1`).
    pub most_attempts: u32,
    pub has_dead_letter_queue: bool,
    /// The attempt's entry in the listener's delivery log.
    pub log_entry: String,
}

/// What settling an attempt did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    pub acked: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    /// When the lane's earliest message is due (0: the lane is empty).
    pub next_due_ms: u64,
}

/// Most delivery-log entries kept per listener.
pub const DELIVERY_LOG: u32 = 100;

struct CreateListener<'a> {
    access: &'a Access,
    queue: QueueId,
    listener: &'a Listener,
    most: u32,
}

impl Op for CreateListener<'_> {
    lua_script!("listener_create", KeySet::Queue);
    type Output = ListenerCreate;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.listener.id.to_string())
            .arg(encode(self.listener))
            .arg(self.most)
            .arg(self.listener.modified_ms);
    }

    fn decode(&self, reply: Reply) -> Result<ListenerCreate, CorruptData> {
        Ok(match reply.code()? {
            code::OK => ListenerCreate::Created,
            code::ACCOUNT_FULL => ListenerCreate::TooMany,
            _ => ListenerCreate::QueueNotFound,
        })
    }
}

struct WriteListener<'a> {
    access: &'a Access,
    queue: QueueId,
    listener: &'a Listener,
    /// The record read before (`None`: overwrite whatever is there).
    expected: Option<&'a str>,
}

impl Op for WriteListener<'_> {
    lua_script!("listener_write", KeySet::Queue);
    type Output = ListenerWrite;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.listener.id.to_string())
            .arg(encode(self.listener))
            .arg(self.expected.unwrap_or(""));
    }

    fn decode(&self, reply: Reply) -> Result<ListenerWrite, CorruptData> {
        Ok(match reply.code()? {
            code::OK => ListenerWrite::Written,
            code::ABSENT => ListenerWrite::ListenerNotFound,
            code::NOT_CURRENT => ListenerWrite::Changed,
            _ => ListenerWrite::QueueNotFound,
        })
    }
}

struct DeleteListener<'a> {
    access: &'a Access,
    queue: QueueId,
    id: ListenerId,
    step: u32,
}

impl Op for DeleteListener<'_> {
    lua_script!("listener_delete", KeySet::Queue);
    /// `None`: no such queue; `Some(None)`: no such listener; `Some(Some(more))`.
    type Output = Option<Option<bool>>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.to_string())
            .arg(self.step);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        Ok(match reply.code()? {
            code::OK => Some(Some(reply.count(1)? == 1)),
            code::ABSENT => Some(None),
            _ => None,
        })
    }
}

struct ReadListeners<'a> {
    access: &'a Access,
    queue: QueueId,
    id: Option<ListenerId>,
    log: u32,
}

impl Op for ReadListeners<'_> {
    lua_script!("listener_read", KeySet::Queue);
    const WRITES: bool = false;
    /// `None`: no such queue. An empty list for a named listener: no such listener.
    type Output = Option<Vec<ListenerRead>>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.map(|id| id.to_string()).unwrap_or_default())
            .arg(self.log);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        match reply.code()? {
            code::OK => {}
            code::ABSENT => return Ok(Some(Vec::new())),
            _ => return Ok(None),
        }
        let mut out = Vec::new();
        for entry in reply.rest(1).chunks(4) {
            let [id, record, backlog, log] = entry else {
                return Err(CorruptData("listener_read reply".into()));
            };
            let id = ListenerId::parse(&text(id)?)
                .ok_or_else(|| CorruptData("listener id in the listeners hash".into()))?;
            let record = text(record)?;
            let backlog = u64::try_from(super::script::int(backlog)?).unwrap_or(0);
            let log = match log {
                redis::Value::Array(items) => items.iter().map(text).collect::<Result<_, _>>()?,
                _ => Vec::new(),
            };
            out.push(ListenerRead {
                listener: decode(id, record.as_bytes(), backlog)?,
                record,
                log,
            });
        }
        Ok(Some(out))
    }
}

struct ClaimDeliveries<'a> {
    access: &'a Access,
    queue: QueueId,
    id: ListenerId,
    batch: u32,
    now_ms: u64,
    claim_ms: u64,
}

impl Op for ClaimDeliveries<'_> {
    lua_script!("listener_claim", KeySet::Queue);
    type Output = DeliveryClaim;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.to_string())
            .arg(self.batch)
            .arg(self.now_ms)
            .arg(self.claim_ms);
    }

    fn decode(&self, reply: Reply) -> Result<DeliveryClaim, CorruptData> {
        match reply.code()? {
            code::OK => {}
            code::ABSENT => return Ok(DeliveryClaim::ListenerNotFound),
            _ => return Ok(DeliveryClaim::QueueNotFound),
        }
        let mut messages = Vec::new();
        for entry in reply.rest(2).chunks(3) {
            let [id, attempts, record] = entry else {
                return Err(CorruptData("listener_claim reply".into()));
            };
            let id = text(id)?;
            messages.push(Claimed {
                message: codec::decode_record(&id, bytes(record)?)?,
                attempts: u32::try_from(super::script::int(attempts)?).unwrap_or(u32::MAX),
            });
        }
        Ok(DeliveryClaim::Claimed {
            messages,
            next_due_ms: reply.count(1)?,
        })
    }
}

struct SettleDeliveries<'a> {
    access: &'a Access,
    queue: QueueId,
    id: ListenerId,
    now_ms: u64,
    settlement: &'a Settlement,
}

impl Op for SettleDeliveries<'_> {
    lua_script!("listener_settle", KeySet::Queue);
    /// `None`: no such queue or listener.
    type Output = Option<Settled>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        let s = self.settlement;
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.to_string())
            .arg(self.now_ms)
            .arg(s.most_attempts)
            .arg(if s.has_dead_letter_queue { "1" } else { "0" })
            .arg(&s.log_entry)
            .arg(DELIVERY_LOG)
            .arg(s.acked.len());
        for id in &s.acked {
            invocation.arg(id);
        }
        for (id, delay_ms) in &s.retried {
            invocation.arg(id).arg(*delay_ms);
        }
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        Ok(Some(Settled {
            acked: reply.count(1)?,
            retried: reply.count(2)?,
            dead_lettered: reply.count(3)?,
            dropped: reply.count(4)?,
            next_due_ms: reply.count(5)?,
        }))
    }
}

struct ListenerDeadLetters<'a> {
    access: &'a Access,
    queue: QueueId,
    id: ListenerId,
    max: u32,
    reply_bytes: usize,
}

impl Op for ListenerDeadLetters<'_> {
    lua_script!("listener_dead", KeySet::Queue);
    /// `None`: no such queue; else the entries and whether more remain.
    type Output = Option<(Vec<(String, Vec<u8>)>, bool)>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.to_string())
            .arg(self.max)
            .arg(self.reply_bytes);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let mut entries = Vec::new();
        for pair in reply.rest(2).chunks(2) {
            let [id, record] = pair else {
                return Err(CorruptData("listener_dead reply".into()));
            };
            entries.push((text(id)?, bytes(record)?.to_vec()));
        }
        Ok(Some((entries, reply.count(1)? == 1)))
    }
}

struct ForgetListenerDeadLetters<'a> {
    access: &'a Access,
    queue: QueueId,
    id: ListenerId,
    ids: &'a [&'a str],
}

impl Op for ForgetListenerDeadLetters<'_> {
    lua_script!("listener_dead_forget", KeySet::Queue);
    type Output = ();

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.to_string());
        for id in self.ids {
            invocation.arg(*id);
        }
    }

    fn decode(&self, _: Reply) -> Result<(), CorruptData> {
        Ok(())
    }
}

/// A listener's lane, as the delivery schedule names it: `<account>/<queue>/<listener>`
/// (account ids hold no `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneRef {
    pub account: AccountId,
    pub queue: QueueId,
    pub listener: ListenerId,
}

impl LaneRef {
    fn entry(&self) -> String {
        format!("{}/{}/{}", self.account, self.queue, self.listener)
    }

    pub(super) fn parse(entry: &str) -> Option<Self> {
        let mut parts = entry.split('/');
        let lane = LaneRef {
            account: AccountId::parse(parts.next()?)?,
            queue: QueueId::parse(parts.next()?)?,
            listener: ListenerId::parse(parts.next()?)?,
        };
        parts.next().is_none().then_some(lane)
    }
}

impl Store {
    pub async fn create_listener(
        &self,
        access: &Access,
        queue: QueueId,
        listener: &Listener,
        most: u32,
    ) -> Result<ListenerCreate, StoreError> {
        self.call(CreateListener {
            access,
            queue,
            listener,
            most,
        })
        .await
    }

    /// Writes `listener` if its record is still `expected` (when given).
    pub async fn write_listener(
        &self,
        access: &Access,
        queue: QueueId,
        listener: &Listener,
        expected: Option<&str>,
    ) -> Result<ListenerWrite, StoreError> {
        self.call(WriteListener {
            access,
            queue,
            listener,
            expected,
        })
        .await
    }

    /// Removes the listener and empties its lane, `step` messages per call.
    /// `None`: no such queue; `Some(false)`: no such listener.
    pub async fn delete_listener(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        step: u32,
    ) -> Result<Option<bool>, StoreError> {
        let lane = LaneRef {
            account: access.account.clone(),
            queue,
            listener: id,
        };
        let mut found = false;
        loop {
            match self
                .call(DeleteListener {
                    access,
                    queue,
                    id,
                    step,
                })
                .await?
            {
                None => return Ok(None),
                Some(None) => return Ok(Some(found)),
                Some(Some(more)) => {
                    found = true;
                    if !more {
                        self.unschedule_lane(&lane).await?;
                        return Ok(Some(true));
                    }
                }
            }
        }
    }

    /// One listener (`Some(id)`) or all of the queue's. `None`: no such queue; an empty
    /// list for a named listener: no such listener.
    pub async fn listeners(
        &self,
        access: &Access,
        queue: QueueId,
        id: Option<ListenerId>,
        log: u32,
    ) -> Result<Option<Vec<ListenerRead>>, StoreError> {
        self.call(ReadListeners {
            access,
            queue,
            id,
            log,
        })
        .await
    }

    pub async fn claim_deliveries(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        batch: u32,
        now_ms: u64,
        claim_ms: u64,
    ) -> Result<DeliveryClaim, StoreError> {
        self.call(ClaimDeliveries {
            access,
            queue,
            id,
            batch,
            now_ms,
            claim_ms,
        })
        .await
    }

    pub async fn settle_deliveries(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        now_ms: u64,
        settlement: &Settlement,
    ) -> Result<Option<Settled>, StoreError> {
        self.call(SettleDeliveries {
            access,
            queue,
            id,
            now_ms,
            settlement,
        })
        .await
    }

    /// Up to `max` dead letters of a listener, and whether more remain. `None`: no such
    /// queue.
    pub async fn listener_dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        max: u32,
    ) -> Result<Option<(Vec<(String, Vec<u8>)>, bool)>, StoreError> {
        self.call(ListenerDeadLetters {
            access,
            queue,
            id,
            max,
            reply_bytes: self.reply_bytes,
        })
        .await
    }

    pub async fn forget_listener_dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        ids: &[&str],
    ) -> Result<(), StoreError> {
        self.call(ForgetListenerDeadLetters {
            access,
            queue,
            id,
            ids,
        })
        .await
    }

    /// Makes the lanes due at `at_ms` at the latest: an earlier time already set stays
    /// (a worker's hold, a push's "now"), so a reschedule never hides a push that came in
    /// meanwhile.
    pub async fn schedule_lanes(&self, lanes: &[LaneRef], at_ms: u64) -> Result<(), StoreError> {
        if lanes.is_empty() {
            return Ok(());
        }
        // One ZADD per schedule shard the lanes are in (a push's lanes share one).
        let mut by_shard: Vec<(u8, redis::Cmd)> = Vec::new();
        for lane in lanes {
            let shard = self.keys.schedule_shard(lane.queue);
            let at = match by_shard.iter().position(|(s, _)| *s == shard) {
                Some(at) => at,
                None => {
                    let mut cmd = redis::cmd("ZADD");
                    cmd.arg(self.keys.schedule(Schedule::Deliveries, shard))
                        .arg("LT");
                    by_shard.push((shard, cmd));
                    by_shard.len() - 1
                }
            };
            by_shard[at].1.arg(at_ms).arg(lane.entry());
        }
        self.query_groups(by_shard.into_iter().map(|(_, cmd)| vec![cmd]).collect())
            .await
            .map(|_| ())
    }

    pub async fn unschedule_lane(&self, lane: &LaneRef) -> Result<(), StoreError> {
        self.command(
            redis::cmd("ZREM")
                .arg(self.keys.queue_schedule(Schedule::Deliveries, lane.queue))
                .arg(lane.entry()),
        )
        .await
    }

    /// Claims up to `max` lanes due for delivery, holding them for `hold_ms`: never more
    /// than `max` in all (a claimed lane nobody works on waits out its hold), spread
    /// over the schedule shards as [`lane_claims`] says.
    pub async fn claim_lanes(
        &self,
        now_ms: u64,
        max: u32,
        hold_ms: u64,
    ) -> Result<Vec<LaneRef>, StoreError> {
        let shards = self.keys.schedule_shards().len();
        let start = self.lane_cursor.fetch_add(max as usize, Ordering::Relaxed);
        let shares = lane_claims(shards, max, start);
        let entries = self
            .claim_due(Schedule::Deliveries, shares, now_ms, hold_ms)
            .await?;
        // Entries that do not parse can name no lane: skip them.
        Ok(entries.iter().filter_map(|e| LaneRef::parse(e)).collect())
    }
}

/// How many lanes to claim from which schedule shard, `max` at most in all: an even
/// share from every shard when `max` covers them all, else one from each of `max`
/// shards in turn from `start` (a rotating cursor, so every shard gets its turn).
fn lane_claims(shards: usize, max: u32, start: usize) -> Vec<(u8, u32)> {
    let shard = |i: usize| u8::try_from(i % shards.max(1)).unwrap_or(0);
    let max_usize = max as usize;
    if max_usize >= shards {
        let share = max / u32::try_from(shards.max(1)).unwrap_or(1);
        (0..shards).map(|i| (shard(i), share)).collect()
    } else {
        (0..max_usize).map(|i| (shard(start + i), 1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::lane_claims;

    #[test]
    fn lane_claims_never_exceed_max_and_visit_every_shard() {
        assert_eq!(lane_claims(1, 32, 7), vec![(0, 32)]);
        let even = lane_claims(16, 32, 0);
        assert_eq!(even.len(), 16);
        assert!(even.iter().all(|&(_, n)| n == 2));
        assert_eq!(lane_claims(16, 40, 0).iter().map(|c| c.1).sum::<u32>(), 32);
        // Fewer than the shards: one each, the cursor moving on.
        assert_eq!(lane_claims(16, 3, 14), vec![(14, 1), (15, 1), (0, 1)]);
        let mut seen = std::collections::BTreeSet::new();
        let mut start = 0;
        for _ in 0..6 {
            for (shard, n) in lane_claims(16, 3, start) {
                assert_eq!(n, 1);
                seen.insert(shard);
            }
            start += 3;
        }
        assert_eq!(seen.len(), 16);
        assert!(lane_claims(16, 0, 5).is_empty());
    }
}
