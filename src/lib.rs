//! leaseq: a pull-based lease/ack message broker speaking the Cloudflare Queues API.
//!
//! Dependencies run one way: `api` → `broker` → `store`, all over `model`. The domain
//! (`broker`, `store`, `model`, with `metrics` and `reaper`) is the `leaseq-core` crate,
//! which does not depend on actix-web or utoipa; this crate is its HTTP edge (`api`,
//! `auth`) and the process around it (`config`, `startup`, `cli`, `telemetry`, `tls`).

#![warn(clippy::unwrap_used)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod forwarded;
/// The properties the cargo-fuzz targets check (feature `fuzz-checks`); its tests
/// replay the committed seeds on stable.
#[cfg(any(test, feature = "fuzz-checks"))]
#[doc(hidden)]
pub mod fuzz_checks;
pub mod startup;
pub mod telemetry;
pub mod tls;

pub use leaseq_core::{broker, metrics, model, reaper, store};
