//! `/accounts/{account_id}/queues/{queue_id}/messages…`: push, pull, ack, peek.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::doc::{AccountPath, BadRequest, Conflict, NotFound, PayloadTooLarge, QueuePath};
use super::envelope::{Envelope, JsonBody, Null, Page, ok, ok_list};
use super::input::{
    self, AckInput, BatchInput, ExtendInput, MessageInput, PeekInput, PullInput, PurgeInput,
};
use super::principal::OnQueue;
use crate::auth::{MessagesPull, MessagesPush, QueuesWrite};
use crate::broker::{Broker, BrokerError};
use crate::model::{BacklogMetrics, ContentType, GroupId, MessageId, MessageState, StoredMessage};

#[derive(Serialize, ToSchema)]
pub struct MetricsMetadata {
    metrics: BacklogMetrics,
}

/// The queue's backlog after the push.
#[derive(Serialize, ToSchema)]
pub struct PushResult {
    metadata: MetricsMetadata,
}

/// Where a message came from: always the API.
#[derive(Serialize, ToSchema)]
pub enum MessageSource {
    #[serde(rename = "api")]
    Api,
}

#[derive(Serialize, ToSchema)]
pub struct MessageMetadata {
    #[serde(rename = "CF-Content-Type")]
    content_type: ContentType,
    #[serde(rename = "CF-sourceMessageSource")]
    source: MessageSource,
}

/// A message as delivered.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageOut<'a> {
    id: MessageId,
    /// Text as it was pushed; JSON as its JSON text.
    body: &'a str,
    /// Deliveries so far; the first delivery is 1.
    attempts: u32,
    /// Only on pulled messages: what acks, retries and extends name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    lease_id: Option<&'a str>,
    /// Only on peeked messages: an opaque reference `POST …/messages/purge` takes.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    reference: Option<&'a str>,
    /// When the message was first pushed, Unix ms.
    timestamp_ms: u64,
    /// Extension: the group it was pushed with; absent for an ungrouped message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    group_id: Option<&'a str>,
    metadata: MessageMetadata,
}

impl<'a> MessageOut<'a> {
    fn new(message: &'a StoredMessage, lease_id: Option<&'a str>) -> Self {
        Self {
            id: message.id,
            body: &message.body,
            attempts: message.attempts,
            lease_id,
            reference: None,
            timestamp_ms: message.timestamp_ms,
            group_id: message.group_id.as_ref().map(GroupId::as_str),
            metadata: MessageMetadata {
                content_type: message.content_type,
                source: MessageSource::Api,
            },
        }
    }
}

/// Messages with the queue's backlog (pull and peek; peeked messages have a `ref` and no
/// `lease_id`).
#[derive(Serialize, ToSchema)]
#[schema(as = PullResult)]
pub struct PullResult<'a> {
    /// Unacked messages in the queue, these included.
    message_backlog_count: u64,
    messages: Vec<MessageOut<'a>>,
    metadata: MetricsMetadata,
}

#[derive(Serialize, ToSchema)]
pub struct AckResult {
    /// Messages deleted.
    #[serde(rename = "ackCount")]
    ack_count: usize,
    /// Messages made visible again.
    #[serde(rename = "retryCount")]
    retry_count: usize,
    /// Why a lease counted in neither, by lease id (unknown, forged, stale…).
    warnings: BTreeMap<String, String>,
}

fn push_result(metrics: BacklogMetrics) -> HttpResponse {
    ok(PushResult {
        metadata: MetricsMetadata { metrics },
    })
}

/// Pushes one message.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages",
    operation_id = "push_message",
    tag = "messages",
    security(("bearer" = ["messages:push"]), ("x_auth_key" = ["messages:push"]), ("x_api_key" = ["messages:push"])),
    params(AccountPath, QueuePath),
    request_body = MessageInput,
    responses(
        (status = 200, description = "Stored (or, with a repeated `dedup_id`, already stored).", body = Envelope<PushResult>),
        (status = 413, response = PayloadTooLarge),
    ),
)]
pub async fn push(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPush>,
    JsonBody(input): JsonBody<MessageInput>,
) -> Result<HttpResponse, ApiError> {
    let message = input::push(broker.limits(), &input, broker.now_ms())?;
    let pushed = broker.push(&who.access, who.queue, &[message]).await?;
    Ok(push_result(pushed.backlog))
}

/// Pushes a batch of messages, all or nothing.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/batch",
    operation_id = "push_batch",
    tag = "messages",
    security(("bearer" = ["messages:push"]), ("x_auth_key" = ["messages:push"]), ("x_api_key" = ["messages:push"])),
    params(AccountPath, QueuePath),
    request_body = BatchInput,
    responses(
        (status = 200, description = "All stored.", body = Envelope<PushResult>),
        (status = 413, response = PayloadTooLarge),
    ),
)]
pub async fn push_batch(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPush>,
    JsonBody(input): JsonBody<BatchInput>,
) -> Result<HttpResponse, ApiError> {
    let messages = input::batch(broker.limits(), &input, broker.now_ms())?;
    let pushed = broker.push(&who.access, who.queue, &messages).await?;
    Ok(push_result(pushed.backlog))
}

/// Leases up to `batch_size` visible messages, oldest first, for `visibility_timeout_ms`.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/pull",
    operation_id = "pull_messages",
    tag = "messages",
    security(("bearer" = ["messages:pull"]), ("x_auth_key" = ["messages:pull"]), ("x_api_key" = ["messages:pull"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<PullInput>, description = "May be empty: the consumer's settings apply."),
    responses(
        (status = 200, description = "The leased messages; none when the queue has no visible message.", body = Envelope<PullResult>),
        (status = 409, response = Conflict),
    ),
)]
pub async fn pull(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPull>,
    JsonBody(input): JsonBody<PullInput>,
) -> Result<HttpResponse, ApiError> {
    let pulled = broker
        .pull(&who.access, who.queue, input::pull(&input)?)
        .await?;
    Ok(ok(PullResult {
        message_backlog_count: pulled.backlog.backlog_count,
        messages: pulled
            .messages
            .iter()
            .map(|m| MessageOut::new(&m.message, Some(&m.lease_id)))
            .collect(),
        metadata: MetricsMetadata {
            metrics: pulled.backlog,
        },
    }))
}

/// Extension: shows up to `batch_size` visible messages without leasing them.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/peek",
    operation_id = "peek_messages",
    tag = "messages",
    security(("bearer" = ["messages:pull"]), ("x_auth_key" = ["messages:pull"]), ("x_api_key" = ["messages:pull"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<PeekInput>, description = "May be empty."),
    responses((status = 200, description = "The messages, without `lease_id`.", body = Envelope<PullResult>)),
)]
pub async fn peek(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPull>,
    JsonBody(input): JsonBody<PeekInput>,
) -> Result<HttpResponse, ApiError> {
    let peeked = broker
        .peek(&who.access, who.queue, input::peek(&input)?)
        .await?;
    Ok(ok(PullResult {
        message_backlog_count: peeked.backlog.backlog_count,
        messages: peeked
            .messages
            .iter()
            .map(|(m, reference)| MessageOut {
                reference: Some(reference),
                ..MessageOut::new(m, None)
            })
            .collect(),
        metadata: MetricsMetadata {
            metrics: peeked.backlog,
        },
    }))
}

/// Acks (deletes) and retries leased messages.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/ack",
    operation_id = "ack_messages",
    tag = "messages",
    security(("bearer" = ["messages:pull"]), ("x_auth_key" = ["messages:pull"]), ("x_api_key" = ["messages:pull"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<AckInput>, description = "May be empty."),
    responses((status = 200, description = "What was done; leases that did nothing are in `warnings`.", body = Envelope<AckResult>)),
)]
pub async fn ack(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPull>,
    JsonBody(input): JsonBody<AckInput>,
) -> Result<HttpResponse, ApiError> {
    let acks = input::acks(broker.limits(), input)?;
    let outcome = broker.ack(&who.access, who.queue, acks).await?;
    Ok(ok(AckResult {
        ack_count: outcome.ack_count,
        retry_count: outcome.retry_count,
        warnings: outcome.warnings,
    }))
}

/// What a purge by refs did (Cloudflare's shape, and a count).
#[derive(Serialize, ToSchema)]
pub struct PurgeResult {
    /// Errors while purging: always empty (a ref that deletes nothing is a warning).
    errors: Vec<super::envelope::ResponseInfo>,
    /// Why a ref deleted nothing, by ref (forged, of another queue, already gone).
    warnings: BTreeMap<String, String>,
    /// Extension: messages deleted.
    #[serde(rename = "purgeCount")]
    purge_count: usize,
}

/// Deletes peeked messages by their `ref`, whatever their state now: they are not
/// delivered, and count as neither acked nor retried.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/purge",
    operation_id = "purge_messages",
    tag = "messages",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<PurgeInput>, description = "May be empty."),
    responses((status = 200, description = "What was deleted; refs that deleted nothing are in `warnings`.", body = Envelope<PurgeResult>)),
)]
pub async fn purge(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<PurgeInput>,
) -> Result<HttpResponse, ApiError> {
    let refs = input::refs(broker.limits(), input)?;
    let outcome = broker.purge_messages(&who.access, who.queue, refs).await?;
    Ok(ok(PurgeResult {
        errors: Vec::new(),
        warnings: outcome.warnings,
        purge_count: outcome.purge_count,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ExtendResult {
    /// Leases extended.
    #[serde(rename = "extendCount")]
    extend_count: usize,
    /// Why a lease was not extended, by lease id.
    warnings: BTreeMap<String, String>,
}

/// Extension: extends leases, a heartbeat for long jobs.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/extend",
    operation_id = "extend_leases",
    tag = "messages",
    security(("bearer" = ["messages:pull"]), ("x_auth_key" = ["messages:pull"]), ("x_api_key" = ["messages:pull"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<ExtendInput>, description = "May be empty."),
    responses((status = 200, description = "What was extended; leases that were not are in `warnings`.", body = Envelope<ExtendResult>)),
)]
pub async fn extend(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPull>,
    JsonBody(input): JsonBody<ExtendInput>,
) -> Result<HttpResponse, ApiError> {
    let extensions = input::extensions(broker.limits(), input)?;
    let outcome = broker.extend(&who.access, who.queue, extensions).await?;
    Ok(ok(ExtendResult {
        extend_count: outcome.extend_count,
        warnings: outcome.warnings,
    }))
}

/// Where a message is in its lifecycle.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStateName {
    Ready,
    Delayed,
    Leased,
}

/// A message as the single-message routes show it: its state and, when it is hidden,
/// when it becomes visible.
#[derive(Serialize, ToSchema)]
#[schema(as = MessageView)]
pub struct MessageView<'a> {
    #[serde(flatten)]
    message: MessageOut<'a>,
    state: MessageStateName,
    /// When a delayed or leased message becomes visible, Unix ms; null when ready.
    #[schema(required = true)]
    visible_at_ms: Option<u64>,
}

impl<'a> MessageView<'a> {
    fn new(message: &'a StoredMessage, state: MessageState) -> Self {
        let (state, visible_at_ms) = match state {
            MessageState::Ready => (MessageStateName::Ready, None),
            MessageState::Delayed { until_ms } => (MessageStateName::Delayed, Some(until_ms)),
            MessageState::Leased { until_ms } => (MessageStateName::Leased, Some(until_ms)),
        };
        Self {
            message: MessageOut::new(message, None),
            state,
            visible_at_ms,
        }
    }
}

/// The `{message_id}` of a route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    #[param(pattern = "^[0-9a-f]{32}$")]
    pub message_id: String,
}

/// The path's message id; one that cannot be an id names no message.
fn message_id(path: &MessagePath) -> Result<MessageId, BrokerError> {
    MessageId::parse(&path.message_id).ok_or(BrokerError::MessageNotFound)
}

/// Extension: one message, whatever its state, without leasing it.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/{message_id}",
    operation_id = "get_message",
    tag = "messages",
    security(("bearer" = ["messages:pull"]), ("x_auth_key" = ["messages:pull"]), ("x_api_key" = ["messages:pull"])),
    params(AccountPath, QueuePath, MessagePath),
    responses(
        (status = 200, description = "The message.", body = Envelope<MessageView>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get(
    broker: web::Data<Broker>,
    who: OnQueue<MessagesPull>,
    path: web::Path<MessagePath>,
) -> Result<HttpResponse, ApiError> {
    let read = broker
        .message(&who.access, who.queue, message_id(&path)?)
        .await?;
    Ok(ok(MessageView::new(&read.message, read.state)))
}

/// Extension: deletes one message, whatever its state. Needs `queues:write`: it bypasses
/// leases, so a pull-only consumer must not hold it.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/queues/{queue_id}/messages/{message_id}",
    operation_id = "delete_message",
    tag = "messages",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, MessagePath),
    responses(
        (status = 200, description = "Deleted.", body = Envelope<Null>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn delete(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    path: web::Path<MessagePath>,
) -> Result<HttpResponse, ApiError> {
    broker
        .delete_message(&who.access, who.queue, message_id(&path)?)
        .await?;
    Ok(ok(Null))
}

/// Query of `GET …/messages`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `result_info.cursor` of the previous page (a u64); "0" or none for the first.
    #[param(pattern = "^[0-9]{1,19}$")]
    pub cursor: Option<String>,
    /// Messages per page, a hint: Redis may return a few more (100 when not given).
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<u32>,
}

/// Where a page of messages is.
#[derive(Serialize, ToSchema)]
pub struct CursorInfo {
    /// Messages on this page.
    count: usize,
    per_page: u32,
    /// Where the next page starts; "0" when this is the last.
    cursor: String,
}

/// Extension: every message, a page at a time, in no particular order, nothing leased.
/// Needs `queues:write`: it reads every body without a lease.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/messages",
    operation_id = "list_messages",
    tag = "messages",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, ListQuery),
    responses(
        (status = 200, description = "A page of messages.", body = Page<MessageView, CursorInfo>),
        (status = 400, response = BadRequest),
    ),
)]
pub async fn list(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let per_page = query.per_page.unwrap_or(100);
    if !(1..=1000).contains(&per_page) {
        return Err(ApiError::schema("per_page must be from 1 to 1000"));
    }
    let (messages, next_cursor) = broker
        .list_messages(&who.access, who.queue, query.cursor.as_deref(), per_page)
        .await?;
    let views: Vec<MessageView> = messages
        .iter()
        .map(|(m, s)| MessageView::new(m, *s))
        .collect();
    let info = CursorInfo {
        count: views.len(),
        per_page,
        cursor: next_cursor,
    };
    Ok(ok_list(views, info))
}
