//! Per-process rate limits (`rate_limits.shared = false`): token buckets that limit each
//! process alone, so N processes behind a balancer admit up to N times the configured
//! rate. Memory stays bounded: at most `max_tracked` buckets per limiter, and buckets
//! that have refilled (they hold no information) are dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::broker::rate_limit::{self, RateLimitSettings};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One token-bucket limiter over many keys.
#[derive(Debug)]
pub struct Limiter {
    per_sec: f64,
    burst: f64,
    max_tracked: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<String, Bucket>,
    last_prune: Option<Instant>,
}

impl Limiter {
    /// `None` when `per_sec` is 0 (the limit is off).
    pub fn new(per_sec: f64, burst: f64, max_tracked: usize) -> Option<Self> {
        (per_sec > 0.0).then(|| Self {
            per_sec,
            burst: rate_limit::burst(per_sec, burst),
            max_tracked: max_tracked.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                last_prune: None,
            }),
        })
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another request panicked mid-update; the counts
        // are still usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.buckets.contains_key(key) && state.buckets.len() >= self.max_tracked {
            self.prune(&mut state, now);
            if state.buckets.len() >= self.max_tracked {
                // Every tracked key is active: admit rather than grow without bound.
                return Ok(());
            }
        }
        let bucket = state.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        }
    }

    /// Drops buckets that have refilled; at most once a second, so a full map of active
    /// keys does not cost a scan per request.
    fn prune(&self, state: &mut State, now: Instant) {
        if state
            .last_prune
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        state.last_prune = Some(now);
        let (per_sec, burst) = (self.per_sec, self.burst);
        state.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_sec < burst
        });
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().map(|s| s.buckets.len()).unwrap_or(0)
    }
}

/// The account and queue limiters of one process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    account: Option<Limiter>,
    queue: Option<Limiter>,
}

impl RateLimiter {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            account: Limiter::new(
                settings.account_per_sec,
                settings.account_burst,
                settings.max_tracked,
            ),
            queue: Limiter::new(
                settings.queue_per_sec,
                settings.queue_burst,
                settings.max_tracked,
            ),
        }
    }

    /// Checks the account's limit, then the queue's when the request names one. `Err`
    /// carries the whole seconds to wait (at least 1), for `Retry-After`.
    pub fn check(&self, account: &str, queue: Option<&str>) -> Result<(), u64> {
        let now = Instant::now();
        let wait = |d: Duration| d.as_secs_f64().ceil().max(1.0) as u64;
        if let Some(limiter) = &self.account {
            limiter.check(account, now).map_err(wait)?;
        }
        if let (Some(limiter), Some(queue)) = (&self.queue, queue) {
            limiter
                .check(&format!("{account}/{queue}"), now)
                .map_err(wait)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_its_burst_then_refills_at_its_rate() {
        let limiter = Limiter::new(2.0, 3.0, 10).expect("on");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).expect_err("burst used up");
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        assert!(limiter.check("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.check("b", t0).is_ok(), "keys are independent");
    }

    #[test]
    fn a_rate_of_zero_is_off() {
        assert!(Limiter::new(0.0, 5.0, 10).is_none());
        let off = RateLimiter::new(&RateLimitSettings::default());
        assert!((0..1000).all(|_| off.check("a", Some("q")).is_ok()));
    }

    #[test]
    fn memory_stays_bounded_with_many_keys() {
        let limiter = Limiter::new(1.0, 1.0, 100).expect("on");
        let t0 = Instant::now();
        for i in 0..10_000 {
            let _ = limiter.check(&format!("queue-{i}"), t0 + Duration::from_millis(i));
        }
        assert!(limiter.tracked() <= 100);
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        let limiter = RateLimiter::new(&RateLimitSettings {
            queue_per_sec: 0.5,
            queue_burst: 1.0,
            ..RateLimitSettings::default()
        });
        assert!(limiter.check("a", Some("q")).is_ok());
        assert_eq!(limiter.check("a", Some("q")), Err(2));
        assert!(limiter.check("a", Some("other")).is_ok());
        assert!(limiter.check("a", None).is_ok(), "no queue, no queue limit");
    }
}
