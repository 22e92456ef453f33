//! leaseq's domain: queues, messages and leases, kept in Redis.
//!
//! Dependencies run one way: `broker` → `store`, both over `model`. Nothing here knows
//! HTTP: this crate does not depend on actix-web or utoipa (the `openapi` feature only
//! derives schemas for the model types), so an HTTP type named here is a compile error.

#![warn(clippy::unwrap_used)]

pub mod broker;
pub mod metrics;
pub mod model;
pub mod reaper;
pub mod store;
