//! Request bodies as clients send them, before validation.
//!
//! Every field is optional and numbers are `f64`, because Cloudflare's schemas say
//! "number" and its SDKs send whatever the caller passed. Validation into model types
//! happens in [`super::limits`]; unknown fields are ignored.

use serde::Deserialize;
use serde_json::value::RawValue;

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

#[derive(Debug, Default, Deserialize)]
pub struct QueueSettingsInput {
    pub delivery_delay: Option<f64>,
    pub delivery_paused: Option<bool>,
    pub message_retention_period: Option<f64>,
    pub dedup_window_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct QueueInput {
    pub queue_name: Option<String>,
    #[serde(default, deserialize_with = "object::option")]
    pub settings: Option<QueueSettingsInput>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConsumerSettingsInput {
    pub batch_size: Option<f64>,
    pub max_retries: Option<f64>,
    pub retry_delay: Option<f64>,
    pub visibility_timeout_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConsumerInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub dead_letter_queue: Option<String>,
    #[serde(default, deserialize_with = "object::option")]
    pub settings: Option<ConsumerSettingsInput>,
}

#[derive(Debug, Default, Deserialize)]
pub struct MessageInput {
    pub body: Option<Box<RawValue>>,
    pub content_type: Option<String>,
    pub delay_seconds: Option<f64>,
    /// Extension (ElasticQueue's wait-until): first delivery at this Unix time, ms.
    pub deliver_at_ms: Option<f64>,
    /// Extension: idempotent push.
    pub dedup_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BatchInput {
    #[serde(default, deserialize_with = "object::list")]
    pub messages: Option<Vec<MessageInput>>,
    pub delay_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PullInput {
    pub batch_size: Option<f64>,
    pub visibility_timeout_ms: Option<f64>,
    /// Extension: long polling, 0–20 000 ms.
    pub wait_time_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PeekInput {
    pub batch_size: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AckEntryInput {
    pub lease_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RetryEntryInput {
    pub lease_id: Option<String>,
    pub delay_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ExtendEntryInput {
    pub lease_id: Option<String>,
    pub visibility_timeout_ms: Option<f64>,
}

/// Extension: `POST …/messages/extend`, a heartbeat for long jobs.
#[derive(Debug, Default, Deserialize)]
pub struct ExtendInput {
    #[serde(default, deserialize_with = "object::list")]
    pub leases: Option<Vec<ExtendEntryInput>>,
}

/// Extension: `POST …/redrive` on a dead-letter queue.
#[derive(Debug, Default, Deserialize)]
pub struct RedriveInput {
    pub source_queue_id: Option<String>,
    pub max_messages: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
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
