//! `/accounts/{account_id}/queues/{queue_id}/consumers…`: the queue's `http_pull` consumer.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::doc::{AccountPath, Conflict, NotFound, QueuePath};
use super::envelope::{Envelope, JsonBody, Null, Page, ResultInfo, ok, ok_empty, ok_page};
use super::input::{self, ConsumerInput};
use super::principal::OnQueue;
use crate::auth::{QueuesRead, QueuesWrite};
use crate::broker::{Broker, BrokerError};
use crate::model::{Consumer, ConsumerId, ConsumerSettings, ConsumerType, QueueName, rfc3339_ms};

/// A consumer as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Consumer)]
pub struct ConsumerView {
    consumer_id: ConsumerId,
    #[serde(rename = "type")]
    kind: ConsumerType,
    #[schema(pattern = "^[A-Za-z0-9._/-]{1,255}$")]
    queue_name: String,
    #[schema(format = DateTime)]
    created_on: String,
    /// Name of the dead-letter queue, or "" for none.
    #[schema(pattern = "^[A-Za-z0-9._/-]{0,255}$")]
    dead_letter_queue: String,
    settings: ConsumerSettings,
}

impl ConsumerView {
    pub fn new(queue_name: &QueueName, consumer: &Consumer) -> Self {
        Self {
            consumer_id: consumer.id,
            kind: ConsumerType::HttpPull,
            queue_name: queue_name.as_str().to_owned(),
            created_on: rfc3339_ms(consumer.created_ms),
            dead_letter_queue: consumer
                .dead_letter_queue
                .as_ref()
                .map_or_else(String::new, |q| q.as_str().to_owned()),
            settings: consumer.settings,
        }
    }
}

/// The `{consumer_id}` of a route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConsumerPath {
    #[param(pattern = "^[0-9a-f]{32}$")]
    pub consumer_id: String,
}

/// The path's consumer id; one that cannot be an id names no consumer.
fn consumer_id(path: &ConsumerPath) -> Result<ConsumerId, BrokerError> {
    ConsumerId::parse(&path.consumer_id).ok_or(BrokerError::ConsumerNotFound)
}

/// Creates the queue's consumer (a queue has at most one).
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/consumers",
    operation_id = "create_consumer",
    tag = "consumers",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body(content = Option<ConsumerInput>, description = "May be empty."),
    responses(
        (status = 200, description = "The new consumer.", body = Envelope<ConsumerView>),
        (status = 409, response = Conflict),
    ),
)]
pub async fn create(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<ConsumerInput>,
) -> Result<HttpResponse, ApiError> {
    let spec = input::consumer(&input)?;
    let (name, consumer) = broker
        .write_consumer(&who.access, who.queue, None, spec)
        .await?;
    Ok(ok(ConsumerView::new(&name, &consumer)))
}

/// Lists the queue's consumers: none or one.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/consumers",
    operation_id = "list_consumers",
    tag = "consumers",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath),
    responses((status = 200, description = "The consumers, all on one page.", body = Page<ConsumerView, ResultInfo>)),
)]
pub async fn list(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker.get_queue(&who.access, who.queue).await?;
    let consumers: Vec<ConsumerView> = queue
        .consumer
        .iter()
        .map(|c| ConsumerView::new(&queue.name, c))
        .collect();
    let count = consumers.len();
    Ok(ok_page(consumers, 1, count, count))
}

/// Gets the consumer.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
    operation_id = "get_consumer",
    tag = "consumers",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath, ConsumerPath),
    responses(
        (status = 200, description = "The consumer.", body = Envelope<ConsumerView>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
    path: web::Path<ConsumerPath>,
) -> Result<HttpResponse, ApiError> {
    let id = consumer_id(&path)?;
    let (name, consumer) = broker.get_consumer(&who.access, who.queue, id).await?;
    Ok(ok(ConsumerView::new(&name, &consumer)))
}

/// Replaces the consumer with this id, or creates it when the queue has none.
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
    operation_id = "put_consumer",
    tag = "consumers",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, ConsumerPath),
    request_body(content = Option<ConsumerInput>, description = "May be empty."),
    responses(
        (status = 200, description = "The consumer as written.", body = Envelope<ConsumerView>),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
)]
pub async fn put(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    path: web::Path<ConsumerPath>,
    JsonBody(input): JsonBody<ConsumerInput>,
) -> Result<HttpResponse, ApiError> {
    let id = consumer_id(&path)?;
    let spec = input::consumer(&input)?;
    let (name, consumer) = broker
        .write_consumer(&who.access, who.queue, Some(id), spec)
        .await?;
    Ok(ok(ConsumerView::new(&name, &consumer)))
}

/// Deletes the consumer; the queue keeps its messages.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
    operation_id = "delete_consumer",
    tag = "consumers",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, ConsumerPath),
    responses(
        (status = 200, description = "Deleted.", body = Envelope<Null>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn delete(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    path: web::Path<ConsumerPath>,
) -> Result<HttpResponse, ApiError> {
    let id = consumer_id(&path)?;
    broker.delete_consumer(&who.access, who.queue, id).await?;
    Ok(ok_empty())
}
