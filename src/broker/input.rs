//! Request bodies as clients send them, before validation.
//!
//! Every field is optional and numbers are `f64`, because Cloudflare's schemas say
//! "number" and its SDKs send whatever the caller passed. Validation into model types
//! happens in [`super::limits`]; unknown fields are ignored.
//!
//! The `#[schema]` attributes describe what validation accepts (whole numbers within
//! the ranges of [`super::limits`], with the default limits), so the API document tells
//! clients and fuzzers the real bounds. A test in `api::openapi` checks them against the
//! constants.

use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use crate::model::{ConsumerType, ContentType};

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
}

/// A queue to create (`queue_name` is required), or its new name and settings (PUT
/// resets the settings left out to their defaults; PATCH keeps them).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QueueInput {
    #[schema(pattern = "^[a-z0-9-]{1,63}$")]
    pub queue_name: Option<String>,
    #[serde(default, deserialize_with = "object::option")]
    pub settings: Option<QueueSettingsInput>,
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
}
