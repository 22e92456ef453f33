//! Request bodies as clients send them, before validation.
//!
//! Every field is optional and numbers are `f64`, because Cloudflare's schemas say
//! "number" and its SDKs send whatever the caller passed. Validation into model types
//! happens in [`super::limits`]; unknown fields are ignored.

use serde::Deserialize;
use serde_json::value::RawValue;

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
    pub acks: Option<Vec<AckEntryInput>>,
    pub retries: Option<Vec<RetryEntryInput>>,
}
