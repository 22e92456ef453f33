//! The `Principal` and `OnQueue` extractors: a verified token, allowed on the path's
//! account, holding the scope its handler names, admitted by the rate limits; and for
//! routes under a queue, the queue id, parsed once.

use std::future::{Ready, ready};

use futures_util::future::{Either, LocalBoxFuture};
use std::marker::PhantomData;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::ApiError;
use super::rate_limit::RateLimiter;
use sha2::{Digest, Sha256};

use crate::auth::{Claims, RequiredScope, Scope, TokenKeys};
use crate::broker::{Broker, BrokerError};
use crate::model::{Access, AccountId, QueueId, QueueName};

/// The caller, authenticated and authorized for scope `S` on the path's account.
#[derive(Debug, Clone)]
pub struct Principal<S> {
    pub access: Access,
    scope: PhantomData<S>,
}

/// The caller of a route under `/queues/{queue_id}`, as for [`Principal`], and the queue.
/// The queue is only named here: whether it exists, and whether the token's queues
/// reach it, the broker decides.
#[derive(Debug, Clone)]
pub struct OnQueue<S> {
    pub access: Access,
    pub queue: QueueId,
    scope: PhantomData<S>,
}

/// The headers that may carry the token, in the order they are looked at.
const TOKEN_HEADERS: [&str; 3] = ["authorization", "x-auth-key", "x-api-key"];

/// The token from `Authorization: Bearer`, or from `X-Auth-Key` / `X-API-KEY`
/// (discue-style clients).
/// With `bare`, `Authorization: <token>` (no scheme) is taken too: ElasticQueue's
/// clients send that.
fn bearer(headers: &HeaderMap, bare: bool) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        return match value.split_once(' ') {
            Some((scheme, token)) => scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()),
            None => bare.then_some(value),
        };
    }
    TOKEN_HEADERS[1..]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// The caller's verified token: its claims, and an id for it (a digest, so the token
/// itself is never shown back or logged).
pub struct Token {
    pub claims: Claims,
    pub id: String,
}

impl FromRequest for Token {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        after_key_fetch(req, false, |req| Either::Left(ready(verified(req, false))))
    }
}

/// Runs `extract`; when the token names a key the JWK set (`auth.jwks_url`) lacks and
/// a fetch may bring it, fetches the set first, so a key the identity provider has
/// just added works on its first use.
fn after_key_fetch<T: 'static>(
    req: &HttpRequest,
    bare: bool,
    extract: fn(&HttpRequest) -> Extracted<T>,
) -> Extracted<T> {
    // Without a key set this costs one lookup: the token is not even read here.
    let pending = req.app_data::<web::Data<TokenKeys>>().and_then(|keys| {
        let jwks = keys.key_set()?.clone();
        let kid = keys.unknown_kid(bearer(req.headers(), bare)?)?;
        Some((jwks, kid))
    });
    let Some((jwks, kid)) = pending else {
        return extract(req);
    };
    let req = req.clone();
    Either::Right(Box::pin(async move {
        jwks.fetch_for_unknown_kid(&kid).await;
        extract(&req).await
    }))
}

/// The request's one token, verified.
fn verified(req: &HttpRequest, bare: bool) -> Result<Token, ApiError> {
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
        return Err(ApiError::Unauthenticated(format!(
            "more than one {name} header"
        )));
    }
    if TOKEN_HEADERS
        .iter()
        .filter(|name| req.headers().contains_key(**name))
        .count()
        > 1
    {
        return Err(ApiError::Unauthenticated(
            "send the token in one header only: Authorization, X-Auth-Key or X-API-KEY".into(),
        ));
    }
    let token = bearer(req.headers(), bare)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))?;
    let claims = keys
        .verify(token)
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    let digest = Sha256::digest(token.as_bytes());
    let id = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Token { claims, id })
}

/// The caller's access, once its token holds `scope` on the path's account.
fn authorize(req: &HttpRequest, scope: Scope) -> Result<Access, ApiError> {
    let Token { claims, .. } = verified(req, false)?;
    let raw_account = req.match_info().get("account_id").unwrap_or_default();
    let account = AccountId::parse(raw_account).ok_or(ApiError::InvalidAccountId)?;
    if !claims.allows_account(account.as_str()) {
        return Err(BrokerError::Forbidden("the token does not grant this account".into()).into());
    }
    if !claims.scopes().contains(scope) {
        return Err(BrokerError::Forbidden(format!("the token lacks the scope {scope}")).into());
    }
    // For the request's log line (the span declares these fields).
    tracing::Span::current().record("account", account.as_str());
    // Names in the claim that are not valid queue names can match no queue.
    let queues = claims
        .queues
        .as_ref()
        .map(|names| names.iter().filter_map(|n| QueueName::parse(n)).collect());
    Ok(Access { account, queues })
}

/// The path's queue id: a route under `/queues/{queue_id}` has one.
fn queue_id(req: &HttpRequest) -> Result<QueueId, ApiError> {
    let queue = req
        .match_info()
        .get("queue_id")
        .and_then(QueueId::parse)
        .ok_or(ApiError::QueueIdMalformed)?;
    tracing::Span::current().record("queue", queue.to_string());
    Ok(queue)
}

/// This process's own rate limits (`rate_limits.shared = false`), when they are on.
fn limit_locally(
    req: &HttpRequest,
    access: &Access,
    queue: Option<QueueId>,
) -> Result<(), ApiError> {
    let Some(limiter) = req.app_data::<web::Data<RateLimiter>>() else {
        return Ok(());
    };
    let queue = queue.map(|q| q.to_string());
    limiter
        .check(access.account.as_str(), queue.as_deref())
        .map_err(|retry_after_secs| BrokerError::RateLimited { retry_after_secs }.into())
}

type Extracted<T> =
    Either<Ready<Result<T, ApiError>>, LocalBoxFuture<'static, Result<T, ApiError>>>;

/// Admits `caller` under the rate limits shared by every broker (counted in Redis: one
/// more call, made only when such limits are configured).
fn admit<T: 'static>(
    req: &HttpRequest,
    caller: T,
    access: &Access,
    queue: Option<QueueId>,
) -> Extracted<T> {
    let broker = req
        .app_data::<web::Data<Broker>>()
        .filter(|b| b.has_shared_rate_limits())
        .cloned();
    let Some(broker) = broker else {
        return Either::Left(ready(Ok(caller)));
    };
    let account = access.account.clone();
    Either::Right(Box::pin(async move {
        broker.admit(&account, queue).await?;
        Ok(caller)
    }))
}

impl<S: RequiredScope + 'static> FromRequest for Principal<S> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        after_key_fetch(req, false, Self::extract)
    }
}

impl<S: RequiredScope + 'static> Principal<S> {
    fn extract(req: &HttpRequest) -> Extracted<Self> {
        let checked = authorize(req, S::SCOPE)
            .and_then(|access| limit_locally(req, &access, None).map(|()| access));
        let access = match checked {
            Ok(access) => access,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        let caller = Principal {
            access: access.clone(),
            scope: PhantomData,
        };
        admit(req, caller, &access, None)
    }
}

impl<S: RequiredScope + 'static> FromRequest for OnQueue<S> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        after_key_fetch(req, false, Self::extract)
    }
}

impl<S: RequiredScope + 'static> OnQueue<S> {
    fn extract(req: &HttpRequest) -> Extracted<Self> {
        // Who asks comes first: a bad token is 401 whatever the path says.
        let checked = authorize(req, S::SCOPE).and_then(|access| {
            let queue = queue_id(req)?;
            limit_locally(req, &access, Some(queue))?;
            Ok((access, queue))
        });
        let (access, queue) = match checked {
            Ok(checked) => checked,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        let caller = OnQueue {
            access: access.clone(),
            queue,
            scope: PhantomData,
        };
        admit(req, caller, &access, Some(queue))
    }
}

/// The caller of a seed dialect's route (`/discue/v1`, `/elasticqueue/v1`), whose paths
/// name no account: the token must name exactly one, which is the caller's, and hold
/// scope `S`. The token may come as `Authorization: Bearer`, a bare `Authorization`
/// (ElasticQueue) or `X-API-KEY` (discue).
#[derive(Debug, Clone)]
pub struct OwnAccount<S> {
    pub access: Access,
    scope: PhantomData<S>,
}

fn own_account(req: &HttpRequest, scope: Scope) -> Result<Access, ApiError> {
    let Token { claims, .. } = verified(req, true)?;
    let account = match claims.accounts.as_slice() {
        [only] if only != "*" => AccountId::parse(only),
        _ => None,
    }
    .ok_or_else(|| {
        BrokerError::Forbidden("this API needs a token for exactly one account (not \"*\")".into())
    })?;
    if !claims.scopes().contains(scope) {
        return Err(BrokerError::Forbidden(format!("the token lacks the scope {scope}")).into());
    }
    tracing::Span::current().record("account", account.as_str());
    let queues = claims
        .queues
        .as_ref()
        .map(|names| names.iter().filter_map(|n| QueueName::parse(n)).collect());
    let access = Access { account, queues };
    limit_locally(req, &access, None)?;
    Ok(access)
}

impl<S: RequiredScope + 'static> FromRequest for OwnAccount<S> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        after_key_fetch(req, true, Self::extract)
    }
}

impl<S: RequiredScope + 'static> OwnAccount<S> {
    fn extract(req: &HttpRequest) -> Extracted<Self> {
        let access = match own_account(req, S::SCOPE) {
            Ok(access) => access,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        let caller = OwnAccount {
            access: access.clone(),
            scope: PhantomData,
        };
        admit(req, caller, &access, None)
    }
}
