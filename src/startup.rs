//! One startup path for `main` and every test: build, bind, run.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

use std::sync::Arc;

use crate::api::rate_limit::RateLimiter;
use crate::api::{self, BodyLimit};
use crate::broker::Broker;
use crate::broker::lease::LeaseSigner;
use crate::config::{ConfigError, Secrets, Settings};
use crate::delivery::Deliverer;
use crate::delivery::guard::Destinations;
use crate::forwarded::TrustedProxies;
use crate::metrics::Metrics;
use crate::model::{Clock, SystemClock};
use crate::reaper::Reaper;
use crate::store::{Store, StoreError, StoreOptions};
use crate::telemetry::RequestSpan;
use crate::tls::{TlsCertificate, TlsError};

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
    #[error("could not set up the delivery client: {0}")]
    Delivery(#[from] reqwest::Error),
    #[error("could not set up TLS: {0}")]
    Tls(#[from] TlsError),
}

pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    /// `metrics.bind`'s listener, when set.
    metrics_server: Option<Server>,
    broker: Broker,
    tls: Option<TlsCertificate>,
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
        // Before anything starts: a certificate that does not load stops start-up here.
        let tls = settings
            .server
            .tls_files()
            .map(|(cert, key)| TlsCertificate::load(cert, key))
            .transpose()?;
        let metrics = Arc::new(Metrics::new().map_err(|e| StartupError::Metrics(e.to_string()))?);
        let store = Store::connect(&StoreOptions {
            url: settings.redis.url.expose().to_owned(),
            cluster_nodes: settings
                .redis
                .cluster_nodes
                .iter()
                .map(|node| node.expose().to_owned())
                .collect(),
            key_prefix: settings.redis.key_prefix.clone(),
            timeout: settings.redis_timeout(),
            reveal_batch: settings.redis.reveal_batch,
            reply_bytes: settings.limits.reply_bytes,
            wait_replicas: settings.durability.wait_replicas,
        })?
        .with_metrics(metrics.clone());
        let mut signer = LeaseSigner::new(secrets.lease.expose_secret().as_bytes());
        if let Some(previous) = &secrets.lease_previous {
            signer = signer.with_previous(previous.expose_secret().as_bytes());
        }
        let broker = Broker::new(store, signer, settings.limits.clone())
            .with_clock(clock)
            .with_rate_limits(settings.rate_limits.clone());
        let scrape = web::Data::new(
            api::Scrape::new(
                metrics.clone(),
                broker.clone(),
                Duration::from_millis(settings.metrics.cache_ms),
                settings.metrics.max_queue_series,
            )
            .with_token(settings.metrics.token()),
        );
        let tokens = settings.token_keys(secrets)?;
        if let Some(jwks) = tokens.key_set() {
            tokio::spawn(jwks.clone().keep_fresh());
        }
        broker.listen_for_wakeups();
        tokio::spawn(Reaper::new(broker.clone(), settings.retention.clone()).run());
        let destinations = Destinations {
            allow_private: settings.listeners.allow_private_destinations,
        };
        if settings.listeners.deliver {
            let deliverer = Deliverer::new(
                broker.clone(),
                destinations,
                metrics.clone(),
                settings.listeners.lanes_in_flight,
            )?;
            tokio::spawn(deliverer.run());
        }
        let destinations = web::Data::new(destinations);

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
        // Per-process limits only when they are not shared through Redis (the broker's).
        let rate_limiter = (!settings.rate_limits.shared)
            .then(|| web::Data::new(RateLimiter::new(&settings.rate_limits)));
        let trusted_proxies = web::Data::new(
            TrustedProxies::parse(&settings.server.trusted_proxies)
                .map_err(|e| ConfigError::Invalid(format!("server.trusted_proxies: {e}")))?,
        );
        // Rendered once here, not per request.
        let openapi = web::Data::new(api::openapi::OpenApiJson::new()?);
        let metrics_server = (!settings.metrics.bind.is_empty())
            .then(|| {
                metrics_server(
                    &settings.metrics.bind,
                    scrape.clone(),
                    broker.clone(),
                    metrics.clone(),
                )
            })
            .transpose()?;
        let serve_metrics = metrics_server.is_none();
        let mut server = HttpServer::new(move || {
            // Runs once per worker, on the worker's own runtime.
            let broker = web::Data::new(shared_broker.with_own_connection());
            let metrics = metrics.clone();
            App::new()
                // Inner: runs inside the request span, which TracingLogger opens.
                .wrap_fn(move |req, srv| api::middleware::around(metrics.clone(), req, srv))
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(scrape.clone())
                .app_data(broker)
                .app_data(tokens.clone())
                .app_data(body_limit.clone())
                .app_data(trusted_proxies.clone())
                .app_data(openapi.clone())
                .app_data(destinations.clone())
                .app_data(api::query_config())
                .app_data(api::path_config())
                .configure(|cfg| {
                    if let Some(limiter) = &rate_limiter {
                        cfg.app_data(limiter.clone());
                    }
                })
                .configure(api::routes(serve_metrics))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .client_request_timeout(client_timeout);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = match &tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls.server_config()?),
            None => server.listen(listener),
        }
        .map_err(bind_error)?
        .run();
        let (metrics_port, metrics_server) = metrics_server.unzip();
        Ok(Self {
            port,
            metrics_port,
            server,
            metrics_server,
            broker,
            tls,
        })
    }

    /// The served certificate, when TLS is on (to reload on SIGHUP).
    pub fn tls(&self) -> Option<&TlsCertificate> {
        self.tls.as_ref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `metrics.bind`, when set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics_server {
            Some(metrics) => tokio::try_join!(self.server, metrics).map(|_| ()),
            None => self.server.await,
        }
    }
}

/// The listener of `metrics.bind`: `/metrics` and the probes, one worker.
fn metrics_server(
    bind: &str,
    scrape: web::Data<api::Scrape>,
    broker: Broker,
    metrics: Arc<Metrics>,
) -> Result<(u16, Server), StartupError> {
    let bind_error = |source| StartupError::Bind {
        bind: bind.to_owned(),
        source,
    };
    let listener = TcpListener::bind(bind).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let server = HttpServer::new(move || {
        let metrics = metrics.clone();
        App::new()
            .wrap_fn(move |req, srv| api::middleware::around(metrics.clone(), req, srv))
            .wrap(TracingLogger::<RequestSpan>::new())
            .app_data(scrape.clone())
            .app_data(web::Data::new(broker.with_own_connection()))
            .app_data(api::query_config())
            .app_data(api::path_config())
            .configure(api::metrics_routes)
    })
    .workers(1)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    Ok((port, server))
}
