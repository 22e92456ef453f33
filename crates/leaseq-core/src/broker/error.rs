//! Every way a broker operation can fail. The API maps each to its Cloudflare code and
//! HTTP status (`api::error`); nothing here knows either.

/// A failure of a broker operation, or of a request checked against its limits.
/// `Display` is the message clients see.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    InvalidSchema(String),
    #[error("{0}")]
    InvalidMessageMetadata(String),
    #[error("{0}")]
    InvalidBatchDelay(String),
    #[error("message body is {size} bytes; the limit is {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("batch is {size} bytes; the limit is {limit}")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("batch has {count} messages; the limit is {limit}")]
    BatchTooMany { count: usize, limit: usize },
    #[error("{0}")]
    Forbidden(String),
    #[error("queue does not exist")]
    QueueNotFound,
    #[error("queue name is already taken")]
    QueueNameTaken,
    #[error("the account already has {limit} queues")]
    TooManyQueues { limit: usize },
    #[error("consumer does not exist")]
    ConsumerNotFound,
    #[error("queue already has a consumer")]
    ConsumerExists,
    #[error("message does not exist")]
    MessageNotFound,
    #[error("listener does not exist")]
    ListenerNotFound,
    #[error("the queue already has {limit} listeners")]
    TooManyListeners { limit: usize },
    #[error("queue delivery is paused")]
    QueueDeliveryPaused,
    /// 0 means no limit of that kind.
    #[error(
        "the queue is full: its backlog may hold at most {messages} messages and {bytes} bytes (0: no limit); retry when consumers have caught up"
    )]
    BacklogFull { messages: u64, bytes: u64 },
    #[error("rate limited: retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(
        "too many long polls are waiting on this {per} (at most {limit} per broker process): retry, or pull without wait_time_ms"
    )]
    TooManyLongPolls { limit: usize, per: &'static str },
    #[error("storage is unavailable, retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(String),
}

impl BrokerError {
    /// Seconds a client should wait before retrying, where that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            BrokerError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            BrokerError::TooManyLongPolls { .. } => Some(1),
            _ => None,
        }
    }

    pub fn schema(message: impl Into<String>) -> Self {
        BrokerError::InvalidSchema(message.into())
    }
}
