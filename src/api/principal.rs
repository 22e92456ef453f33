//! The `Principal` extractor: a verified token, allowed on the path's account, holding
//! the scope its handler names.

use std::future::{Ready, ready};

use futures_util::future::{Either, LocalBoxFuture};
use std::marker::PhantomData;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::ApiError;
use crate::auth::{RequiredScope, TokenKeys};
use crate::broker::rate_limit::RateLimiter;
use crate::broker::{Broker, BrokerError};
use crate::model::{Access, AccountId, QueueId, QueueName};

/// The caller, authenticated and authorized for scope `S` on the path's account.
#[derive(Debug, Clone)]
pub struct Principal<S> {
    pub access: Access,
    scope: PhantomData<S>,
}

/// The headers that may carry the token, in the order they are looked at.
const TOKEN_HEADERS: [&str; 3] = ["authorization", "x-auth-key", "x-api-key"];

/// The token from `Authorization: Bearer`, or from `X-Auth-Key` / `X-API-KEY`
/// (discue-style clients).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    TOKEN_HEADERS[1..]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

fn authorize<S: RequiredScope>(req: &HttpRequest) -> Result<Principal<S>, BrokerError> {
    let keys = req
        .app_data::<web::Data<TokenKeys>>()
        .ok_or_else(|| BrokerError::Internal("token keys are not configured".into()))?;
    // Two credentials are ambiguous (Authorization is not a list field, RFC 9110 §5.3),
    // and a proxy that checks the last while we use the first would let a forged token
    // ride along with a good one: refuse rather than pick. The same holds across the
    // token headers: a gateway that checks Authorization while we read X-API-KEY (or
    // the other way round) must not be able to disagree with us.
    if let Some(name) = TOKEN_HEADERS
        .iter()
        .find(|name| req.headers().get_all(**name).nth(1).is_some())
    {
        return Err(BrokerError::Unauthenticated(format!(
            "more than one {name} header"
        )));
    }
    if TOKEN_HEADERS
        .iter()
        .filter(|name| req.headers().contains_key(**name))
        .count()
        > 1
    {
        return Err(BrokerError::Unauthenticated(
            "send the token in one header only: Authorization, X-Auth-Key or X-API-KEY".into(),
        ));
    }
    let token = bearer(req.headers())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| BrokerError::Unauthenticated("missing bearer token".into()))?;
    let claims = keys
        .verify(token)
        .map_err(|e| BrokerError::Unauthenticated(e.to_string()))?;
    let raw_account = req.match_info().get("account_id").unwrap_or_default();
    let account = AccountId::parse(raw_account).ok_or(BrokerError::InvalidAccountId)?;
    if !claims.allows_account(account.as_str()) {
        return Err(BrokerError::Forbidden(
            "the token does not grant this account".into(),
        ));
    }
    if !claims.scopes().contains(S::SCOPE) {
        return Err(BrokerError::Forbidden(format!(
            "the token lacks the scope {}",
            S::SCOPE
        )));
    }
    // For the request's log line (the span declares these fields).
    let span = tracing::Span::current();
    span.record("account", account.as_str());
    if let Some(queue) = req
        .match_info()
        .get("queue_id")
        .filter(|q| QueueId::parse(q).is_some())
    {
        span.record("queue", queue);
    }
    if let Some(limiter) = req.app_data::<web::Data<RateLimiter>>() {
        // Only well-formed ids get a bucket; anything else is refused later anyway.
        let queue = req
            .match_info()
            .get("queue_id")
            .filter(|q| QueueId::parse(q).is_some());
        limiter
            .check(account.as_str(), queue)
            .map_err(|retry_after_secs| BrokerError::RateLimited { retry_after_secs })?;
    }
    // Names in the claim that are not valid queue names can match no queue.
    let queues = claims
        .queues
        .as_ref()
        .map(|names| names.iter().filter_map(|n| QueueName::parse(n)).collect());
    Ok(Principal {
        access: Access { account, queues },
        scope: PhantomData,
    })
}

impl<S: RequiredScope + 'static> FromRequest for Principal<S> {
    type Error = ApiError;
    type Future = Either<
        Ready<Result<Self, Self::Error>>,
        LocalBoxFuture<'static, Result<Self, Self::Error>>,
    >;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let principal = match authorize(req) {
            Ok(principal) => principal,
            Err(e) => return Either::Left(ready(Err(e.into()))),
        };
        // Rate limits shared by every broker are counted in Redis: one more call, made
        // only when such limits are configured.
        let broker = req
            .app_data::<web::Data<Broker>>()
            .filter(|b| b.has_shared_rate_limits())
            .cloned();
        let Some(broker) = broker else {
            return Either::Left(ready(Ok(principal)));
        };
        let queue = req.match_info().get("queue_id").and_then(QueueId::parse);
        Either::Right(Box::pin(async move {
            broker.admit(&principal.access.account, queue).await?;
            Ok(principal)
        }))
    }
}
