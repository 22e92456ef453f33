//! `/accounts/{account_id}/queues…`: queue CRUD and backlog metrics.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::consumers::ConsumerView;
use super::doc::{AccountPath, BadRequest, Conflict, NewQueueInput, QueuePath};
use super::envelope::{Envelope, JsonBody, Null, Page, ResultInfo, ok, ok_empty, ok_page};
use super::input::{self, QueueInput, RedriveInput};
use super::principal::{OnQueue, Principal};
use crate::auth::{QueuesRead, QueuesWrite};
use crate::broker::Broker;
use crate::model::{Jurisdiction, Queue, QueueId, QueueMetrics, QueueSettings, rfc3339_ms};

/// A queue as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Queue)]
pub struct QueueView {
    queue_id: QueueId,
    #[schema(pattern = "^[A-Za-z0-9._/-]{1,255}$")]
    queue_name: String,
    #[schema(format = DateTime)]
    created_on: String,
    #[schema(format = DateTime)]
    modified_on: String,
    settings: QueueSettings,
    /// The queue's consumer, if it has one.
    #[schema(max_items = 1)]
    consumers: Vec<ConsumerView>,
    consumers_total_count: usize,
    /// Always empty: leaseq has no Worker producers.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    producers: Vec<serde_json::Value>,
    /// Always 0.
    producers_total_count: usize,
    /// Where the queue's data is meant to live, when it was created with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    jurisdiction: Option<Jurisdiction>,
}

impl QueueView {
    pub fn new(queue: &Queue) -> Self {
        let consumers: Vec<ConsumerView> = queue
            .consumer
            .iter()
            .map(|c| ConsumerView::new(&queue.name, c))
            .collect();
        Self {
            queue_id: queue.id,
            queue_name: queue.name.as_str().to_owned(),
            created_on: rfc3339_ms(queue.created_ms),
            modified_on: rfc3339_ms(queue.modified_ms),
            settings: queue.settings,
            consumers_total_count: consumers.len(),
            consumers,
            producers: Vec::new(),
            producers_total_count: 0,
            jurisdiction: queue.jurisdiction,
        }
    }
}

/// Creates a queue.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues",
    operation_id = "create_queue",
    tag = "queues",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath),
    request_body = NewQueueInput,
    responses(
        (status = 200, description = "The new queue.", body = Envelope<QueueView>),
        (status = 409, response = Conflict),
    ),
)]
pub async fn create(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    JsonBody(input): JsonBody<QueueInput>,
) -> Result<HttpResponse, ApiError> {
    let new = input::new_queue(broker.limits(), &input)?;
    let queue = broker.create_queue(&who.access, &new).await?;
    Ok(ok(QueueView::new(&queue)))
}

/// Query of `GET /queues`: without `page` and `per_page`, everything is returned.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 18446744073709551615u64)]
    page: Option<usize>,
    /// Queues per page (20 when only `page` is given).
    #[param(minimum = 1, maximum = 1000)]
    per_page: Option<usize>,
    /// Only the queues with these names (repeatable; `name[]` works too).
    #[param(rename = "name", required = false)]
    names: Vec<String>,
}
const DEFAULT_PER_PAGE: usize = 20;
const MAX_PER_PAGE: usize = 1000;

fn list_query(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::default();
    let number = |key: &str, value: &str, min: usize, max: usize| -> Result<usize, ApiError> {
        value
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                crate::broker::BrokerError::schema(format!(
                    "{key} must be a whole number from {min} to {max}"
                ))
                .into()
            })
    };
    for (key, value) in pairs {
        match key.as_str() {
            "page" => query.page = Some(number("page", &value, 1, usize::MAX)?),
            "per_page" => query.per_page = Some(number("per_page", &value, 1, MAX_PER_PAGE)?),
            "name" | "name[]" => query.names.push(value),
            _ => {}
        }
    }
    Ok(query)
}

/// Lists the account's queues, oldest first.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues",
    operation_id = "list_queues",
    tag = "queues",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, ListQuery),
    responses(
        (status = 200, description = "The queues, a page of them when `page` or `per_page` is given.", body = Page<QueueView, ResultInfo>),
        (status = 400, response = BadRequest),
    ),
)]
pub async fn list(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    web::Query(pairs): web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(pairs)?;
    let mut queues: Vec<QueueView> = broker
        .list_queues(&who.access, &query.names)
        .await?
        .iter()
        .map(QueueView::new)
        .collect();
    let total = queues.len();
    if query.page.is_none() && query.per_page.is_none() {
        return Ok(ok_page(queues, 1, total, total));
    }
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    queues.truncate(end);
    let shown = queues.split_off(start);
    Ok(ok_page(shown, page, per_page, total))
}

/// Gets a queue.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}",
    operation_id = "get_queue",
    tag = "queues",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath),
    responses((status = 200, description = "The queue.", body = Envelope<QueueView>)),
)]
pub async fn get(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker.get_queue(&who.access, who.queue).await?;
    Ok(ok(QueueView::new(&queue)))
}

/// Replaces a queue's name and settings; settings left out return to their defaults.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/queues/{queue_id}",
    operation_id = "update_queue",
    tag = "queues",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<QueueInput>, description = "May be empty."),
    responses(
        (status = 200, description = "The queue as updated.", body = Envelope<QueueView>),
        (status = 409, response = Conflict),
    ),
)]
pub async fn put(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<QueueInput>,
) -> Result<HttpResponse, ApiError> {
    let change = input::queue_change(broker.limits(), &input, false)?;
    let queue = broker.update_queue(&who.access, who.queue, &change).await?;
    Ok(ok(QueueView::new(&queue)))
}

/// Changes what the body gives of a queue's name and settings, and keeps the rest.
#[utoipa::path(
    patch,
    path = "/accounts/{account_id}/queues/{queue_id}",
    operation_id = "patch_queue",
    tag = "queues",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<QueueInput>, description = "May be empty."),
    responses(
        (status = 200, description = "The queue as updated.", body = Envelope<QueueView>),
        (status = 409, response = Conflict),
    ),
)]
pub async fn patch(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<QueueInput>,
) -> Result<HttpResponse, ApiError> {
    let change = input::queue_change(broker.limits(), &input, true)?;
    let queue = broker.update_queue(&who.access, who.queue, &change).await?;
    Ok(ok(QueueView::new(&queue)))
}

/// Deletes a queue and all its messages.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/queues/{queue_id}",
    operation_id = "delete_queue",
    tag = "queues",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    responses((status = 200, description = "Deleted.", body = Envelope<Null>)),
)]
pub async fn delete(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
) -> Result<HttpResponse, ApiError> {
    broker.delete_queue(&who.access, who.queue).await?;
    Ok(ok_empty())
}

/// The queue's exact backlog.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/metrics",
    operation_id = "queue_metrics",
    tag = "queues",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath),
    responses((status = 200, description = "The backlog.", body = Envelope<QueueMetrics>)),
)]
pub async fn metrics(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
) -> Result<HttpResponse, ApiError> {
    let metrics = broker.queue_metrics(&who.access, who.queue).await?;
    Ok(ok(metrics))
}

/// Body of `POST …/purge`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PurgeInput {
    /// A purge always deletes: `false` is refused.
    #[schema(schema_with = true_or_null)]
    pub delete_messages_permanently: Option<bool>,
}

fn true_or_null() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Boolean, Type::Null]))
        .enum_values(Some([Some(true), None]))
        .description(Some("A purge always deletes: false is refused."))
        .into()
}

/// Deletes every message of the queue (ready, delayed and leased) at once.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/purge",
    operation_id = "purge_queue",
    tag = "queues",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<PurgeInput>, description = "May be empty."),
    responses((status = 200, description = "The queue, now empty.", body = Envelope<QueueView>)),
)]
pub async fn purge(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<PurgeInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker
        .purge(&who.access, who.queue, input.delete_messages_permanently)
        .await?;
    Ok(ok(QueueView::new(&queue)))
}

/// Result of `GET …/purge`.
#[derive(Serialize, ToSchema)]
pub struct PurgeStatus {
    /// "true" or "false", a string as Cloudflare sends it. A purge completes within its
    /// request, so it is always "true".
    #[schema(schema_with = true_or_false)]
    completed: &'static str,
    /// When the last purge ran; null if none did.
    #[schema(format = DateTime, required = true)]
    started_at: Option<String>,
}

fn true_or_false() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["true", "false"]))
        .into()
}

/// Whether the last purge has completed.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/purge",
    operation_id = "purge_status",
    tag = "queues",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath),
    responses((status = 200, description = "The last purge.", body = Envelope<PurgeStatus>)),
)]
pub async fn purge_status(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker.get_queue(&who.access, who.queue).await?;
    Ok(ok(PurgeStatus {
        completed: "true",
        started_at: queue.purged_ms.map(rfc3339_ms),
    }))
}

/// Result of a redrive.
#[derive(Serialize, ToSchema)]
pub struct RedriveResult {
    /// Messages moved back to their source queues.
    redriven: u64,
    /// A call examines a bounded number of dead letters (and moves at most
    /// `max_messages` and `limits.reply_bytes` of them): `true` until every one has
    /// been looked at. Call again while it is.
    more: bool,
}

/// Extension: moves the dead letters of this dead-letter queue back to the queues they
/// came from, their deliveries starting over.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/redrive",
    operation_id = "redrive_queue",
    tag = "queues",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<RedriveInput>, description = "May be empty."),
    responses((status = 200, description = "How many moved, and whether dead letters remain unexamined. Letters whose source queue is gone, or out of the token's reach, stay.", body = Envelope<RedriveResult>)),
)]
pub async fn redrive(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<RedriveInput>,
) -> Result<HttpResponse, ApiError> {
    let request = input::redrive(&input)?;
    let step = broker.redrive(&who.access, who.queue, request).await?;
    Ok(ok(RedriveResult {
        redriven: step.moved,
        more: step.more,
    }))
}
