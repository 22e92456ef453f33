//! What the routes' documentation shares: path parameters, the body of queue creation
//! and the error responses. A leaf: handlers use it, and `openapi` gathers it with the
//! handlers into the document.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToResponse, ToSchema};

use super::ApiError;
use super::envelope::ErrorEnvelope;
use super::input::QueueInput;
use crate::broker::BrokerError;

/// The `{account_id}` every `/accounts` route starts with. The `Principal` extractor
/// reads it from the match info; this type only documents it.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "documents a parameter the extractors read")]
pub struct AccountPath {
    /// 1–64 of A-Z a-z 0-9 _ -.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub account_id: String,
}

/// The `{queue_id}` of every route under a queue. The `OnQueue` extractor reads it from
/// the match info; this type only documents it.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "documents a parameter the extractors read")]
pub struct QueuePath {
    #[param(pattern = "^[0-9a-f]{32}$")]
    pub queue_id: String,
}

/// The body of `POST /queues`: `QueueInput` with `queue_name` required and not null
/// (updates share `QueueInput`, where it may be left out).
pub struct NewQueueInput;

impl PartialSchema for NewQueueInput {
    fn schema() -> RefOr<Schema> {
        let mut schema = QueueInput::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.push("queue_name".to_owned());
            if let Some(RefOr::T(Schema::Object(name))) = object.properties.get_mut("queue_name") {
                name.schema_type = SchemaType::Type(Type::String);
            }
        }
        schema
    }
}

impl ToSchema for NewQueueInput {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        QueueInput::schemas(schemas);
    }
}

/// An error response: the envelope, an example made from a real `ApiError` (so its
/// code and message are the ones sent), and the headers that error carries.
fn error_response(description: &str, example: impl Into<ApiError>) -> RefOr<Response> {
    let example: ApiError = example.into();
    let body = serde_json::to_value(ErrorEnvelope::new(example.code(), example.to_string()))
        .unwrap_or_default();
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorEnvelope::name())))
        .example(Some(body))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    if example.should_retry().is_some() {
        response = response.header(
            "x-should-retry",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["false"])),
                )
                .description(Some("Retrying cannot help: Cloudflare's SDKs read this."))
                .build(),
        );
    }
    if matches!(example, ApiError::Broker(BrokerError::RateLimited { .. })) {
        response = response.header(
            "retry-after",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("Seconds until a request may succeed."))
                .build(),
        );
    }
    response.build().into()
}

/// Reusable error responses (`#/components/responses/…`), one per status.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $description:literal, $example:expr;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), error_response($description, $example))
                }
            }
        )*
    };
}

error_responses! {
    /// 400.
    BadRequest => "The request is invalid; nothing was done. Codes: 10207 the body or a \
        query parameter does not match the schema (a number out of range, a missing field); \
        10208 the body is not JSON; 10203 a message's body, content_type, delay_seconds, \
        deliver_at_ms or dedup_id is invalid; 10202 a batch's delay_seconds is invalid; \
        10206 a batch has more than 100 messages; 10107 queue_id is not 32 lowercase hex \
        characters; 7003 account_id is malformed.",
        BrokerError::schema("batch_size must be a whole number from 1 to 100");
    /// 401.
    Unauthorized => "Code 10000: the token is missing, malformed, expired or badly signed.",
        ApiError::Unauthenticated("missing bearer token".into());
    /// 403.
    Forbidden => "Code 9109: the token is valid but does not grant this account, this \
        queue (a token limited to queue names) or the scope the route needs.",
        BrokerError::Forbidden("the token lacks the scope queues:write".into());
    /// 404.
    NotFound => "Codes: 10104 the queue does not exist (or is another account's); 10120 \
        the consumer does not exist; 10130 the message does not exist.",
        BrokerError::QueueNotFound;
    /// 408.
    RequestTimeout => "Code 10210: the request body did not arrive within \
        server.client_timeout_secs.",
        ApiError::RequestTimeout { secs: 10 };
    /// 409, with `x-should-retry: false`.
    Conflict => "Codes: 10109 the queue name is taken; 10110 the account has as many \
        queues as it may; 10121 the queue already has another consumer; 10252 the queue's \
        delivery is paused (pull).",
        BrokerError::QueueNameTaken;
    /// 413.
    PayloadTooLarge => "Codes: 10209 the request body is over limits.request_bytes \
        (1 MiB); 10204 a message body is over limits.message_bytes (128 000 bytes); 10205 a \
        batch's bodies add up to over limits.batch_bytes (256 000 bytes).",
        BrokerError::MessageTooLarge { size: 128_001, limit: 128_000 };
    /// 429, with `retry-after`.
    TooManyRequests => "Code 971: rate limited, per account and per queue, or too many long \
        polls waiting on the queue or account; code 10260 (pushes): the queue's backlog is at \
        its quota.",
        BrokerError::RateLimited { retry_after_secs: 1 };
    /// 503.
    Unavailable => "Code 15000: Redis did not answer in time. Answered fast; retry later.",
        BrokerError::Unavailable("redis timed out".into());
}
