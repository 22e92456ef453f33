//! Messages: push, pull, peek, ack and retry, extend, and the per-message extensions.

use redis::{ScriptInvocation, Value};

use super::codec::{self, CorruptData};
use super::keys::Keys;
use super::script::{KeySet, Op, Reply, access_arg, bytes, code, lua_script, text};
use super::{Store, StoreError};
use crate::model::{
    Access, BacklogMetrics, ListenerId, MessageId, MessageState, NewMessage, QueueId, QueueMetrics,
    StoredMessage,
};

/// What a pull (or peek) found.
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

/// What a pull got.
#[derive(Debug, Clone)]
pub enum PullReply {
    Pulled(Pulled),
    QueueNotFound,
    DeliveryPaused,
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
    Pushed {
        backlog: BacklogMetrics,
        /// The listeners whose lanes received the messages.
        listeners: Vec<ListenerId>,
        /// The messages' ids, in order (a repeat of a dedup id was not stored again: its
        /// id names no message).
        ids: Vec<MessageId>,
    },
    QueueNotFound,
    /// Nothing was stored: the new messages would pass this quota.
    BacklogFull(BacklogQuota),
}

/// One message as read without leasing it.
#[derive(Debug, Clone)]
pub struct MessageRead {
    pub message: StoredMessage,
    pub state: MessageState,
    /// Its name, when it was pushed with one.
    pub name: Option<String>,
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
    fn decode(value: &Value) -> Result<Self, CorruptData> {
        Ok(match super::script::int(value)? {
            code::OK => LeaseOutcome::Applied,
            code::NOT_CURRENT => LeaseOutcome::LeaseNotCurrent,
            _ => LeaseOutcome::NoSuchMessage,
        })
    }
}

/// `{OK, count, bytes, oldest, buried, next_visible, id1, record1, …}` of pull and peek.
fn decode_pulled(reply: &Reply) -> Result<Pulled, CorruptData> {
    let messages = reply
        .rest(6)
        .chunks_exact(2)
        .map(|pair| codec::decode_record(&text(&pair[0])?, bytes(&pair[1])?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pulled {
        messages,
        backlog: reply.backlog(1)?,
        buried: reply.count(4)?,
        next_visible_ms: Some(reply.count(5)?).filter(|&ms| ms > 0),
    })
}

/// `{state, until_ms}` as the message scripts return it.
fn decode_state(values: &[Value]) -> Result<MessageState, CorruptData> {
    let until_ms = match values.get(1) {
        Some(value) => u64::try_from(super::script::int(value)?)
            .map_err(|_| CorruptData("negative until_ms".into()))?,
        None => 0,
    };
    match values.first().map(text).transpose()?.as_deref() {
        Some("leased") => Ok(MessageState::Leased { until_ms }),
        Some("delayed") => Ok(MessageState::Delayed { until_ms }),
        Some("ready") => Ok(MessageState::Ready),
        other => Err(CorruptData(format!("message state {other:?}"))),
    }
}

struct Push<'a> {
    access: &'a Access,
    queue: QueueId,
    messages: &'a [NewMessage],
    /// One per message, made here so the caller learns them.
    ids: Vec<MessageId>,
    quota: BacklogQuota,
    now_ms: u64,
}

impl Op for Push<'_> {
    lua_script!("push", KeySet::Queue);
    type Output = PushReply;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.now_ms)
            .arg(self.quota.messages)
            .arg(self.quota.bytes);
        for (message, id) in self.messages.iter().zip(&self.ids) {
            let delay = message
                .delay_ms
                .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
            invocation
                .arg(id.to_string())
                .arg(delay)
                .arg(message.body.len())
                .arg(codec::encode_record(
                    message.content_type,
                    self.now_ms,
                    message.group_id.as_ref(),
                    &message.body,
                ))
                .arg(message.dedup_id.as_deref().unwrap_or(""))
                .arg(message.name.as_deref().unwrap_or(""))
                .arg(message.group_id.as_ref().map_or("", |g| g.as_str()));
        }
    }

    fn decode(&self, reply: Reply) -> Result<PushReply, CorruptData> {
        Ok(match reply.code()? {
            code::OK => PushReply::Pushed {
                backlog: reply.backlog(1)?,
                listeners: reply
                    .rest(4)
                    .iter()
                    .map(|v| {
                        text(v).and_then(|t| {
                            ListenerId::parse(&t)
                                .ok_or_else(|| CorruptData("listener id in push reply".into()))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                ids: self.ids.clone(),
            },
            code::BACKLOG_FULL => PushReply::BacklogFull(BacklogQuota {
                messages: reply.count(1)?,
                bytes: reply.count(2)?,
            }),
            _ => PushReply::QueueNotFound,
        })
    }
}

struct Pull<'a> {
    access: &'a Access,
    queue: QueueId,
    batch_size: Option<u32>,
    visibility_timeout_ms: Option<u64>,
    /// How long the caller waits if nothing is visible (long polling).
    wait_ms: u64,
    now_ms: u64,
    reveal_batch: u32,
    reply_bytes: usize,
}

impl Op for Pull<'_> {
    lua_script!("pull", KeySet::Queue);
    type Output = PullReply;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.now_ms)
            .arg(self.batch_size.unwrap_or(0))
            .arg(self.visibility_timeout_ms.unwrap_or(0))
            .arg(self.reveal_batch)
            .arg(self.reply_bytes)
            .arg(self.wait_ms);
    }

    fn decode(&self, reply: Reply) -> Result<PullReply, CorruptData> {
        Ok(match reply.code()? {
            code::OK => PullReply::Pulled(decode_pulled(&reply)?),
            code::PAUSED => PullReply::DeliveryPaused,
            _ => PullReply::QueueNotFound,
        })
    }
}

struct Peek<'a> {
    access: &'a Access,
    queue: QueueId,
    batch_size: Option<u32>,
    now_ms: u64,
    reveal_batch: u32,
    reply_bytes: usize,
}

impl Op for Peek<'_> {
    lua_script!("peek", KeySet::Queue);
    /// `None`: no such queue.
    type Output = Option<Pulled>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.now_ms)
            .arg(self.batch_size.unwrap_or(0))
            .arg(self.reveal_batch)
            .arg(self.reply_bytes);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        decode_pulled(&reply).map(Some)
    }
}

struct Ack<'a> {
    access: &'a Access,
    queue: QueueId,
    /// `(id, lease generation)`.
    acks: &'a [(MessageId, u64)],
    /// `(id, lease generation, delay_seconds)`.
    retries: &'a [(MessageId, u64, Option<u32>)],
    now_ms: u64,
}

impl Op for Ack<'_> {
    lua_script!("ack", KeySet::Queue);
    /// `None`: no such queue.
    type Output = Option<Acked>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.now_ms)
            .arg(self.acks.len());
        for (id, generation) in self.acks {
            invocation.arg(id.to_string()).arg(*generation);
        }
        for (id, generation, delay) in self.retries {
            invocation
                .arg(id.to_string())
                .arg(*generation)
                .arg(delay.map_or(-1, i64::from));
        }
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let statuses = reply
            .rest(2)
            .iter()
            .map(LeaseOutcome::decode)
            .collect::<Result<Vec<_>, _>>()?;
        if statuses.len() != self.acks.len() + self.retries.len() {
            return Err(CorruptData(
                "ack script returned the wrong number of statuses".into(),
            ));
        }
        let (acked, retried) = statuses.split_at(self.acks.len());
        Ok(Some(Acked {
            acked: acked.to_vec(),
            retried: retried.to_vec(),
            buried: reply.count(1)?,
        }))
    }
}

struct Extend<'a> {
    access: &'a Access,
    queue: QueueId,
    /// `(id, lease generation, visibility_timeout_ms)`.
    leases: &'a [(MessageId, u64, Option<u64>)],
    now_ms: u64,
}

impl Op for Extend<'_> {
    lua_script!("extend", KeySet::Queue);
    /// `None`: no such queue.
    type Output = Option<Vec<LeaseOutcome>>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access)).arg(self.now_ms);
        for (id, generation, timeout) in self.leases {
            invocation
                .arg(id.to_string())
                .arg(*generation)
                .arg(timeout.unwrap_or(0));
        }
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        reply
            .rest(1)
            .iter()
            .map(LeaseOutcome::decode)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

struct MessageGet<'a> {
    access: &'a Access,
    queue: QueueId,
    id: MessageId,
    now_ms: u64,
}

impl Op for MessageGet<'_> {
    lua_script!("message_get", KeySet::Queue);
    const WRITES: bool = false;
    /// `None`: no such queue; `Some(None)`: no such message.
    type Output = Option<Option<MessageRead>>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.id.to_string())
            .arg(self.now_ms);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        Ok(match reply.code()? {
            code::OK => {
                let message = codec::decode_record(&self.id.to_string(), bytes(reply.get(1)?)?)?;
                let name = reply.text(4)?;
                Some(Some(MessageRead {
                    message,
                    state: decode_state(reply.rest(2))?,
                    name: (!name.is_empty()).then_some(name),
                }))
            }
            code::ABSENT => Some(None),
            _ => None,
        })
    }
}

struct MessageDelete<'a> {
    access: &'a Access,
    queue: QueueId,
    ids: &'a [MessageId],
    now_ms: u64,
}

impl Op for MessageDelete<'_> {
    lua_script!("message_delete", KeySet::Queue);
    /// `None`: no such queue; else, per id, whether it named a message (now deleted).
    type Output = Option<Vec<bool>>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access)).arg(self.now_ms);
        for id in self.ids {
            invocation.arg(id.to_string());
        }
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        (1..=self.ids.len())
            .map(|i| Ok(reply.int(i)? == code::OK))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

struct MessageList<'a> {
    access: &'a Access,
    queue: QueueId,
    cursor: &'a str,
    per_page: u32,
    reply_bytes: usize,
    now_ms: u64,
}

impl Op for MessageList<'_> {
    lua_script!("message_list", KeySet::Queue);
    const WRITES: bool = false;
    /// `None`: no such queue; else the messages and the next cursor ("0" at the end).
    type Output = Option<(Vec<(StoredMessage, MessageState)>, String)>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.cursor)
            .arg(self.per_page)
            .arg(self.reply_bytes)
            .arg(self.now_ms);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let messages = reply
            .rest(2)
            .chunks_exact(4)
            .map(|m| {
                Ok((
                    codec::decode_record(&text(&m[0])?, bytes(&m[1])?)?,
                    decode_state(&m[2..])?,
                ))
            })
            .collect::<Result<Vec<_>, CorruptData>>()?;
        Ok(Some((messages, reply.text(1)?)))
    }
}

struct Purge<'a> {
    access: &'a Access,
    queue: QueueId,
    now_ms: u64,
}

impl Op for Purge<'_> {
    lua_script!("purge", KeySet::Queue);
    /// `None`: no such queue; else how many messages went.
    type Output = Option<u64>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access)).arg(self.now_ms);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        reply.count(1).map(Some)
    }
}

struct Backlog<'a> {
    access: &'a Access,
    queue: QueueId,
    now_ms: u64,
}

impl Op for Backlog<'_> {
    lua_script!("metrics", KeySet::Queue);
    const WRITES: bool = false;
    /// `None`: no such queue.
    type Output = Option<QueueMetrics>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access)).arg(self.now_ms);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let backlog = reply.backlog(1)?;
        Ok(Some(QueueMetrics {
            backlog_count: backlog.backlog_count,
            backlog_bytes: backlog.backlog_bytes,
            oldest_message_timestamp_ms: backlog.oldest_message_timestamp_ms,
            inflight_count: reply.count(4)?,
            delayed_count: reply.count(5)?,
            visible_group_count: reply.count(6)?,
            oldest_group_head_timestamp_ms: reply.count(7)?,
        }))
    }
}

impl Store {
    /// Stores all messages in one atomic step, unless they would pass `quota`.
    pub async fn push(
        &self,
        access: &Access,
        queue: QueueId,
        messages: &[NewMessage],
        quota: BacklogQuota,
        now_ms: u64,
    ) -> Result<PushReply, StoreError> {
        self.call(Push {
            access,
            queue,
            messages,
            ids: messages.iter().map(|_| MessageId::generate()).collect(),
            quota,
            now_ms,
        })
        .await
    }

    /// Leases up to `batch_size` visible messages. `wait_ms`: how long the caller will
    /// wait for a push when none is visible (0: it will not), so pushes meanwhile wake it.
    pub async fn pull(
        &self,
        access: &Access,
        queue: QueueId,
        batch_size: Option<u32>,
        visibility_timeout_ms: Option<u64>,
        wait_ms: u64,
        now_ms: u64,
    ) -> Result<PullReply, StoreError> {
        self.call(Pull {
            access,
            queue,
            batch_size,
            visibility_timeout_ms,
            wait_ms,
            now_ms,
            reveal_batch: self.reveal_batch,
            reply_bytes: self.reply_bytes,
        })
        .await
    }

    /// Reads up to `batch_size` visible messages without leasing them. `None`: no such
    /// queue.
    pub async fn peek(
        &self,
        access: &Access,
        queue: QueueId,
        batch_size: Option<u32>,
        now_ms: u64,
    ) -> Result<Option<Pulled>, StoreError> {
        self.call(Peek {
            access,
            queue,
            batch_size,
            now_ms,
            reveal_batch: self.reveal_batch,
            reply_bytes: self.reply_bytes,
        })
        .await
    }

    /// Acks and retries in one atomic step. `None`: no such queue. Otherwise the outcome
    /// of each ack and of each retry, in order.
    pub async fn ack(
        &self,
        access: &Access,
        queue: QueueId,
        acks: &[(MessageId, u64)],
        retries: &[(MessageId, u64, Option<u32>)],
        now_ms: u64,
    ) -> Result<Option<Acked>, StoreError> {
        self.call(Ack {
            access,
            queue,
            acks,
            retries,
            now_ms,
        })
        .await
    }

    /// Extends current leases, `(id, generation, timeout_ms)` each. `None`: no such
    /// queue; else the outcome of each, in order.
    pub async fn extend(
        &self,
        access: &Access,
        queue: QueueId,
        leases: &[(MessageId, u64, Option<u64>)],
        now_ms: u64,
    ) -> Result<Option<Vec<LeaseOutcome>>, StoreError> {
        self.call(Extend {
            access,
            queue,
            leases,
            now_ms,
        })
        .await
    }

    /// One message and its state. `None`: no such queue; `Some(None)`: no such message.
    pub async fn message(
        &self,
        access: &Access,
        queue: QueueId,
        id: MessageId,
        now_ms: u64,
    ) -> Result<Option<Option<MessageRead>>, StoreError> {
        self.call(MessageGet {
            access,
            queue,
            id,
            now_ms,
        })
        .await
    }

    /// Deletes one message whatever its state. `None`: no such queue; else whether it
    /// existed.
    /// Deletes messages whatever their state. `None`: no such queue; else, per id,
    /// whether it named a message.
    pub async fn delete_messages(
        &self,
        access: &Access,
        queue: QueueId,
        ids: &[MessageId],
        now_ms: u64,
    ) -> Result<Option<Vec<bool>>, StoreError> {
        self.call(MessageDelete {
            access,
            queue,
            ids,
            now_ms,
        })
        .await
    }

    /// A page of messages from `cursor` ("0" to start). `None`: no such queue; else the
    /// messages and the next cursor ("0" at the end).
    pub async fn list_messages(
        &self,
        access: &Access,
        queue: QueueId,
        cursor: &str,
        per_page: u32,
        now_ms: u64,
    ) -> Result<Option<(Vec<(StoredMessage, MessageState)>, String)>, StoreError> {
        self.call(MessageList {
            access,
            queue,
            cursor,
            per_page,
            reply_bytes: self.reply_bytes,
            now_ms,
        })
        .await
    }

    /// Deletes every message of the queue. `None`: no such queue; else how many.
    pub async fn purge(
        &self,
        access: &Access,
        queue: QueueId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.call(Purge {
            access,
            queue,
            now_ms,
        })
        .await
    }

    /// Exact backlog figures. `None`: no such queue.
    pub async fn metrics(
        &self,
        access: &Access,
        queue: QueueId,
        now_ms: u64,
    ) -> Result<Option<QueueMetrics>, StoreError> {
        self.call(Backlog {
            access,
            queue,
            now_ms,
        })
        .await
    }
}
