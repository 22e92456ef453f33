//! Limits and validation: turns client input into model values or a precise error.
//!
//! Out-of-range input is rejected, never clamped (SPEC §4).

use std::ops::RangeInclusive;

use serde::Deserialize;

use super::error::BrokerError;
use super::input::{
    AckInput, BatchInput, ConsumerInput, ExtendInput, MessageInput, PeekInput, PullInput,
    QueueSettingsInput, RedriveInput,
};
use crate::model::{ConsumerSettings, ContentType, NewMessage, QueueId, QueueName, QueueSettings};

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
/// Deepest nesting accepted in a JSON message body (serde_json's own default limit),
/// so no consumer's parser is handed a stack-overflow bomb.
pub const JSON_BODY_DEPTH: usize = 128;

/// Whether the JSON text `raw` nests no deeper than `max` arrays and objects.
/// `raw` is valid JSON (serde_json parsed it), so counting brackets outside strings is exact.
fn json_depth_within(raw: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in raw.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

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
        }
    }
}

/// A validated pull: `None` means "the consumer's setting, else the default".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRequest {
    pub batch_size: Option<u32>,
    pub visibility_timeout_ms: Option<u64>,
    /// How long to wait for a message when none is visible (long polling), ms.
    pub wait_time_ms: u64,
}

/// A validated ack request. Lease ids are still unverified strings here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    pub acks: Vec<String>,
    /// `(lease_id, delay_seconds)`; `None` means the consumer's `retry_delay`.
    pub retries: Vec<(String, Option<u32>)>,
}

/// A whole number within `range`, or a message saying why not.
pub(crate) fn whole(value: f64, field: &str, range: &RangeInclusive<u64>) -> Result<u64, String> {
    let in_range = value.is_finite()
        && value.fract() == 0.0
        && value >= *range.start() as f64
        && value <= *range.end() as f64;
    if in_range {
        Ok(value as u64)
    } else {
        Err(format!(
            "{field} must be a whole number from {} to {}",
            range.start(),
            range.end()
        ))
    }
}

/// The delay from `now` (Unix ms) until `at`: 0 when it is past, at most the longest delay.
fn deliver_at_delay(at: f64, field: &str, now: u64) -> Result<u64, String> {
    let latest = now + DELAY_SECONDS.end() * 1000;
    let at = whole(at, field, &(0..=latest))
        .map_err(|_| format!("{field} must be a Unix time in ms no later than 86400 s from now"))?;
    Ok(at.saturating_sub(now))
}

fn delay(value: Option<f64>, field: &str) -> Result<Option<u32>, String> {
    value
        .map(|v| whole(v, field, &DELAY_SECONDS).map(|d| d as u32))
        .transpose()
}

impl Limits {
    /// One message; `batch_delay` applies when the message has no delay of its own.
    fn message(
        &self,
        input: &MessageInput,
        batch_delay: Option<u32>,
        field: &str,
        now_ms: u64,
    ) -> Result<NewMessage, BrokerError> {
        let raw = input
            .body
            .as_ref()
            .ok_or_else(|| BrokerError::schema(format!("{field}body is required")))?;
        let raw = raw.get();
        let content_type = match input.content_type.as_deref() {
            Some("text") => ContentType::Text,
            Some("json") => ContentType::Json,
            // Without a content type, a string body is text and anything else is JSON.
            None if raw.starts_with('"') => ContentType::Text,
            None => ContentType::Json,
            Some(other) => {
                return Err(BrokerError::InvalidMessageMetadata(format!(
                    "{field}content_type must be \"text\" or \"json\", not {other:?}"
                )));
            }
        };
        let body = match content_type {
            ContentType::Text => serde_json::from_str::<String>(raw).map_err(|_| {
                BrokerError::InvalidMessageMetadata(format!(
                    "{field}body must be a string when content_type is \"text\""
                ))
            })?,
            ContentType::Json if !json_depth_within(raw, JSON_BODY_DEPTH) => {
                return Err(BrokerError::schema(format!(
                    "{field}body nests deeper than {JSON_BODY_DEPTH} levels"
                )));
            }
            ContentType::Json => raw.to_owned(),
        };
        if body.len() > self.message_bytes {
            return Err(BrokerError::MessageTooLarge {
                size: body.len(),
                limit: self.message_bytes,
            });
        }
        let own_delay = delay(input.delay_seconds, &format!("{field}delay_seconds"))
            .map_err(BrokerError::InvalidMessageMetadata)?
            .map(|s| u64::from(s) * 1000);
        let deliver_at = input
            .deliver_at_ms
            .map(|at| deliver_at_delay(at, &format!("{field}deliver_at_ms"), now_ms))
            .transpose()
            .map_err(BrokerError::InvalidMessageMetadata)?;
        let dedup_id = match input.dedup_id.as_deref() {
            None => None,
            Some(id)
                if (1..=DEDUP_ID_BYTES).contains(&id.len())
                    && !id.chars().any(char::is_control) =>
            {
                Some(id.to_owned())
            }
            Some(_) => {
                return Err(BrokerError::InvalidMessageMetadata(format!(
                    "{field}dedup_id must be 1 to {DEDUP_ID_BYTES} bytes without control characters"
                )));
            }
        };
        if own_delay.is_some() && deliver_at.is_some() {
            return Err(BrokerError::InvalidMessageMetadata(format!(
                "{field}delay_seconds and {field}deliver_at_ms cannot both be set"
            )));
        }
        Ok(NewMessage {
            content_type,
            body,
            dedup_id,
            delay_ms: own_delay
                .or(deliver_at)
                .or(batch_delay.map(|s| u64::from(s) * 1000)),
        })
    }

    /// One message pushed at `now_ms`.
    pub fn push(&self, input: &MessageInput, now_ms: u64) -> Result<NewMessage, BrokerError> {
        self.message(input, None, "", now_ms)
    }

    /// Validates the whole batch before anything is stored: all or nothing.
    pub fn batch(&self, input: &BatchInput, now_ms: u64) -> Result<Vec<NewMessage>, BrokerError> {
        let batch_delay =
            delay(input.delay_seconds, "delay_seconds").map_err(BrokerError::InvalidBatchDelay)?;
        let messages = input
            .messages
            .as_deref()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| BrokerError::schema("messages must hold at least one message"))?;
        if messages.len() > self.batch_messages {
            return Err(BrokerError::BatchTooMany {
                count: messages.len(),
                limit: self.batch_messages,
            });
        }
        let validated = messages
            .iter()
            .enumerate()
            .map(|(i, m)| self.message(m, batch_delay, &format!("messages[{i}]."), now_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let size: usize = validated.iter().map(|m| m.body.len()).sum();
        if size > self.batch_bytes {
            return Err(BrokerError::BatchTooLarge {
                size,
                limit: self.batch_bytes,
            });
        }
        Ok(validated)
    }

    pub fn pull(&self, input: &PullInput) -> Result<PullRequest, BrokerError> {
        let batch_size = input
            .batch_size
            .map(|v| whole(v, "batch_size", &PULL_BATCH_SIZE).map(|n| n as u32))
            .transpose()
            .map_err(BrokerError::InvalidSchema)?;
        let visibility_timeout_ms = input
            .visibility_timeout_ms
            .map(|v| whole(v, "visibility_timeout_ms", &VISIBILITY_TIMEOUT_MS))
            .transpose()
            .map_err(BrokerError::InvalidSchema)?;
        let wait_time_ms = input
            .wait_time_ms
            .map(|v| whole(v, "wait_time_ms", &WAIT_TIME_MS))
            .transpose()
            .map_err(BrokerError::InvalidSchema)?
            .unwrap_or(0);
        Ok(PullRequest {
            batch_size,
            visibility_timeout_ms,
            wait_time_ms,
        })
    }

    pub fn peek(&self, input: &PeekInput) -> Result<Option<u32>, BrokerError> {
        input
            .batch_size
            .map(|v| whole(v, "batch_size", &PULL_BATCH_SIZE).map(|n| n as u32))
            .transpose()
            .map_err(BrokerError::InvalidSchema)
    }

    pub fn ack(&self, input: AckInput) -> Result<AckRequest, BrokerError> {
        let acks = input.acks.unwrap_or_default();
        let retries = input.retries.unwrap_or_default();
        if acks.len() + retries.len() > self.ack_entries {
            return Err(BrokerError::schema(format!(
                "at most {} acks and retries per request",
                self.ack_entries
            )));
        }
        let acks = acks
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                a.lease_id
                    .ok_or_else(|| BrokerError::schema(format!("acks[{i}].lease_id is required")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let retries = retries
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let lease_id = r.lease_id.ok_or_else(|| {
                    BrokerError::schema(format!("retries[{i}].lease_id is required"))
                })?;
                let delay = delay(r.delay_seconds, &format!("retries[{i}].delay_seconds"))
                    .map_err(BrokerError::InvalidMessageMetadata)?;
                Ok((lease_id, delay))
            })
            .collect::<Result<Vec<_>, BrokerError>>()?;
        Ok(AckRequest { acks, retries })
    }
}

impl Limits {
    /// `(lease_id, visibility_timeout_ms)`; `None` means the consumer's timeout.
    pub fn extend(&self, input: ExtendInput) -> Result<Vec<(String, Option<u64>)>, BrokerError> {
        let leases = input.leases.unwrap_or_default();
        if leases.len() > self.ack_entries {
            return Err(BrokerError::schema(format!(
                "at most {} leases per request",
                self.ack_entries
            )));
        }
        leases
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let lease_id = l.lease_id.ok_or_else(|| {
                    BrokerError::schema(format!("leases[{i}].lease_id is required"))
                })?;
                let timeout = l
                    .visibility_timeout_ms
                    .map(|v| {
                        whole(
                            v,
                            &format!("leases[{i}].visibility_timeout_ms"),
                            &VISIBILITY_TIMEOUT_MS,
                        )
                    })
                    .transpose()
                    .map_err(BrokerError::InvalidSchema)?;
                Ok((lease_id, timeout))
            })
            .collect()
    }
}

/// Queue settings from `input`, starting from `base` for the fields it leaves out.
/// `min_retention` is the shortest retention allowed (Cloudflare's 60 s unless configured).
pub fn queue_settings(
    input: Option<&QueueSettingsInput>,
    base: QueueSettings,
    limits: &Limits,
) -> Result<QueueSettings, BrokerError> {
    let min_retention = limits.min_retention_period;
    let Some(input) = input else { return Ok(base) };
    let mut settings = base;
    if let Some(v) = input.delivery_delay {
        settings.delivery_delay = whole(v, "settings.delivery_delay", &DELAY_SECONDS)
            .map_err(BrokerError::InvalidSchema)? as u32;
    }
    if let Some(v) = input.delivery_paused {
        settings.delivery_paused = v;
    }
    if let Some(v) = input.dedup_window_seconds {
        settings.dedup_window_seconds =
            whole(v, "settings.dedup_window_seconds", &DEDUP_WINDOW_SECONDS)
                .map_err(BrokerError::InvalidSchema)? as u32;
    }
    if let Some(v) = input.message_retention_period {
        settings.message_retention_period = whole(
            v,
            "settings.message_retention_period",
            &(min_retention..=*RETENTION_SECONDS.end()),
        )
        .map_err(BrokerError::InvalidSchema)? as u32;
    }
    // A queue may lower the deployment's quota, never raise it.
    // Lua numbers are doubles: above 2^53 a quota would no longer compare exactly.
    const LARGEST_QUOTA: u64 = (1 << 53) - 1;
    let quota = |v: f64, name: &str, most: u64| {
        let most = if most == 0 { LARGEST_QUOTA } else { most };
        whole(v, &format!("settings.{name}"), &(0..=most)).map_err(BrokerError::InvalidSchema)
    };
    if let Some(v) = input.max_backlog_messages {
        settings.max_backlog_messages =
            quota(v, "max_backlog_messages", limits.max_backlog_messages)?;
    }
    if let Some(v) = input.max_backlog_bytes {
        settings.max_backlog_bytes = quota(v, "max_backlog_bytes", limits.max_backlog_bytes)?;
    }
    Ok(settings)
}

pub fn queue_name(raw: Option<&str>) -> Result<QueueName, BrokerError> {
    let raw = raw.ok_or_else(|| BrokerError::schema("queue_name is required"))?;
    QueueName::parse(raw).ok_or_else(|| {
        BrokerError::schema("queue_name must be 1 to 63 characters of a-z, 0-9 and -")
    })
}

/// A redrive's source queue (`None`: every source) and most messages to move (default 1 000).
pub fn redrive(input: &RedriveInput) -> Result<(Option<QueueId>, u32), BrokerError> {
    let source = input
        .source_queue_id
        .as_deref()
        .map(|raw| {
            QueueId::parse(raw)
                .ok_or_else(|| BrokerError::schema("source_queue_id must be a queue id"))
        })
        .transpose()?;
    let max = input
        .max_messages
        .map(|v| whole(v, "max_messages", &REDRIVE_MESSAGES))
        .transpose()
        .map_err(BrokerError::InvalidSchema)?
        .unwrap_or(1_000);
    Ok((source, max as u32))
}

/// A consumer's dead-letter queue and settings; unset settings take their defaults.
pub fn consumer(
    input: &ConsumerInput,
) -> Result<(Option<QueueName>, ConsumerSettings), BrokerError> {
    match input.kind.as_deref() {
        None | Some("http_pull") => {}
        Some(other) => {
            return Err(BrokerError::schema(format!(
                "consumer type must be \"http_pull\", not {other:?}"
            )));
        }
    }
    let dead_letter_queue = match input.dead_letter_queue.as_deref() {
        None | Some("") => None,
        Some(name) => Some(QueueName::parse(name).ok_or_else(|| {
            BrokerError::schema("dead_letter_queue must be a queue name (a-z, 0-9 and -)")
        })?),
    };
    let mut settings = ConsumerSettings::default();
    if let Some(input) = &input.settings {
        let field = |v: Option<f64>, name: &str, range: &RangeInclusive<u64>| {
            v.map(|v| whole(v, &format!("settings.{name}"), range))
                .transpose()
                .map_err(BrokerError::InvalidSchema)
        };
        if let Some(v) = field(input.batch_size, "batch_size", &PULL_BATCH_SIZE)? {
            settings.batch_size = v as u32;
        }
        if let Some(v) = field(input.max_retries, "max_retries", &MAX_RETRIES)? {
            settings.max_retries = v as u32;
        }
        if let Some(v) = field(input.retry_delay, "retry_delay", &DELAY_SECONDS)? {
            settings.retry_delay = v as u32;
        }
        if let Some(v) = field(
            input.visibility_timeout_ms,
            "visibility_timeout_ms",
            &VISIBILITY_TIMEOUT_MS,
        )? {
            settings.visibility_timeout_ms = v;
        }
    }
    Ok((dead_letter_queue, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Limits {
        fn push_now(&self, input: &MessageInput) -> Result<NewMessage, BrokerError> {
            self.push(input, crate::model::now_ms())
        }

        fn batch_now(&self, input: &BatchInput) -> Result<Vec<NewMessage>, BrokerError> {
            self.batch(input, crate::model::now_ms())
        }
    }
    use serde_json::json;

    fn message(value: serde_json::Value) -> MessageInput {
        serde_json::from_value(value).expect("message input")
    }

    fn batch(value: serde_json::Value) -> BatchInput {
        serde_json::from_str(&value.to_string()).expect("batch input")
    }

    #[test]
    fn json_depth_is_counted_outside_strings() {
        assert!(json_depth_within(r#"{"a":[1,{"b":"[[[["}]}"#, 3));
        assert!(!json_depth_within(r#"{"a":[1,{"b":[]}]}"#, 3));
        assert!(json_depth_within(r#""\"[[[""#, 0));
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        let limits = Limits::default();
        let input: MessageInput =
            serde_json::from_str(&format!(r#"{{"body":{deep}}}"#)).expect("parses as raw");
        assert_eq!(limits.push_now(&input).map_err(|e| e.code()), Err(10207));
    }

    #[test]
    fn whole_numbers_are_checked_not_clamped() {
        assert_eq!(whole(5.0, "x", &(1..=10)), Ok(5));
        assert!(whole(0.0, "x", &(1..=10)).is_err());
        assert!(whole(11.0, "x", &(1..=10)).is_err());
        assert!(whole(1.5, "x", &(1..=10)).is_err());
        assert!(whole(f64::NAN, "x", &(1..=10)).is_err());
        assert!(whole(f64::INFINITY, "x", &(1..=10)).is_err());
        assert!(whole(-0.0, "x", &(0..=10)).is_ok());
    }

    #[test]
    fn content_type_decides_how_the_body_is_kept() {
        let limits = Limits::default();
        let text = limits
            .push_now(
                &serde_json::from_str(r#"{"body":"hi","content_type":"text"}"#).expect("json"),
            )
            .expect("valid");
        assert_eq!(
            (text.content_type, text.body.as_str()),
            (ContentType::Text, "hi")
        );
        let json = limits
            .push_now(
                &serde_json::from_str(r#"{"body":{"a":[1,2]},"content_type":"json"}"#)
                    .expect("json"),
            )
            .expect("valid");
        assert_eq!(
            (json.content_type, json.body.as_str()),
            (ContentType::Json, r#"{"a":[1,2]}"#)
        );
        let implicit = limits
            .push_now(&serde_json::from_str(r#"{"body":"plain"}"#).expect("json"))
            .expect("valid");
        assert_eq!(implicit.content_type, ContentType::Text);
    }

    #[test]
    fn bad_content_types_and_bodies_are_refused() {
        let limits = Limits::default();
        let wrong_type = limits
            .push_now(&serde_json::from_str(r#"{"body":"x","content_type":"v8"}"#).expect("json"));
        assert_eq!(wrong_type.map_err(|e| e.code()), Err(10203));
        let text_object = limits
            .push_now(&serde_json::from_str(r#"{"body":{},"content_type":"text"}"#).expect("json"));
        assert_eq!(text_object.map_err(|e| e.code()), Err(10203));
        let missing = limits.push_now(&message(json!({"content_type": "text"})));
        assert_eq!(missing.map_err(|e| e.code()), Err(10207));
    }

    #[test]
    fn message_and_batch_sizes_are_enforced() {
        let limits = Limits {
            message_bytes: 4,
            batch_bytes: 6,
            batch_messages: 2,
            ..Limits::default()
        };
        let big = limits.push_now(&serde_json::from_str(r#"{"body":"12345"}"#).expect("json"));
        assert_eq!(big.map_err(|e| (e.code(), e.status())), Err((10204, 413)));
        let too_many = limits.batch_now(&batch(
            json!({"messages": [{"body": "a"}, {"body": "b"}, {"body": "c"}]}),
        ));
        assert_eq!(
            too_many.map_err(|e| (e.code(), e.status())),
            Err((10206, 400))
        );
        let too_big = limits.batch_now(&batch(
            json!({"messages": [{"body": "1234"}, {"body": "1234"}]}),
        ));
        assert_eq!(
            too_big.map_err(|e| (e.code(), e.status())),
            Err((10205, 413))
        );
        let empty = limits.batch_now(&batch(json!({"messages": []})));
        assert_eq!(empty.map_err(|e| e.code()), Err(10207));
    }

    #[test]
    fn delays_come_from_the_message_then_the_batch() {
        let limits = Limits::default();
        let input = batch(
            json!({"delay_seconds": 7, "messages": [{"body": "a"}, {"body": "b", "delay_seconds": 0}]}),
        );
        let messages = limits.batch_now(&input).expect("valid");
        assert_eq!(messages[0].delay_ms, Some(7000));
        assert_eq!(messages[1].delay_ms, Some(0));
        let no_delay = limits
            .push_now(&message(json!({"body": "a"})))
            .expect("valid");
        assert_eq!(no_delay.delay_ms, None);
        let at = crate::model::now_ms() + 5_000;
        let scheduled = limits
            .push_now(&message(json!({"body": "a", "deliver_at_ms": at})))
            .expect("valid");
        assert!(scheduled.delay_ms.is_some_and(|d| d > 4_000 && d <= 5_000));
        let past = limits
            .push_now(&message(json!({"body": "a", "deliver_at_ms": 1})))
            .expect("valid");
        assert_eq!(past.delay_ms, Some(0));
        let far = limits.push_now(&message(
            json!({"body": "a", "deliver_at_ms": at + 86_400_000}),
        ));
        assert_eq!(far.map_err(|e| e.code()), Err(10203));
        let both = limits.push_now(&message(
            json!({"body": "a", "deliver_at_ms": at, "delay_seconds": 1}),
        ));
        assert_eq!(both.map_err(|e| e.code()), Err(10203));
        let bad_batch_delay = limits.batch_now(&batch(
            json!({"delay_seconds": 86_401, "messages": [{"body": "a"}]}),
        ));
        assert_eq!(bad_batch_delay.map_err(|e| e.code()), Err(10202));
        let bad_delay = limits.push_now(&message(json!({"body": "a", "delay_seconds": -1})));
        assert_eq!(bad_delay.map_err(|e| e.code()), Err(10203));
    }

    #[test]
    fn pull_bounds_are_enforced() {
        let limits = Limits::default();
        let pull =
            |v: serde_json::Value| limits.pull(&serde_json::from_value(v).expect("pull input"));
        assert_eq!(
            pull(json!({})).expect("valid"),
            PullRequest {
                batch_size: None,
                visibility_timeout_ms: None,
                wait_time_ms: 0
            }
        );
        assert_eq!(
            pull(json!({"wait_time_ms": 20_000}))
                .map(|r| r.wait_time_ms)
                .ok(),
            Some(20_000)
        );
        assert!(pull(json!({"wait_time_ms": 20_001})).is_err());
        assert_eq!(
            pull(json!({"batch_size": 0})).map_err(|e| e.code()),
            Err(10207)
        );
        assert_eq!(
            pull(json!({"batch_size": 101})).map_err(|e| e.code()),
            Err(10207)
        );
        assert!(pull(json!({"visibility_timeout_ms": 0})).is_err());
        assert!(pull(json!({"visibility_timeout_ms": 43_200_001})).is_err());
    }

    #[test]
    fn consumer_settings_default_and_validate() {
        let (dlq, settings) = consumer(&ConsumerInput::default()).expect("valid");
        assert_eq!((dlq, settings), (None, ConsumerSettings::default()));
        let worker: ConsumerInput =
            serde_json::from_value(json!({"type": "worker"})).expect("input");
        assert!(consumer(&worker).is_err());
        let bad: ConsumerInput =
            serde_json::from_value(json!({"settings": {"max_retries": 101}})).expect("input");
        assert!(consumer(&bad).is_err());
    }

    #[test]
    fn queue_settings_patch_only_what_is_given() {
        let base = QueueSettings {
            delivery_delay: 5,
            ..QueueSettings::default()
        };
        let input: QueueSettingsInput =
            serde_json::from_value(json!({"delivery_paused": true})).expect("input");
        let limits = Limits::default();
        let patched = queue_settings(Some(&input), base, &limits).expect("valid");
        assert_eq!(
            patched,
            QueueSettings {
                delivery_paused: true,
                ..base
            }
        );
        let short: QueueSettingsInput =
            serde_json::from_value(json!({"message_retention_period": 59})).expect("input");
        assert!(queue_settings(Some(&short), base, &limits).is_err());
        let floor_of_one = Limits {
            min_retention_period: 1,
            ..Limits::default()
        };
        assert!(
            queue_settings(Some(&short), base, &floor_of_one).is_ok(),
            "a configured floor applies"
        );
    }

    #[test]
    fn a_queue_may_lower_the_backlog_quota_but_not_raise_it() {
        let limits = Limits {
            max_backlog_messages: 100,
            max_backlog_bytes: 0,
            ..Limits::default()
        };
        let base = QueueSettings::default();
        let settings = |v: serde_json::Value| -> QueueSettingsInput {
            serde_json::from_value(v).expect("input")
        };
        let lower = settings(json!({"max_backlog_messages": 10, "max_backlog_bytes": 5000}));
        let lowered = queue_settings(Some(&lower), base, &limits).expect("valid");
        assert_eq!(
            (lowered.max_backlog_messages, lowered.max_backlog_bytes),
            (10, 5000)
        );
        let higher = settings(json!({"max_backlog_messages": 101}));
        assert!(queue_settings(Some(&higher), base, &limits).is_err());
        let unlimited_bytes = settings(json!({"max_backlog_bytes": 9_007_199_254_740_991u64}));
        assert!(queue_settings(Some(&unlimited_bytes), base, &limits).is_ok());
        let beyond_doubles = settings(json!({"max_backlog_bytes": 9_007_199_254_740_993u64}));
        assert!(queue_settings(Some(&beyond_doubles), base, &limits).is_err());
    }
}
