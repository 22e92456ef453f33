//! Liveness and readiness, outside `/accounts` and without auth.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::broker::Broker;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Redis answers within the store's deadline.
pub async fn readyz(broker: web::Data<Broker>) -> HttpResponse {
    match broker.store().ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "reason": "redis did not answer"}))
        }
    }
}
