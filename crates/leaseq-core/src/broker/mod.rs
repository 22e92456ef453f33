//! The domain: what each operation means. No HTTP here, and no Redis types.

pub mod command;
pub mod error;
pub mod lease;
pub mod limits;
pub mod listeners;
pub mod long_poll;
pub mod rate_limit;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::instrument;

use command::{Acks, ConsumerSpec, Extensions, NewQueue, Pull, QueueChange, Redrive};
pub use error::BrokerError;
use lease::{Lease, LeaseSigner};
pub use limits::Limits;
use long_poll::LongPolls;
use rate_limit::RateLimitSettings;

use crate::model::{
    Access, AccountId, BacklogMetrics, Clock, Consumer, ConsumerId, MessageId, MessageState,
    NewMessage, Queue, QueueId, QueueMetrics, QueueName, QueueSettings, StoredMessage, SystemClock,
};
use crate::store::{
    Acked, BacklogQuota, ConsumerWrite, CreateQueue, LaneRef, LeaseOutcome, MessageRead, PullReply,
    PushReply, RateSubject, Store, StoreError, UpdateQueue, Wakeups,
};

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(c) => BrokerError::Internal(c.to_string()),
            other => BrokerError::Unavailable(Box::new(other)),
        }
    }
}

/// A delivered message and the lease that must accompany its ack.
#[derive(Debug, Clone)]
pub struct LeasedMessage {
    pub message: StoredMessage,
    pub lease_id: String,
}

#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub messages: Vec<LeasedMessage>,
    pub backlog: BacklogMetrics,
}

/// What a push stored.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub backlog: BacklogMetrics,
    /// The messages' ids, in the order pushed.
    pub ids: Vec<MessageId>,
}

#[derive(Debug, Clone)]
pub struct PeekOutcome {
    /// Each message with its ref, which `purge_messages` takes.
    pub messages: Vec<(StoredMessage, String)>,
    pub backlog: BacklogMetrics,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckOutcome {
    pub ack_count: usize,
    pub retry_count: usize,
    /// Lease id → why it was not acted on.
    pub warnings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    pub purge_count: usize,
    /// Ref → why it deleted nothing.
    pub warnings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendOutcome {
    pub extend_count: usize,
    /// Lease id → why it was not extended.
    pub warnings: BTreeMap<String, String>,
}

const WARN_INVALID_LEASE: &str = "lease id is not valid for this queue";
const WARN_NO_MESSAGE: &str = "message not found: it was already acknowledged or deleted";
const WARN_NOT_CURRENT: &str =
    "lease is no longer current: it expired or the message was redelivered";

const WARN_INVALID_REF: &str = "ref is not valid for this queue";
const WARN_REF_GONE: &str =
    "message not found: it was already acknowledged, purged, deleted or expired";

const FORBIDDEN_QUEUE_NAME: &str = "the token does not grant this queue name";
const FORBIDDEN_DLQ_NAME: &str = "the token does not grant the dead_letter_queue named";

/// Counts an applied lease operation, or records why `lease_id` changed nothing.
fn tally(
    result: LeaseOutcome,
    lease_id: String,
    applied: &mut usize,
    warnings: &mut BTreeMap<String, String>,
) {
    let why = match result {
        LeaseOutcome::Applied => {
            *applied += 1;
            return;
        }
        LeaseOutcome::NoSuchMessage => WARN_NO_MESSAGE,
        LeaseOutcome::LeaseNotCurrent => WARN_NOT_CURRENT,
    };
    warnings.insert(lease_id, why.into());
}

#[derive(Clone)]
pub struct Broker {
    store: Store,
    leases: LeaseSigner,
    limits: Limits,
    wakeups: Arc<Wakeups>,
    long_polls: Arc<LongPolls>,
    clock: Arc<dyn Clock>,
    rate_limits: RateLimitSettings,
    /// Woken when a push in this process makes a listener's lane due.
    lanes_due: Arc<tokio::sync::Notify>,
}

impl Broker {
    pub fn new(store: Store, leases: LeaseSigner, limits: Limits) -> Self {
        let long_polls = LongPolls::new(limits.long_polls_per_queue, limits.long_polls_per_account);
        Self {
            store,
            leases,
            limits,
            wakeups: Arc::default(),
            long_polls: Arc::new(long_polls),
            clock: Arc::new(SystemClock),
            rate_limits: RateLimitSettings::default(),
            lanes_due: Arc::default(),
        }
    }

    /// This broker, enforcing `rate_limits` in Redis when they are shared.
    pub fn with_rate_limits(self, rate_limits: RateLimitSettings) -> Self {
        Self {
            rate_limits,
            ..self
        }
    }

    /// Whether requests must pass [`Broker::admit`].
    pub fn has_shared_rate_limits(&self) -> bool {
        self.rate_limits.shared && self.rate_limits.any()
    }

    /// Admits one request of `account` (naming `queue`, if any) under the rate limits
    /// shared by every broker process: the account's first, then the queue's.
    pub async fn admit(
        &self,
        account: &AccountId,
        queue: Option<QueueId>,
    ) -> Result<(), BrokerError> {
        let r = &self.rate_limits;
        let limits = [
            (
                r.account_per_sec,
                r.account_burst,
                Some(RateSubject::Account(account)),
            ),
            (
                r.queue_per_sec,
                r.queue_burst,
                queue.map(RateSubject::Queue),
            ),
        ];
        for (per_sec, burst, subject) in limits {
            let Some(subject) = subject.filter(|_| per_sec > 0.0) else {
                continue;
            };
            let burst = rate_limit::burst(per_sec, burst);
            if let Err(wait) = self.store.admit(subject, per_sec, burst).await? {
                return Err(BrokerError::RateLimited {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        Ok(())
    }

    /// This broker, reading the time from `clock`.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The broker's time, Unix ms: what requests naming an absolute time are read against.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The limits requests are checked against before they become commands.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts this process's listener for long-polling wake-ups.
    pub fn listen_for_wakeups(&self) {
        self.store.listen_for_wakeups(self.wakeups.clone());
    }

    /// This broker with a Redis connection of its own (see [`Store::with_own_connection`]).
    pub fn with_own_connection(&self) -> Self {
        Self {
            store: self.store.with_own_connection(),
            ..self.clone()
        }
    }

    /// Whether the storage answers within its deadline (readiness).
    pub async fn ping(&self) -> Result<(), BrokerError> {
        Ok(self.store.ping().await?)
    }

    /// Every queue's figures, for the metrics scrape.
    pub async fn queue_stats(&self) -> Result<Vec<crate::metrics::QueueStats>, BrokerError> {
        Ok(self.store.queue_stats(self.now_ms()).await?)
    }

    // ---- queues ------------------------------------------------------------------

    #[instrument(skip_all, fields(account = %access.account))]
    pub async fn create_queue(
        &self,
        access: &Access,
        new: &NewQueue,
    ) -> Result<Queue, BrokerError> {
        let name = new.name.clone();
        let settings = new.settings.apply(QueueSettings::default());
        if !access.allows(&name) {
            return Err(BrokerError::Forbidden(FORBIDDEN_QUEUE_NAME.into()));
        }
        let now = self.now_ms();
        let queue = Queue {
            id: QueueId::generate(),
            account: access.account.clone(),
            name,
            created_ms: now,
            modified_ms: now,
            settings,
            consumer: None,
            purged_ms: None,
            jurisdiction: new.jurisdiction,
        };
        let limit = self.limits.queues_per_account;
        match self.store.create_queue(&queue, limit).await? {
            CreateQueue::Created => {}
            CreateQueue::NameTaken => return Err(BrokerError::QueueNameTaken),
            CreateQueue::TooManyQueues => return Err(BrokerError::TooManyQueues { limit }),
        }
        // No message can expire before a retention period from now.
        let retention_ms = u64::from(queue.settings.message_retention_period) * 1000;
        self.store
            .schedule_sweep(queue.id, now + retention_ms)
            .await?;
        Ok(queue)
    }

    /// All queues of the account, oldest first; only those named when `names` is not empty.
    pub async fn list_queues(
        &self,
        access: &Access,
        names: &[String],
    ) -> Result<Vec<Queue>, BrokerError> {
        let mut queues = self.store.list_queues(&access.account).await?;
        queues.retain(|q| access.allows(&q.name));
        if !names.is_empty() {
            queues.retain(|q| names.iter().any(|n| n == q.name.as_str()));
        }
        Ok(queues)
    }

    /// The id of the account's queue named `name`, if the caller may reach it.
    pub async fn queue_named(
        &self,
        access: &Access,
        name: &QueueName,
    ) -> Result<QueueId, BrokerError> {
        if !access.allows(name) {
            return Err(BrokerError::QueueNotFound);
        }
        self.store
            .find_queue(&access.account, name)
            .await?
            .ok_or(BrokerError::QueueNotFound)
    }

    pub async fn get_queue(&self, access: &Access, queue: QueueId) -> Result<Queue, BrokerError> {
        // A queue the token may not reach does not exist for it.
        self.store
            .get_queue(&access.account, queue)
            .await?
            .filter(|q| access.allows(&q.name))
            .ok_or(BrokerError::QueueNotFound)
    }

    /// Renames the queue and replaces or updates its settings.
    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn update_queue(
        &self,
        access: &Access,
        queue: QueueId,
        change: &QueueChange,
    ) -> Result<Queue, BrokerError> {
        let current = self.get_queue(access, queue).await?;
        if change
            .jurisdiction
            .is_some_and(|j| Some(j) != current.jurisdiction)
        {
            return Err(BrokerError::schema(
                "jurisdiction is set when a queue is created and cannot change",
            ));
        }
        let name = change.name.clone().unwrap_or_else(|| current.name.clone());
        if !access.allows(&name) {
            return Err(BrokerError::Forbidden(FORBIDDEN_QUEUE_NAME.into()));
        }
        let base = if change.keep_unstated {
            current.settings
        } else {
            QueueSettings::default()
        };
        let settings = change.settings.apply(base);
        match self
            .store
            .update_queue(&current, &name, &settings, self.now_ms())
            .await?
        {
            UpdateQueue::Updated(queue) => {
                // The retention period may have shrunk: look at the queue now.
                self.store.schedule_sweep(queue.id, self.now_ms()).await?;
                Ok(*queue)
            }
            UpdateQueue::NotFound => Err(BrokerError::QueueNotFound),
            UpdateQueue::NameTaken => Err(BrokerError::QueueNameTaken),
        }
    }

    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn delete_queue(&self, access: &Access, queue: QueueId) -> Result<(), BrokerError> {
        if self.store.delete_queue(access, queue).await? {
            self.store.unschedule_sweep(queue).await?;
            Ok(())
        } else {
            Err(BrokerError::QueueNotFound)
        }
    }

    pub async fn queue_metrics(
        &self,
        access: &Access,
        queue: QueueId,
    ) -> Result<QueueMetrics, BrokerError> {
        self.store
            .metrics(access, queue, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)
    }

    // ---- consumers ---------------------------------------------------------------

    /// Creates the queue's consumer (`id = None`) or creates-or-replaces the one with `id`.
    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn write_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        id: Option<ConsumerId>,
        spec: ConsumerSpec,
    ) -> Result<(QueueName, Consumer), BrokerError> {
        let ConsumerSpec {
            dead_letter_queue,
            settings,
        } = spec;
        if let Some(dlq) = &dead_letter_queue {
            // Dead letters move (and a missing dead-letter queue is created) with the
            // account's rights, so a token may only name a queue it could reach itself.
            if !access.allows(dlq) {
                return Err(BrokerError::Forbidden(FORBIDDEN_DLQ_NAME.into()));
            }
            if self.get_queue(access, queue).await?.name == *dlq {
                return Err(BrokerError::schema(
                    "dead_letter_queue must be another queue",
                ));
            }
        }
        let consumer = Consumer {
            id: id.unwrap_or_else(ConsumerId::generate),
            created_ms: self.now_ms(),
            dead_letter_queue,
            settings,
        };
        let written = self
            .store
            .write_consumer(access, queue, &consumer, id.is_some())
            .await?;
        match written {
            ConsumerWrite::Written(queue) => match queue.consumer {
                Some(consumer) => Ok((queue.name, consumer)),
                None => Err(BrokerError::Internal("consumer missing after write".into())),
            },
            ConsumerWrite::QueueNotFound => Err(BrokerError::QueueNotFound),
            ConsumerWrite::OtherConsumerExists => Err(BrokerError::ConsumerExists),
        }
    }

    pub async fn get_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        id: ConsumerId,
    ) -> Result<(QueueName, Consumer), BrokerError> {
        let queue = self.get_queue(access, queue).await?;
        match queue.consumer {
            Some(consumer) if consumer.id == id => Ok((queue.name, consumer)),
            _ => Err(BrokerError::ConsumerNotFound),
        }
    }

    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn delete_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        id: ConsumerId,
    ) -> Result<(), BrokerError> {
        match self
            .store
            .delete_consumer(access, queue, id, self.now_ms())
            .await?
        {
            Some(true) => Ok(()),
            Some(false) => Err(BrokerError::ConsumerNotFound),
            None => Err(BrokerError::QueueNotFound),
        }
    }

    // ---- messages ----------------------------------------------------------------

    /// Stores `messages` in one atomic step: all of them, or none when the queue is
    /// missing or its backlog would go past its quota.
    pub async fn push(
        &self,
        access: &Access,
        queue: QueueId,
        messages: &[NewMessage],
    ) -> Result<Pushed, BrokerError> {
        let quota = BacklogQuota {
            messages: self.limits.max_backlog_messages,
            bytes: self.limits.max_backlog_bytes,
        };
        match self
            .store
            .push(access, queue, messages, quota, self.now_ms())
            .await?
        {
            PushReply::Pushed {
                backlog,
                listeners,
                ids,
            } => {
                let lanes: Vec<LaneRef> = listeners
                    .into_iter()
                    .map(|listener| LaneRef {
                        account: access.account.clone(),
                        queue,
                        listener,
                    })
                    .collect();
                // The messages are stored; a worker's periodic look at the schedule
                // finds the lanes even if this fails.
                if let Err(e) = self.schedule_lanes(&lanes).await {
                    tracing::warn!(error = %e, %queue, "listener lanes not scheduled");
                }
                Ok(Pushed { backlog, ids })
            }
            PushReply::QueueNotFound => Err(BrokerError::QueueNotFound),
            PushReply::BacklogFull(quota) => Err(BrokerError::BacklogFull {
                messages: quota.messages,
                bytes: quota.bytes,
            }),
        }
    }

    pub async fn pull(
        &self,
        access: &Access,
        queue: QueueId,
        request: Pull,
    ) -> Result<PullOutcome, BrokerError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(request.wait_time_ms);
        // Taken when the pull first has to wait; held until it answers.
        let mut admitted = None;
        let pulled = loop {
            // Registered before the pull, so a push landing between the pull and the
            // wait still wakes us.
            let waiter = self.wakeups.wait_for(queue);
            let woken = waiter.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let wait_ms = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reply = self
                .store
                .pull(
                    access,
                    queue,
                    request.batch_size,
                    request.visibility_timeout_ms,
                    u64::try_from(wait_ms.as_millis()).unwrap_or(u64::MAX),
                    self.now_ms(),
                )
                .await?;
            let pulled = match reply {
                PullReply::Pulled(pulled) => pulled,
                PullReply::QueueNotFound => return Err(BrokerError::QueueNotFound),
                PullReply::DeliveryPaused => return Err(BrokerError::QueueDeliveryPaused),
            };
            self.after_burial(access, queue, pulled.buried).await;
            let now = tokio::time::Instant::now();
            if !pulled.messages.is_empty() || now >= deadline {
                break pulled;
            }
            if admitted.is_none() {
                admitted = Some(self.long_polls.admit(&access.account, queue)?);
            }
            // Sleep until a push wakes us, something delayed or leased comes due, or the
            // wait ends; then pull again.
            let due = pulled.next_visible_ms.map_or(deadline, |ms| {
                now + Duration::from_millis(ms.saturating_sub(self.now_ms()) + 1)
            });
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(due.min(deadline)) => {}
            }
        };
        let messages = pulled
            .messages
            .into_iter()
            .map(|message| {
                let lease = Lease {
                    message_id: message.id,
                    generation: message.lease_generation,
                };
                let lease_id = self.leases.sign(&access.account, queue, lease);
                LeasedMessage { message, lease_id }
            })
            .collect();
        Ok(PullOutcome {
            messages,
            backlog: pulled.backlog,
        })
    }

    pub async fn peek(
        &self,
        access: &Access,
        queue: QueueId,
        batch_size: Option<u32>,
    ) -> Result<PeekOutcome, BrokerError> {
        let peeked = self
            .store
            .peek(access, queue, batch_size, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)?;
        self.after_burial(access, queue, peeked.buried).await;
        let messages = peeked
            .messages
            .into_iter()
            .map(|message| {
                let reference = self.leases.sign_ref(&access.account, queue, message.id);
                (message, reference)
            })
            .collect();
        Ok(PeekOutcome {
            messages,
            backlog: peeked.backlog,
        })
    }

    /// Acks and retries. A lease that is forged, malformed, of another queue or account,
    /// or stale is a warning, never an error, and changes nothing.
    pub async fn ack(
        &self,
        access: &Access,
        queue: QueueId,
        request: Acks,
    ) -> Result<AckOutcome, BrokerError> {
        let mut outcome = AckOutcome::default();
        let mut acks = Vec::new();
        let mut ack_lease_ids = Vec::new();
        for lease_id in request.acks {
            match self.leases.verify(&access.account, queue, &lease_id) {
                Some(lease) => {
                    acks.push((lease.message_id, lease.generation));
                    ack_lease_ids.push(lease_id);
                }
                None => {
                    outcome.warnings.insert(lease_id, WARN_INVALID_LEASE.into());
                }
            }
        }
        let mut retries = Vec::new();
        let mut retry_lease_ids = Vec::new();
        for (lease_id, delay) in request.retries {
            match self.leases.verify(&access.account, queue, &lease_id) {
                Some(lease) => {
                    retries.push((lease.message_id, lease.generation, delay));
                    retry_lease_ids.push(lease_id);
                }
                None => {
                    outcome.warnings.insert(lease_id, WARN_INVALID_LEASE.into());
                }
            }
        }
        // The queue must exist even when every lease was refused.
        let Acked {
            acked,
            retried,
            buried,
        } = self
            .store
            .ack(access, queue, &acks, &retries, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)?;
        self.after_burial(access, queue, buried).await;
        for (lease_id, result) in ack_lease_ids.into_iter().zip(acked) {
            tally(
                result,
                lease_id,
                &mut outcome.ack_count,
                &mut outcome.warnings,
            );
        }
        for (lease_id, result) in retry_lease_ids.into_iter().zip(retried) {
            tally(
                result,
                lease_id,
                &mut outcome.retry_count,
                &mut outcome.warnings,
            );
        }
        Ok(outcome)
    }

    /// Extends current leases (extension). Forged or stale leases are warnings.
    pub async fn extend(
        &self,
        access: &Access,
        queue: QueueId,
        requested: Extensions,
    ) -> Result<ExtendOutcome, BrokerError> {
        let mut outcome = ExtendOutcome::default();
        let mut leases = Vec::new();
        let mut lease_ids = Vec::new();
        for (lease_id, timeout) in requested {
            match self.leases.verify(&access.account, queue, &lease_id) {
                Some(lease) => {
                    leases.push((lease.message_id, lease.generation, timeout));
                    lease_ids.push(lease_id);
                }
                None => {
                    outcome.warnings.insert(lease_id, WARN_INVALID_LEASE.into());
                }
            }
        }
        let results = self
            .store
            .extend(access, queue, &leases, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)?;
        for (lease_id, result) in lease_ids.into_iter().zip(results) {
            tally(
                result,
                lease_id,
                &mut outcome.extend_count,
                &mut outcome.warnings,
            );
        }
        Ok(outcome)
    }

    /// Deletes the peeked messages `refs` name, whatever their state now. A ref that is
    /// forged, of another queue, or names a message already gone is a warning.
    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn purge_messages(
        &self,
        access: &Access,
        queue: QueueId,
        refs: Vec<String>,
    ) -> Result<PurgeOutcome, BrokerError> {
        let mut outcome = PurgeOutcome::default();
        let mut ids = Vec::new();
        let mut named = Vec::new();
        for reference in refs {
            match self.leases.verify_ref(&access.account, queue, &reference) {
                Some(id) => {
                    ids.push(id);
                    named.push(reference);
                }
                None => {
                    outcome.warnings.insert(reference, WARN_INVALID_REF.into());
                }
            }
        }
        // The queue must exist even when every ref was refused.
        let deleted = self
            .store
            .delete_messages(access, queue, &ids, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)?;
        for (reference, deleted) in named.into_iter().zip(deleted) {
            if deleted {
                outcome.purge_count += 1;
            } else {
                outcome.warnings.insert(reference, WARN_REF_GONE.into());
            }
        }
        Ok(outcome)
    }

    /// Deletes every message of the queue (ready, delayed, leased) and returns the queue.
    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn purge(
        &self,
        access: &Access,
        queue: QueueId,
        confirmed: Option<bool>,
    ) -> Result<Queue, BrokerError> {
        if confirmed == Some(false) {
            return Err(BrokerError::schema(
                "a purge deletes messages permanently: delete_messages_permanently must not be false",
            ));
        }
        self.store
            .purge(access, queue, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)?;
        self.get_queue(access, queue).await
    }

    /// When a call buried messages, moves them on to the dead-letter queue now. A failure
    /// leaves them in the outbox for the next call; the caller's request has succeeded.
    async fn after_burial(&self, access: &Access, queue: QueueId, buried: u64) {
        if buried == 0 {
            return;
        }
        if let Err(e) = self.move_dead_letters(access, queue).await {
            tracing::warn!(error = %e, %queue, "dead letters stay in the outbox for now");
        }
    }

    /// Copies the outbox to the dead-letter queue (created if missing), then clears what
    /// arrived. Copy first, remove second: a crash between the two repeats the copy,
    /// which skips ids already there, so nothing is lost or doubled.
    pub async fn move_dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
    ) -> Result<u64, BrokerError> {
        const PAGE: u32 = 500;
        let mut moved = 0;
        loop {
            let Some(letters) = self.store.dead_letters(access, queue, PAGE).await? else {
                return Err(BrokerError::QueueNotFound);
            };
            let Some(dlq_name) = letters.dead_letter_queue else {
                return Ok(moved);
            };
            if letters.entries.is_empty() {
                return Ok(moved);
            }
            // The dead-letter queue may lie outside a token's queues: this move is the
            // broker's own, on the same account.
            let owner = Access::account(access.account.clone());
            let dlq = self.dead_letter_queue(&owner, &dlq_name).await?;
            self.store
                .receive_moved(&owner, dlq, Some(queue), &letters.entries, self.now_ms())
                .await?
                .ok_or(BrokerError::QueueNotFound)?;
            let ids: Vec<&str> = letters.entries.iter().map(|(id, _)| id.as_str()).collect();
            self.store.forget_dead_letters(access, queue, &ids).await?;
            moved += ids.len() as u64;
            if !letters.more {
                return Ok(moved);
            }
        }
    }

    /// The account's queue named `name`, created with default settings if missing.
    async fn dead_letter_queue(
        &self,
        owner: &Access,
        name: &QueueName,
    ) -> Result<QueueId, BrokerError> {
        if let Some(id) = self.store.find_queue(&owner.account, name).await? {
            return Ok(id);
        }
        let new = NewQueue {
            name: name.clone(),
            settings: Default::default(),
            jurisdiction: None,
        };
        match self.create_queue(owner, &new).await {
            Ok(queue) => Ok(queue.id),
            // Created by someone else in the meantime.
            Err(BrokerError::QueueNameTaken) => self
                .store
                .find_queue(&owner.account, name)
                .await?
                .ok_or(BrokerError::QueueNotFound),
            Err(e) => Err(e),
        }
    }

    /// One retention pass: claims the queues due (other processes skip them), deletes
    /// their expired messages, moves waiting dead letters on, and schedules each queue's
    /// next visit. Work is proportional to the queues due, not to the number of queues.
    pub async fn sweep(&self, batch: u32) -> Result<SweepOutcome, BrokerError> {
        // A claimed queue comes due again after this long if this process dies mid-sweep.
        const HOLD_MS: u64 = 30_000;
        const TIMESTAMPS_PER_CALL: u32 = 200;
        let mut outcome = SweepOutcome::default();
        for queue in self
            .store
            .claim_sweeps(self.now_ms(), batch, HOLD_MS)
            .await?
        {
            outcome.queues += 1;
            let Some(expired) = self
                .store
                .expire(
                    queue,
                    self.now_ms(),
                    TIMESTAMPS_PER_CALL,
                    self.limits.min_retention_period,
                )
                .await?
            else {
                self.store.unschedule_sweep(queue).await?;
                continue;
            };
            outcome.expired += expired.expired;
            if expired.dead_outbox > 0 {
                let owner = Access::account(expired.account.clone());
                if let Err(e) = self.move_dead_letters(&owner, queue).await {
                    tracing::warn!(error = %e, %queue, "dead letters stay in the outbox for now");
                }
            }
            let next = if expired.more_due {
                self.now_ms()
            } else {
                expired.next_due_ms
            };
            self.store.schedule_sweep(queue, next).await?;
        }
        Ok(outcome)
    }

    /// Moves data written by an earlier version onto today's storage layout; how many
    /// queues were looked at (0: nothing to do). Safe in several processes at once.
    pub async fn migrate_storage(&self) -> Result<u64, BrokerError> {
        Ok(self.store.migrate_storage(|| self.now_ms()).await?)
    }

    /// One message and where it is (extension), without leasing it.
    pub async fn message(
        &self,
        access: &Access,
        queue: QueueId,
        id: MessageId,
    ) -> Result<MessageRead, BrokerError> {
        self.store
            .message(access, queue, id, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)?
            .ok_or(BrokerError::MessageNotFound)
    }

    /// Deletes one message whatever its state (extension).
    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn delete_message(
        &self,
        access: &Access,
        queue: QueueId,
        id: MessageId,
    ) -> Result<(), BrokerError> {
        match self
            .store
            .delete_messages(access, queue, std::slice::from_ref(&id), self.now_ms())
            .await?
            .as_deref()
        {
            Some([true]) => Ok(()),
            Some(_) => Err(BrokerError::MessageNotFound),
            None => Err(BrokerError::QueueNotFound),
        }
    }

    /// A page of messages from `cursor`, without leasing them (extension).
    pub async fn list_messages(
        &self,
        access: &Access,
        queue: QueueId,
        cursor: Option<&str>,
        per_page: u32,
    ) -> Result<(Vec<(StoredMessage, MessageState)>, String), BrokerError> {
        let cursor = cursor.unwrap_or("0");
        // HSCAN cursors are u64: a larger number would be a Redis error, hence a 503.
        let cursor = cursor
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| cursor.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                BrokerError::schema("cursor must be the next_cursor of the previous page")
            })?;
        self.store
            .list_messages(access, queue, &cursor.to_string(), per_page, self.now_ms())
            .await?
            .ok_or(BrokerError::QueueNotFound)
    }

    /// Moves dead letters of this dead-letter queue back to the queues they came from
    /// (only `source_queue_id`'s when given), deliveries starting over. Copy first,
    /// remove second, as for dead-lettering. Returns how many moved; messages whose
    /// source is gone or out of the caller's reach stay.
    #[instrument(skip_all, fields(account = %access.account, queue = %queue))]
    pub async fn redrive(
        &self,
        access: &Access,
        queue: QueueId,
        request: Redrive,
    ) -> Result<Redriven, BrokerError> {
        let Redrive {
            source,
            max_messages: max,
        } = request;
        // The messages go back into their source queues: a named source the token cannot
        // reach does not exist for it (unnamed ones out of reach are left where they are).
        if let Some(source) = source {
            self.get_queue(access, source).await?;
        }
        let step = self
            .store
            .redrivable(access, queue, source, max)
            .await?
            .ok_or(BrokerError::QueueNotFound)?;
        let mut by_source: BTreeMap<QueueId, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        for (id, record, from) in step.entries {
            by_source.entry(from).or_default().push((id, record));
        }
        let mut moved = 0;
        for (from, letters) in by_source {
            if self
                .store
                .receive_moved(access, from, None, &letters, self.now_ms())
                .await?
                .is_none()
            {
                continue;
            }
            let ids: Vec<&str> = letters.iter().map(|(id, _)| id.as_str()).collect();
            moved += self.store.release_redriven(access, queue, &ids).await?;
        }
        Ok(Redriven {
            moved,
            more: step.more,
        })
    }
}

/// What one redrive call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redriven {
    pub moved: u64,
    /// Dead letters remain unexamined (a call looks at a bounded number): call again.
    pub more: bool,
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub queues: u64,
    pub expired: u64,
}
