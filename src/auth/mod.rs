//! Who is calling, and what they may do.

mod jwt;
mod principal;
mod scope;

pub use jwt::{Claims, TokenError, TokenKeys, TokenPolicy, TokenRequest};
pub use principal::Principal;
pub use scope::{
    MessagesPull, MessagesPush, QueuesRead, QueuesWrite, RequiredScope, Scope, Scopes, all_scopes,
};
