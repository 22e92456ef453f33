//! Who is calling, and may they act on this account.

mod jwt;
mod principal;

pub use jwt::{Claims, TokenError, TokenKeys};
pub use principal::Principal;
