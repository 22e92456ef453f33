//! `/accounts/{account_id}/queues…`: queue CRUD and backlog metrics.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::consumers::consumer_json;
use super::envelope::{ApiError, JsonBody, ok, ok_empty, ok_page};
use crate::auth::{Principal, QueuesRead, QueuesWrite};
use crate::broker::input::{QueueInput, RedriveInput};
use crate::broker::{Broker, parse_queue_id};
use crate::model::{Queue, rfc3339_ms};

pub fn queue_json(queue: &Queue) -> Value {
    let consumers: Vec<Value> = queue
        .consumer
        .iter()
        .map(|c| consumer_json(&queue.name, c))
        .collect();
    json!({
        "queue_id": queue.id,
        "queue_name": queue.name.as_str(),
        "created_on": rfc3339_ms(queue.created_ms),
        "modified_on": rfc3339_ms(queue.modified_ms),
        "settings": queue.settings,
        "consumers_total_count": consumers.len(),
        "consumers": consumers,
        "producers": [],
        "producers_total_count": 0,
    })
}

pub async fn create(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    JsonBody(input): JsonBody<QueueInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker.create_queue(&who.access, &input).await?;
    Ok(ok(queue_json(&queue)))
}

/// Query of `GET /queues`: without `page`, everything is returned.
#[derive(Debug, Default)]
struct ListQuery {
    page: Option<usize>,
    per_page: Option<usize>,
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

pub async fn list(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    web::Query(pairs): web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(pairs)?;
    let queues: Vec<Value> = broker
        .list_queues(&who.access, &query.names)
        .await?
        .iter()
        .map(queue_json)
        .collect();
    let total = queues.len();
    if query.page.is_none() && query.per_page.is_none() {
        return Ok(ok_page(&queues, 1, total, total));
    }
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    Ok(ok_page(&queues[start..end], page, per_page, total))
}

#[derive(Debug, Deserialize)]
pub struct QueuePath {
    pub queue_id: String,
}

pub async fn get(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    path: web::Path<QueuePath>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker
        .get_queue(&who.access, parse_queue_id(&path.queue_id)?)
        .await?;
    Ok(ok(queue_json(&queue)))
}

pub async fn put(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<QueueInput>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_queue_id(&path.queue_id)?;
    let queue = broker.update_queue(&who.access, id, &input, false).await?;
    Ok(ok(queue_json(&queue)))
}

pub async fn patch(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<QueueInput>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_queue_id(&path.queue_id)?;
    let queue = broker.update_queue(&who.access, id, &input, true).await?;
    Ok(ok(queue_json(&queue)))
}

pub async fn delete(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<QueuePath>,
) -> Result<HttpResponse, ApiError> {
    broker
        .delete_queue(&who.access, parse_queue_id(&path.queue_id)?)
        .await?;
    Ok(ok_empty())
}

pub async fn metrics(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    path: web::Path<QueuePath>,
) -> Result<HttpResponse, ApiError> {
    let metrics = broker
        .queue_metrics(&who.access, parse_queue_id(&path.queue_id)?)
        .await?;
    Ok(ok(metrics))
}

#[derive(Debug, Default, Deserialize)]
pub struct PurgeInput {
    pub delete_messages_permanently: Option<bool>,
}

/// `POST …/purge`: deletes every message at once, then returns the queue.
pub async fn purge(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<PurgeInput>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_queue_id(&path.queue_id)?;
    let queue = broker
        .purge(&who.access, id, input.delete_messages_permanently)
        .await?;
    Ok(ok(queue_json(&queue)))
}

/// `GET …/purge`: a purge completes within its request, so the last one is complete.
pub async fn purge_status(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    path: web::Path<QueuePath>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker
        .get_queue(&who.access, parse_queue_id(&path.queue_id)?)
        .await?;
    Ok(ok(json!({
        "completed": "true",
        "started_at": queue.purged_ms.map(rfc3339_ms),
    })))
}

/// Extension: `POST …/redrive {source_queue_id?, max_messages?}` on a dead-letter queue.
pub async fn redrive(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<RedriveInput>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_queue_id(&path.queue_id)?;
    let redriven = broker.redrive(&who.access, id, &input).await?;
    Ok(ok(json!({ "redriven": redriven })))
}
