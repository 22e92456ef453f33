//! Listeners (SPEC §9): push delivery with fan-out. This module holds their rules:
//! what a listener is made of, how its lane is claimed and settled, retry backoff,
//! dead letters and liveness. Sending the requests is the caller's (the delivery
//! worker's): the domain knows no HTTP.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::command::ListenerSpec;
use super::{Broker, BrokerError};
use crate::model::{
    Access, Listener, ListenerHealth, ListenerId, ListenerSettings, QueueId, StoredMessage,
    WebhookSecret,
};
use crate::store::{
    DeliveryClaim, LaneRef, ListenerCreate, ListenerRead, ListenerWrite, Settled, Settlement,
};

/// How long the secret before a rotation stays valid: deliveries carry both signatures.
pub const PREVIOUS_SECRET_MS: u64 = 24 * 3600 * 1000;
/// A claim lapses this long after the attempt's timeout, so a slow answer is still
/// settled by the attempt that waited for it rather than raced by a redelivery.
const CLAIM_GRACE_MS: u64 = 5_000;
/// The first liveness probe after a failure comes this soon; each next one waits twice
/// as long, up to [`PROBE_BACKOFF_MAX_MS`].
const PROBE_BACKOFF_MS: u64 = 1_000;
const PROBE_BACKOFF_MAX_MS: u64 = 60_000;
/// Messages a listener's deletion lets go of per script call.
const DELETE_STEP: u32 = 1_000;

/// A new `whsec_` secret: 24 random bytes, base64.
fn new_secret() -> Result<WebhookSecret, BrokerError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| BrokerError::Internal(format!("no randomness for a secret: {e}")))?;
    Ok(WebhookSecret(format!("whsec_{}", BASE64.encode(bytes))))
}

/// A fraction in [0.8, 1.0): retries of many messages failed at once spread out.
fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    let spread = match getrandom::fill(&mut byte) {
        Ok(()) => f64::from(u16::from_le_bytes(byte)) / 65_536.0,
        Err(_) => 0.5,
    };
    0.8 + 0.2 * spread
}

impl ListenerSettings {
    /// The wait before retrying a message whose `attempts`-th attempt failed, ms:
    /// `retry_delay · 2^(attempts−1)`, at most `retry_delay_max`, times a jitter in
    /// [0.8, 1).
    pub fn retry_delay_ms(&self, attempts: u32, jitter: f64) -> u64 {
        let doublings = attempts.saturating_sub(1).min(32);
        let seconds = u64::from(self.retry_delay)
            .saturating_mul(1u64 << doublings)
            .min(u64::from(self.retry_delay_max));
        (seconds as f64 * 1000.0 * jitter) as u64
    }
}

/// The outcome of one delivery attempt, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx: every message is delivered but those named, retried after their own delay
    /// (seconds; `None`: the listener's backoff).
    Delivered { retries: Vec<(String, Option<u32>)> },
    /// Anything else: every message is retried with the listener's backoff.
    Failed,
}

/// One delivery attempt, for the listener's log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// When the attempt started, Unix ms.
    pub attempted_ms: u64,
    pub message_ids: Vec<String>,
    /// The HTTP status, or 0 when there was no answer.
    pub status: u16,
    pub duration_ms: u64,
    /// Why it failed (timeout, refused connection, non-2xx…); `None` when it did not.
    pub error: Option<String>,
}

impl Broker {
    /// Creates a listener from `spec`, whose name and notify URL must be set; returns it
    /// with its secret.
    pub async fn create_listener(
        &self,
        access: &Access,
        queue: QueueId,
        spec: ListenerSpec,
    ) -> Result<Listener, BrokerError> {
        let (Some(name), Some(notify_url)) = (spec.name, spec.notify_url) else {
            return Err(BrokerError::schema("name and notify_url are required"));
        };
        let dead_letter_queue = spec.dead_letter_queue.flatten();
        self.check_dead_letter_queue(access, queue, dead_letter_queue.as_ref())
            .await?;
        let now = self.now_ms();
        let listener = Listener {
            id: ListenerId::generate(),
            name,
            notify_url,
            liveness_url: spec.liveness_url.flatten(),
            dead_letter_queue,
            created_ms: now,
            modified_ms: now,
            settings: spec.settings.apply(ListenerSettings::default()),
            secret: new_secret()?,
            previous_secret: None,
            health: ListenerHealth::Up,
            backlog: 0,
        };
        let most = self.limits.listeners_per_queue;
        match self
            .store
            .create_listener(access, queue, &listener, most)
            .await?
        {
            ListenerCreate::Created => Ok(listener),
            ListenerCreate::QueueNotFound => Err(BrokerError::QueueNotFound),
            ListenerCreate::TooMany => Err(BrokerError::TooManyListeners {
                limit: most as usize,
            }),
        }
    }

    /// A dead-letter queue named by a listener must be reachable with the caller's token
    /// and must not be the queue itself.
    async fn check_dead_letter_queue(
        &self,
        access: &Access,
        queue: QueueId,
        dlq: Option<&crate::model::QueueName>,
    ) -> Result<(), BrokerError> {
        let Some(dlq) = dlq else { return Ok(()) };
        if !access.allows(dlq) {
            return Err(BrokerError::Forbidden(super::FORBIDDEN_DLQ_NAME.into()));
        }
        if self.get_queue(access, queue).await?.name == *dlq {
            return Err(BrokerError::schema(
                "dead_letter_queue must be another queue",
            ));
        }
        Ok(())
    }

    /// The queue's listeners, oldest first.
    pub async fn listeners(
        &self,
        access: &Access,
        queue: QueueId,
    ) -> Result<Vec<Listener>, BrokerError> {
        let mut listeners: Vec<Listener> = self
            .store
            .listeners(access, queue, None, 0)
            .await?
            .ok_or(BrokerError::QueueNotFound)?
            .into_iter()
            .map(|read| read.listener)
            .collect();
        listeners.sort_by_key(|l| l.id);
        Ok(listeners)
    }

    async fn read_listener(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        log: u32,
    ) -> Result<ListenerRead, BrokerError> {
        self.store
            .listeners(access, queue, Some(id), log)
            .await?
            .ok_or(BrokerError::QueueNotFound)?
            .pop()
            .ok_or(BrokerError::ListenerNotFound)
    }

    pub async fn listener(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
    ) -> Result<Listener, BrokerError> {
        Ok(self.read_listener(access, queue, id, 0).await?.listener)
    }

    /// The listener's latest delivery attempts, newest first.
    pub async fn deliveries(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
    ) -> Result<Vec<DeliveryRecord>, BrokerError> {
        let read = self
            .read_listener(access, queue, id, crate::store::DELIVERY_LOG)
            .await?;
        // An entry that does not parse was written by a future version: skip it.
        Ok(read
            .log
            .iter()
            .filter_map(|entry| serde_json::from_str(entry).ok())
            .collect())
    }

    /// Replaces or updates a listener; `spec.rotate_secret` issues a new secret.
    pub async fn update_listener(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
        spec: ListenerSpec,
    ) -> Result<Listener, BrokerError> {
        if let Some(Some(dlq)) = &spec.dead_letter_queue {
            self.check_dead_letter_queue(access, queue, Some(dlq))
                .await?;
        }
        // Compare-and-set: a concurrent change (another request, a worker marking the
        // listener down or up) makes this read again rather than undo it.
        loop {
            let read = self.read_listener(access, queue, id, 0).await?;
            let current = read.listener;
            let now = self.now_ms();
            let base = if spec.keep_unstated {
                current.settings
            } else {
                ListenerSettings::default()
            };
            let resumed = current.settings.paused && spec.settings.paused == Some(false);
            let (secret, previous_secret) = if spec.rotate_secret {
                (
                    new_secret()?,
                    Some((current.secret.clone(), now + PREVIOUS_SECRET_MS)),
                )
            } else {
                (current.secret.clone(), current.previous_secret.clone())
            };
            let listener = Listener {
                name: spec.name.clone().unwrap_or(current.name),
                notify_url: spec.notify_url.clone().unwrap_or(current.notify_url),
                liveness_url: match &spec.liveness_url {
                    Some(url) => url.clone(),
                    None if spec.keep_unstated => current.liveness_url,
                    None => None,
                },
                dead_letter_queue: match &spec.dead_letter_queue {
                    Some(dlq) => dlq.clone(),
                    None if spec.keep_unstated => current.dead_letter_queue,
                    None => None,
                },
                modified_ms: now,
                settings: spec.settings.apply(base),
                secret,
                previous_secret,
                ..current
            };
            match self
                .store
                .write_listener(access, queue, &listener, Some(&read.record))
                .await?
            {
                ListenerWrite::Written => {
                    if resumed || !listener.settings.paused {
                        self.wake_lane(&access.account, queue, id).await;
                    }
                    return Ok(listener);
                }
                ListenerWrite::Changed => continue,
                ListenerWrite::ListenerNotFound => return Err(BrokerError::ListenerNotFound),
                ListenerWrite::QueueNotFound => return Err(BrokerError::QueueNotFound),
            }
        }
    }

    /// Deletes a listener: it stops at once, and its undelivered messages go.
    pub async fn delete_listener(
        &self,
        access: &Access,
        queue: QueueId,
        id: ListenerId,
    ) -> Result<(), BrokerError> {
        match self
            .store
            .delete_listener(access, queue, id, DELETE_STEP)
            .await?
        {
            Some(true) => Ok(()),
            Some(false) => Err(BrokerError::ListenerNotFound),
            None => Err(BrokerError::QueueNotFound),
        }
    }

    /// Makes the lane due now, so a worker looks at it (a failure only delays delivery
    /// until the worker's next look at the schedule).
    async fn wake_lane(&self, account: &crate::model::AccountId, queue: QueueId, id: ListenerId) {
        let lane = LaneRef {
            account: account.clone(),
            queue,
            listener: id,
        };
        if let Err(e) = self.schedule_lanes(&[lane]).await {
            tracing::warn!(error = %e, %queue, "listener lane not scheduled");
        }
    }

    // ---- the delivery worker's side -------------------------------------------------

    /// Makes lanes due now (after a push reached them).
    pub(super) async fn schedule_lanes(&self, lanes: &[LaneRef]) -> Result<(), BrokerError> {
        self.store.schedule_lanes(lanes, self.now_ms()).await?;
        if !lanes.is_empty() {
            self.lanes_due.notify_one();
        }
        Ok(())
    }

    /// Waits until a push in this process made a lane due, or `timeout` passes.
    pub async fn lanes_due(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.lanes_due.notified()).await;
    }

    /// Claims up to `max` lanes due for delivery, for `hold_ms`: no other worker takes
    /// them meanwhile unless a push makes them due again.
    pub async fn claim_lanes(&self, max: u32, hold_ms: u64) -> Result<Vec<LaneRef>, BrokerError> {
        Ok(self.store.claim_lanes(self.now_ms(), max, hold_ms).await?)
    }

    /// The lane's listener now, or `None` when it (or its queue) is gone: the lane then
    /// leaves the schedule.
    pub async fn open_lane(&self, lane: &LaneRef) -> Result<Option<Listener>, BrokerError> {
        let owner = Access::account(lane.account.clone());
        match self
            .store
            .listeners(&owner, lane.queue, Some(lane.listener), 0)
            .await?
        {
            Some(mut found) if !found.is_empty() => Ok(found.pop().map(|read| read.listener)),
            _ => {
                self.store.unschedule_lane(lane).await?;
                Ok(None)
            }
        }
    }

    /// Sets when the lane next needs a worker: `at_ms`, or sooner if a push said so.
    pub async fn reschedule_lane(&self, lane: &LaneRef, at_ms: u64) -> Result<(), BrokerError> {
        Ok(self
            .store
            .schedule_lanes(std::slice::from_ref(lane), at_ms)
            .await?)
    }

    /// Claims the next batch of the lane for one attempt. `None`: the listener is gone.
    pub async fn claim_batch(
        &self,
        lane: &LaneRef,
        listener: &Listener,
    ) -> Result<Option<(Vec<(StoredMessage, u32)>, u64)>, BrokerError> {
        let owner = Access::account(lane.account.clone());
        let claim = self
            .store
            .claim_deliveries(
                &owner,
                lane.queue,
                lane.listener,
                listener.settings.batch_size,
                self.now_ms(),
                listener.settings.timeout_ms + CLAIM_GRACE_MS,
            )
            .await?;
        Ok(match claim {
            DeliveryClaim::Claimed {
                messages,
                next_due_ms,
            } => Some((
                messages
                    .into_iter()
                    .map(|c| (c.message, c.attempts))
                    .collect(),
                next_due_ms,
            )),
            DeliveryClaim::QueueNotFound | DeliveryClaim::ListenerNotFound => None,
        })
    }

    /// Settles one attempt at `messages` (with their attempts): delivered ones leave the
    /// lane, the others wait for their retry or, after their last attempt, are
    /// dead-lettered. `None`: the listener is gone.
    pub async fn settle_batch(
        &self,
        lane: &LaneRef,
        listener: &Listener,
        messages: &[(StoredMessage, u32)],
        outcome: &AttemptOutcome,
        record: &DeliveryRecord,
    ) -> Result<Option<Settled>, BrokerError> {
        let settings = &listener.settings;
        let backoff = |attempts: u32| settings.retry_delay_ms(attempts, jitter());
        let mut settlement = Settlement {
            most_attempts: settings.max_retries.saturating_add(1),
            has_dead_letter_queue: listener.dead_letter_queue.is_some(),
            log_entry: serde_json::to_string(record).unwrap_or_default(),
            ..Settlement::default()
        };
        for (message, attempts) in messages {
            let id = message.id.to_string();
            let retry = match outcome {
                AttemptOutcome::Failed => Some(backoff(*attempts)),
                AttemptOutcome::Delivered { retries } => retries
                    .iter()
                    .find(|(retried, _)| *retried == id)
                    .map(|(_, delay)| match delay {
                        Some(seconds) => u64::from(*seconds) * 1000,
                        None => backoff(*attempts),
                    }),
            };
            match retry {
                Some(delay_ms) => settlement.retried.push((id, delay_ms)),
                None => settlement.acked.push(id),
            }
        }
        let owner = Access::account(lane.account.clone());
        let settled = self
            .store
            .settle_deliveries(
                &owner,
                lane.queue,
                lane.listener,
                self.now_ms(),
                &settlement,
            )
            .await?;
        if let Some(settled) = &settled
            && settled.dead_lettered > 0
        {
            self.move_listener_dead_letters(lane, listener).await;
        }
        Ok(settled)
    }

    /// Copies the listener's dead letters to its dead-letter queue (created if missing),
    /// then clears them: copy first, so a crash in between repeats the copy, which skips
    /// ids already there. A failure leaves them for the next attempt's settlement.
    async fn move_listener_dead_letters(&self, lane: &LaneRef, listener: &Listener) {
        let Some(dlq_name) = &listener.dead_letter_queue else {
            return;
        };
        let owner = Access::account(lane.account.clone());
        let moved: Result<(), BrokerError> = async {
            let dlq = self.dead_letter_queue(&owner, dlq_name).await?;
            loop {
                let Some((entries, more)) = self
                    .store
                    .listener_dead_letters(&owner, lane.queue, lane.listener, 500)
                    .await?
                else {
                    return Err(BrokerError::QueueNotFound);
                };
                if entries.is_empty() {
                    return Ok(());
                }
                self.store
                    .receive_moved(&owner, dlq, Some(lane.queue), &entries, self.now_ms())
                    .await?
                    .ok_or(BrokerError::QueueNotFound)?;
                let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
                self.store
                    .forget_listener_dead_letters(&owner, lane.queue, lane.listener, &ids)
                    .await?;
                if !more {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = moved {
            tracing::warn!(error = %e, queue = %lane.queue, listener = %lane.listener,
                "listener dead letters stay in its outbox for now");
        }
    }

    /// Records the outcome of a liveness probe: down (deliveries wait, probes back off
    /// to a minute) or up again. Returns the listener as written, `None` when it is gone.
    pub async fn set_listener_health(
        &self,
        lane: &LaneRef,
        alive: bool,
    ) -> Result<Option<Listener>, BrokerError> {
        let owner = Access::account(lane.account.clone());
        loop {
            let Some(read) = self
                .store
                .listeners(&owner, lane.queue, Some(lane.listener), 0)
                .await?
                .and_then(|mut found| found.pop())
            else {
                return Ok(None);
            };
            let now = self.now_ms();
            let health = match (alive, read.listener.health) {
                (true, _) => ListenerHealth::Up,
                (false, ListenerHealth::Up) => ListenerHealth::Down {
                    since_ms: now,
                    next_probe_ms: now + PROBE_BACKOFF_MS,
                    probe_backoff_ms: (PROBE_BACKOFF_MS * 2).min(PROBE_BACKOFF_MAX_MS),
                },
                (
                    false,
                    ListenerHealth::Down {
                        since_ms,
                        probe_backoff_ms,
                        ..
                    },
                ) => ListenerHealth::Down {
                    since_ms,
                    next_probe_ms: now + probe_backoff_ms,
                    probe_backoff_ms: (probe_backoff_ms * 2).min(PROBE_BACKOFF_MAX_MS),
                },
            };
            if health == read.listener.health {
                return Ok(Some(read.listener));
            }
            let listener = Listener {
                health,
                ..read.listener
            };
            match self
                .store
                .write_listener(&owner, lane.queue, &listener, Some(&read.record))
                .await?
            {
                ListenerWrite::Written => return Ok(Some(listener)),
                ListenerWrite::Changed => continue,
                ListenerWrite::ListenerNotFound | ListenerWrite::QueueNotFound => {
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_maximum() {
        let settings = ListenerSettings {
            retry_delay: 1,
            retry_delay_max: 10,
            ..ListenerSettings::default()
        };
        let delays: Vec<u64> = (1..=6).map(|a| settings.retry_delay_ms(a, 1.0)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(settings.retry_delay_ms(1, 0.8), 800);
        assert_eq!(settings.retry_delay_ms(u32::MAX, 1.0), 10_000);
    }

    #[test]
    fn jitter_keeps_growing_delays_growing() {
        let settings = ListenerSettings {
            retry_delay: 1,
            retry_delay_max: 3_600,
            ..ListenerSettings::default()
        };
        for attempts in 1..10 {
            let now = settings.retry_delay_ms(attempts, 0.999);
            let next = settings.retry_delay_ms(attempts + 1, 0.8);
            assert!(next > now, "attempt {attempts}: {now} then {next}");
        }
        for _ in 0..100 {
            let j = jitter();
            assert!((0.8..1.0).contains(&j));
        }
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_bytes() {
        let secret = new_secret().expect("randomness").0;
        let encoded = secret.strip_prefix("whsec_").expect("prefix");
        assert_eq!(BASE64.decode(encoded).expect("base64").len(), 24);
        assert_ne!(new_secret().expect("randomness").0, secret);
    }
}
