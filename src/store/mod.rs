//! Redis storage. One Lua script per API operation, whatever the batch size.
//!
//! # Key layout
//!
//! With `redis.key_prefix = P`, queue `Q` (32 hex) of account `A`:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P:{Q}:meta` | HASH | `account`, `name`, `created_ms`, `modified_ms`, `delivery_delay`, `delivery_paused`, `retention`, `bytes` (sum of body sizes), `lease_seq` (last lease generation), consumer `c_*` fields |
//! | `P:{Q}:msg` | HASH | message id → record `2<t\|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<body>` (see `codec.rs`) |
//! | `P:{Q}:ready` | LIST | ids visible now, oldest first (may hold ids of messages acked after their lease expired; skipped when popped) |
//! | `P:{Q}:delayed` | ZSET | id → time (ms) the message becomes visible |
//! | `P:{Q}:leased` | ZSET | id → lease expiry (ms) |
//! | `P:{Q}:age` | ZSET | each distinct `timestamp_ms` of live messages, scored by itself: the oldest is its head, O(log N) |
//! | `P:{Q}:age_count` | HASH | `timestamp_ms` → how many live messages carry it |
//! | `P:{Q}:age_ids` | HASH | `timestamp_ms` → the ids pushed then, concatenated, so retention finds what expires |
//! | `P:{Q}:dead` | HASH | id → record: dead letters on their way to the dead-letter queue |
//! | `P:{Q}:dedup` | ZSET | dedup id → end of its window (ms) |
//! | `P:{Q}:origin` | HASH | id → the queue a dead letter came from, for redrive |
//! | `P:sweep` | ZSET | queue id → when (ms) the retention sweep next needs to look at it |
//! | `P:{a:A}:queues` | HASH | queue name → queue id |
//!
//! A live message is in exactly one of `ready`, `delayed`, `leased`. `backlog_count` is
//! `HLEN msg`, `backlog_bytes` is `meta.bytes`, the oldest timestamp is the head of `age`.
//! A batch shares one push time, so the age index costs one entry per push, not per
//! message; a delete decrements its time's count and drops the entry at zero.
//! Due delayed messages and expired leases move to `ready` inside the pull script, a
//! bounded number per call, so reclaiming costs O(expired), never O(queue size).

mod codec;
mod keys;
mod scripts;
mod wake;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use codec::CorruptData;
use keys::{Keys, QueueKeys};
use scripts::Scripts;
pub use wake::Wakeups;

use crate::model::{
    Access, AccountId, BacklogMetrics, Consumer, ConsumerId, MessageId, MessageState, NewMessage,
    Queue, QueueId, QueueName, QueueSettings, StoredMessage,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Corrupt(#[from] CorruptData),
}

/// Connection settings for [`Store::connect`]. No `Debug`: the URL may hold a password.
#[derive(Clone)]
pub struct StoreOptions {
    pub url: String,
    pub key_prefix: String,
    /// Deadline for every Redis call, connecting included.
    pub timeout: Duration,
    /// Most delayed messages, and most expired leases, made visible per pull.
    pub reveal_batch: u32,
    /// Most message-record bytes one script reply carries (pull, peek, list, dead-letter
    /// and redrive moves); at least one message always fits.
    pub reply_bytes: usize,
}

/// What a pull found.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub messages: Vec<StoredMessage>,
    pub backlog: BacklogMetrics,
    /// Messages that just used up their deliveries and left the queue (see `bury` in
    /// `lua/lib.lua`); when the consumer has a dead-letter queue they wait in the outbox.
    pub buried: u64,
    /// After an empty pull: when (Unix ms) a delayed message or expired lease can next
    /// become visible, if any can.
    pub next_visible_ms: Option<u64>,
}

/// The most a queue may hold (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogQuota {
    pub messages: u64,
    pub bytes: u64,
}

impl BacklogQuota {
    pub const NONE: Self = Self {
        messages: 0,
        bytes: 0,
    };
}

/// What a push did.
#[derive(Debug, Clone)]
pub enum PushReply {
    Pushed(BacklogMetrics),
    QueueNotFound,
    /// Nothing was stored: the new messages would pass this quota.
    BacklogFull(BacklogQuota),
}

/// `BACKLOG_FULL` in `lua/lib.lua`.
const BACKLOG_FULL: i64 = -3;

/// What a pull got.
#[derive(Debug, Clone)]
pub enum PullReply {
    Pulled(Pulled),
    QueueNotFound,
    DeliveryPaused,
}

/// What an ack request did.
#[derive(Debug, Clone)]
pub struct Acked {
    /// The outcome of each ack, in order (applied: the message was deleted).
    pub acked: Vec<LeaseOutcome>,
    /// The outcome of each retry, in order.
    pub retried: Vec<LeaseOutcome>,
    /// Retried messages that had used up their deliveries and left the queue.
    pub buried: u64,
}

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

/// Dead letters waiting in a queue's outbox, and where they are to go.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    pub dead_letter_queue: Option<QueueName>,
    /// `(message id, record)` as the source queue held them.
    pub entries: Vec<(String, Vec<u8>)>,
    /// More dead letters wait beyond these.
    pub more: bool,
}

/// What one ack, retry or extension of a lease did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    Applied,
    NoSuchMessage,
    /// Expired or superseded (a retry or extension), or from before the message was
    /// dead-lettered or redriven back (any of them).
    LeaseNotCurrent,
}

impl LeaseOutcome {
    /// The status the scripts return: 1 applied, 2 not current, anything else no message.
    fn from_status(status: i64) -> Self {
        match status {
            1 => LeaseOutcome::Applied,
            2 => LeaseOutcome::LeaseNotCurrent,
            _ => LeaseOutcome::NoSuchMessage,
        }
    }
}

/// Whether a consumer write went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerWrite {
    Written(Queue),
    QueueNotFound,
    OtherConsumerExists,
}

#[derive(Clone)]
pub struct Store {
    metrics: Option<Arc<crate::metrics::Metrics>>,
    conn: ConnectionManager,
    client: redis::Client,
    config: ConnectionManagerConfig,
    keys: Keys,
    scripts: Arc<Scripts>,
    timeout: Duration,
    reveal_batch: u32,
    reply_bytes: usize,
}

impl Store {
    /// Connects lazily: the broker starts even while Redis is down, and answers 503
    /// until Redis comes back.
    pub fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(options.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            metrics: None,
            conn,
            client,
            config,
            keys: Keys::new(&options.key_prefix),
            scripts: Arc::new(Scripts::load()),
            timeout: options.timeout,
            reveal_batch: options.reveal_batch,
            reply_bytes: options.reply_bytes,
        })
    }

    /// This store, reporting script latency and Redis errors to `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Starts this process's wake-up listener (see [`Wakeups`]) on the current runtime.
    pub fn listen_for_wakeups(&self, wakeups: Arc<Wakeups>) {
        tokio::spawn(wakeups.listen(self.client.clone(), self.keys.prefix().to_owned()));
    }

    /// This store with a connection of its own, driven by the caller's runtime.
    ///
    /// Each HTTP worker runs its own single-threaded runtime; a connection driven there
    /// spares every Redis call two hops to another thread and back.
    pub fn with_own_connection(&self) -> Self {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(conn) => Self {
                conn,
                ..self.clone()
            },
            // Cannot happen with the configuration `connect` validated; sharing is correct too.
            Err(_) => self.clone(),
        }
    }

    async fn run<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        if result.is_err()
            && let Some(metrics) = &self.metrics
        {
            metrics.redis_error();
        }
        result
    }

    /// Runs one script, timing it (and counting failures) under `name`.
    async fn invoke(
        &self,
        name: &'static str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        let started = std::time::Instant::now();
        let result = self.run(inv.invoke_async::<Value>(&mut conn)).await;
        if let Some(metrics) = &self.metrics {
            metrics.observe_script(name, started.elapsed());
        }
        result
    }

    /// The Redis keys of one queue by role (`meta`, `msg`, …), for diagnostics.
    pub fn queue_key_names(&self, queue: QueueId) -> Vec<(&'static str, String)> {
        let keys = self.keys.queue(queue);
        keys.named()
            .iter()
            .map(|(role, key)| (*role, (*key).to_owned()))
            .collect()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.run(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }

    fn message_keys<'a>(inv: &mut redis::ScriptInvocation<'a>, keys: &QueueKeys) {
        for key in keys.all() {
            inv.key(key);
        }
    }

    // ---- queues ------------------------------------------------------------------

    /// Writes a new queue and claims its name, unless the account already holds
    /// `max_queues` names.
    pub async fn create_queue(
        &self,
        queue: &Queue,
        max_queues: usize,
    ) -> Result<CreateQueue, StoreError> {
        let keys = self.keys.queue(queue.id);
        let mut inv = self.scripts.create_queue.prepare_invoke();
        inv.key(&keys.meta);
        for (field, value) in codec::queue_fields(queue) {
            inv.arg(field).arg(value);
        }
        let created = int(&self.invoke("create_queue", &inv).await?)?;
        if created != 1 {
            return Err(CorruptData(format!("queue id {} already in use", queue.id)).into());
        }
        // The metadata exists before the name points at it, so a name whose queue has
        // no metadata can only be left over from an interrupted delete.
        let outcome = match self
            .claim_name(&queue.account, &queue.name, queue.id, max_queues)
            .await?
        {
            Claim::Claimed => return Ok(CreateQueue::Created),
            Claim::Taken => CreateQueue::NameTaken,
            Claim::AccountFull => CreateQueue::TooManyQueues,
        };
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("UNLINK")
                .arg(&keys.meta)
                .query_async::<()>(&mut conn),
        )
        .await?;
        Ok(outcome)
    }

    /// Points `name` at `id`, taking it over from a queue that no longer exists. A new
    /// name is refused once the account holds `max_names` (0: no limit).
    async fn claim_name(
        &self,
        account: &AccountId,
        name: &QueueName,
        id: QueueId,
        max_names: usize,
    ) -> Result<Claim, StoreError> {
        let index = self.keys.account_queues(account);
        let mut takeover = String::new();
        // Two rounds: the second may take over a stale holder found by the first.
        for _ in 0..2 {
            let mut inv = self.scripts.claim_name.prepare_invoke();
            inv.key(&index)
                .arg(name.as_str())
                .arg(id.to_string())
                .arg(&takeover)
                .arg(max_names);
            let reply = array(self.invoke("claim_name", &inv).await?)?;
            match int(first(&reply)?)? {
                1 => return Ok(Claim::Claimed),
                2 => return Ok(Claim::AccountFull),
                _ => {}
            }
            let holder = reply.get(1).map(text).transpose()?.unwrap_or_default();
            let Some(holder_id) = QueueId::parse(&holder) else {
                takeover = holder;
                continue;
            };
            let mut conn = self.conn.clone();
            let exists: bool = self
                .run(
                    redis::cmd("EXISTS")
                        .arg(self.keys.queue(holder_id).meta)
                        .query_async(&mut conn),
                )
                .await?;
            if exists {
                return Ok(Claim::Taken);
            }
            takeover = holder;
        }
        Ok(Claim::Taken)
    }

    async fn release_name(
        &self,
        account: &AccountId,
        name: &QueueName,
        id: QueueId,
    ) -> Result<(), StoreError> {
        let mut inv = self.scripts.release_name.prepare_invoke();
        inv.key(self.keys.account_queues(account))
            .arg(name.as_str())
            .arg(id.to_string());
        self.invoke("release_name", &inv).await.map(|_| ())
    }

    /// Every queue of the account, oldest first, in two round trips.
    pub async fn list_queues(&self, account: &AccountId) -> Result<Vec<Queue>, StoreError> {
        let mut conn = self.conn.clone();
        let names: HashMap<String, String> = self
            .run(
                redis::cmd("HGETALL")
                    .arg(self.keys.account_queues(account))
                    .query_async(&mut conn),
            )
            .await?;
        let entries: Vec<(String, QueueId)> = names
            .into_iter()
            .filter_map(|(name, id)| QueueId::parse(&id).map(|id| (name, id)))
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, id) in &entries {
            pipe.cmd("HGETALL").arg(self.keys.queue(*id).meta);
        }
        let metas: Vec<HashMap<String, String>> = self.run(pipe.query_async(&mut conn)).await?;
        let mut queues = Vec::with_capacity(entries.len());
        for ((name, id), fields) in entries.into_iter().zip(metas) {
            // Skip names left behind by an interrupted delete or rename.
            if fields.get("account").map(String::as_str) != Some(account.as_str())
                || fields.get("name") != Some(&name)
            {
                continue;
            }
            queues.push(codec::decode_queue(id, &fields)?);
        }
        queues.sort_by_key(|q| q.id);
        Ok(queues)
    }

    pub async fn get_queue(
        &self,
        account: &AccountId,
        id: QueueId,
    ) -> Result<Option<Queue>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = self
            .run(
                redis::cmd("HGETALL")
                    .arg(self.keys.queue(id).meta)
                    .query_async(&mut conn),
            )
            .await?;
        if fields.get("account").map(String::as_str) != Some(account.as_str()) {
            return Ok(None);
        }
        Ok(Some(codec::decode_queue(id, &fields)?))
    }

    /// Renames (when `name` differs) and rewrites the settings.
    pub async fn update_queue(
        &self,
        current: &Queue,
        name: &QueueName,
        settings: &QueueSettings,
        now_ms: u64,
    ) -> Result<UpdateQueue, StoreError> {
        let renaming = *name != current.name;
        // A rename holds both names for a moment: not a new queue, so no limit.
        if renaming
            && self
                .claim_name(&current.account, name, current.id, 0)
                .await?
                != Claim::Claimed
        {
            return Ok(UpdateQueue::NameTaken);
        }
        let keys = self.keys.queue(current.id);
        let mut inv = self.scripts.update_queue.prepare_invoke();
        inv.key(&keys.meta).arg(current.account.as_str());
        if renaming {
            inv.arg("name").arg(name.as_str());
        }
        for (field, value) in codec::settings_fields(settings, now_ms) {
            inv.arg(field).arg(value);
        }
        let reply = self.invoke("update_queue", &inv).await?;
        let Some(fields) = status_then_fields(reply)? else {
            return Ok(UpdateQueue::NotFound);
        };
        if renaming {
            self.release_name(&current.account, &current.name, current.id)
                .await?;
        }
        Ok(UpdateQueue::Updated(codec::decode_queue(
            current.id, &fields,
        )?))
    }

    /// Deletes the queue and all its messages. `false`: no such queue.
    pub async fn delete_queue(&self, access: &Access, id: QueueId) -> Result<bool, StoreError> {
        let keys = self.keys.queue(id);
        let mut inv = self.scripts.delete_queue.prepare_invoke();
        for key in keys.all() {
            inv.key(key);
        }
        inv.arg(access.script_arg());
        let reply = array(self.invoke("delete_queue", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(false);
        }
        let name = reply.get(1).map(text).transpose()?.unwrap_or_default();
        if let Some(name) = QueueName::parse(&name) {
            self.release_name(&access.account, &name, id).await?;
        }
        Ok(true)
    }

    // ---- consumers ---------------------------------------------------------------

    /// Creates (`replace = false`) or creates-or-replaces the queue's consumer.
    /// `consumer.created_ms` is the time of this write; a replaced consumer keeps its own.
    pub async fn write_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        consumer: &Consumer,
        replace: bool,
    ) -> Result<ConsumerWrite, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.consumer_upsert.prepare_invoke();
        inv.key(&keys.meta)
            .arg(access.script_arg())
            .arg(if replace { "replace" } else { "create" })
            .arg(consumer.id.to_string())
            .arg(consumer.created_ms);
        for (field, value) in
            codec::consumer_fields(consumer.dead_letter_queue.as_ref(), &consumer.settings)
        {
            inv.arg(field).arg(value);
        }
        let reply = array(self.invoke("consumer_upsert", &inv).await?)?;
        match int(first(&reply)?)? {
            1 => {
                let fields = pairs(&reply[1..])?;
                Ok(ConsumerWrite::Written(codec::decode_queue(queue, &fields)?))
            }
            2 => Ok(ConsumerWrite::OtherConsumerExists),
            _ => Ok(ConsumerWrite::QueueNotFound),
        }
    }

    /// `None`: no such queue; `Some(false)`: no such consumer.
    pub async fn delete_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        consumer: ConsumerId,
        now_ms: u64,
    ) -> Result<Option<bool>, StoreError> {
        let mut inv = self.scripts.consumer_delete.prepare_invoke();
        inv.key(self.keys.queue(queue).meta)
            .arg(access.script_arg())
            .arg(consumer.to_string())
            .arg(now_ms);
        match int(&self.invoke("consumer_delete", &inv).await?)? {
            1 => Ok(Some(true)),
            0 => Ok(Some(false)),
            _ => Ok(None),
        }
    }

    // ---- messages ----------------------------------------------------------------

    /// Stores all messages in one atomic step. `None`: no such queue.
    pub async fn push(
        &self,
        access: &Access,
        queue: QueueId,
        messages: &[NewMessage],
        quota: BacklogQuota,
        now_ms: u64,
    ) -> Result<PushReply, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.push.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg())
            .arg(now_ms)
            .arg(quota.messages)
            .arg(quota.bytes);
        for message in messages {
            let delay = message
                .delay_ms
                .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
            inv.arg(MessageId::generate().to_string())
                .arg(delay)
                .arg(message.body.len())
                .arg(codec::encode_record(
                    message.content_type,
                    now_ms,
                    &message.body,
                ))
                .arg(message.dedup_id.as_deref().unwrap_or(""));
        }
        let reply = array(self.invoke("push", &inv).await?)?;
        Ok(match int(first(&reply)?)? {
            1 => PushReply::Pushed(backlog(&reply)?),
            BACKLOG_FULL => PushReply::BacklogFull(BacklogQuota {
                messages: count(&reply, 1)?,
                bytes: count(&reply, 2)?,
            }),
            _ => PushReply::QueueNotFound,
        })
    }

    /// Leases up to `batch_size` visible messages. `None`: no such queue.
    pub async fn pull(
        &self,
        access: &Access,
        queue: QueueId,
        batch_size: Option<u32>,
        visibility_timeout_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<PullReply, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.pull.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg())
            .arg(now_ms)
            .arg(batch_size.unwrap_or(0))
            .arg(visibility_timeout_ms.unwrap_or(0))
            .arg(self.reveal_batch)
            .arg(self.reply_bytes);
        let reply = array(self.invoke("pull", &inv).await?)?;
        match int(first(&reply)?)? {
            1 => Ok(PullReply::Pulled(decode_pulled(&reply)?)),
            -2 => Ok(PullReply::DeliveryPaused),
            _ => Ok(PullReply::QueueNotFound),
        }
    }

    /// Reads up to `batch_size` visible messages without leasing them.
    pub async fn peek(
        &self,
        access: &Access,
        queue: QueueId,
        batch_size: Option<u32>,
        now_ms: u64,
    ) -> Result<Option<Pulled>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.peek.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg())
            .arg(now_ms)
            .arg(batch_size.unwrap_or(0))
            .arg(self.reveal_batch)
            .arg(self.reply_bytes);
        let reply = array(self.invoke("peek", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        decode_pulled(&reply).map(Some).map_err(StoreError::from)
    }

    /// Acks and retries in one atomic step. `None`: no such queue. Otherwise, whether
    /// each ack deleted a message, and the outcome of each retry, in order.
    pub async fn ack(
        &self,
        access: &Access,
        queue: QueueId,
        acks: &[(MessageId, u64)],
        retries: &[(MessageId, u64, Option<u32>)],
        now_ms: u64,
    ) -> Result<Option<Acked>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.ack.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg()).arg(now_ms).arg(acks.len());
        for (id, generation) in acks {
            inv.arg(id.to_string()).arg(*generation);
        }
        for (id, generation, delay) in retries {
            inv.arg(id.to_string())
                .arg(*generation)
                .arg(delay.map_or(-1, i64::from));
        }
        let reply = array(self.invoke("ack", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        let buried = count(&reply, 1)?;
        let statuses = reply[2..].iter().map(int).collect::<Result<Vec<_>, _>>()?;
        if statuses.len() != acks.len() + retries.len() {
            return Err(
                CorruptData("ack script returned the wrong number of statuses".into()).into(),
            );
        }
        let (ack_statuses, retry_statuses) = statuses.split_at(acks.len());
        let acked = ack_statuses
            .iter()
            .map(|&s| LeaseOutcome::from_status(s))
            .collect();
        let retried = retry_statuses
            .iter()
            .map(|&s| LeaseOutcome::from_status(s))
            .collect();
        Ok(Some(Acked {
            acked,
            retried,
            buried,
        }))
    }

    /// Extends current leases, `(id, generation, timeout_ms)` each. `None`: no such
    /// queue; else the outcome of each, in order (`Retried` meaning extended).
    pub async fn extend(
        &self,
        access: &Access,
        queue: QueueId,
        leases: &[(MessageId, u64, Option<u64>)],
        now_ms: u64,
    ) -> Result<Option<Vec<LeaseOutcome>>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.extend.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg()).arg(now_ms);
        for (id, generation, timeout) in leases {
            inv.arg(id.to_string())
                .arg(*generation)
                .arg(timeout.unwrap_or(0));
        }
        let reply = array(self.invoke("extend", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        reply[1..]
            .iter()
            .map(|v| Ok(LeaseOutcome::from_status(int(v)?)))
            .collect::<Result<Vec<_>, CorruptData>>()
            .map(Some)
            .map_err(StoreError::from)
    }

    /// Every queue's figures for a metrics scrape, in pipelines of a few hundred queues.
    pub async fn queue_stats(&self) -> Result<Vec<crate::metrics::QueueStats>, StoreError> {
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
        let mut conn = self.conn.clone();
        let ids: Vec<String> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(self.keys.sweep_schedule())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await?;
        let ids: Vec<QueueId> = ids.iter().filter_map(|id| QueueId::parse(id)).collect();
        let mut stats = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for id in chunk {
                let k = self.keys.queue(*id);
                pipe.cmd("HMGET").arg(&k.meta).arg(&FIELDS[..]);
                pipe.cmd("HLEN").arg(&k.msg);
                pipe.cmd("ZCARD").arg(&k.leased);
                pipe.cmd("ZCARD").arg(&k.delayed);
                pipe.cmd("ZRANGE")
                    .arg(&k.age)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES");
            }
            let replies: Vec<Value> = self.run(pipe.query_async(&mut conn)).await?;
            for per_queue in replies.chunks_exact(5) {
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

    /// Schedules the queue's next retention sweep at `at_ms`.
    pub async fn schedule_sweep(&self, queue: QueueId, at_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("ZADD")
                .arg(self.keys.sweep_schedule())
                .arg(at_ms)
                .arg(queue.to_string())
                .query_async::<()>(&mut conn),
        )
        .await
    }

    pub async fn unschedule_sweep(&self, queue: QueueId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("ZREM")
                .arg(self.keys.sweep_schedule())
                .arg(queue.to_string())
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// Claims up to `max` queues due for a sweep, holding them for `hold_ms`.
    pub async fn claim_sweeps(
        &self,
        now_ms: u64,
        max: u32,
        hold_ms: u64,
    ) -> Result<Vec<QueueId>, StoreError> {
        let mut inv = self.scripts.sweep_claim.prepare_invoke();
        inv.key(self.keys.sweep_schedule())
            .arg(now_ms)
            .arg(max)
            .arg(hold_ms);
        let ids = array(self.invoke("sweep_claim", &inv).await?)?;
        Ok(ids
            .iter()
            .filter_map(|v| text(v).ok())
            .filter_map(|t| QueueId::parse(&t))
            .collect())
    }

    /// Deletes the queue's messages past retention. `None`: no such queue.
    pub async fn expire(
        &self,
        queue: QueueId,
        now_ms: u64,
        max_timestamps: u32,
        min_retention_secs: u64,
    ) -> Result<Option<Expired>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.expire.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(now_ms).arg(max_timestamps).arg(min_retention_secs);
        let reply = array(self.invoke("expire", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        let account = reply.get(1).map(text).transpose()?.unwrap_or_default();
        Ok(Some(Expired {
            account: AccountId::parse(&account)
                .ok_or_else(|| CorruptData(format!("queue {queue} account")))?,
            expired: count(&reply, 2)?,
            next_due_ms: count(&reply, 3)?,
            more_due: count(&reply, 4)? == 1,
            dead_outbox: count(&reply, 5)?,
        }))
    }

    /// One message and its state. `None`: no such queue; `Some(None)`: no such message.
    pub async fn message(
        &self,
        access: &Access,
        queue: QueueId,
        id: MessageId,
    ) -> Result<Option<Option<(StoredMessage, MessageState)>>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.message_get.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg()).arg(id.to_string());
        let reply = array(self.invoke("message_get", &inv).await?)?;
        match int(first(&reply)?)? {
            1 => {
                let message = codec::decode_record(
                    &id.to_string(),
                    bytes(reply.get(1).unwrap_or(&Value::Nil))?,
                )?;
                Ok(Some(Some((message, decode_state(&reply[2..])?))))
            }
            0 => Ok(Some(None)),
            _ => Ok(None),
        }
    }

    /// Deletes one message whatever its state. `None`: no such queue; else whether it existed.
    pub async fn delete_message(
        &self,
        access: &Access,
        queue: QueueId,
        id: MessageId,
    ) -> Result<Option<bool>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.message_delete.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg()).arg(id.to_string());
        let reply = array(self.invoke("message_delete", &inv).await?)?;
        match int(first(&reply)?)? {
            1 => Ok(Some(true)),
            0 => Ok(Some(false)),
            _ => Ok(None),
        }
    }

    /// A page of messages from `cursor` ("0" to start). `None`: no such queue; else the
    /// messages and the next cursor ("0" at the end).
    pub async fn list_messages(
        &self,
        access: &Access,
        queue: QueueId,
        cursor: &str,
        per_page: u32,
    ) -> Result<Option<(Vec<(StoredMessage, MessageState)>, String)>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.message_list.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg())
            .arg(cursor)
            .arg(per_page)
            .arg(self.reply_bytes);
        let reply = array(self.invoke("message_list", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        let next = reply
            .get(1)
            .map(text)
            .transpose()?
            .unwrap_or_else(|| "0".into());
        let messages = reply
            .get(2..)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|m| {
                Ok((
                    codec::decode_record(&text(&m[0])?, bytes(&m[1])?)?,
                    decode_state(&m[2..])?,
                ))
            })
            .collect::<Result<Vec<_>, CorruptData>>()?;
        Ok(Some((messages, next)))
    }

    /// Deletes every message of the queue. `None`: no such queue; else how many.
    pub async fn purge(
        &self,
        access: &Access,
        queue: QueueId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.purge.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg()).arg(now_ms);
        let reply = array(self.invoke("purge", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        Ok(Some(count(&reply, 1)?))
    }

    /// Up to `max` dead letters waiting in the queue's outbox. `None`: no such queue.
    pub async fn dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
        max: u32,
    ) -> Result<Option<DeadLetters>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.dead_outbox.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg()).arg(max).arg(self.reply_bytes);
        let reply = array(self.invoke("dead_outbox", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        let name = reply.get(1).map(text).transpose()?.unwrap_or_default();
        let more = count(&reply, 2)? == 1;
        let entries = reply[3..]
            .chunks_exact(2)
            .map(|pair| Ok((text(&pair[0])?, bytes(&pair[1])?.to_vec())))
            .collect::<Result<Vec<_>, CorruptData>>()?;
        Ok(Some(DeadLetters {
            dead_letter_queue: QueueName::parse(&name),
            entries,
            more,
        }))
    }

    /// Stores messages moved from queue `from` into `queue` (dead letters into the
    /// dead-letter queue, or a redrive back), skipping ids it already holds; `from` is
    /// remembered for a later redrive when given. `None`: no such queue; else how many
    /// were new.
    pub async fn receive_moved(
        &self,
        access: &Access,
        queue: QueueId,
        from: Option<QueueId>,
        entries: &[(String, Vec<u8>)],
    ) -> Result<Option<u64>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.dead_receive.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg())
            .arg(from.map(|q| q.to_string()).unwrap_or_default());
        for (id, record) in entries {
            inv.arg(id).arg(record);
        }
        let reply = array(self.invoke("dead_receive", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        Ok(Some(count(&reply, 1)?))
    }

    /// Up to `max` messages of this dead-letter queue that came from another queue
    /// (only from `source` when given): `(id, record, source)`. `None`: no such queue.
    pub async fn redrivable(
        &self,
        access: &Access,
        queue: QueueId,
        source: Option<QueueId>,
        max: u32,
    ) -> Result<Option<Vec<(String, Vec<u8>, QueueId)>>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.redrive_take.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg())
            .arg(source.map(|q| q.to_string()).unwrap_or_default())
            .arg(max)
            .arg(self.reply_bytes);
        let reply = array(self.invoke("redrive_take", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        let entries = reply[1..]
            .chunks_exact(3)
            .filter_map(|e| {
                let source = text(&e[2]).ok().and_then(|s| QueueId::parse(&s))?;
                Some(Ok((text(&e[0]).ok()?, bytes(&e[1]).ok()?.to_vec(), source)))
            })
            .collect::<Result<Vec<_>, CorruptData>>()?;
        Ok(Some(entries))
    }

    /// Deletes redriven messages from the dead-letter queue; returns how many it held.
    pub async fn release_redriven(
        &self,
        access: &Access,
        queue: QueueId,
        ids: &[&str],
    ) -> Result<u64, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.redrive_release.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg());
        for id in ids {
            inv.arg(*id);
        }
        let reply = array(self.invoke("redrive_release", &inv).await?)?;
        Ok(count(&reply, 1)?)
    }

    /// Clears delivered dead letters from the queue's outbox.
    pub async fn forget_dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
        ids: &[&str],
    ) -> Result<(), StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.dead_forget.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg());
        for id in ids {
            inv.arg(*id);
        }
        self.invoke("dead_forget", &inv).await.map(|_| ())
    }

    /// The live queue holding `name` in the account, if any.
    pub async fn find_queue(
        &self,
        account: &AccountId,
        name: &QueueName,
    ) -> Result<Option<QueueId>, StoreError> {
        let mut conn = self.conn.clone();
        let id: Option<String> = self
            .run(
                redis::cmd("HGET")
                    .arg(self.keys.account_queues(account))
                    .arg(name.as_str())
                    .query_async(&mut conn),
            )
            .await?;
        let Some(id) = id.as_deref().and_then(QueueId::parse) else {
            return Ok(None);
        };
        Ok(self
            .get_queue(account, id)
            .await?
            .filter(|q| q.name == *name)
            .map(|q| q.id))
    }

    /// Exact backlog figures. `None`: no such queue.
    pub async fn metrics(
        &self,
        access: &Access,
        queue: QueueId,
    ) -> Result<Option<BacklogMetrics>, StoreError> {
        let keys = self.keys.queue(queue);
        let mut inv = self.scripts.metrics.prepare_invoke();
        Self::message_keys(&mut inv, &keys);
        inv.arg(access.script_arg());
        let reply = array(self.invoke("metrics", &inv).await?)?;
        if int(first(&reply)?)? != 1 {
            return Ok(None);
        }
        Ok(Some(backlog(&reply)?))
    }
}

/// The outcome of [`Store::create_queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateQueue {
    Created,
    NameTaken,
    /// The account already holds as many queue names as it may.
    TooManyQueues,
}

/// The outcome of claiming a queue name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Claimed,
    Taken,
    AccountFull,
}

/// The outcome of [`Store::update_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateQueue {
    Updated(Queue),
    NotFound,
    NameTaken,
}

// ---- decoding script replies ---------------------------------------------------------

fn unexpected(what: &str, value: &Value) -> CorruptData {
    CorruptData(format!(
        "unexpected script reply, wanted {what}, got {value:?}"
    ))
}

fn array(value: Value) -> Result<Vec<Value>, CorruptData> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(unexpected("an array", &other)),
    }
}

fn first(values: &[Value]) -> Result<&Value, CorruptData> {
    values
        .first()
        .ok_or_else(|| CorruptData("empty script reply".into()))
}

fn int(value: &Value) -> Result<i64, CorruptData> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(unexpected("an integer", other)),
    }
}

fn bytes(value: &Value) -> Result<&[u8], CorruptData> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        other => Err(unexpected("a string", other)),
    }
}

fn text(value: &Value) -> Result<String, CorruptData> {
    String::from_utf8(bytes(value)?.to_vec()).map_err(|_| unexpected("UTF-8 text", value))
}

fn pairs(values: &[Value]) -> Result<HashMap<String, String>, CorruptData> {
    values
        .chunks_exact(2)
        .map(|pair| Ok((text(&pair[0])?, text(&pair[1])?)))
        .collect()
}

/// `{status, field1, value1, ...}` → the fields, or `None` when status is not 1.
fn status_then_fields(reply: Value) -> Result<Option<HashMap<String, String>>, CorruptData> {
    let reply = array(reply)?;
    if int(first(&reply)?)? != 1 {
        return Ok(None);
    }
    pairs(&reply[1..]).map(Some)
}

/// `{state, until_ms}` as the message scripts return it.
fn decode_state(values: &[Value]) -> Result<MessageState, CorruptData> {
    let until_ms = count(values, 1)?;
    match values.first().map(text).transpose()?.as_deref() {
        Some("leased") => Ok(MessageState::Leased { until_ms }),
        Some("delayed") => Ok(MessageState::Delayed { until_ms }),
        Some("ready") => Ok(MessageState::Ready),
        other => Err(CorruptData(format!("message state {other:?}"))),
    }
}

/// A non-negative integer at position `i` of a script reply.
fn count(reply: &[Value], i: usize) -> Result<u64, CorruptData> {
    let value = reply
        .get(i)
        .ok_or_else(|| CorruptData("script reply too short".into()))?;
    u64::try_from(int(value)?).map_err(|_| unexpected("a count", value))
}

/// `{1, count, bytes, oldest, buried, next_visible, id1, record1, ...}` of pull and peek.
fn decode_pulled(reply: &[Value]) -> Result<Pulled, CorruptData> {
    let backlog = backlog(reply)?;
    let buried = count(reply, 4)?;
    let next_visible_ms = Some(count(reply, 5)?).filter(|&ms| ms > 0);
    let messages = reply
        .get(6..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|pair| codec::decode_record(&text(&pair[0])?, bytes(&pair[1])?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pulled {
        messages,
        backlog,
        buried,
        next_visible_ms,
    })
}

/// Backlog figures at positions 1..=3 of a script reply.
fn backlog(reply: &[Value]) -> Result<BacklogMetrics, CorruptData> {
    let number = |i: usize| -> Result<u64, CorruptData> {
        let value = reply
            .get(i)
            .ok_or_else(|| CorruptData("script reply too short".into()))?;
        u64::try_from(int(value)?).map_err(|_| unexpected("a count", value))
    };
    Ok(BacklogMetrics {
        backlog_count: number(1)?,
        backlog_bytes: number(2)?,
        oldest_message_timestamp_ms: number(3)?,
    })
}
