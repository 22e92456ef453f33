//! Redis storage. One Lua script per API operation, whatever the batch size.
//!
//! Each script is one typed operation (`script.rs`: keys, arguments, reply, and the Lua
//! prelude generated from them); the operations live with their resource: `queues.rs`,
//! `messages.rs`, `dead_letters.rs`, `listeners.rs`, `sweep.rs`, and `stats.rs` for the
//! metrics scrape.
//!
//! # Key layout (layout 2)
//!
//! With `redis.key_prefix = P`, queue `Q` (32 hex) of account `A`:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P:{Q}:meta` | HASH | `account`, `name`, `created_ms`, `modified_ms`, `layout` (2), settings, `bytes` (sum of body sizes), `lease_seq` (last lease generation), counters, consumer `c_*` fields |
//! | `P:{Q}:msg` | HASH | message id → record `2<t\|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<body>` (see `codec.rs`) |
//! | `P:{Q}:due` | ZSET | every live message not leased → when (ms) it became or becomes visible: the visible ones are the head up to now, oldest visible first (ties by id, i.e. creation order); the rest are delayed |
//! | `P:{Q}:leased` | ZSET | every leased message → lease expiry (ms) |
//! | `P:{Q}:age` | ZSET | each distinct `timestamp_ms` of live messages, scored by itself: the oldest is its head |
//! | `P:{Q}:age_ids` | HASH | `timestamp_ms` → exactly the ids of the live messages carrying it, concatenated, so retention finds what expires |
//! | `P:{Q}:dead` | HASH | id → record: dead letters on their way to the dead-letter queue |
//! | `P:{Q}:dedup` | ZSET | dedup id → end of its window (ms) |
//! | `P:{Q}:origin` | HASH | id → the queue a dead letter came from, for redrive |
//! | `P:{Q}:listeners` | HASH | listener id → its record (JSON, `listeners.rs`) |
//! | `P:{Q}:refs` | HASH | id of a message a listener lane holds → how many lanes (pull lane included) still hold it |
//! | `P:{Q}:names` | HASH | id of a named message → its name (discue's `name`), deleted with the message |
//! | `P:{Q}:l:L:due` | ZSET | listener `L`'s lane: message id → when (ms) it is next due; a claimed one, when its claim lapses |
//! | `P:{Q}:l:L:att` | HASH | message id → listener `L`'s delivery attempts |
//! | `P:{Q}:l:L:log` | LIST | listener `L`'s latest delivery attempts (JSON), newest first |
//! | `P:{Q}:l:L:dead` | HASH | id → record: listener `L`'s dead letters on their way to its dead-letter queue |
//! | `P:sweep` | ZSET | queue id → when (ms) the retention sweep next needs to look at it (on a Cluster: `P:{s:N}:sweep`, 16 shards, see `keys::Schedule`) |
//! | `P:deliveries` | ZSET | `A/Q/L` → when (ms) listener `L`'s lane next needs a delivery worker (on a Cluster: `P:{s:N}:deliveries`) |
//! | `P:{a:A}:queues` | HASH | queue name → queue id |
//! | `P:layout` | STRING | `2` once every queue has been moved onto layout 2 (`migrate.rs`) |
//!
//! A live message is in `msg` and in the age bucket of its timestamp, and held by one or
//! more lanes: the pull lane (exactly one of `due` and `leased`) and, for a message
//! pushed while the queue had listeners, each listener's lane (`refs` counts its lanes;
//! a queue with listeners and no consumer has no pull lane). A lane that is done with a
//! message (ack, delivery, dead-lettering) lets go of it; the last one removes it, and
//! removing it (ack, delete, retention, purge, redrive) takes it out of every index in
//! the same script, so no id is ever indexed twice or left behind. `backlog_count` is `HLEN msg`, `backlog_bytes` is `meta.bytes`,
//! the oldest timestamp is the head of `age`. Expired leases go back to `due` inside
//! the pull script, a bounded number per call, so reclaiming costs O(expired); delayed
//! messages need no promotion at all. Layout 1 (before this version) kept ready ids on
//! a LIST and delayed ids apart; `migrate.rs` moves such queues on start-up.

mod codec;
mod connection;
mod dead_letters;
mod keys;
mod listeners;
mod messages;
mod migrate;
mod queues;
mod rate;
mod schedule;
mod script;
mod stats;
mod sweep;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::Value;

use connection::{Conn, Connection};

pub use codec::CorruptData;
pub use dead_letters::{DeadLetters, Redrivable};
use keys::Keys;
pub use listeners::{
    Claimed, DELIVERY_LOG, DeliveryClaim, LaneRef, ListenerCreate, ListenerRead, ListenerWrite,
    Settled, Settlement,
};
pub use messages::{Acked, BacklogQuota, LeaseOutcome, MessageRead, PullReply, Pulled, PushReply};
pub use queues::{ConsumerWrite, CreateQueue, UpdateQueue};
pub use rate::RateSubject;
use script::{Op, Reply};
pub use sweep::Expired;
pub use wake::Wakeups;

use crate::model::QueueId;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Corrupt(#[from] CorruptData),
    #[error("only {acknowledged} of {wanted} replicas acknowledged the write in time")]
    NotReplicated { wanted: u32, acknowledged: i64 },
}

/// Connection settings for [`Store::connect`]. No `Debug`: the URL may hold a password.
#[derive(Clone)]
pub struct StoreOptions {
    pub url: String,
    /// Seed nodes of a Redis Cluster; when not empty, `url` is used for nothing else
    /// than wake-up subscriptions' fallback, and every call goes to the Cluster.
    pub cluster_nodes: Vec<String>,
    pub key_prefix: String,
    /// Deadline for every Redis call, connecting included.
    pub timeout: Duration,
    /// Most delayed messages, and most expired leases, made visible per pull.
    pub reveal_batch: u32,
    /// Most message-record bytes one script reply carries (pull, peek, list, dead-letter
    /// and redrive moves); at least one message always fits.
    pub reply_bytes: usize,
    /// Replicas every script call's writes must reach before it answers (`WAIT`); 0:
    /// none.
    pub wait_replicas: u32,
}

#[derive(Clone)]
pub struct Store {
    metrics: Option<Arc<crate::metrics::Metrics>>,
    conn: Connection,
    /// The nodes to subscribe to for wake-ups, one at a time (a Cluster's `PUBLISH`
    /// reaches every node): `redis.url`, or the Cluster's seed nodes in turn.
    pubsub: Vec<redis::Client>,
    keys: Keys,
    timeout: Duration,
    reveal_batch: u32,
    reply_bytes: usize,
    wait_replicas: u32,
    /// Where the next lane claim starts among the schedule shards (`claim_lanes`).
    lane_cursor: Arc<std::sync::atomic::AtomicUsize>,
}

impl Store {
    /// Connects lazily: the broker starts even while Redis is down, and answers 503
    /// until Redis comes back.
    pub fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        let (conn, pubsub) = if options.cluster_nodes.is_empty() {
            (
                Connection::single(&options.url, options.timeout)?,
                vec![redis::Client::open(options.url.as_str())?],
            )
        } else {
            let seeds = options
                .cluster_nodes
                .iter()
                .map(|node| redis::Client::open(node.as_str()))
                .collect::<Result<_, _>>()?;
            (
                Connection::cluster(&options.cluster_nodes, options.timeout)?,
                seeds,
            )
        };
        Ok(Self {
            metrics: None,
            conn,
            pubsub,
            keys: if options.cluster_nodes.is_empty() {
                Keys::new(&options.key_prefix)
            } else {
                Keys::new(&options.key_prefix).sharded_schedules(keys::CLUSTER_SCHEDULE_SHARDS)
            },
            timeout: options.timeout,
            reveal_batch: options.reveal_batch,
            reply_bytes: options.reply_bytes,
            wait_replicas: options.wait_replicas,
            lane_cursor: Arc::default(),
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
        tokio::spawn(wakeups.listen(self.pubsub.clone(), self.keys.prefix().to_owned()));
    }

    /// This store with a connection of its own, driven by the caller's runtime.
    ///
    /// Each HTTP worker runs its own single-threaded runtime; a connection driven there
    /// spares every Redis call two hops to another thread and back.
    pub fn with_own_connection(&self) -> Self {
        Self {
            conn: self.conn.own(),
            ..self.clone()
        }
    }

    /// A handle for one call, within the deadline (a Cluster connects on first use).
    async fn conn(&self) -> Result<Conn, StoreError> {
        self.run(self.conn.get()).await
    }

    /// Runs one Redis call within the deadline, counting failures.
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

    /// One plain command, for what needs no script.
    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn().await?;
        self.run(cmd.query_async(&mut conn)).await
    }

    /// Runs groups of commands, each group on one slot's keys, and returns each group's
    /// replies in order. On one node they go out as one pipeline; a Cluster takes one
    /// pipeline per group (a pipeline may not span slots), several at a time.
    async fn query_groups(
        &self,
        groups: Vec<Vec<redis::Cmd>>,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let conn = self.conn().await?;
        if !self.conn.is_cluster() {
            let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
            let mut pipe = redis::pipe();
            for cmd in groups.into_iter().flatten() {
                pipe.add_command(cmd);
            }
            let mut conn = conn;
            let mut replies: Vec<Value> = self.run(pipe.query_async(&mut conn)).await?;
            let mut out = Vec::with_capacity(sizes.len());
            for size in sizes {
                let rest = replies.split_off(size.min(replies.len()));
                out.push(std::mem::replace(&mut replies, rest));
            }
            return Ok(out);
        }
        futures_util::stream::iter(groups)
            .map(|group| {
                let mut conn = conn.clone();
                async move {
                    let mut pipe = redis::pipe();
                    for cmd in group {
                        pipe.add_command(cmd);
                    }
                    self.run(pipe.query_async::<Vec<Value>>(&mut conn)).await
                }
            })
            .buffered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Runs the script of `op`, timed under its name, and decodes its reply: the one
    /// shape of every script call.
    async fn call<O: Op>(&self, op: O) -> Result<O::Output, StoreError> {
        let mut invocation = O::script().prepare_invoke();
        let keys = op.keys(&self.keys);
        for key in &keys {
            invocation.key(key);
        }
        op.args(&mut invocation);
        let mut conn = self.conn().await?;
        let started = std::time::Instant::now();
        let result = self.run(invocation.invoke_async::<Value>(&mut conn)).await;
        if let Some(metrics) = &self.metrics {
            metrics.observe_script(O::NAME, started.elapsed());
        }
        let reply = result?;
        if O::WRITES
            && self.wait_replicas > 0
            && let Some(key) = keys.first()
        {
            // Half the deadline for the replicas, so a missing one is a prompt 503 (at
            // least 1 ms: WAIT's 0 would mean no limit).
            let timeout_ms = u64::try_from(self.timeout.as_millis() / 2)
                .unwrap_or(500)
                .max(1);
            let acknowledged = self
                .run(conn.wait(key, self.wait_replicas, timeout_ms))
                .await?;
            if acknowledged < i64::from(self.wait_replicas) {
                return Err(StoreError::NotReplicated {
                    wanted: self.wait_replicas,
                    acknowledged,
                });
            }
        }
        Ok(op.decode(Reply::new(reply)?)?)
    }

    /// The Redis keys of one queue by role (`meta`, `msg`, …), for diagnostics.
    pub fn queue_key_names(&self, queue: QueueId) -> Vec<(&'static str, String)> {
        let keys = self.keys.queue(queue);
        keys::Role::ALL
            .iter()
            .map(|role| (role.name(), keys[*role].to_owned()))
            .collect()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.command::<String>(&redis::cmd("PING"))
            .await
            .map(|_| ())
    }
}
