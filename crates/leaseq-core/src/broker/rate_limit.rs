//! `[rate_limits]`: request rates per account and per queue.
//!
//! By default (`shared = true`) they hold across every broker process: the state lives
//! in Redis ([`super::Broker::admit`], GCRA). With `shared = false`, the API limits each
//! process alone (its own token buckets).

use serde::Deserialize;

/// `[rate_limits]` settings; a rate of 0 turns that limit off (the default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per second per account.
    pub account_per_sec: f64,
    /// Requests an account may make at once above its rate (0: one second's worth).
    pub account_burst: f64,
    /// Requests per second per queue.
    pub queue_per_sec: f64,
    /// Requests a queue may take at once above its rate (0: one second's worth).
    pub queue_burst: f64,
    /// Most buckets kept per limiter (per-process limits only).
    pub max_tracked: usize,
    /// Enforced in Redis across every broker process (true), or by each process alone.
    pub shared: bool,
}

impl RateLimitSettings {
    /// Whether any limit is on.
    pub fn any(&self) -> bool {
        self.account_per_sec > 0.0 || self.queue_per_sec > 0.0
    }
}

/// The burst a limit allows: as configured, else one second's worth (at least 1).
pub fn burst(per_sec: f64, burst: f64) -> f64 {
    if burst > 0.0 { burst } else { per_sec.max(1.0) }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            account_per_sec: 0.0,
            account_burst: 0.0,
            queue_per_sec: 0.0,
            queue_burst: 0.0,
            max_tracked: 100_000,
            shared: true,
        }
    }
}
