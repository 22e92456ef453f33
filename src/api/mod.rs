//! HTTP only: routes, extractors, response shapes. Handlers are thin.

mod consumers;
mod envelope;
mod health;
mod messages;
mod metrics;
pub mod openapi;
mod queues;

use actix_web::{HttpResponse, web};

pub use envelope::{ApiError, BodyLimit, parse_json};
pub use metrics::{REQUEST_ID, Scrape, request_id};

use crate::broker::BrokerError;

/// A path with its methods; any other method gets the envelope (7003), not a bare 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(no_route))
}

/// The account-scoped API, served both under `/client/v4` and at the root.
fn accounts(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/accounts/{account_id}/queues")
            .service(resource("").post(queues::create).get(queues::list))
            .service(
                resource("/{queue_id}")
                    .get(queues::get)
                    .put(queues::put)
                    .patch(queues::patch)
                    .delete(queues::delete),
            )
            .service(resource("/{queue_id}/metrics").get(queues::metrics))
            .service(resource("/{queue_id}/redrive").post(queues::redrive))
            .service(
                resource("/{queue_id}/purge")
                    .post(queues::purge)
                    .get(queues::purge_status),
            )
            .service(
                resource("/{queue_id}/consumers")
                    .post(consumers::create)
                    .get(consumers::list),
            )
            .service(
                resource("/{queue_id}/consumers/{consumer_id}")
                    .get(consumers::get)
                    .put(consumers::put)
                    .delete(consumers::delete),
            )
            .service(
                resource("/{queue_id}/messages")
                    .post(messages::push)
                    .get(messages::list),
            )
            .service(resource("/{queue_id}/messages/batch").post(messages::push_batch))
            .service(resource("/{queue_id}/messages/pull").post(messages::pull))
            .service(resource("/{queue_id}/messages/ack").post(messages::ack))
            .service(resource("/{queue_id}/messages/peek").post(messages::peek))
            .service(resource("/{queue_id}/messages/extend").post(messages::extend))
            // After the fixed /messages/… paths, so those keep their own methods.
            .service(
                resource("/{queue_id}/messages/{message_id}")
                    .get(messages::get)
                    .delete(messages::delete),
            ),
    );
}

async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(BrokerError::NoRoute.into())
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/openapi.json", web::get().to(openapi::serve))
        .service(web::scope("/client/v4").configure(accounts))
        .configure(accounts)
        .default_service(web::to(no_route));
}

/// Query strings that do not parse get the envelope, not actix's plain text.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _| {
        ApiError(BrokerError::schema(format!("query string is invalid: {e}"))).into()
    })
}

/// Path segments that do not parse get the envelope too.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError(BrokerError::NoRoute).into())
}
