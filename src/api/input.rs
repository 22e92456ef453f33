//! Request bodies as clients send them, and the one place they are checked and turned
//! into the broker's commands.
//!
//! Every field is optional and numbers are `f64`, because Cloudflare's schemas say
//! "number" and its SDKs send whatever the caller passed; unknown fields are ignored.
//! The checks use the ranges and `[limits]` of `broker::limits`, and out-of-range input
//! is rejected, never clamped (SPEC §4).
//!
//! The `#[schema]` attributes describe what the checks accept (whole numbers within
//! those ranges, with the default limits), so the API document tells clients and
//! fuzzers the real bounds. A test in `api::openapi` checks them against the constants.

use std::ops::RangeInclusive;

use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use crate::broker::BrokerError;
use crate::broker::command::{
    Acks, ConsumerSpec, Extensions, ListenerSettingsChange, ListenerSpec, NewQueue, Pull,
    QueueChange, Redrive, SettingsChange,
};
use crate::broker::limits::{
    DEDUP_ID_BYTES, DEDUP_WINDOW_SECONDS, DELAY_SECONDS, GROUP_MAX_INFLIGHT, JSON_BODY_DEPTH,
    LISTENER_BATCH_SIZE, LISTENER_CONCURRENCY, LISTENER_NAME_BYTES, LISTENER_RETRY_DELAY,
    LISTENER_TIMEOUT_MS, LISTENER_URL_BYTES, Limits, MAX_RETRIES, PULL_BATCH_SIZE,
    REDRIVE_MESSAGES, RETENTION_SECONDS, VISIBILITY_TIMEOUT_MS, WAIT_TIME_MS,
};
use crate::model::{
    ConsumerSettings, ConsumerType, ContentType, GroupId, Jurisdiction, NewMessage, QueueId,
    QueueName,
};

/// Nested request objects must be JSON objects. serde's derive also reads a struct from
/// an array of all its fields in order (`"acks": [["<lease>"]]`), which no client means:
/// a positional array silently changes meaning when a field is added.
/// `crate::api::parse_json` refuses it for whole bodies, and these `deserialize_with`
/// helpers for the objects inside them.
mod object {
    use serde::de::{Deserialize, Deserializer, Visitor};

    /// `Option<T>`, where `T` must be written as a JSON object.
    pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Option::<Object<T>>::deserialize(d)?.map(|Object(t)| t))
    }

    /// `Option<Vec<T>>`, where each `T` must be written as a JSON object.
    pub fn list<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Option::<Vec<Object<T>>>::deserialize(d)?
            .map(|items| items.into_iter().map(|Object(t)| t).collect()))
    }

    struct Object<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            T::deserialize(MapOnly(d)).map(Object)
        }
    }

    /// A deserializer that offers its input to the visitor only as a map.
    struct MapOnly<D>(D);

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(visitor)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            struct enum identifier ignored_any
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QueueSettingsInput {
    /// Seconds every message waits before its first delivery, unless it says otherwise.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub delivery_delay: Option<f64>,
    /// Paused queues accept pushes and refuse pulls (409, code 10252).
    pub delivery_paused: Option<bool>,
    /// Seconds after which an unacked message is deleted. The lower bound is
    /// `limits.min_retention_period` (60 unless configured).
    #[schema(value_type = Option<i64>, minimum = 60, maximum = 1209600)]
    pub message_retention_period: Option<f64>,
    /// Extension: seconds a message's `dedup_id` is remembered.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400)]
    pub dedup_window_seconds: Option<f64>,
    /// Extension: most unacked messages the queue holds (a push beyond is 429, code
    /// 10260); 0 for the deployment's `limits.max_backlog_messages`, which also caps it.
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub max_backlog_messages: Option<f64>,
    /// Extension: most body bytes of unacked messages the queue holds (a push beyond is
    /// 429, code 10260); 0 for the deployment's `limits.max_backlog_bytes`, which also
    /// caps it.
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub max_backlog_bytes: Option<f64>,
    /// Extension: most leased messages per message group; 1 makes each group strict
    /// FIFO; 0 (default) no cap.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100000)]
    pub group_max_inflight: Option<f64>,
}

/// A queue to create (`queue_name` is required), or its new name and settings (PUT
/// resets the settings left out to their defaults; PATCH keeps them).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QueueInput {
    #[schema(pattern = "^[a-z0-9-]{1,63}$")]
    pub queue_name: Option<String>,
    #[serde(default, deserialize_with = "object::option")]
    pub settings: Option<QueueSettingsInput>,
    /// Set at creation (one of the deployment's `limits.jurisdictions`); on an update it
    /// may only repeat the queue's own.
    #[schema(value_type = Option<Jurisdiction>)]
    pub jurisdiction: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ConsumerSettingsInput {
    /// Messages a pull leases when it does not say.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub batch_size: Option<f64>,
    /// Redeliveries before a message is dead-lettered.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100)]
    pub max_retries: Option<f64>,
    /// Seconds a retried message waits when the retry does not say.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub retry_delay: Option<f64>,
    /// Extension: seconds; 0 (default) off. When above `retry_delay`, retries that do
    /// not say and expired leases wait `retry_delay · 2^(attempts−1)`, at most this.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub retry_delay_max: Option<f64>,
    /// How long a pulled message stays leased when the pull does not say, ms.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 43200000)]
    pub visibility_timeout_ms: Option<f64>,
}

/// The queue's consumer; settings left out take their defaults.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ConsumerInput {
    #[serde(rename = "type")]
    #[schema(value_type = Option<ConsumerType>)]
    pub kind: Option<String>,
    /// Name of another queue of the account (created when missing), or "" for none.
    #[schema(pattern = "^[a-z0-9-]{0,63}$")]
    pub dead_letter_queue: Option<String>,
    #[serde(default, deserialize_with = "object::option")]
    pub settings: Option<ConsumerSettingsInput>,
}

/// One message to push.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MessageInput {
    /// Any JSON value but `null` (see [`any_but_null`]).
    #[schema(schema_with = any_but_null, required = true)]
    pub body: Option<Box<RawValue>>,
    #[schema(value_type = Option<ContentType>)]
    pub content_type: Option<String>,
    /// Seconds before the first delivery; overrides the batch's and the queue's delay.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub delay_seconds: Option<f64>,
    /// Extension (ElasticQueue's wait-until): first delivery at this Unix time, ms, no
    /// later than 86 400 s from now. Not together with `delay_seconds`.
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub deliver_at_ms: Option<f64>,
    /// Extension: idempotent push. A repeat within the queue's `dedup_window_seconds`
    /// is accepted and not stored again. 1–128 bytes, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub dedup_id: Option<String>,
    /// Extension: the message's group. Pull serves groups round-robin, and the queue's
    /// `group_max_inflight` caps each group's leased messages (1: strict FIFO per group).
    /// 1–128 bytes, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub group_id: Option<String>,
}

/// The schema of a message body: any JSON value but `null`, which serde reads as "no
/// body" (400, "body is required").
fn any_but_null() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![
            Type::Object,
            Type::Array,
            Type::String,
            Type::Number,
            Type::Boolean,
        ]))
        .description(Some(
            "Any JSON value but null. With `content_type` \"text\" it must be a string; \
             without a content type, a string is text and anything else is JSON. At most \
             128 000 bytes as delivered (code 10204 beyond).",
        ))
        .into()
}

/// A batch: validated whole, then stored in one atomic step, or not at all.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BatchInput {
    /// At most 100 messages and 256 000 bytes of bodies.
    #[serde(default, deserialize_with = "object::list")]
    #[schema(value_type = Vec<MessageInput>, required = true, min_items = 1, max_items = 100)]
    pub messages: Option<Vec<MessageInput>>,
    /// Applies to the messages without a delay of their own (code 10202 when out of range).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub delay_seconds: Option<f64>,
}

/// Settings left out are the consumer's, else the defaults (5 messages, 30 000 ms).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PullInput {
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub batch_size: Option<f64>,
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 43200000)]
    pub visibility_timeout_ms: Option<f64>,
    /// Extension: long polling. How long to wait for a message when none is visible, ms.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 20000)]
    pub wait_time_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PeekInput {
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub batch_size: Option<f64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AckEntryInput {
    #[schema(value_type = String, required = true)]
    pub lease_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RetryEntryInput {
    #[schema(value_type = String, required = true)]
    pub lease_id: Option<String>,
    /// Seconds before the message is visible again; else the consumer's `retry_delay`.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub delay_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ExtendEntryInput {
    #[schema(value_type = String, required = true)]
    pub lease_id: Option<String>,
    /// The new lease, from now, ms; else the consumer's `visibility_timeout_ms`.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 43200000)]
    pub visibility_timeout_ms: Option<f64>,
}

/// Extension: `POST …/messages/extend`, a heartbeat for long jobs.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ExtendInput {
    /// At most 1 000 leases. Unknown, forged or stale ones come back in `warnings`.
    #[serde(default, deserialize_with = "object::list")]
    #[schema(max_items = 1000)]
    pub leases: Option<Vec<ExtendEntryInput>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefInput {
    /// A `ref` from a peek of this queue.
    #[serde(rename = "ref")]
    #[schema(value_type = String, required = true)]
    pub reference: Option<String>,
}

/// `POST …/messages/purge`: peeked messages to delete, at most 1 000.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PurgeInput {
    #[serde(default, deserialize_with = "object::list")]
    #[schema(max_items = 1000)]
    pub refs: Option<Vec<RefInput>>,
}

/// Extension: `POST …/redrive` on a dead-letter queue.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RedriveInput {
    /// Only the dead letters that came from this queue.
    #[schema(value_type = Option<String>, pattern = "^[0-9a-f]{32}$")]
    pub source_queue_id: Option<String>,
    /// Most messages to move.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub max_messages: Option<f64>,
}

/// Acks delete messages; retries make them visible again. At most 1 000 entries in all.
/// Unknown, forged or stale leases are not errors: they come back in `warnings`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AckInput {
    #[serde(default, deserialize_with = "object::list")]
    pub acks: Option<Vec<AckEntryInput>>,
    #[serde(default, deserialize_with = "object::list")]
    pub retries: Option<Vec<RetryEntryInput>>,
}

/// A listener's settings; those left out keep their value on PATCH and take their
/// defaults otherwise.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ListenerSettingsInput {
    /// Most messages per delivery request (default 10).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub batch_size: Option<f64>,
    /// Failed attempts retried before a message is dead-lettered, or dropped without a
    /// dead-letter queue (default 10).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100)]
    pub max_retries: Option<f64>,
    /// Seconds before the first retry; each next one waits twice as long (default 5).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub retry_delay: Option<f64>,
    /// The longest wait between retries, seconds (default 3 600).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 86400)]
    pub retry_delay_max: Option<f64>,
    /// How long one delivery request may take, ms (default 10 000).
    #[schema(value_type = Option<i64>, minimum = 100, maximum = 120000)]
    pub timeout_ms: Option<f64>,
    /// Most delivery requests in flight at once (default 4).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 64)]
    pub max_concurrency: Option<f64>,
    /// A paused listener keeps receiving messages and delivers none (default false).
    pub paused: Option<bool>,
}

/// A listener to create (`name` and `notify_url` required), or its new values.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ListenerInput {
    /// 1–256 bytes, no control characters.
    #[schema(min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// Where deliveries are POSTed: an http or https URL (at most 2 048 bytes) whose host
    /// is a public address unless the deployment allows private ones.
    #[schema(max_length = 2048)]
    pub notify_url: Option<String>,
    /// Probed (GET) after a failed delivery; while it does not answer 2xx the listener is
    /// down and deliveries wait without spending attempts. "" for none.
    #[schema(max_length = 2048)]
    pub liveness_url: Option<String>,
    /// Name of a queue of the account (created when missing) that receives messages
    /// whose last attempt failed, or "" for none (they are dropped and counted).
    #[schema(pattern = "^[A-Za-z0-9._/-]{0,255}$")]
    pub dead_letter_queue: Option<String>,
    #[serde(default, deserialize_with = "object::option")]
    pub settings: Option<ListenerSettingsInput>,
    /// PATCH or PUT: issue a new secret, shown in the answer. The old one stays valid for
    /// 24 h (deliveries carry both signatures).
    pub rotate_secret: Option<bool>,
}

// ---- checks: request bodies into commands ----------------------------------------------

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

/// A whole number within `range`, or a message saying why not.
pub fn whole(value: f64, field: &str, range: &RangeInclusive<u64>) -> Result<u64, String> {
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

/// One message; `batch_delay` applies when the message has no delay of its own.
fn message(
    limits: &Limits,
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
    if body.len() > limits.message_bytes {
        return Err(BrokerError::MessageTooLarge {
            size: body.len(),
            limit: limits.message_bytes,
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
            if (1..=DEDUP_ID_BYTES).contains(&id.len()) && !id.chars().any(char::is_control) =>
        {
            Some(id.to_owned())
        }
        Some(_) => {
            return Err(BrokerError::InvalidMessageMetadata(format!(
                "{field}dedup_id must be 1 to {DEDUP_ID_BYTES} bytes without control characters"
            )));
        }
    };
    let group_id = input
        .group_id
        .as_deref()
        .map(|raw| {
            GroupId::parse(raw).ok_or_else(|| {
                BrokerError::InvalidMessageMetadata(format!(
                    "{field}group_id must be 1 to {} bytes without control characters",
                    GroupId::MAX_BYTES
                ))
            })
        })
        .transpose()?;
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
        name: None,
        group_id,
    })
}

/// One message pushed at `now_ms`.
pub fn push(limits: &Limits, input: &MessageInput, now_ms: u64) -> Result<NewMessage, BrokerError> {
    message(limits, input, None, "", now_ms)
}

/// Checks the whole batch before anything is stored: all or nothing.
pub fn batch(
    limits: &Limits,
    input: &BatchInput,
    now_ms: u64,
) -> Result<Vec<NewMessage>, BrokerError> {
    let batch_delay =
        delay(input.delay_seconds, "delay_seconds").map_err(BrokerError::InvalidBatchDelay)?;
    let messages = input
        .messages
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| BrokerError::schema("messages must hold at least one message"))?;
    if messages.len() > limits.batch_messages {
        return Err(BrokerError::BatchTooMany {
            count: messages.len(),
            limit: limits.batch_messages,
        });
    }
    let validated = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(limits, m, batch_delay, &format!("messages[{i}]."), now_ms))
        .collect::<Result<Vec<_>, _>>()?;
    let size: usize = validated.iter().map(|m| m.body.len()).sum();
    if size > limits.batch_bytes {
        return Err(BrokerError::BatchTooLarge {
            size,
            limit: limits.batch_bytes,
        });
    }
    Ok(validated)
}

pub fn pull(input: &PullInput) -> Result<Pull, BrokerError> {
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
    Ok(Pull {
        batch_size,
        visibility_timeout_ms,
        wait_time_ms,
    })
}

/// The batch size of a peek.
pub fn peek(input: &PeekInput) -> Result<Option<u32>, BrokerError> {
    input
        .batch_size
        .map(|v| whole(v, "batch_size", &PULL_BATCH_SIZE).map(|n| n as u32))
        .transpose()
        .map_err(BrokerError::InvalidSchema)
}

pub fn acks(limits: &Limits, input: AckInput) -> Result<Acks, BrokerError> {
    let acks = input.acks.unwrap_or_default();
    let retries = input.retries.unwrap_or_default();
    if acks.len() + retries.len() > limits.ack_entries {
        return Err(BrokerError::schema(format!(
            "at most {} acks and retries per request",
            limits.ack_entries
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
            let lease_id = r
                .lease_id
                .ok_or_else(|| BrokerError::schema(format!("retries[{i}].lease_id is required")))?;
            let delay = delay(r.delay_seconds, &format!("retries[{i}].delay_seconds"))
                .map_err(BrokerError::InvalidMessageMetadata)?;
            Ok((lease_id, delay))
        })
        .collect::<Result<Vec<_>, BrokerError>>()?;
    Ok(Acks { acks, retries })
}

pub fn extensions(limits: &Limits, input: ExtendInput) -> Result<Extensions, BrokerError> {
    let leases = input.leases.unwrap_or_default();
    if leases.len() > limits.ack_entries {
        return Err(BrokerError::schema(format!(
            "at most {} leases per request",
            limits.ack_entries
        )));
    }
    leases
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let lease_id = l
                .lease_id
                .ok_or_else(|| BrokerError::schema(format!("leases[{i}].lease_id is required")))?;
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

/// A new queue: `queue_name` is required.
pub fn new_queue(limits: &Limits, input: &QueueInput) -> Result<NewQueue, BrokerError> {
    Ok(NewQueue {
        name: queue_name(input.queue_name.as_deref())?,
        settings: settings_change(input.settings.as_ref(), limits)?,
        jurisdiction: jurisdiction(limits, input.jurisdiction.as_deref())?,
    })
}

fn jurisdiction(limits: &Limits, raw: Option<&str>) -> Result<Option<Jurisdiction>, BrokerError> {
    let Some(raw) = raw else { return Ok(None) };
    Jurisdiction::parse(raw)
        .filter(|j| {
            limits
                .jurisdictions
                .iter()
                .any(|allowed| allowed == j.as_str())
        })
        .map(Some)
        .ok_or_else(|| {
            BrokerError::schema(format!(
                "jurisdiction must be one of {}",
                limits.jurisdictions.join(", ")
            ))
        })
}

/// A change of name and settings; `keep_unstated` for PATCH, not for PUT.
pub fn queue_change(
    limits: &Limits,
    input: &QueueInput,
    keep_unstated: bool,
) -> Result<QueueChange, BrokerError> {
    Ok(QueueChange {
        name: input
            .queue_name
            .as_deref()
            .map(|raw| queue_name(Some(raw)))
            .transpose()?,
        settings: settings_change(input.settings.as_ref(), limits)?,
        keep_unstated,
        jurisdiction: jurisdiction(limits, input.jurisdiction.as_deref())?,
    })
}

/// The queue settings `input` states. The shortest retention allowed is
/// `limits.min_retention_period` (Cloudflare's 60 s unless configured).
fn settings_change(
    input: Option<&QueueSettingsInput>,
    limits: &Limits,
) -> Result<SettingsChange, BrokerError> {
    let min_retention = limits.min_retention_period;
    let Some(input) = input else {
        return Ok(SettingsChange::default());
    };
    let seconds = |v: Option<f64>, name: &str, range: &RangeInclusive<u64>| {
        v.map(|v| whole(v, &format!("settings.{name}"), range).map(|n| n as u32))
            .transpose()
            .map_err(BrokerError::InvalidSchema)
    };
    let mut settings = SettingsChange {
        delivery_delay: seconds(input.delivery_delay, "delivery_delay", &DELAY_SECONDS)?,
        delivery_paused: input.delivery_paused,
        dedup_window_seconds: seconds(
            input.dedup_window_seconds,
            "dedup_window_seconds",
            &DEDUP_WINDOW_SECONDS,
        )?,
        message_retention_period: seconds(
            input.message_retention_period,
            "message_retention_period",
            &(min_retention..=*RETENTION_SECONDS.end()),
        )?,
        group_max_inflight: input
            .group_max_inflight
            .map(|v| whole(v, "settings.group_max_inflight", &GROUP_MAX_INFLIGHT).map(|n| n as u32))
            .transpose()
            .map_err(BrokerError::InvalidSchema)?,
        ..SettingsChange::default()
    };
    // A queue may lower the deployment's quota, never raise it.
    // Lua numbers are doubles: above 2^53 a quota would no longer compare exactly.
    const LARGEST_QUOTA: u64 = (1 << 53) - 1;
    let quota = |v: f64, name: &str, most: u64| {
        let most = if most == 0 { LARGEST_QUOTA } else { most };
        whole(v, &format!("settings.{name}"), &(0..=most)).map_err(BrokerError::InvalidSchema)
    };
    if let Some(v) = input.max_backlog_messages {
        settings.max_backlog_messages = Some(quota(
            v,
            "max_backlog_messages",
            limits.max_backlog_messages,
        )?);
    }
    if let Some(v) = input.max_backlog_bytes {
        settings.max_backlog_bytes = Some(quota(v, "max_backlog_bytes", limits.max_backlog_bytes)?);
    }
    Ok(settings)
}

fn queue_name(raw: Option<&str>) -> Result<QueueName, BrokerError> {
    let raw = raw.ok_or_else(|| BrokerError::schema("queue_name is required"))?;
    QueueName::parse_cloudflare(raw).ok_or_else(|| {
        BrokerError::schema("queue_name must be 1 to 63 characters of a-z, 0-9 and -")
    })
}

/// A redrive: its source queue (`None`: every source), at most 1 000 messages unless
/// it says.
pub fn redrive(input: &RedriveInput) -> Result<Redrive, BrokerError> {
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
    Ok(Redrive {
        source,
        max_messages: max as u32,
    })
}

/// A consumer's dead-letter queue and settings; unset settings take their defaults.
pub fn consumer(input: &ConsumerInput) -> Result<ConsumerSpec, BrokerError> {
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
        Some(name) => Some(QueueName::parse_cloudflare(name).ok_or_else(|| {
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
        if let Some(v) = field(input.retry_delay_max, "retry_delay_max", &DELAY_SECONDS)? {
            settings.retry_delay_max = v as u32;
        }
        if let Some(v) = field(
            input.visibility_timeout_ms,
            "visibility_timeout_ms",
            &VISIBILITY_TIMEOUT_MS,
        )? {
            settings.visibility_timeout_ms = v;
        }
    }
    Ok(ConsumerSpec {
        dead_letter_queue,
        settings,
    })
}

/// A listener's name, URLs (their syntax; the caller checks where they lead), dead-letter
/// queue and settings. `keep_unstated` for PATCH.
pub fn listener(input: &ListenerInput, keep_unstated: bool) -> Result<ListenerSpec, BrokerError> {
    let name = input
        .name
        .as_deref()
        .map(|name| {
            let valid = (1..=LISTENER_NAME_BYTES).contains(&name.len())
                && !name.chars().any(char::is_control);
            valid.then(|| name.to_owned()).ok_or_else(|| {
                BrokerError::schema(format!(
                    "name must be 1 to {LISTENER_NAME_BYTES} bytes without control characters"
                ))
            })
        })
        .transpose()?;
    let url = |value: Option<&str>, field: &str| -> Result<Option<String>, BrokerError> {
        match value {
            None => Ok(None),
            Some(url) if url.len() > LISTENER_URL_BYTES => Err(BrokerError::schema(format!(
                "{field} must be at most {LISTENER_URL_BYTES} bytes"
            ))),
            Some(url) => Ok(Some(url.to_owned())),
        }
    };
    let notify_url = url(input.notify_url.as_deref(), "notify_url")?;
    if notify_url.as_deref() == Some("") {
        return Err(BrokerError::schema(
            "notify_url must be an http or https URL",
        ));
    }
    let liveness_url = url(input.liveness_url.as_deref(), "liveness_url")?
        .map(|url| (!url.is_empty()).then_some(url));
    let dead_letter_queue = match input.dead_letter_queue.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(name) => Some(Some(QueueName::parse(name).ok_or_else(|| {
            BrokerError::schema("dead_letter_queue must be a queue name (a-z, 0-9 and -)")
        })?)),
    };
    let mut settings = ListenerSettingsChange::default();
    if let Some(input) = &input.settings {
        let field = |v: Option<f64>, name: &str, range: &RangeInclusive<u64>| {
            v.map(|v| whole(v, &format!("settings.{name}"), range))
                .transpose()
                .map_err(BrokerError::InvalidSchema)
        };
        let small = |v: Option<u64>| v.map(|n| n as u32);
        settings = ListenerSettingsChange {
            batch_size: small(field(input.batch_size, "batch_size", &LISTENER_BATCH_SIZE)?),
            max_retries: small(field(input.max_retries, "max_retries", &MAX_RETRIES)?),
            retry_delay: small(field(
                input.retry_delay,
                "retry_delay",
                &LISTENER_RETRY_DELAY,
            )?),
            retry_delay_max: small(field(
                input.retry_delay_max,
                "retry_delay_max",
                &LISTENER_RETRY_DELAY,
            )?),
            timeout_ms: field(input.timeout_ms, "timeout_ms", &LISTENER_TIMEOUT_MS)?,
            max_concurrency: small(field(
                input.max_concurrency,
                "max_concurrency",
                &LISTENER_CONCURRENCY,
            )?),
            paused: input.paused,
        };
    }
    Ok(ListenerSpec {
        name,
        notify_url,
        liveness_url,
        dead_letter_queue,
        settings,
        keep_unstated,
        rotate_secret: input.rotate_secret.unwrap_or(false),
    })
}

/// The refs of a purge.
pub fn refs(limits: &Limits, input: PurgeInput) -> Result<Vec<String>, BrokerError> {
    let refs = input.refs.unwrap_or_default();
    if refs.len() > limits.ack_entries {
        return Err(BrokerError::schema(format!(
            "at most {} refs per request",
            limits.ack_entries
        )));
    }
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.reference
                .ok_or_else(|| BrokerError::schema(format!("refs[{i}].ref is required")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_cannot_be_written_as_arrays() {
        let queue = |v| serde_json::from_str::<QueueInput>(v).map(|q| q.settings.is_some());
        assert_eq!(
            queue(r#"{"settings":{"delivery_delay":5}}"#).ok(),
            Some(true)
        );
        assert_eq!(queue(r#"{"settings":null}"#).ok(), Some(false));
        assert_eq!(queue(r#"{"queue_name":"q"}"#).ok(), Some(false));
        assert!(queue(r#"{"settings":[5,false,60,300]}"#).is_err());
        let acks = |v| serde_json::from_str::<AckInput>(v).map(|a| a.acks.map(|a| a.len()));
        assert_eq!(acks(r#"{"acks":[{"lease_id":"x"}]}"#).ok(), Some(Some(1)));
        assert_eq!(acks(r#"{"acks":null}"#).ok(), Some(None));
        assert_eq!(acks("{}").ok(), Some(None));
        assert!(acks(r#"{"acks":[["x"]]}"#).is_err());
        let batch = serde_json::from_str::<BatchInput>(r#"{"messages":[{"body":{"k":[1]}}]}"#);
        let body = batch
            .ok()
            .and_then(|b| b.messages)
            .map(|m| m[0].body.as_ref().map(|b| b.get().to_owned()));
        assert_eq!(body, Some(Some(r#"{"k":[1]}"#.to_owned())));
        assert!(
            serde_json::from_str::<BatchInput>(r#"{"messages":[["x",null,null,null,null]]}"#)
                .is_err()
        );
    }

    use crate::api::ApiError;
    use crate::model::{ContentType, QueueSettings};

    fn push_now(limits: &Limits, input: &MessageInput) -> Result<NewMessage, BrokerError> {
        push(limits, input, crate::model::now_ms())
    }

    fn batch_now(limits: &Limits, input: &BatchInput) -> Result<Vec<NewMessage>, BrokerError> {
        super::batch(limits, input, crate::model::now_ms())
    }

    fn code(e: BrokerError) -> u32 {
        ApiError::from(e).code()
    }

    fn code_and_status(e: BrokerError) -> (u32, u16) {
        ApiError::from(e).code_and_status()
    }

    fn queue_settings(
        input: Option<&QueueSettingsInput>,
        base: QueueSettings,
        limits: &Limits,
    ) -> Result<QueueSettings, BrokerError> {
        settings_change(input, limits).map(|change| change.apply(base))
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
        assert_eq!(push_now(&limits, &input).map_err(code), Err(10207));
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
        let text = push_now(
            &limits,
            &serde_json::from_str(r#"{"body":"hi","content_type":"text"}"#).expect("json"),
        )
        .expect("valid");
        assert_eq!(
            (text.content_type, text.body.as_str()),
            (ContentType::Text, "hi")
        );
        let json = push_now(
            &limits,
            &serde_json::from_str(r#"{"body":{"a":[1,2]},"content_type":"json"}"#).expect("json"),
        )
        .expect("valid");
        assert_eq!(
            (json.content_type, json.body.as_str()),
            (ContentType::Json, r#"{"a":[1,2]}"#)
        );
        let implicit = push_now(
            &limits,
            &serde_json::from_str(r#"{"body":"plain"}"#).expect("json"),
        )
        .expect("valid");
        assert_eq!(implicit.content_type, ContentType::Text);
    }

    #[test]
    fn bad_content_types_and_bodies_are_refused() {
        let limits = Limits::default();
        let wrong_type = push_now(
            &limits,
            &serde_json::from_str(r#"{"body":"x","content_type":"v8"}"#).expect("json"),
        );
        assert_eq!(wrong_type.map_err(code), Err(10203));
        let text_object = push_now(
            &limits,
            &serde_json::from_str(r#"{"body":{},"content_type":"text"}"#).expect("json"),
        );
        assert_eq!(text_object.map_err(code), Err(10203));
        let missing = push_now(&limits, &message(json!({"content_type": "text"})));
        assert_eq!(missing.map_err(code), Err(10207));
    }

    #[test]
    fn message_and_batch_sizes_are_enforced() {
        let limits = Limits {
            message_bytes: 4,
            batch_bytes: 6,
            batch_messages: 2,
            ..Limits::default()
        };
        let big = push_now(
            &limits,
            &serde_json::from_str(r#"{"body":"12345"}"#).expect("json"),
        );
        assert_eq!(big.map_err(code_and_status), Err((10204, 413)));
        let too_many = batch_now(
            &limits,
            &batch(json!({"messages": [{"body": "a"}, {"body": "b"}, {"body": "c"}]})),
        );
        assert_eq!(too_many.map_err(code_and_status), Err((10206, 400)));
        let too_big = batch_now(
            &limits,
            &batch(json!({"messages": [{"body": "1234"}, {"body": "1234"}]})),
        );
        assert_eq!(too_big.map_err(code_and_status), Err((10205, 413)));
        let empty = batch_now(&limits, &batch(json!({"messages": []})));
        assert_eq!(empty.map_err(code), Err(10207));
    }

    #[test]
    fn delays_come_from_the_message_then_the_batch() {
        let limits = Limits::default();
        let input = batch(
            json!({"delay_seconds": 7, "messages": [{"body": "a"}, {"body": "b", "delay_seconds": 0}]}),
        );
        let messages = batch_now(&limits, &input).expect("valid");
        assert_eq!(messages[0].delay_ms, Some(7000));
        assert_eq!(messages[1].delay_ms, Some(0));
        let no_delay = push_now(&limits, &message(json!({"body": "a"}))).expect("valid");
        assert_eq!(no_delay.delay_ms, None);
        let at = crate::model::now_ms() + 5_000;
        let scheduled =
            push_now(&limits, &message(json!({"body": "a", "deliver_at_ms": at}))).expect("valid");
        assert!(scheduled.delay_ms.is_some_and(|d| d > 4_000 && d <= 5_000));
        let past =
            push_now(&limits, &message(json!({"body": "a", "deliver_at_ms": 1}))).expect("valid");
        assert_eq!(past.delay_ms, Some(0));
        let far = push_now(
            &limits,
            &message(json!({"body": "a", "deliver_at_ms": at + 86_400_000})),
        );
        assert_eq!(far.map_err(code), Err(10203));
        let both = push_now(
            &limits,
            &message(json!({"body": "a", "deliver_at_ms": at, "delay_seconds": 1})),
        );
        assert_eq!(both.map_err(code), Err(10203));
        let bad_batch_delay = batch_now(
            &limits,
            &batch(json!({"delay_seconds": 86_401, "messages": [{"body": "a"}]})),
        );
        assert_eq!(bad_batch_delay.map_err(code), Err(10202));
        let bad_delay = push_now(&limits, &message(json!({"body": "a", "delay_seconds": -1})));
        assert_eq!(bad_delay.map_err(code), Err(10203));
    }

    #[test]
    fn pull_bounds_are_enforced() {
        let pull =
            |v: serde_json::Value| super::pull(&serde_json::from_value(v).expect("pull input"));
        assert_eq!(
            pull(json!({})).expect("valid"),
            Pull {
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
        assert_eq!(pull(json!({"batch_size": 0})).map_err(code), Err(10207));
        assert_eq!(pull(json!({"batch_size": 101})).map_err(code), Err(10207));
        assert!(pull(json!({"visibility_timeout_ms": 0})).is_err());
        assert!(pull(json!({"visibility_timeout_ms": 43_200_001})).is_err());
    }

    #[test]
    fn consumer_settings_default_and_validate() {
        let spec = consumer(&ConsumerInput::default()).expect("valid");
        assert_eq!(
            (spec.dead_letter_queue, spec.settings),
            (None, ConsumerSettings::default())
        );
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
