//! The `Principal` extractor: a verified token allowed to act on the path's account.

use std::future::{Ready, ready};

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::jwt::{Claims, TokenKeys};
use crate::api::ApiError;
use crate::broker::BrokerError;
use crate::model::AccountId;

/// The caller, authenticated, and the account of the request path it may act on.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: AccountId,
    pub claims: Claims,
}

/// The token from `Authorization: Bearer`, or from `X-Auth-Key` / `X-API-KEY`
/// (discue-style clients).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    ["x-auth-key", "x-api-key"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

fn authorize(req: &HttpRequest) -> Result<Principal, BrokerError> {
    let keys = req
        .app_data::<web::Data<TokenKeys>>()
        .ok_or_else(|| BrokerError::Internal("token keys are not configured".into()))?;
    let token = bearer(req.headers())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| BrokerError::Unauthenticated("missing bearer token".into()))?;
    let claims = keys
        .verify(token)
        .map_err(|e| BrokerError::Unauthenticated(format!("invalid token: {e}")))?;
    let raw_account = req.match_info().get("account_id").unwrap_or_default();
    let account = AccountId::parse(raw_account).ok_or(BrokerError::InvalidAccountId)?;
    if !claims.allows_account(account.as_str()) {
        return Err(BrokerError::Forbidden(
            "token does not grant access to this account".into(),
        ));
    }
    Ok(Principal { account, claims })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(req).map_err(ApiError::from))
    }
}
