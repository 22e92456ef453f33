//! `/accounts/{account_id}/queues/{queue_id}/consumers…`: the queue's `http_pull` consumer.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::envelope::{ApiError, JsonBody, ok, ok_empty, ok_page};
use super::queues::QueuePath;
use crate::auth::{Principal, QueuesRead, QueuesWrite};
use crate::broker::input::ConsumerInput;
use crate::broker::{Broker, parse_consumer_id, parse_queue_id};
use crate::model::{Consumer, QueueName, rfc3339_ms};

pub fn consumer_json(queue_name: &QueueName, consumer: &Consumer) -> Value {
    json!({
        "consumer_id": consumer.id,
        "type": "http_pull",
        "queue_name": queue_name.as_str(),
        "created_on": rfc3339_ms(consumer.created_ms),
        "dead_letter_queue": consumer.dead_letter_queue.as_ref().map(QueueName::as_str).unwrap_or(""),
        "settings": consumer.settings,
    })
}

#[derive(Debug, Deserialize)]
pub struct ConsumerPath {
    pub queue_id: String,
    pub consumer_id: String,
}

pub async fn create(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<QueuePath>,
    JsonBody(input): JsonBody<ConsumerInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let (name, consumer) = broker
        .write_consumer(&who.access, queue, None, &input)
        .await?;
    Ok(ok(consumer_json(&name, &consumer)))
}

pub async fn list(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    path: web::Path<QueuePath>,
) -> Result<HttpResponse, ApiError> {
    let queue = broker
        .get_queue(&who.access, parse_queue_id(&path.queue_id)?)
        .await?;
    let consumers: Vec<Value> = queue
        .consumer
        .iter()
        .map(|c| consumer_json(&queue.name, c))
        .collect();
    Ok(ok_page(&consumers, 1, consumers.len(), consumers.len()))
}

pub async fn get(
    broker: web::Data<Broker>,
    who: Principal<QueuesRead>,
    path: web::Path<ConsumerPath>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let id = parse_consumer_id(&path.consumer_id)?;
    let (name, consumer) = broker.get_consumer(&who.access, queue, id).await?;
    Ok(ok(consumer_json(&name, &consumer)))
}

/// Replaces the consumer with this id, or creates it when the queue has none.
pub async fn put(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<ConsumerPath>,
    JsonBody(input): JsonBody<ConsumerInput>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let id = parse_consumer_id(&path.consumer_id)?;
    let (name, consumer) = broker
        .write_consumer(&who.access, queue, Some(id), &input)
        .await?;
    Ok(ok(consumer_json(&name, &consumer)))
}

pub async fn delete(
    broker: web::Data<Broker>,
    who: Principal<QueuesWrite>,
    path: web::Path<ConsumerPath>,
) -> Result<HttpResponse, ApiError> {
    let queue = parse_queue_id(&path.queue_id)?;
    let id = parse_consumer_id(&path.consumer_id)?;
    broker.delete_consumer(&who.access, queue, id).await?;
    Ok(ok_empty())
}
