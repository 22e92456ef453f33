//! Who is calling, and what they may do: tokens and scopes, without HTTP (the extractor
//! that reads them from a request is `api::principal`).

pub mod jwks;
mod jwt;
mod scope;

pub use jwks::Jwks;
pub use jwt::{Claims, TokenError, TokenKeys, TokenPolicy, TokenRequest};
pub use scope::{
    MessagesPull, MessagesPush, QueuesRead, QueuesWrite, RequiredScope, Scope, Scopes, all_scopes,
};
