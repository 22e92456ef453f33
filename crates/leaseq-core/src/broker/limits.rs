//! The limits of the service: ranges every request value must fall in, and the sizes
//! `[limits]` configures. Out-of-range input is rejected, never clamped (SPEC §4); the
//! API checks requests against these before it builds a command.

use std::ops::RangeInclusive;

use serde::Deserialize;

pub const PULL_BATCH_SIZE: RangeInclusive<u64> = 1..=100;
pub const VISIBILITY_TIMEOUT_MS: RangeInclusive<u64> = 1..=43_200_000;
pub const DELAY_SECONDS: RangeInclusive<u64> = 0..=86_400;
pub const MAX_RETRIES: RangeInclusive<u64> = 0..=100;
pub const RETENTION_SECONDS: RangeInclusive<u64> = 60..=1_209_600;
pub const WAIT_TIME_MS: RangeInclusive<u64> = 0..=20_000;
pub const DEDUP_WINDOW_SECONDS: RangeInclusive<u64> = 1..=86_400;
/// `max_messages` of one redrive.
pub const REDRIVE_MESSAGES: RangeInclusive<u64> = 1..=10_000;
pub const DEDUP_ID_BYTES: usize = 128;
/// A queue's `group_max_inflight` (0: no cap).
pub const GROUP_MAX_INFLIGHT: RangeInclusive<u64> = 0..=100_000;
/// A listener's `batch_size`.
pub const LISTENER_BATCH_SIZE: RangeInclusive<u64> = 1..=100;
/// A listener's `retry_delay` and `retry_delay_max`, seconds.
pub const LISTENER_RETRY_DELAY: RangeInclusive<u64> = 0..=86_400;
/// A listener's `timeout_ms`.
pub const LISTENER_TIMEOUT_MS: RangeInclusive<u64> = 100..=120_000;
/// A listener's `max_concurrency`.
pub const LISTENER_CONCURRENCY: RangeInclusive<u64> = 1..=64;
/// Longest listener name and URL.
pub const LISTENER_NAME_BYTES: usize = 256;
pub const LISTENER_URL_BYTES: usize = 2048;
/// Deepest nesting accepted in a JSON message body (serde_json's own default limit),
/// so no consumer's parser is handed a stack-overflow bomb.
pub const JSON_BODY_DEPTH: usize = 128;

/// Size limits; each is configurable under `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message body, in bytes.
    pub message_bytes: usize,
    /// Most messages in one batch push.
    pub batch_messages: usize,
    /// Largest sum of body sizes in one batch push, in bytes.
    pub batch_bytes: usize,
    /// Largest request body, in bytes, checked before parsing.
    pub request_bytes: usize,
    /// Most queues one account may hold.
    pub queues_per_account: usize,
    /// Most acks plus retries in one ack request.
    pub ack_entries: usize,
    /// Shortest `message_retention_period` accepted, seconds (Cloudflare: 60).
    pub min_retention_period: u64,
    /// Most message bytes one reply carries (pull, peek, list), and one dead-letter or
    /// redrive step moves; at least one message always fits.
    pub reply_bytes: usize,
    /// Most unacked messages per queue (0: no limit); a queue's setting may lower it.
    pub max_backlog_messages: u64,
    /// Most body bytes of unacked messages per queue (0: no limit); a queue's setting
    /// may lower it.
    pub max_backlog_bytes: u64,
    /// Most pulls waiting for messages at once per queue, in one process (0: no limit).
    pub long_polls_per_queue: usize,
    /// Most pulls waiting for messages at once per account, in one process (0: no limit).
    pub long_polls_per_account: usize,
    /// Most listeners per queue.
    pub listeners_per_queue: u32,
    /// The jurisdictions queues may be created in (Cloudflare's `eu`, `us`, `fedramp`).
    pub jurisdictions: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            message_bytes: 128_000,
            batch_messages: 100,
            batch_bytes: 256_000,
            request_bytes: 1024 * 1024,
            queues_per_account: 10_000,
            ack_entries: 1_000,
            min_retention_period: 60,
            reply_bytes: 4 * 1024 * 1024,
            max_backlog_messages: 10_000_000,
            max_backlog_bytes: 1024 * 1024 * 1024,
            long_polls_per_queue: 1_000,
            long_polls_per_account: 10_000,
            listeners_per_queue: 16,
            jurisdictions: vec!["eu".into(), "us".into(), "fedramp".into()],
        }
    }
}
