//! Every way a broker operation can fail, with its Cloudflare code and HTTP status.
//!
//! The table lives here, in one place, so handlers never choose a status themselves.

/// A failure of a broker operation. `Display` is the message clients see.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    InvalidSchema(String),
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
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
    #[error("request body is larger than {limit} bytes")]
    RequestTooLarge { limit: usize },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("could not route to this path, perhaps an object identifier is invalid")]
    InvalidAccountId,
    #[error("no route for the URI")]
    NoRoute,
    #[error("queue id is malformed: expected 32 lowercase hex characters")]
    QueueIdMalformed,
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
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout { secs: u64 },
    #[error("storage is unavailable, retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(String),
}

impl BrokerError {
    /// `(cloudflare_code, http_status)`: one row per variant.
    pub fn code_and_status(&self) -> (u32, u16) {
        use BrokerError::*;
        match self {
            InvalidSchema(_) => (10207, 400),
            MalformedJson(_) => (10208, 400),
            InvalidMessageMetadata(_) => (10203, 400),
            InvalidBatchDelay(_) => (10202, 400),
            MessageTooLarge { .. } => (10204, 413),
            BatchTooLarge { .. } => (10205, 413),
            BatchTooMany { .. } => (10206, 400),
            RequestTooLarge { .. } => (10209, 413),
            Unauthenticated(_) => (10000, 401),
            Forbidden(_) => (9109, 403),
            InvalidAccountId => (7003, 400),
            NoRoute => (7003, 404),
            QueueIdMalformed => (10107, 400),
            QueueNotFound => (10104, 404),
            QueueNameTaken => (10109, 409),
            TooManyQueues { .. } => (10110, 409),
            ConsumerNotFound => (10120, 404),
            ConsumerExists => (10121, 409),
            QueueDeliveryPaused => (10252, 409),
            BacklogFull { .. } => (10260, 429),
            MessageNotFound => (10130, 404),
            RateLimited { .. } | TooManyLongPolls { .. } => (971, 429),
            RequestTimeout { .. } => (10210, 408),
            Unavailable(_) => (15000, 503),
            Internal(_) => (10001, 500),
        }
    }

    pub fn code(&self) -> u32 {
        self.code_and_status().0
    }

    pub fn status(&self) -> u16 {
        self.code_and_status().1
    }

    /// Seconds a client should wait before retrying (`Retry-After`), where that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            BrokerError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            BrokerError::TooManyLongPolls { .. } => Some(1),
            _ => None,
        }
    }

    /// Cloudflare's SDKs retry 409s unless told not to; a conflict never heals by retrying.
    pub fn should_retry(&self) -> Option<bool> {
        match self.status() {
            409 => Some(false),
            _ => None,
        }
    }

    pub fn schema(message: impl Into<String>) -> Self {
        BrokerError::InvalidSchema(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_tell_clients_not_to_retry() {
        assert_eq!(BrokerError::QueueNameTaken.should_retry(), Some(false));
        assert_eq!(BrokerError::QueueNotFound.should_retry(), None);
    }

    #[test]
    fn input_errors_are_never_server_errors() {
        let input_errors = [
            BrokerError::schema("x"),
            BrokerError::MalformedJson("x".into()),
            BrokerError::InvalidMessageMetadata("x".into()),
            BrokerError::MessageTooLarge { size: 2, limit: 1 },
            BrokerError::BatchTooMany { count: 2, limit: 1 },
            BrokerError::QueueIdMalformed,
            BrokerError::InvalidAccountId,
        ];
        for e in input_errors {
            assert!((400..500).contains(&e.status()), "{e:?}");
        }
    }
}
