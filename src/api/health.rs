//! Liveness and readiness, outside `/accounts` and without auth.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::json_response;
use crate::broker::Broker;

/// How the process is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Ready,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: HealthStatus,
    /// Why the process is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    reason: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "Up.", body = Health, example = json!({"status": "ok"}))),
)]
pub async fn healthz() -> HttpResponse {
    let health = Health {
        status: HealthStatus::Ok,
        reason: None,
    };
    json_response(StatusCode::OK, &health)
}

/// Redis answers within the store's deadline.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Redis answers.", body = Health, example = json!({"status": "ready"})),
        (status = 503, description = "Redis does not answer.", body = Health,
            example = json!({"status": "unavailable", "reason": "redis did not answer"})),
    ),
)]
pub async fn readyz(broker: web::Data<Broker>) -> HttpResponse {
    match broker.ping().await {
        Ok(()) => json_response(
            StatusCode::OK,
            &Health {
                status: HealthStatus::Ready,
                reason: None,
            },
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &Health {
                    status: HealthStatus::Unavailable,
                    reason: Some("redis did not answer"),
                },
            )
        }
    }
}
