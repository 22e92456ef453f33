//! Leaf types shared by the API, the broker and the store.
//!
//! Identifiers are parsed once, at the edge, into types that can only hold valid values.
//! A validated id never contains `{`, `}`, `:` or whitespace, so it can be placed in a
//! Redis key without changing the key's Cluster hash tag.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// What an account id looks like, for the API document.
pub const ACCOUNT_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// What queue, consumer and message ids look like, for the API document.
pub const HEX32_PATTERN: &str = "^[0-9a-f]{32}$";
/// What a queue name created through the Cloudflare routes looks like.
pub const QUEUE_NAME_PATTERN: &str = "^[a-z0-9-]{1,63}$";
/// What any queue name looks like: Cloudflare's, or discue's (`myapp.io/orders`).
pub const ANY_QUEUE_NAME_PATTERN: &str = "^[A-Za-z0-9._/-]{1,255}$";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where the broker reads the time: lease expiry, delays, retention and timestamps all
/// follow it. The system clock in production; tests move a [`ManualClock`] instead of
/// sleeping.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// A clock that moves only when told to; clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Starting at the system clock's present.
    pub fn new() -> Self {
        Self(Arc::new(AtomicU64::new(now_ms())))
    }

    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 with millisecond precision, as Cloudflare returns `created_on`.
pub fn rfc3339_ms(ms: u64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// An account id: 1–64 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the 32-lowercase-hex form shared by queue, consumer and message ids.
fn parse_hex32(raw: &str) -> Option<[u8; 16]> {
    if raw.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in raw.as_bytes().chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0])?;
        let lo = hex_digit(pair[1])?;
        out[i] = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new UUIDv7, so ids sort by creation time.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            pub fn parse(raw: &str) -> Option<Self> {
                parse_hex32(raw).map(|bytes| Self(uuid::Uuid::from_bytes(bytes)))
            }

            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(uuid::Uuid::from_bytes(bytes))
            }

            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.simple())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                hex32_schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl ToSchema for $name {}
    };
}

/// The schema shared by the 32-hex ids.
#[cfg(feature = "openapi")]
fn hex32_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(HEX32_PATTERN))
        .description(Some(
            "32 lowercase hex characters (a UUIDv7 in simple form)",
        ))
        .examples(["01936d3e8a2b7c4d9e0f112233445566"])
        .into()
}

hex_id!(
    /// A queue id: 32 lowercase hex characters (UUIDv7).
    QueueId
);
hex_id!(
    /// A consumer id: 32 lowercase hex characters (UUIDv7).
    ConsumerId
);
hex_id!(
    /// A message id: 32 lowercase hex characters (UUIDv7).
    MessageId
);
hex_id!(
    /// A listener id: 32 lowercase hex characters (UUIDv7).
    ListenerId
);

/// A queue name: 1–255 of `[A-Za-z0-9._/-]`, which holds Cloudflare's names and
/// discue's (`myapp.io/deletion-request-queue`). Never a `,` or a newline (the scripts'
/// access argument separates names with them), nor a `{` (a Redis hash tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=255).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/'));
        valid.then(|| Self(raw.to_owned()))
    }

    /// Cloudflare's rule, for names given to its routes: 1–63 of `[a-z0-9-]`.
    pub fn parse_cloudflare(raw: &str) -> Option<Self> {
        let valid = raw.len() <= 63
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        Self::parse(raw).filter(|_| valid)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message group (SPEC §13): 1–128 bytes without control characters. Pull serves
/// groups round-robin, and `group_max_inflight` caps each group's leases. A group never
/// holds a NUL byte, which separates it from the round and id in its parked entries in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId(String);

impl GroupId {
    pub const MAX_BYTES: usize = 128;

    pub fn parse(raw: &str) -> Option<Self> {
        let valid =
            (1..=Self::MAX_BYTES).contains(&raw.len()) && !raw.chars().any(char::is_control);
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a caller may reach: one account, and within it every queue or only some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub account: AccountId,
    /// `None`: every queue of the account.
    pub queues: Option<Vec<QueueName>>,
}

impl Access {
    /// The whole account.
    pub fn account(account: AccountId) -> Self {
        Self {
            account,
            queues: None,
        }
    }

    pub fn allows(&self, name: &QueueName) -> bool {
        self.queues
            .as_ref()
            .is_none_or(|names| names.contains(name))
    }
}

/// How a message body is to be interpreted by consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Text,
    Json,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text",
            ContentType::Json => "json",
        }
    }
}

/// Queue-level settings, as Cloudflare names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QueueSettings {
    /// Seconds every message waits before its first delivery, unless it says otherwise.
    pub delivery_delay: u32,
    /// Paused queues accept pushes and refuse pulls.
    pub delivery_paused: bool,
    /// Seconds after which an unacked message is deleted.
    pub message_retention_period: u32,
    /// Extension: seconds a message's `dedup_id` is remembered; a repeat within it is
    /// accepted and not stored again.
    pub dedup_window_seconds: u32,
    /// Extension: most unacked messages the queue holds; a push beyond is refused.
    /// 0: the deployment's `limits.max_backlog_messages`, which also caps this.
    pub max_backlog_messages: u64,
    /// Extension: most body bytes of unacked messages the queue holds; a push beyond is
    /// refused. 0: the deployment's `limits.max_backlog_bytes`, which also caps this.
    pub max_backlog_bytes: u64,
    /// Extension (SPEC §13): most leased messages per group; 1 makes each group strict
    /// FIFO. 0: no limit. A lowered cap applies at once; a raised one to a group at its
    /// old cap when one of its leases ends.
    pub group_max_inflight: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            delivery_delay: 0,
            delivery_paused: false,
            message_retention_period: 345_600,
            dedup_window_seconds: 300,
            max_backlog_messages: 0,
            max_backlog_bytes: 0,
            group_max_inflight: 0,
        }
    }
}

/// Settings of an `http_pull` consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConsumerSettings {
    /// Messages a pull leases when it does not say.
    pub batch_size: u32,
    /// Redeliveries before a message is dead-lettered (or deleted without a DLQ).
    pub max_retries: u32,
    /// Seconds a retried message waits when the retry does not say.
    pub retry_delay: u32,
    /// Extension (SPEC §13), seconds; 0: off. When above `retry_delay`, a retry that
    /// does not say, and an expired lease, wait `retry_delay · 2^(attempts−1)`, at most
    /// this long, before the next delivery.
    pub retry_delay_max: u32,
    /// How long a pulled message stays leased when the pull does not say, ms.
    pub visibility_timeout_ms: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch_size: 5,
            max_retries: 3,
            retry_delay: 0,
            retry_delay_max: 0,
            visibility_timeout_ms: 30_000,
        }
    }
}

/// The only kind of consumer there is: consumers pull over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum ConsumerType {
    #[serde(rename = "http_pull")]
    HttpPull,
}

/// The single consumer a queue may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub id: ConsumerId,
    pub created_ms: u64,
    /// Name of the dead-letter queue; `None` when not configured.
    pub dead_letter_queue: Option<QueueName>,
    pub settings: ConsumerSettings,
}

/// Where a queue's data is meant to live (Cloudflare's `jurisdiction`). leaseq has one
/// location per deployment: the value is a label, set at creation and never changed,
/// that an operator can rely on (`limits.jurisdictions` lists those a deployment takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Jurisdiction {
    Eu,
    Us,
    Fedramp,
}

impl Jurisdiction {
    pub const ALL: [Jurisdiction; 3] = [Jurisdiction::Eu, Jurisdiction::Us, Jurisdiction::Fedramp];

    pub fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Eu => "eu",
            Jurisdiction::Us => "us",
            Jurisdiction::Fedramp => "fedramp",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == raw)
    }
}

/// A queue as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub id: QueueId,
    pub account: AccountId,
    pub name: QueueName,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub settings: QueueSettings,
    pub consumer: Option<Consumer>,
    /// When the last purge ran, if one did.
    pub purged_ms: Option<u64>,
    /// Set at creation, never changed.
    pub jurisdiction: Option<Jurisdiction>,
}

/// Exact backlog figures of one queue: every unacked message, ready, delayed or leased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Metrics))]
pub struct BacklogMetrics {
    /// Unacked messages.
    pub backlog_count: u64,
    /// Sum of their body sizes, bytes.
    pub backlog_bytes: u64,
    /// Smallest `timestamp_ms` among them; 0 when there are none.
    pub oldest_message_timestamp_ms: u64,
}

/// `GET …/metrics`: the exact backlog, and (extension) how much of it is leased or
/// waiting out a delay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = QueueMetrics))]
pub struct QueueMetrics {
    /// Unacked messages.
    pub backlog_count: u64,
    /// Sum of their body sizes, bytes.
    pub backlog_bytes: u64,
    /// Smallest `timestamp_ms` among them; 0 when there are none.
    pub oldest_message_timestamp_ms: u64,
    /// Extension: messages leased to a consumer now.
    pub inflight_count: u64,
    /// Extension: messages waiting for their delay or retry delay.
    pub delayed_count: u64,
    /// Extension: message groups with visible messages waiting for a round after the
    /// one being served (SPEC §13).
    pub visible_group_count: u64,
    /// Extension: `timestamp_ms` of the grouped message next in turn, the head of the
    /// group that has waited longest for its turn; 0 when no group has a visible message.
    pub oldest_group_head_timestamp_ms: u64,
}

/// Settings of a listener (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ListenerSettings))]
pub struct ListenerSettings {
    /// Most messages per delivery request.
    pub batch_size: u32,
    /// Failed attempts retried before a message is dead-lettered (or dropped).
    pub max_retries: u32,
    /// Seconds before the first retry; each further one waits twice as long.
    pub retry_delay: u32,
    /// The longest wait between retries, seconds.
    pub retry_delay_max: u32,
    /// How long one delivery request may take, ms.
    pub timeout_ms: u64,
    /// Most delivery requests in flight at once to this listener.
    pub max_concurrency: u32,
    /// A paused listener keeps receiving messages and delivers none.
    pub paused: bool,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            max_retries: 10,
            retry_delay: 5,
            retry_delay_max: 3_600,
            timeout_ms: 10_000,
            max_concurrency: 4,
            paused: false,
        }
    }
}

/// Whether a listener is being delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerHealth {
    Up,
    /// Its liveness URL failed: deliveries wait, without spending attempts, until a probe
    /// at `next_probe_ms` (or a later one) answers 2xx.
    Down {
        since_ms: u64,
        next_probe_ms: u64,
        /// The wait before the probe after next, ms (doubles up to a minute).
        probe_backoff_ms: u64,
    },
}

/// A secret a listener's deliveries are signed with (`whsec_` and base64).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A push destination of a queue: every message pushed after its creation is delivered
/// to `notify_url`, independently of the queue's pull consumer and other listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub id: ListenerId,
    pub name: String,
    pub notify_url: String,
    pub liveness_url: Option<String>,
    pub dead_letter_queue: Option<QueueName>,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub settings: ListenerSettings,
    pub secret: WebhookSecret,
    /// The secret before the last rotation, and until when (ms) deliveries are signed
    /// with it too.
    pub previous_secret: Option<(WebhookSecret, u64)>,
    pub health: ListenerHealth,
    /// Messages its lane holds (not yet delivered, dead-lettered or expired).
    pub backlog: u64,
}

/// A validated message ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub content_type: ContentType,
    /// The body as delivered: text as is, JSON as its JSON text.
    pub body: String,
    /// `None` means "use the queue's `delivery_delay`".
    /// Milliseconds before the first delivery; `None` means "the queue's `delivery_delay`".
    pub delay_ms: Option<u64>,
    /// Extension: a repeat of this id within the queue's dedup window is not stored again.
    pub dedup_id: Option<String>,
    /// A producer's label for the message (discue's `name`), returned where that API
    /// returns it.
    pub name: Option<String>,
    /// The message's group, when it has one.
    pub group_id: Option<GroupId>,
}

/// Where a message is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Ready,
    /// Visible again at this Unix time, ms.
    Delayed {
        until_ms: u64,
    },
    /// Leased until this Unix time, ms.
    Leased {
        until_ms: u64,
    },
}

/// A message as read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub content_type: ContentType,
    pub timestamp_ms: u64,
    pub attempts: u32,
    /// Increases with every delivery; a lease is current only for its generation.
    pub lease_generation: u64,
    pub group_id: Option<GroupId>,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_refuse_key_breaking_characters() {
        assert!(AccountId::parse("acct_1-A").is_some());
        for bad in [
            "",
            "a{b",
            "a}b",
            "a*b",
            "a:b",
            "a b",
            "a/b",
            &"a".repeat(65),
        ] {
            assert!(AccountId::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn hex_ids_are_32_lowercase_hex_characters() {
        let id = QueueId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(QueueId::parse(&text), Some(id));
        assert!(QueueId::parse(&text.to_uppercase()).is_none());
        assert!(QueueId::parse("{0000000000000000000000000000000}").is_none());
        assert!(QueueId::parse("0000000000000000000000000000000").is_none());
    }

    #[test]
    fn queue_names_follow_cloudflare_rules() {
        assert!(QueueName::parse_cloudflare("orders-eu-1").is_some());
        for bad in [
            "",
            "Orders",
            "a_b",
            "a b",
            "a:b",
            "a.b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(
                QueueName::parse_cloudflare(bad).is_none(),
                "{bad:?} was accepted"
            );
        }
        // Any name also takes discue's, never a key- or argument-breaking character.
        assert!(QueueName::parse("myapp.io/deletion-request-queue").is_some());
        for bad in [
            "",
            "a b",
            "a,b",
            "a\nb",
            "a{b",
            "a}b",
            "a:b",
            "a*b",
            &"a".repeat(256),
        ] {
            assert!(QueueName::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn access_limited_to_queues_allows_only_those() {
        let account = AccountId::parse("acct").expect("valid");
        let orders = QueueName::parse("orders").expect("valid");
        let billing = QueueName::parse("billing").expect("valid");
        let all = Access::account(account.clone());
        assert!(all.allows(&orders));
        let some = Access {
            account,
            queues: Some(vec![orders.clone()]),
        };
        assert!(some.allows(&orders));
        assert!(!some.allows(&billing));
    }

    #[test]
    fn rfc3339_has_millisecond_precision() {
        assert_eq!(rfc3339_ms(1_710_950_954_154), "2024-03-20T16:09:14.154Z");
    }
}
