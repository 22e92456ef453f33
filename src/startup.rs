//! One startup path for `main` and every test: build, bind, run.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::HttpMessage;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header::TRANSFER_ENCODING;

use crate::api::{self, BodyLimit};
use crate::broker::Broker;
use crate::broker::lease::LeaseSigner;
use crate::broker::rate_limit::RateLimiter;
use crate::config::{ConfigError, Secrets, Settings};
use crate::forwarded::TrustedProxies;
use crate::metrics::Metrics;
use crate::model::{Clock, SystemClock};
use crate::reaper::Reaper;
use crate::store::{Store, StoreError, StoreOptions};
use crate::telemetry::RequestSpan;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("could not set up redis: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not set up metrics: {0}")]
    Metrics(String),
    #[error("could not render the OpenAPI document: {0}")]
    OpenApi(#[from] serde_json::Error),
}

pub struct Application {
    port: u16,
    server: Server,
    broker: Broker,
}

impl Application {
    pub fn build(settings: &Settings, secrets: &Secrets) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, secrets, Arc::new(SystemClock))
    }

    /// [`Application::build`] with the broker reading the time from `clock` (tests move
    /// a manual one instead of sleeping).
    pub fn build_with_clock(
        settings: &Settings,
        secrets: &Secrets,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::new().map_err(|e| StartupError::Metrics(e.to_string()))?);
        let store = Store::connect(&StoreOptions {
            url: settings.redis.url.expose().to_owned(),
            key_prefix: settings.redis.key_prefix.clone(),
            timeout: settings.redis_timeout(),
            reveal_batch: settings.redis.reveal_batch,
            reply_bytes: settings.limits.reply_bytes,
        })?
        .with_metrics(metrics.clone());
        let broker = Broker::new(
            store,
            LeaseSigner::new(secrets.lease.expose_secret().as_bytes()),
            settings.limits.clone(),
        )
        .with_clock(clock);
        let scrape = web::Data::new(api::Scrape::new(
            metrics.clone(),
            broker.clone(),
            Duration::from_millis(settings.metrics.cache_ms),
        ));
        let tokens = settings.token_keys(secrets)?;
        broker.listen_for_wakeups();
        tokio::spawn(Reaper::new(broker.clone(), settings.retention.clone()).run());

        let bind_error = |source| StartupError::Bind {
            bind: settings.server.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.server.bind).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();

        let shared_broker = broker.clone();
        let tokens = web::Data::new(tokens);
        let client_timeout = Duration::from_secs(settings.server.client_timeout_secs);
        let body_limit = web::Data::new(BodyLimit {
            bytes: settings.limits.request_bytes,
            timeout: client_timeout,
        });
        let rate_limiter = web::Data::new(RateLimiter::new(&settings.rate_limits));
        let trusted_proxies = web::Data::new(
            TrustedProxies::parse(&settings.server.trusted_proxies)
                .map_err(|e| ConfigError::Invalid(format!("server.trusted_proxies: {e}")))?,
        );
        // Rendered once here, not per request.
        let openapi = web::Data::new(api::openapi::OpenApiJson::new()?);
        let mut server = HttpServer::new(move || {
            // Runs once per worker, on the worker's own runtime.
            let broker = web::Data::new(shared_broker.with_own_connection());
            let metrics = metrics.clone();
            App::new()
                // Inner: runs inside the request span, which TracingLogger opens.
                .wrap_fn(move |mut req, srv| {
                    let started = std::time::Instant::now();
                    let chunked_body = share_chunked_body(&mut req);
                    let method = req.method().as_str().to_owned();
                    // The route template, never the raw path, so labels stay few.
                    let route = req
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_owned());
                    let request_id = api::request_id(&req);
                    let call = srv.call(req);
                    let metrics = metrics.clone();
                    async move {
                        let mut response = call.await?;
                        let status = response.status().as_u16();
                        metrics.observe_http(&method, &route, status, started.elapsed());
                        if let Some(id) = request_id {
                            response.headers_mut().insert(api::REQUEST_ID, id);
                        }
                        Ok(match chunked_body {
                            Some(held) => response
                                .map_body(|_, body| BoxBody::new(HeldBody { body, _held: held })),
                            None => response,
                        })
                    }
                })
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(scrape.clone())
                .app_data(broker)
                .app_data(tokens.clone())
                .app_data(body_limit.clone())
                .app_data(rate_limiter.clone())
                .app_data(trusted_proxies.clone())
                .app_data(openapi.clone())
                .app_data(api::query_config())
                .app_data(api::path_config())
                .configure(api::routes)
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .client_request_timeout(client_timeout);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener).map_err(bind_error)?.run();
        Ok(Self {
            port,
            server,
            broker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// A chunked request body, shared by the handler (which may read it) and the response.
///
/// actix-http drains a chunked body that the app dropped unread for as long as the client
/// keeps sending, with no timer: a client trickling a body to a route that never reads
/// one, or one refused with 408 or 413, would hold its connection forever. When the body
/// is still alive as the response finishes, actix-http closes the connection instead
/// (after its short linger), so the response body keeps a handle on it ([`HeldBody`]).
/// Bodies framed by `Content-Length` need none of this: actix-http closes on those.
#[derive(Clone)]
struct SharedBody(Rc<RefCell<Payload>>);

impl futures_util::Stream for SharedBody {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// For a chunked request, swaps its body for a shared one and returns the other handle.
fn share_chunked_body(req: &mut ServiceRequest) -> Option<SharedBody> {
    if !req.headers().contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let body = SharedBody(Rc::new(RefCell::new(req.take_payload())));
    req.set_payload(Payload::Stream {
        payload: Box::pin(body.clone()),
    });
    Some(body)
}

/// A response body that keeps the request's chunked body alive until it has been sent.
struct HeldBody {
    body: BoxBody,
    _held: SharedBody,
}

impl MessageBody for HeldBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
