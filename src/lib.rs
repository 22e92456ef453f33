//! leaseq: a pull-based lease/ack message broker speaking the Cloudflare Queues API.
//!
//! Dependencies run one way: `api` → `broker` → `store`, all over `model`.

#![warn(clippy::unwrap_used)]

pub mod api;
pub mod auth;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod config;
pub mod forwarded;
/// The properties the cargo-fuzz targets check (feature `fuzz-checks`); its tests
/// replay the committed seeds on stable.
#[cfg(any(test, feature = "fuzz-checks"))]
#[doc(hidden)]
pub mod fuzz_checks;
pub mod metrics;
pub mod model;
pub mod reaper;
pub mod startup;
pub mod store;
pub mod telemetry;
