//! `GET /accounts`, `GET /memberships` and `GET /user/tokens/verify`: what Cloudflare
//! clients (wrangler among them) ask to find their account and check their token. Any
//! valid token may ask; each answers only about that token.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::envelope::{Envelope, Page, ResultInfo, ok, ok_page};
use super::principal::Token;
use crate::auth::Scope;
use crate::model::{AccountId, rfc3339_ms};

/// An account a token grants.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: String,
    /// The id again: leaseq keeps no account names.
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The token's membership of one account (Cloudflare's shape).
#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    /// The account id: one membership per account.
    id: String,
    status: &'static str,
    account: AccountView,
    /// What the token may do there.
    permissions: Vec<String>,
}

/// A token's status.
#[derive(Serialize, ToSchema)]
pub struct TokenStatus {
    /// A digest of the token: the same token always has the same id.
    id: String,
    status: &'static str,
    #[schema(format = DateTime)]
    expires_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    not_before: Option<String>,
}

/// `page` and `per_page` of the two lists: Cloudflare's clients ask for the next page
/// until one comes back empty.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From 1.
    #[param(minimum = 1)]
    page: Option<usize>,
    /// 5 to 50, default 20.
    #[param(minimum = 5, maximum = 50)]
    per_page: Option<usize>,
}

/// One page of `items`.
fn page<T: Serialize>(items: Vec<T>, query: &PageQuery) -> Result<HttpResponse, ApiError> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(20);
    if page == 0 || !(5..=50).contains(&per_page) {
        return Err(ApiError::schema(
            "page must be at least 1 and per_page from 5 to 50",
        ));
    }
    let total = items.len();
    let shown: Vec<T> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Ok(ok_page(shown, page, per_page, total))
}

/// The accounts the token names. A token for every account (`"*"`) lists none: leaseq
/// keeps no list of accounts.
fn accounts(token: &Token) -> Vec<AccountView> {
    token
        .claims
        .accounts
        .iter()
        .filter_map(|a| AccountId::parse(a))
        .map(|account| AccountView {
            id: account.to_string(),
            name: account.to_string(),
            kind: "standard",
        })
        .collect()
}

/// The accounts the token may act on.
#[utoipa::path(
    get,
    path = "/accounts",
    operation_id = "list_accounts",
    tag = "identity",
    security(("bearer" = []), ("x_auth_key" = []), ("x_api_key" = [])),
    params(PageQuery),
    responses((status = 200, description = "The token's accounts (none for an all-accounts token).", body = Page<AccountView, ResultInfo>)),
)]
pub async fn list_accounts(
    token: Token,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    page(accounts(&token), &query)
}

/// The token's memberships: one per account it may act on.
#[utoipa::path(
    get,
    path = "/memberships",
    operation_id = "list_memberships",
    tag = "identity",
    security(("bearer" = []), ("x_auth_key" = []), ("x_api_key" = [])),
    params(PageQuery),
    responses((status = 200, description = "One accepted membership per account.", body = Page<MembershipView, ResultInfo>)),
)]
pub async fn list_memberships(
    token: Token,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let scopes = token.claims.scopes();
    let permissions: Vec<String> = Scope::ALL
        .into_iter()
        .filter(|s| scopes.contains(*s))
        .map(|s| s.to_string())
        .collect();
    let memberships: Vec<MembershipView> = accounts(&token)
        .into_iter()
        .map(|account| MembershipView {
            id: account.id.clone(),
            status: "accepted",
            account,
            permissions: permissions.clone(),
        })
        .collect();
    page(memberships, &query)
}

/// Whether the token is valid (an invalid one is 401, code 10000).
#[utoipa::path(
    get,
    path = "/user/tokens/verify",
    operation_id = "verify_token",
    tag = "identity",
    security(("bearer" = []), ("x_auth_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The token is active.", body = Envelope<TokenStatus>)),
)]
pub async fn verify_token(token: Token) -> Result<HttpResponse, ApiError> {
    Ok(ok(TokenStatus {
        id: token.id.clone(),
        status: "active",
        expires_on: rfc3339_ms(token.claims.exp.saturating_mul(1000)),
        not_before: token
            .claims
            .nbf
            .map(|nbf| rfc3339_ms(nbf.saturating_mul(1000))),
    }))
}
