//! The seeds' own APIs (SPEC §10), each a thin mapping onto the broker's operations and
//! the Cloudflare routes' request checks: no rule is implemented twice. Each has its own
//! path prefix, auth header, error shape and status codes, as its seed documents them.

pub mod discue;
pub mod elasticqueue;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use super::ApiError;
use crate::broker::BrokerError;

/// A refusal of the Cloudflare request checks, worded with a dialect's field names:
/// each `(from, to)` of `renames` replaced in its message.
fn reworded(e: BrokerError, renames: &[(&str, &str)]) -> BrokerError {
    let reword = |mut message: String| {
        for (from, to) in renames {
            message = message.replace(from, to);
        }
        message
    };
    match e {
        BrokerError::InvalidSchema(m) => BrokerError::InvalidSchema(reword(m)),
        BrokerError::InvalidMessageMetadata(m) => BrokerError::InvalidMessageMetadata(reword(m)),
        other => other,
    }
}

/// `error` answered in a dialect's own shape: the Cloudflare answer's status, headers
/// (`Retry-After`…) and log line, with the body `body` makes of the status.
fn reshaped(
    error: &ApiError,
    content_type: &'static str,
    body: impl FnOnce(StatusCode) -> String,
) -> HttpResponse {
    let mut response = error.error_response();
    let body = body(response.status());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.set_body(actix_web::body::BoxBody::new(body))
}
