//! What the broker is asked to do, as typed values: the API (or any other front end)
//! parses and checks a request against [`super::limits`] and hands over one of these.
//! `None` always means "not stated": the queue's or consumer's setting, else the default.

use crate::model::{
    ConsumerSettings, Jurisdiction, ListenerSettings, QueueId, QueueName, QueueSettings,
};

/// Queue settings as a request states them; each `None` keeps the base it is applied
/// to (the defaults on create and replace, the current settings on update).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub delivery_delay: Option<u32>,
    pub delivery_paused: Option<bool>,
    pub message_retention_period: Option<u32>,
    pub dedup_window_seconds: Option<u32>,
    pub max_backlog_messages: Option<u64>,
    pub max_backlog_bytes: Option<u64>,
    pub group_max_inflight: Option<u32>,
}

impl SettingsChange {
    pub fn apply(&self, base: QueueSettings) -> QueueSettings {
        QueueSettings {
            delivery_delay: self.delivery_delay.unwrap_or(base.delivery_delay),
            delivery_paused: self.delivery_paused.unwrap_or(base.delivery_paused),
            message_retention_period: self
                .message_retention_period
                .unwrap_or(base.message_retention_period),
            dedup_window_seconds: self
                .dedup_window_seconds
                .unwrap_or(base.dedup_window_seconds),
            max_backlog_messages: self
                .max_backlog_messages
                .unwrap_or(base.max_backlog_messages),
            max_backlog_bytes: self.max_backlog_bytes.unwrap_or(base.max_backlog_bytes),
            group_max_inflight: self.group_max_inflight.unwrap_or(base.group_max_inflight),
        }
    }
}

/// A new queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueue {
    pub name: QueueName,
    pub settings: SettingsChange,
    pub jurisdiction: Option<Jurisdiction>,
}

/// A change to a queue: its name (`None`: kept) and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueChange {
    pub name: Option<QueueName>,
    pub settings: SettingsChange,
    /// Replace (`false`: unstated settings return to their defaults) or update.
    pub keep_unstated: bool,
    /// A jurisdiction stated: it must be the queue's own (it never changes).
    pub jurisdiction: Option<Jurisdiction>,
}

/// A consumer as written: its dead-letter queue and every setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub dead_letter_queue: Option<QueueName>,
    pub settings: ConsumerSettings,
}

/// A pull.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pull {
    pub batch_size: Option<u32>,
    pub visibility_timeout_ms: Option<u64>,
    /// How long to wait for a message when none is visible (long polling), ms.
    pub wait_time_ms: u64,
}

/// Acks and retries. Lease ids are the client's strings: the broker verifies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acks {
    pub acks: Vec<String>,
    /// `(lease_id, delay_seconds)`.
    pub retries: Vec<(String, Option<u32>)>,
}

/// `(lease_id, visibility_timeout_ms)` of each lease to extend.
pub type Extensions = Vec<(String, Option<u64>)>;

/// A redrive: only the dead letters from `source` (`None`: from every queue), at most
/// `max_messages` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redrive {
    pub source: Option<QueueId>,
    pub max_messages: u32,
}

/// Listener settings as a request states them; each `None` keeps the base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerSettingsChange {
    pub batch_size: Option<u32>,
    pub max_retries: Option<u32>,
    pub retry_delay: Option<u32>,
    pub retry_delay_max: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub paused: Option<bool>,
}

impl ListenerSettingsChange {
    pub fn apply(&self, base: ListenerSettings) -> ListenerSettings {
        ListenerSettings {
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            max_retries: self.max_retries.unwrap_or(base.max_retries),
            retry_delay: self.retry_delay.unwrap_or(base.retry_delay),
            retry_delay_max: self.retry_delay_max.unwrap_or(base.retry_delay_max),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            max_concurrency: self.max_concurrency.unwrap_or(base.max_concurrency),
            paused: self.paused.unwrap_or(base.paused),
        }
    }
}

/// A listener to create, or a change to one. On create every field but the optional
/// ones is required; on a change `None` keeps the current value (`Some(None)` clears an
/// optional one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: Option<String>,
    /// Checked by the caller: an `http`/`https` URL its destination rules allow.
    pub notify_url: Option<String>,
    pub liveness_url: Option<Option<String>>,
    pub dead_letter_queue: Option<Option<QueueName>>,
    pub settings: ListenerSettingsChange,
    /// Replace (`false`: unstated settings return to their defaults) or update.
    pub keep_unstated: bool,
    /// A new secret; the current one stays valid (deliveries carry both signatures)
    /// for [`super::listeners::PREVIOUS_SECRET_MS`].
    pub rotate_secret: bool,
}
