//! Every error response, and the one table from a failure to its Cloudflare code and
//! HTTP status, so handlers never choose a status themselves.

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::{HttpResponse, ResponseError};

use super::envelope::ErrorEnvelope;
use crate::broker::BrokerError;

/// A failed request: the broker's refusal, or what the HTTP edge refuses before any
/// broker operation runs. `Display` is the message clients see.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body is larger than {limit} bytes")]
    RequestTooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout { secs: u64 },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("could not route to this path, perhaps an object identifier is invalid")]
    InvalidAccountId,
    #[error("no route for the URI")]
    NoRoute,
    #[error("queue id is malformed: expected 32 lowercase hex characters")]
    QueueIdMalformed,
}

impl ApiError {
    /// A body of the wrong shape (10207).
    pub fn schema(message: impl Into<String>) -> Self {
        BrokerError::schema(message).into()
    }

    /// `(cloudflare_code, http_status)`: one row per failure.
    pub fn code_and_status(&self) -> (u32, u16) {
        use BrokerError::*;
        let broker = match self {
            ApiError::Broker(e) => e,
            ApiError::MalformedJson(_) => return (10208, 400),
            ApiError::RequestTooLarge { .. } => return (10209, 413),
            ApiError::RequestTimeout { .. } => return (10210, 408),
            ApiError::Unauthenticated(_) => return (10000, 401),
            ApiError::InvalidAccountId => return (7003, 400),
            ApiError::NoRoute => return (7003, 404),
            ApiError::QueueIdMalformed => return (10107, 400),
        };
        match broker {
            InvalidSchema(_) => (10207, 400),
            InvalidMessageMetadata(_) => (10203, 400),
            InvalidBatchDelay(_) => (10202, 400),
            MessageTooLarge { .. } => (10204, 413),
            BatchTooLarge { .. } => (10205, 413),
            BatchTooMany { .. } => (10206, 400),
            Forbidden(_) => (9109, 403),
            QueueNotFound => (10104, 404),
            QueueNameTaken => (10109, 409),
            TooManyQueues { .. } => (10110, 409),
            ConsumerNotFound => (10120, 404),
            ConsumerExists => (10121, 409),
            QueueDeliveryPaused => (10252, 409),
            BacklogFull { .. } => (10260, 429),
            MessageNotFound => (10130, 404),
            // leaseq's own: Cloudflare has no listeners.
            ListenerNotFound => (10140, 404),
            TooManyListeners { .. } => (10141, 409),
            RateLimited { .. } | TooManyLongPolls { .. } => (971, 429),
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

    /// Cloudflare's SDKs retry 409s unless told not to; a conflict never heals by retrying.
    pub fn should_retry(&self) -> Option<bool> {
        (self.status() == 409).then_some(false)
    }
}

/// `Display` of an error and all its causes, for logs.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The cause goes to the log; clients get an opaque message.
            tracing::error!(error = %cause_chain(self), code = self.code(), "request failed");
        }
        let mut response = HttpResponse::build(status);
        if let ApiError::Broker(e) = self
            && let Some(secs) = e.retry_after_secs()
        {
            response.insert_header(("retry-after", secs.to_string()));
        }
        if let Some(retry) = self.should_retry() {
            response.insert_header((
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            ));
        }
        // Built by hand rather than through `json_response`, which reports its own
        // failures through here.
        let body = ErrorEnvelope::new(self.code(), self.to_string());
        match serde_json::to_value(&body) {
            Ok(value) => response.json(value),
            Err(_) => response.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_tell_clients_not_to_retry() {
        assert_eq!(
            ApiError::from(BrokerError::QueueNameTaken).should_retry(),
            Some(false)
        );
        assert_eq!(
            ApiError::from(BrokerError::QueueNotFound).should_retry(),
            None
        );
    }

    #[test]
    fn input_errors_are_never_server_errors() {
        let input_errors = [
            ApiError::schema("x"),
            ApiError::MalformedJson("x".into()),
            BrokerError::InvalidMessageMetadata("x".into()).into(),
            BrokerError::MessageTooLarge { size: 2, limit: 1 }.into(),
            BrokerError::BatchTooMany { count: 2, limit: 1 }.into(),
            ApiError::QueueIdMalformed,
            ApiError::InvalidAccountId,
        ];
        for e in input_errors {
            assert!((400..500).contains(&e.status()), "{e:?}");
        }
    }
}
