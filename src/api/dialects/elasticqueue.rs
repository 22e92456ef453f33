//! ElasticQueue v1 under `/elasticqueue/v1` (seed `002`): enqueue one message, or a
//! bulk all-or-nothing, JSON:API bodies, `wait-until` as an epoch time.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

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
        super::reshaped(&self.0, JSON_API, |status| {
            serde_json::json!({"errors": [{
                "status": status.as_u16().to_string(),
                "title": status.canonical_reason().unwrap_or("Error"),
                "detail": self.0.to_string(),
            }]})
            .to_string()
        })
    }
}

/// `{"type": "message", "attributes": {"body", "wait-until"?}}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Resource {
    /// Always "message".
    #[serde(rename = "type")]
    #[schema(value_type = String, required = true, pattern = "^message$")]
    kind: Option<String>,
    #[schema(value_type = Attributes, required = true)]
    attributes: Option<Attributes>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Attributes {
    /// The message: any JSON value but null (a string is text, anything else JSON).
    #[schema(value_type = Object, required = true)]
    body: Option<Box<RawValue>>,
    /// When to deliver it: an epoch time in seconds, or in milliseconds when above
    /// 10^11; a time past is now; at most 86 400 s ahead.
    #[serde(rename = "wait-until")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    wait_until: Option<f64>,
    /// Extension: the message's group (leaseq's `group_id`): groups are served
    /// round-robin, and the queue's `group_max_inflight` caps each group's leases.
    #[serde(rename = "group-id")]
    #[schema(min_length = 1, max_length = 128)]
    group_id: Option<String>,
}

/// One message.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Single {
    #[schema(value_type = Resource, required = true)]
    data: Option<Resource>,
}

/// Several messages, stored all or none.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Bulk {
    #[schema(value_type = Vec<Resource>, required = true, min_items = 1, max_items = 100)]
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
        group_id: attributes.group_id,
        ..MessageInput::default()
    })
}

/// A refusal of the Cloudflare checks, worded with this API's field names.
fn in_dialect_terms(e: BrokerError) -> BrokerError {
    super::reworded(
        e,
        &[
            ("messages[", "data["),
            ("].deliver_at_ms", "].attributes.wait-until"),
            ("].body", "].attributes.body"),
            ("].group_id", "].attributes.group-id"),
        ],
    )
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

/// Enqueues one message.
#[utoipa::path(
    post,
    path = "/queues/{queue_name}/messages",
    operation_id = "enqueue",
    tag = "elasticqueue",
    security(("authorization" = ["messages:push"])),
    params(("queue_name" = String, Path, description = "A queue of the token's account")),
    request_body(content = Single, content_type = "application/vnd.api+json"),
    responses(
        (status = 202, description = "Enqueued: `{data: {type, id, links: {self}}}`.", content_type = "application/vnd.api+json", body = Object),
        (status = 400, description = "JSON:API errors: the body is invalid.", body = Object),
        (status = 401, description = "JSON:API errors: no valid token.", body = Object),
        (status = 403, description = "JSON:API errors: the token lacks messages:push, or names not exactly one account.", body = Object),
        (status = 404, description = "JSON:API errors: no such queue.", body = Object),
    ),
)]
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

/// Enqueues several messages, all or nothing.
#[utoipa::path(
    post,
    path = "/queues/{queue_name}/messages/_bulk",
    operation_id = "enqueue_bulk",
    tag = "elasticqueue",
    security(("authorization" = ["messages:push"])),
    params(("queue_name" = String, Path, description = "A queue of the token's account")),
    request_body(content = Bulk, content_type = "application/vnd.api+json"),
    responses(
        (status = 202, description = "All enqueued: `{data: [{type, id, links}, …]}`.", content_type = "application/vnd.api+json", body = Object),
        (status = 400, description = "JSON:API errors: a message is invalid; none was stored.", body = Object),
        (status = 401, description = "JSON:API errors: no valid token.", body = Object),
        (status = 403, description = "JSON:API errors: the token lacks messages:push, or names not exactly one account.", body = Object),
        (status = 404, description = "JSON:API errors: no such queue.", body = Object),
    ),
)]
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

/// The dialect's OpenAPI document, served at `/elasticqueue/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "leaseq: ElasticQueue v1", description = "ElasticQueue's enqueue API (its seed), served by leaseq."),
    servers((url = "/elasticqueue/v1")),
    paths(push, push_bulk),
    modifiers(&Authorization),
    tags((name = "elasticqueue", description = "Enqueue, one message or a bulk, JSON:API.")),
)]
pub struct ElasticQueueDoc;

struct Authorization;

impl Modify for Authorization {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "authorization",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The token, with or without `Bearer `",
            ))),
        );
    }
}

async fn document() -> HttpResponse {
    match ElasticQueueDoc::openapi().to_pretty_json() {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(e) => EqError::from(BrokerError::Internal(e.to_string())).error_response(),
    }
}

/// The dialect's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/elasticqueue/v1")
            .service(web::resource("/openapi.json").get(document))
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
