//! `GET /metrics` (Prometheus text) and the request-id header.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tracing_actix_web::RequestId;

use super::ApiError;

use crate::broker::Broker;
use crate::metrics::{Metrics, QueueStats};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id to echo in `x-request-id`: the client's, when it sent a sane one, else the
/// one the request span was given.
pub fn request_id(req: &ServiceRequest) -> Option<HeaderValue> {
    let sent = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()))
        .cloned();
    sent.or_else(|| {
        req.extensions()
            .get::<RequestId>()
            .and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
    })
}

/// What a scrape needs, with the per-queue figures cached for a moment.
pub struct Scrape {
    metrics: Arc<Metrics>,
    broker: Broker,
    ttl: Duration,
    /// Queues with series of their own (the largest backlogs); 0: every queue.
    max_queue_series: usize,
    /// SHA-256 of `metrics.token`: comparing digests takes the same time however much
    /// of a guess is right.
    token_digest: Option<[u8; 32]>,
    cached: Mutex<Option<(Instant, Arc<Vec<QueueStats>>)>>,
}

impl Scrape {
    pub fn new(
        metrics: Arc<Metrics>,
        broker: Broker,
        ttl: Duration,
        max_queue_series: usize,
    ) -> Self {
        Self {
            metrics,
            broker,
            ttl,
            max_queue_series,
            token_digest: None,
            cached: Mutex::new(None),
        }
    }

    /// Scrapes must send `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: Option<&SecretString>) -> Self {
        self.token_digest = token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into());
        self
    }

    fn admits(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        let sent = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())));
        match sent {
            Some(digest) if digest == *expected => Ok(()),
            _ => Err(ApiError::Unauthenticated(
                "/metrics needs Authorization: Bearer <metrics.token>".into(),
            )),
        }
    }

    async fn queue_stats(&self) -> Arc<Vec<QueueStats>> {
        let fresh = {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            cached
                .as_ref()
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, s)| s.clone())
        };
        if let Some(stats) = fresh {
            return stats;
        }
        match self.broker.queue_stats().await {
            Ok(stats) => {
                let stats = Arc::new(stats);
                *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), stats.clone()));
                stats
            }
            // Redis is down: the process families still tell the story (errors, 503s).
            Err(e) => {
                tracing::warn!(error = %e, "per-queue metrics unavailable");
                Arc::new(Vec::new())
            }
        }
    }
}

/// Prometheus text exposition: per-queue gauges and counters, HTTP and Redis series.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The exposition.", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "`metrics.token` is set and the request does not carry it."),
        (status = 500, description = "The exposition could not be rendered (empty body)."),
    ),
)]
pub async fn metrics(
    scrape: web::Data<Scrape>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    scrape.admits(&req)?;
    let stats = scrape.queue_stats().await;
    let now_ms = scrape.broker.now_ms();
    let pieces = match scrape
        .metrics
        .exposition(stats, scrape.max_queue_series, now_ms)
    {
        Ok(pieces) => pieces,
        Err(e) => {
            tracing::error!(error = %e, "could not render metrics");
            return Ok(HttpResponse::InternalServerError().finish());
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .streaming(futures_util::stream::iter(
            pieces.map(|piece| Ok::<_, Infallible>(web::Bytes::from(piece))),
        )))
}
