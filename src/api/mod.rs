//! HTTP only: routes, extractors, response shapes. Handlers are thin.

mod consumers;
mod dialects;
mod doc;
mod envelope;
mod error;
mod health;
mod identity;
pub mod input;
pub(crate) mod listeners;
mod messages;
mod metrics;
pub mod middleware;
pub mod openapi;
mod principal;
mod queues;
pub mod rate_limit;
mod ui;

use actix_web::{HttpResponse, web};

pub use envelope::{BodyLimit, parse_json};
pub use error::ApiError;
pub use metrics::Scrape;

/// A path with its methods; any other method gets the envelope (7003), not a bare 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(no_route))
}

/// The account-scoped API, served both under `/client/v4` and at the root. Nested
/// scopes keep routing cheap: a request meets one pattern per dynamic segment, then
/// plain string compares, instead of trying every route's regex in turn.
fn accounts(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/accounts/{account_id}/queues")
            .service(resource("").post(queues::create).get(queues::list))
            .service(
                web::scope("/{queue_id}")
                    .service(
                        resource("")
                            .get(queues::get)
                            .put(queues::put)
                            .patch(queues::patch)
                            .delete(queues::delete),
                    )
                    .service(
                        resource("/messages")
                            .post(messages::push)
                            .get(messages::list),
                    )
                    .service(resource("/messages/batch").post(messages::push_batch))
                    .service(resource("/messages/pull").post(messages::pull))
                    .service(resource("/messages/ack").post(messages::ack))
                    .service(resource("/messages/peek").post(messages::peek))
                    .service(resource("/messages/extend").post(messages::extend))
                    .service(resource("/messages/purge").post(messages::purge))
                    // After the fixed /messages/… paths, so those keep their own methods.
                    .service(
                        resource("/messages/{message_id}")
                            .get(messages::get)
                            .delete(messages::delete),
                    )
                    .service(resource("/metrics").get(queues::metrics))
                    .service(resource("/redrive").post(queues::redrive))
                    .service(
                        resource("/purge")
                            .post(queues::purge)
                            .get(queues::purge_status),
                    )
                    .service(
                        resource("/consumers")
                            .post(consumers::create)
                            .get(consumers::list),
                    )
                    .service(
                        resource("/consumers/{consumer_id}")
                            .get(consumers::get)
                            .put(consumers::put)
                            .delete(consumers::delete),
                    )
                    .service(
                        resource("/listeners")
                            .post(listeners::create)
                            .get(listeners::list),
                    )
                    .service(
                        resource("/listeners/{listener_id}")
                            .get(listeners::get)
                            .put(listeners::put)
                            .patch(listeners::patch)
                            .delete(listeners::delete),
                    )
                    .service(
                        resource("/listeners/{listener_id}/deliveries").get(listeners::deliveries),
                    ),
            ),
    );
}

/// What Cloudflare clients ask about their token, served beside the account routes.
fn identity(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/accounts").get(identity::list_accounts))
        .service(resource("/memberships").get(identity::list_memberships))
        .service(resource("/user/tokens/verify").get(identity::verify_token));
}

async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// Every route of the API port; `/metrics` among them unless `metrics.bind` gives it an
/// address of its own (then it is 404 here, like any unknown path).
pub fn routes(serve_metrics: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        if serve_metrics {
            cfg.route("/metrics", web::get().to(metrics::metrics));
        }
        cfg.configure(api_routes);
    }
}

/// The metrics address (`metrics.bind`): `/metrics` and the probes, nothing else.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics::metrics))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(no_route));
}

fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/openapi.json", web::get().to(openapi::serve))
        .route("/ui", web::get().to(ui::redirect))
        .route("/ui/", web::get().to(ui::page))
        .route("/ui/{asset}", web::get().to(ui::file))
        .configure(dialects::discue::routes)
        .configure(dialects::elasticqueue::routes)
        .service(
            web::scope("/client/v4")
                .configure(accounts)
                .configure(identity),
        )
        .configure(accounts)
        .configure(identity)
        .default_service(web::to(no_route));
}

/// Query strings that do not parse get the envelope, not actix's plain text.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::schema(format!("query string is invalid: {e}")).into())
}

/// Path segments that do not parse get the envelope too.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::NoRoute.into())
}
