//! `/accounts/{account_id}/queues/{queue_id}/listeners…`: push destinations (SPEC §9).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::doc::{AccountPath, BadRequest, Conflict, NotFound, QueuePath};
use super::envelope::{Envelope, JsonBody, Null, Page, ResultInfo, ok, ok_empty, ok_page};
use super::input::{self, ListenerInput};
use super::principal::OnQueue;
use crate::auth::{QueuesRead, QueuesWrite};
use crate::broker::command::ListenerSpec;
use crate::broker::listeners::DeliveryRecord;
use crate::broker::{Broker, BrokerError};
use crate::delivery::guard::Destinations;
use crate::model::{Listener, ListenerHealth, ListenerId, ListenerSettings, rfc3339_ms};

/// Whether a listener is being delivered to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerStatus {
    Active,
    /// Its liveness URL fails: deliveries wait, without spending attempts.
    Down,
    Paused,
}

/// A listener as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Listener)]
pub struct ListenerView {
    listener_id: ListenerId,
    name: String,
    notify_url: String,
    liveness_url: Option<String>,
    dead_letter_queue: Option<String>,
    #[schema(format = DateTime)]
    created_on: String,
    #[schema(format = DateTime)]
    modified_on: String,
    status: ListenerStatus,
    settings: ListenerSettings,
    /// Extension: messages waiting for this listener (not yet delivered, dead-lettered
    /// or expired).
    backlog: u64,
    /// The signing secret (`whsec_…`): only in the answer to a create or a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl ListenerView {
    fn new(listener: &Listener, with_secret: bool) -> Self {
        let status = if listener.settings.paused {
            ListenerStatus::Paused
        } else if matches!(listener.health, ListenerHealth::Down { .. }) {
            ListenerStatus::Down
        } else {
            ListenerStatus::Active
        };
        Self {
            listener_id: listener.id,
            name: listener.name.clone(),
            notify_url: listener.notify_url.clone(),
            liveness_url: listener.liveness_url.clone(),
            dead_letter_queue: listener.dead_letter_queue.as_ref().map(|q| q.to_string()),
            created_on: rfc3339_ms(listener.created_ms),
            modified_on: rfc3339_ms(listener.modified_ms),
            status,
            settings: listener.settings,
            backlog: listener.backlog,
            secret: with_secret.then(|| listener.secret.0.clone()),
        }
    }
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    #[schema(format = DateTime)]
    attempted_at: String,
    message_ids: Vec<String>,
    /// The HTTP status answered, or 0 when there was no answer.
    status: u16,
    duration_ms: u64,
    /// Why it failed; null when it did not.
    error: Option<String>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            attempted_at: rfc3339_ms(record.attempted_ms),
            message_ids: record.message_ids,
            status: record.status,
            duration_ms: record.duration_ms,
            error: record.error,
        }
    }
}

/// The `{listener_id}` of a route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ListenerPath {
    #[param(pattern = "^[0-9a-f]{32}$")]
    pub listener_id: String,
}

/// The path's listener id; one that cannot be an id names no listener.
fn listener_id(path: &ListenerPath) -> Result<ListenerId, BrokerError> {
    ListenerId::parse(&path.listener_id).ok_or(BrokerError::ListenerNotFound)
}

/// The spec, once every URL it names leads somewhere listeners may send (the discue
/// dialect's listeners too).
pub(super) async fn checked(
    destinations: &Destinations,
    input: &ListenerInput,
    keep_unstated: bool,
) -> Result<ListenerSpec, ApiError> {
    let spec = input::listener(input, keep_unstated)?;
    let urls = [
        ("notify_url", spec.notify_url.as_deref()),
        (
            "liveness_url",
            spec.liveness_url.as_ref().and_then(|u| u.as_deref()),
        ),
    ];
    for (field, url) in urls {
        if let Some(url) = url {
            destinations
                .check(url)
                .await
                .map_err(|e| ApiError::schema(format!("{field} {e}")))?;
        }
    }
    Ok(spec)
}

/// Creates a listener: every message pushed from now on is also delivered to it.
#[utoipa::path(
    post,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners",
    operation_id = "create_listener",
    tag = "listeners",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath),
    request_body = ListenerInput,
    responses(
        (status = 200, description = "The new listener, with its secret (shown only now).", body = Envelope<ListenerView>),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
    ),
)]
pub async fn create(
    broker: web::Data<Broker>,
    destinations: web::Data<Destinations>,
    who: OnQueue<QueuesWrite>,
    JsonBody(input): JsonBody<ListenerInput>,
) -> Result<HttpResponse, ApiError> {
    let spec = checked(&destinations, &input, false).await?;
    let listener = broker.create_listener(&who.access, who.queue, spec).await?;
    Ok(ok(ListenerView::new(&listener, true)))
}

/// Lists the queue's listeners.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners",
    operation_id = "list_listeners",
    tag = "listeners",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath),
    responses((status = 200, description = "The listeners, oldest first, all on one page.", body = Page<ListenerView, ResultInfo>)),
)]
pub async fn list(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
) -> Result<HttpResponse, ApiError> {
    let listeners: Vec<ListenerView> = broker
        .listeners(&who.access, who.queue)
        .await?
        .iter()
        .map(|l| ListenerView::new(l, false))
        .collect();
    let count = listeners.len();
    Ok(ok_page(listeners, 1, count, count))
}

/// Gets a listener.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "get_listener",
    tag = "listeners",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath, ListenerPath),
    responses(
        (status = 200, description = "The listener.", body = Envelope<ListenerView>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
    path: web::Path<ListenerPath>,
) -> Result<HttpResponse, ApiError> {
    let listener = broker
        .listener(&who.access, who.queue, listener_id(&path)?)
        .await?;
    Ok(ok(ListenerView::new(&listener, false)))
}

async fn write(
    broker: &Broker,
    destinations: &Destinations,
    who: &OnQueue<QueuesWrite>,
    path: &ListenerPath,
    input: &ListenerInput,
    keep_unstated: bool,
) -> Result<HttpResponse, ApiError> {
    let id = listener_id(path)?;
    let spec = checked(destinations, input, keep_unstated).await?;
    let rotated = spec.rotate_secret;
    let listener = broker
        .update_listener(&who.access, who.queue, id, spec)
        .await?;
    Ok(ok(ListenerView::new(&listener, rotated)))
}

/// Replaces a listener: what the body leaves out returns to its default (its secret
/// stays unless `rotate_secret`).
#[utoipa::path(
    put,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "put_listener",
    tag = "listeners",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, ListenerPath),
    request_body = ListenerInput,
    responses(
        (status = 200, description = "The listener as written; with `rotate_secret`, its new secret.", body = Envelope<ListenerView>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn put(
    broker: web::Data<Broker>,
    destinations: web::Data<Destinations>,
    who: OnQueue<QueuesWrite>,
    path: web::Path<ListenerPath>,
    JsonBody(input): JsonBody<ListenerInput>,
) -> Result<HttpResponse, ApiError> {
    if input.name.is_none() || input.notify_url.is_none() {
        return Err(ApiError::schema("name and notify_url are required"));
    }
    write(&broker, &destinations, &who, &path, &input, false).await
}

/// Changes what the body gives of a listener and keeps the rest; `rotate_secret` issues
/// a new secret, the old one staying valid for 24 h.
#[utoipa::path(
    patch,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "patch_listener",
    tag = "listeners",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, ListenerPath),
    request_body(content = Option<ListenerInput>, description = "May be empty."),
    responses(
        (status = 200, description = "The listener as written; with `rotate_secret`, its new secret.", body = Envelope<ListenerView>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn patch(
    broker: web::Data<Broker>,
    destinations: web::Data<Destinations>,
    who: OnQueue<QueuesWrite>,
    path: web::Path<ListenerPath>,
    JsonBody(input): JsonBody<ListenerInput>,
) -> Result<HttpResponse, ApiError> {
    write(&broker, &destinations, &who, &path, &input, true).await
}

/// Deletes a listener: it stops at once, and the deliveries it had pending go.
#[utoipa::path(
    delete,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
    operation_id = "delete_listener",
    tag = "listeners",
    security(("bearer" = ["queues:write"]), ("x_auth_key" = ["queues:write"]), ("x_api_key" = ["queues:write"])),
    params(AccountPath, QueuePath, ListenerPath),
    responses(
        (status = 200, description = "Deleted.", body = Envelope<Null>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn delete(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesWrite>,
    path: web::Path<ListenerPath>,
) -> Result<HttpResponse, ApiError> {
    broker
        .delete_listener(&who.access, who.queue, listener_id(&path)?)
        .await?;
    Ok(ok_empty())
}

/// The listener's latest delivery attempts (at most 100), newest first.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}/deliveries",
    operation_id = "list_deliveries",
    tag = "listeners",
    security(("bearer" = ["queues:read"]), ("x_auth_key" = ["queues:read"]), ("x_api_key" = ["queues:read"])),
    params(AccountPath, QueuePath, ListenerPath),
    responses(
        (status = 200, description = "The attempts, all on one page.", body = Page<DeliveryView, ResultInfo>),
        (status = 404, response = NotFound),
    ),
)]
pub async fn deliveries(
    broker: web::Data<Broker>,
    who: OnQueue<QueuesRead>,
    path: web::Path<ListenerPath>,
) -> Result<HttpResponse, ApiError> {
    let attempts: Vec<DeliveryView> = broker
        .deliveries(&who.access, who.queue, listener_id(&path)?)
        .await?
        .into_iter()
        .map(DeliveryView::from)
        .collect();
    let count = attempts.len();
    Ok(ok_page(attempts, 1, count, count))
}
