//! discue v1 under `/discue/v1` (seeds `000`, `001`, `003`): queues named freely
//! (`myapp.io/deletion-request-queue`), messages `{name, data}`, and listeners, which
//! are the §9 listeners. A thin mapping onto the broker and the Cloudflare routes'
//! checks; answers carry `_links`, errors are `{title, status}`, `?pretty=true`
//! indents. The token comes as `X-API-KEY` and names the one account it acts on.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::ApiError;
use crate::api::envelope::JsonBody;
use crate::api::input::{self, ListenerInput, MessageInput};
use crate::api::principal::OwnAccount;
use crate::auth::{MessagesPull, MessagesPush, QueuesRead, QueuesWrite};
use crate::broker::command::{NewQueue, QueueChange};
use crate::broker::{Broker, BrokerError};
use crate::delivery::guard::Destinations;
use crate::model::{
    ContentType, Listener, ListenerId, MessageId, Queue, QueueId, QueueName, StoredMessage,
};

/// `?pretty=true`.
#[derive(Debug, Default, Deserialize)]
pub struct Pretty {
    #[serde(default)]
    pretty: Option<String>,
}

impl Pretty {
    fn on(req: &HttpRequest) -> bool {
        web::Query::<Pretty>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.into_inner().pretty)
            .is_some_and(|p| p == "true")
    }
}

fn json_body(value: &Value, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.unwrap_or_default()
}

/// A failure, as discue writes them: `{"title": "Not Found", "status": 404}`.
#[derive(Debug)]
pub struct DiscueError {
    error: ApiError,
    pretty: bool,
}

impl<E: Into<ApiError>> From<E> for DiscueError {
    fn from(e: E) -> Self {
        DiscueError {
            error: e.into(),
            pretty: false,
        }
    }
}

impl std::fmt::Display for DiscueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for DiscueError {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        super::reshaped(&self.error, "application/json", |status| {
            let body = json!({
                "title": status.canonical_reason().unwrap_or("Error"),
                "status": status.as_u16(),
                "detail": self.error.to_string(),
            });
            json_body(&body, self.pretty)
        })
    }
}

type Answer = Result<HttpResponse, DiscueError>;

/// Runs a handler's body, answering its errors (and the extractors') pretty when asked.
async fn answer(
    req: &HttpRequest,
    body: impl Future<Output = Result<Value, DiscueError>>,
) -> Answer {
    let pretty = Pretty::on(req);
    match body.await {
        Ok(value) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(json_body(&value, pretty))),
        Err(mut e) => {
            e.pretty = pretty;
            Err(e)
        }
    }
}

fn base(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}/discue/v1", info.scheme(), info.host())
}

fn href(url: String) -> Value {
    json!({ "href": url })
}

/// A queue as discue shows it, and its links: itself and each listener, by name.
fn queue_view(req: &HttpRequest, queue: &Queue, listeners: &[Listener]) -> Value {
    let this = format!("{}/queues/{}", base(req), queue.id);
    let mut links = Map::new();
    links.insert("self".into(), href(this.clone()));
    for listener in listeners {
        links.insert(
            listener.name.clone(),
            href(format!("{this}/listeners/{}", listener.id)),
        );
    }
    json!({
        "queue": {
            "id": queue.id,
            "name": queue.name.as_str(),
            "listeners": listeners
                .iter()
                .map(|l| json!({"id": l.id, "name": l.name}))
                .collect::<Vec<_>>(),
        },
        "_links": links,
    })
}

/// A path id that cannot be one names nothing: 404.
fn queue_id(raw: &str) -> Result<QueueId, DiscueError> {
    QueueId::parse(raw).ok_or_else(|| BrokerError::QueueNotFound.into())
}

fn message_id(raw: &str) -> Result<MessageId, DiscueError> {
    MessageId::parse(raw).ok_or_else(|| BrokerError::MessageNotFound.into())
}

fn listener_id(raw: &str) -> Result<ListenerId, DiscueError> {
    ListenerId::parse(raw).ok_or_else(|| BrokerError::ListenerNotFound.into())
}

fn queue_name(raw: Option<&str>) -> Result<QueueName, DiscueError> {
    let raw = raw.ok_or_else(|| ApiError::schema("name is required"))?;
    QueueName::parse(raw).ok_or_else(|| {
        ApiError::schema("name must be 1 to 255 characters of A-Z, a-z, 0-9, '.', '_', '/' and '-'")
            .into()
    })
}

/// A queue's name.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QueueBody {
    /// 1–255 of A-Z a-z 0-9 . _ / - (e.g. `myapp.io/deletion-request-queue`).
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9._/-]{1,255}$")]
    name: Option<String>,
}

/// A message.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MessageBody {
    /// A label, kept and returned by GET (at most 256 bytes).
    #[schema(max_length = 256)]
    name: Option<String>,
    /// The message: a string is delivered as text, anything else as JSON.
    #[schema(value_type = Object, required = true)]
    data: Option<Box<RawValue>>,
    /// Extension: the message's group (as leaseq's `group_id`): pull serves groups
    /// round-robin, and the queue's `group_max_inflight` caps each group's leases.
    #[schema(min_length = 1, max_length = 128)]
    group_id: Option<String>,
}

type Path1 = web::Path<String>;
type Path2 = web::Path<(String, String)>;

async fn full_queue(
    broker: &Broker,
    access: &crate::model::Access,
    id: QueueId,
) -> Result<(Queue, Vec<Listener>), DiscueError> {
    let queue = broker.get_queue(access, id).await?;
    let listeners = broker.listeners(access, id).await?;
    Ok((queue, listeners))
}

/// `POST /queues {name}`.
#[utoipa::path(
    post,
    path = "/queues",
    operation_id = "create_queue",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    request_body = QueueBody,
    responses(Answers),
)]
pub async fn create_queue(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    body: Result<JsonBody<QueueBody>, ApiError>,
) -> Answer {
    answer(&req, async {
        let (who, JsonBody(body)) = (who?, body?);
        let new = NewQueue {
            name: queue_name(body.name.as_deref())?,
            settings: Default::default(),
            jurisdiction: None,
        };
        let queue = broker.create_queue(&who.access, &new).await?;
        Ok(queue_view(&req, &queue, &[]))
    })
    .await
}

/// `GET /queues`.
#[utoipa::path(
    get,
    path = "/queues",
    operation_id = "list_queues",
    tag = "discue",
    security(("x_api_key" = ["queues:read"])),
    responses(Answers),
)]
pub async fn list_queues(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesRead>, ApiError>,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let mut queues = Vec::new();
        for queue in broker.list_queues(&who.access, &[]).await? {
            let listeners = broker.listeners(&who.access, queue.id).await?;
            queues.push(queue_view(&req, &queue, &listeners)["queue"].clone());
        }
        Ok(json!({
            "queues": queues,
            "_links": {"self": href(format!("{}/queues", base(&req)))},
        }))
    })
    .await
}

/// `GET /queues/{queue_id}`.
#[utoipa::path(
    get,
    path = "/queues/{queue_id}",
    operation_id = "get_queue",
    tag = "discue",
    security(("x_api_key" = ["queues:read"])),
    params(("queue_id" = String, Path)),
    responses(Answers),
)]
pub async fn get_queue(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesRead>, ApiError>,
    path: Path1,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let (queue, listeners) = full_queue(&broker, &who.access, queue_id(&path)?).await?;
        Ok(queue_view(&req, &queue, &listeners))
    })
    .await
}

/// `PUT /queues/{queue_id} {name}`: renames it.
#[utoipa::path(
    put,
    path = "/queues/{queue_id}",
    operation_id = "update_queue",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path)),
    request_body = QueueBody,
    responses(Answers),
)]
pub async fn update_queue(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path1,
    body: Result<JsonBody<QueueBody>, ApiError>,
) -> Answer {
    answer(&req, async {
        let (who, JsonBody(body)) = (who?, body?);
        let id = queue_id(&path)?;
        let change = QueueChange {
            name: Some(queue_name(body.name.as_deref())?),
            settings: Default::default(),
            keep_unstated: true,
            jurisdiction: None,
        };
        let queue = broker.update_queue(&who.access, id, &change).await?;
        let listeners = broker.listeners(&who.access, id).await?;
        Ok(queue_view(&req, &queue, &listeners))
    })
    .await
}

/// `DELETE /queues/{queue_id}`: the queue as it was.
#[utoipa::path(
    delete,
    path = "/queues/{queue_id}",
    operation_id = "delete_queue",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path)),
    responses(Answers),
)]
pub async fn delete_queue(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path1,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let id = queue_id(&path)?;
        let (queue, listeners) = full_queue(&broker, &who.access, id).await?;
        broker.delete_queue(&who.access, id).await?;
        Ok(queue_view(&req, &queue, &listeners))
    })
    .await
}

/// A stored message as discue shows it: its data as pushed (a string stays a string).
fn message_view(message: &StoredMessage) -> Value {
    let data = match message.content_type {
        ContentType::Json => serde_json::from_str(&message.body).unwrap_or(Value::Null),
        ContentType::Text => Value::String(message.body.clone()),
    };
    json!({"id": message.id, "data": data, "attempts": message.attempts,
           "timestamp_ms": message.timestamp_ms})
}

/// `POST /queues/{queue_id}/messages {name, data}`: delivered to every listener of the
/// queue (and its pull consumer, if it has one).
#[utoipa::path(
    post,
    path = "/queues/{queue_id}/messages",
    operation_id = "add_message",
    tag = "discue",
    security(("x_api_key" = ["messages:push"])),
    params(("queue_id" = String, Path)),
    request_body = MessageBody,
    responses(Answers),
)]
pub async fn push(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<MessagesPush>, ApiError>,
    path: Path1,
    body: Result<JsonBody<MessageBody>, ApiError>,
) -> Answer {
    answer(&req, async {
        let (who, JsonBody(body)) = (who?, body?);
        let id = queue_id(&path)?;
        let name = body.name.clone();
        if name
            .as_ref()
            .is_some_and(|n| n.len() > 256 || n.chars().any(char::is_control))
        {
            return Err(ApiError::schema(
                "name must be at most 256 bytes without control characters",
            )
            .into());
        }
        let message = MessageInput {
            body: body.data,
            group_id: body.group_id,
            ..MessageInput::default()
        };
        let mut message = input::push(broker.limits(), &message, broker.now_ms())
            .map_err(|e| super::reworded(e, &[("body", "data")]))?;
        message.name = name.clone();
        let pushed = broker.push(&who.access, id, &[message]).await?;
        let message = pushed.ids.first().copied().ok_or_else(|| {
            ApiError::from(BrokerError::Internal("push stored no message".into()))
        })?;
        Ok(json!({
            "message": {"id": message, "name": name},
            "_links": {"self": href(format!("{}/queues/{id}/messages/{message}", base(&req)))},
        }))
    })
    .await
}

/// `GET /queues/{queue_id}/messages`: the first page (at most 100) of the queue's
/// messages, nothing leased.
#[utoipa::path(
    get,
    path = "/queues/{queue_id}/messages",
    operation_id = "list_messages",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path)),
    responses(Answers),
)]
pub async fn list_messages(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path1,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let id = queue_id(&path)?;
        let (messages, _) = broker.list_messages(&who.access, id, None, 100).await?;
        Ok(json!({
            "messages": messages.iter().map(|(m, _)| message_view(m)).collect::<Vec<_>>(),
            "_links": {"self": href(format!("{}/queues/{id}/messages", base(&req)))},
        }))
    })
    .await
}

/// `GET /queues/{queue_id}/messages/{message_id}`.
#[utoipa::path(
    get,
    path = "/queues/{queue_id}/messages/{message_id}",
    operation_id = "get_message",
    tag = "discue",
    security(("x_api_key" = ["messages:pull"])),
    params(("queue_id" = String, Path), ("message_id" = String, Path)),
    responses(Answers),
)]
pub async fn get_message(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<MessagesPull>, ApiError>,
    path: Path2,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let (queue, message) = (queue_id(&path.0)?, message_id(&path.1)?);
        let read = broker.message(&who.access, queue, message).await?;
        let mut view = message_view(&read.message);
        view["name"] = json!(read.name);
        let message = read.message;
        Ok(json!({
            "message": view,
            "_links": {"self": href(format!("{}/queues/{queue}/messages/{}", base(&req), message.id))},
        }))
    })
    .await
}

/// `DELETE /queues/{queue_id}/messages/{message_id}`.
#[utoipa::path(
    delete,
    path = "/queues/{queue_id}/messages/{message_id}",
    operation_id = "delete_message",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path), ("message_id" = String, Path)),
    responses(Answers),
)]
pub async fn delete_message(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path2,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let (queue, message) = (queue_id(&path.0)?, message_id(&path.1)?);
        broker.delete_message(&who.access, queue, message).await?;
        Ok(json!({"message": {"id": message}}))
    })
    .await
}

fn listener_view(req: &HttpRequest, queue: QueueId, listener: &Listener) -> Value {
    json!({
        "listener": {
            "id": listener.id,
            "name": listener.name,
            "notify_url": listener.notify_url,
            "liveness_url": listener.liveness_url,
        },
        "_links": {"self": href(format!("{}/queues/{queue}/listeners/{}", base(req), listener.id))},
    })
}

/// `POST /queues/{queue_id}/listeners {name, notify_url, liveness_url}`: a §9 listener.
#[utoipa::path(
    post,
    path = "/queues/{queue_id}/listeners",
    operation_id = "add_listener",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path)),
    request_body = ListenerInput,
    responses(Answers),
)]
pub async fn create_listener(
    req: HttpRequest,
    broker: web::Data<Broker>,
    destinations: web::Data<Destinations>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path1,
    body: Result<JsonBody<ListenerInput>, ApiError>,
) -> Answer {
    answer(&req, async {
        let (who, JsonBody(body)) = (who?, body?);
        let id = queue_id(&path)?;
        let spec = crate::api::listeners::checked(&destinations, &body, false).await?;
        let listener = broker.create_listener(&who.access, id, spec).await?;
        let mut view = listener_view(&req, id, &listener);
        // Shown once, as on the Cloudflare-style route: deliveries are signed with it.
        view["listener"]["secret"] = Value::String(listener.secret.0.clone());
        Ok(view)
    })
    .await
}

/// `GET /queues/{queue_id}/listeners/{listener_id}`.
#[utoipa::path(
    get,
    path = "/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "get_listener",
    tag = "discue",
    security(("x_api_key" = ["queues:read"])),
    params(("queue_id" = String, Path), ("listener_id" = String, Path)),
    responses(Answers),
)]
pub async fn get_listener(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesRead>, ApiError>,
    path: Path2,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let (queue, listener) = (queue_id(&path.0)?, listener_id(&path.1)?);
        let listener = broker.listener(&who.access, queue, listener).await?;
        Ok(listener_view(&req, queue, &listener))
    })
    .await
}

/// `PUT /queues/{queue_id}/listeners/{listener_id}`: changes what the body gives.
#[utoipa::path(
    put,
    path = "/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "update_listener",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path), ("listener_id" = String, Path)),
    request_body = ListenerInput,
    responses(Answers),
)]
pub async fn update_listener(
    req: HttpRequest,
    broker: web::Data<Broker>,
    destinations: web::Data<Destinations>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path2,
    body: Result<JsonBody<ListenerInput>, ApiError>,
) -> Answer {
    answer(&req, async {
        let (who, JsonBody(body)) = (who?, body?);
        let (queue, id) = (queue_id(&path.0)?, listener_id(&path.1)?);
        let spec = crate::api::listeners::checked(&destinations, &body, true).await?;
        let listener = broker.update_listener(&who.access, queue, id, spec).await?;
        Ok(listener_view(&req, queue, &listener))
    })
    .await
}

/// `DELETE /queues/{queue_id}/listeners/{listener_id}`.
#[utoipa::path(
    delete,
    path = "/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "delete_listener",
    tag = "discue",
    security(("x_api_key" = ["queues:write"])),
    params(("queue_id" = String, Path), ("listener_id" = String, Path)),
    responses(Answers),
)]
pub async fn delete_listener(
    req: HttpRequest,
    broker: web::Data<Broker>,
    who: Result<OwnAccount<QueuesWrite>, ApiError>,
    path: Path2,
) -> Answer {
    answer(&req, async {
        let who = who?;
        let (queue, id) = (queue_id(&path.0)?, listener_id(&path.1)?);
        broker.delete_listener(&who.access, queue, id).await?;
        Ok(json!({"listener": {"id": id}}))
    })
    .await
}

/// Anything else under the prefix.
pub async fn no_route(req: HttpRequest) -> Answer {
    answer(&req, async { Err::<Value, _>(ApiError::NoRoute.into()) }).await
}

/// What every route of the dialect answers: the resource with `_links`, or a
/// `{title, status}` error.
struct Answers;

impl utoipa::IntoResponses for Answers {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("200", "The resource, with `_links`."),
            ("400", "`{title, status}`: the request is invalid."),
            ("401", "`{title, status}`: no valid token."),
            (
                "403",
                "`{title, status}`: the token lacks the scope, or names not exactly one account.",
            ),
            ("404", "`{title, status}`: no such resource."),
        ]
        .into_iter()
        .map(|(status, description)| {
            let object = ObjectBuilder::new().schema_type(Type::Object).build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(object)))
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
    }
}

/// The dialect's OpenAPI document, served at `/discue/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "leaseq: discue v1", description = "discue's queue, message and listener API (its seeds), served by leaseq. `?pretty=true` indents any answer."),
    servers((url = "/discue/v1")),
    paths(
        create_queue, list_queues, get_queue, update_queue, delete_queue, push, list_messages,
        get_message, delete_message, create_listener, get_listener, update_listener,
        delete_listener,
    ),
    modifiers(&ApiKeyHeader),
    tags((name = "discue", description = "Queues, messages and listeners, as discue's seeds write them.")),
)]
pub struct DiscueDoc;

struct ApiKeyHeader;

impl Modify for ApiKeyHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-KEY",
                "A token for exactly one account",
            ))),
        );
    }
}

async fn document() -> HttpResponse {
    match DiscueDoc::openapi().to_pretty_json() {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(e) => DiscueError::from(BrokerError::Internal(e.to_string())).error_response(),
    }
}

/// The dialect's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(no_route));
    cfg.service(
        web::scope("/discue/v1")
            .service(web::resource("/openapi.json").get(document))
            .service(resource("/queues").post(create_queue).get(list_queues))
            .service(
                resource("/queues/{queue_id}")
                    .get(get_queue)
                    .put(update_queue)
                    .delete(delete_queue),
            )
            .service(
                resource("/queues/{queue_id}/messages")
                    .post(push)
                    .get(list_messages),
            )
            .service(
                resource("/queues/{queue_id}/messages/{message_id}")
                    .get(get_message)
                    .delete(delete_message),
            )
            .service(resource("/queues/{queue_id}/listeners").post(create_listener))
            .service(
                resource("/queues/{queue_id}/listeners/{listener_id}")
                    .get(get_listener)
                    .put(update_listener)
                    .delete(delete_listener),
            )
            .default_service(web::to(no_route)),
    );
}
