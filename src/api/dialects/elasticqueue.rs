//! ElasticQueue v1 under `/elasticqueue/v1` (seed `002`): enqueue one message, or a
//! bulk all-or-nothing, JSON:API bodies, `wait-until` as an epoch time.

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::ApiError;
use crate::api::envelope::JsonBody;
use crate::api::input::{self, BatchInput, MessageInput};
use crate::api::principal::OwnAccount;
use crate::auth::MessagesPush;
use crate::broker::{Broker, BrokerError};
use crate::model::QueueName;

const JSON_API: &str = "application/vnd.api+json";
/// `wait-until` above this is in milliseconds (the seed's own example is), below in
/// seconds: 10^11 s is the year 5138, 10^11 ms is March 1973.
const MILLIS_ABOVE: f64 = 1e11;

/// A failure, as JSON:API errors: `{"errors": [{"status", "title", "detail"}]}`.
#[derive(Debug)]
pub struct EqError(ApiError);

impl<E: Into<ApiError>> From<E> for EqError {
    fn from(e: E) -> Self {
        EqError(e.into())
    }
}

impl std::fmt::Display for EqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for EqError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // The envelope's response carries the log line and headers (Retry-After…).
        let mut response = self.0.error_response();
        let status = response.status();
        let body = serde_json::json!({"errors": [{
            "status": status.as_u16().to_string(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "detail": self.0.to_string(),
        }]});
        let headers = response.headers_mut();
        headers.insert(
            actix_web::http::header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_API),
        );
        response.set_body(actix_web::body::BoxBody::new(body.to_string()))
    }
}

/// `{"type": "message", "attributes": {"body", "wait-until"?}}`.
#[derive(Debug, Default, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    kind: Option<String>,
    attributes: Option<Attributes>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Attributes {
    body: Option<Box<RawValue>>,
    #[serde(rename = "wait-until")]
    wait_until: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Single {
    data: Option<Resource>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Bulk {
    data: Option<Vec<Resource>>,
}

#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
}

#[derive(Serialize)]
struct Created {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    links: Links,
}

/// The message a resource describes, as the Cloudflare push takes it.
fn message(resource: Resource, field: &str) -> Result<MessageInput, EqError> {
    if resource.kind.as_deref() != Some("message") {
        return Err(ApiError::schema(format!("{field}type must be \"message\"")).into());
    }
    let attributes = resource
        .attributes
        .ok_or_else(|| ApiError::schema(format!("{field}attributes is required")))?;
    let deliver_at_ms = attributes
        .wait_until
        .filter(|t| *t > 0.0)
        .map(|t| if t > MILLIS_ABOVE { t } else { t * 1000.0 });
    Ok(MessageInput {
        body: attributes.body,
        deliver_at_ms,
        ..MessageInput::default()
    })
}

/// A refusal of the Cloudflare checks, worded with this API's field names.
fn in_dialect_terms(e: BrokerError) -> BrokerError {
    let reword = |m: String| {
        m.replace("messages[", "data[")
            .replace("].deliver_at_ms", "].attributes.wait-until")
            .replace("].body", "].attributes.body")
    };
    match e {
        BrokerError::InvalidSchema(m) => BrokerError::InvalidSchema(reword(m)),
        BrokerError::InvalidMessageMetadata(m) => BrokerError::InvalidMessageMetadata(reword(m)),
        other => other,
    }
}

fn queue_name(raw: &str) -> Result<QueueName, EqError> {
    // A name no queue can have names no queue.
    QueueName::parse(raw).ok_or_else(|| BrokerError::QueueNotFound.into())
}

fn accepted(data: serde_json::Value) -> HttpResponse {
    HttpResponse::Accepted()
        .content_type(JSON_API)
        .body(serde_json::json!({ "data": data }).to_string())
}

fn created(req: &HttpRequest, queue: &str, id: String) -> Created {
    let info = req.connection_info();
    Created {
        kind: "message",
        links: Links {
            this: format!(
                "{}://{}/elasticqueue/v1/queues/{queue}/messages/{id}",
                info.scheme(),
                info.host()
            ),
        },
        id,
    }
}

async fn enqueue(
    req: &HttpRequest,
    broker: &Broker,
    who: &OwnAccount<MessagesPush>,
    queue: &str,
    resources: Vec<Resource>,
) -> Result<Vec<Created>, EqError> {
    let name = queue_name(queue)?;
    let messages = resources
        .into_iter()
        .enumerate()
        .map(|(i, r)| message(r, &format!("data[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = BatchInput {
        messages: Some(messages),
        delay_seconds: None,
    };
    // All or nothing: the whole batch is checked, then stored in one step.
    let messages =
        input::batch(broker.limits(), &batch, broker.now_ms()).map_err(in_dialect_terms)?;
    let queue_id = broker.queue_named(&who.access, &name).await?;
    let pushed = broker.push(&who.access, queue_id, &messages).await?;
    Ok(pushed
        .ids
        .into_iter()
        .map(|id| created(req, queue, id.to_string()))
        .collect())
}

/// `POST /queues/{queue_name}/messages`: one message.
pub async fn push(
    req: HttpRequest,
    broker: web::Data<Broker>,
    // Refusals of the extractors, too, are answered in this API's shape.
    who: Result<OwnAccount<MessagesPush>, ApiError>,
    queue: web::Path<String>,
    body: Result<JsonBody<Single>, ApiError>,
) -> Result<HttpResponse, EqError> {
    let (who, JsonBody(body)) = (who?, body?);
    let resource = body
        .data
        .ok_or_else(|| ApiError::schema("data is required"))?;
    let mut created = enqueue(&req, &broker, &who, &queue, vec![resource]).await?;
    let one = created
        .pop()
        .ok_or_else(|| ApiError::schema("data is required"))?;
    Ok(accepted(serde_json::to_value(one).unwrap_or_default()))
}

/// `POST /queues/{queue_name}/messages/_bulk`: all or nothing.
pub async fn push_bulk(
    req: HttpRequest,
    broker: web::Data<Broker>,
    // Refusals of the extractors, too, are answered in this API's shape.
    who: Result<OwnAccount<MessagesPush>, ApiError>,
    queue: web::Path<String>,
    body: Result<JsonBody<Bulk>, ApiError>,
) -> Result<HttpResponse, EqError> {
    let (who, JsonBody(body)) = (who?, body?);
    let resources = body
        .data
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::schema("data must hold at least one message"))?;
    let created = enqueue(&req, &broker, &who, &queue, resources).await?;
    Ok(accepted(serde_json::to_value(created).unwrap_or_default()))
}

/// Anything else under the prefix.
pub async fn no_route() -> Result<HttpResponse, EqError> {
    Err(ApiError::NoRoute.into())
}

/// The dialect's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/elasticqueue/v1")
            .service(
                web::resource("/queues/{queue_name}/messages")
                    .post(push)
                    .default_service(web::to(no_route)),
            )
            .service(
                web::resource("/queues/{queue_name}/messages/_bulk")
                    .post(push_bulk)
                    .default_service(web::to(no_route)),
            )
            .default_service(web::to(no_route)),
    );
}
