//! The seeds' own APIs (SPEC §10), each a thin mapping onto the broker's operations and
//! the Cloudflare routes' request checks: no rule is implemented twice. Each has its own
//! path prefix, auth header, error shape and status codes, as its seed documents them.

pub mod discue;
pub mod elasticqueue;
