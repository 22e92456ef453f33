//! `/accounts/{account_id}/queues/{queue_id}/messages…`: push, pull, ack, peek.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::envelope::{ApiError, JsonBody, ok};
use super::queues::QueuePath;
use crate::auth::{MessagesPull, MessagesPush, Principal};
use crate::broker::input::{AckInput, BatchInput, ExtendInput, MessageInput, PeekInput, PullInput};
use crate::broker::{Broker, parse_queue_id};
use crate::model::{BacklogMetrics, MessageState, StoredMessage};

#[derive(Serialize)]
struct MetricsMetadata {
    metrics: BacklogMetrics,
}

#[derive(Serialize)]
struct PushResult {
    metadata: MetricsMetadata,
}

#[derive(Serialize)]
struct MessageMetadata {
    #[serde(rename = "CF-Content-Type")]
    content_type: &'static str,
    #[serde(rename = "CF-sourceMessageSource")]
    source: &'static str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: String,
    body: &'a str,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_id: Option<&'a str>,
    timestamp_ms: u64,
    metadata: MessageMetadata,
}

impl<'a> MessageOut<'a> {
    fn new(message: &'a StoredMessage, lease_id: Option<&'a str>) -> Self {
        Self {
            id: message.id.to_string(),
            body: &message.body,
            attempts: message.attempts,
            lease_id,
            timestamp_ms: message.timestamp_ms,
            metadata: MessageMetadata {
                content_type: message.content_type.as_str(),
                source: "api",
            },
        }
    }
}

#[derive(Serialize)]
struct PullResult<'a> {
    message_backlog_count: u64,
    messages: Vec<MessageOut<'a>>,
    metadata: MetricsMetadata,
}

#[derive(Serialize)]
struct AckResult {
    #[serde(rename = "ackCount")]
    ack_count: usize,
    #[serde(rename = "retryCount")]
    retry_count: usize,
    warnings: BTreeMap<String, String>,
}

fn push_result(metrics: BacklogMetrics) -> HttpResponse {
    ok(PushResult {
        metadata: MetricsMetadata { metrics },
    })
}

pub async fn push(
    broker: web::Data<Broker>,
    who: Principal<MessagesPush>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<MessageInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    Ok(push_result(broker.push(&who.access, queue, &input).await?))
}

pub async fn push_batch(
    broker: web::Data<Broker>,
    who: Principal<MessagesPush>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<BatchInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    Ok(push_result(
        broker.push_batch(&who.access, queue, &input).await?,
    ))
}

pub async fn pull(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<PullInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let pulled = broker.pull(&who.access, queue, &input).await?;
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

pub async fn peek(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<PeekInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let peeked = broker.peek(&who.access, queue, &input).await?;
    Ok(ok(PullResult {
        message_backlog_count: peeked.backlog.backlog_count,
        messages: peeked
            .messages
            .iter()
            .map(|m| MessageOut::new(m, None))
            .collect(),
        metadata: MetricsMetadata {
            metrics: peeked.backlog,
        },
    }))
}

pub async fn ack(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<AckInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let outcome = broker.ack(&who.access, queue, input).await?;
    Ok(ok(AckResult {
        ack_count: outcome.ack_count,
        retry_count: outcome.retry_count,
        warnings: outcome.warnings,
    }))
}

#[derive(Serialize)]
struct ExtendResult {
    #[serde(rename = "extendCount")]
    extend_count: usize,
    warnings: BTreeMap<String, String>,
}

/// Extension: `POST …/messages/extend {leases: [{lease_id, visibility_timeout_ms?}]}`.
pub async fn extend(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<ExtendInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let outcome = broker.extend(&who.access, queue, input).await?;
    Ok(ok(ExtendResult {
        extend_count: outcome.extend_count,
        warnings: outcome.warnings,
    }))
}

/// A message as the single-message routes show it: its state and, when it is hidden,
/// when it becomes visible.
#[derive(Serialize)]
struct MessageView<'a> {
    #[serde(flatten)]
    message: MessageOut<'a>,
    state: &'static str,
    visible_at_ms: Option<u64>,
}

impl<'a> MessageView<'a> {
    fn new(message: &'a StoredMessage, state: MessageState) -> Self {
        let (state, visible_at_ms) = match state {
            MessageState::Ready => ("ready", None),
            MessageState::Delayed { until_ms } => ("delayed", Some(until_ms)),
            MessageState::Leased { until_ms } => ("leased", Some(until_ms)),
        };
        Self {
            message: MessageOut::new(message, None),
            state,
            visible_at_ms,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct MessagePath {
    pub queue_id: String,
    pub message_id: String,
}

/// Extension: `GET …/messages/{message_id}`.
pub async fn get(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<MessagePath>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let (message, state) = broker.message(&who.access, queue, &path.message_id).await?;
    Ok(ok(MessageView::new(&message, state)))
}

/// Extension: `DELETE …/messages/{message_id}`, whatever the message's state.
pub async fn delete(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<MessagePath>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    broker
        .delete_message(&who.access, queue, &path.message_id)
        .await?;
    Ok(ok(serde_json::Value::Null))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub per_page: Option<u32>,
}

/// Extension: `GET …/messages?cursor=&per_page=`, a page at a time, nothing leased.
pub async fn list(
    broker: web::Data<Broker>,
    who: Principal<MessagesPull>,
    path: web::Path<QueuePath>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let per_page = query.per_page.unwrap_or(100);
    if !(1..=1000).contains(&per_page) {
        return Err(crate::broker::BrokerError::schema("per_page must be from 1 to 1000").into());
    }
    let (messages, next_cursor) = broker
        .list_messages(&who.access, queue, query.cursor.as_deref(), per_page)
        .await?;
    let views: Vec<MessageView> = messages
        .iter()
        .map(|(m, s)| MessageView::new(m, *s))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "success": true,
        "errors": [],
        "messages": [],
        "result": views,
        "result_info": {"count": views.len(), "per_page": per_page, "cursor": next_cursor},
    })))
}
