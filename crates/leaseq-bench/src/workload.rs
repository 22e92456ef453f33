//! The workloads: throughput (producers and consumers), pull latency under a backlog,
//! and Redis memory per queued message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::target::Target;

/// Percentiles of one latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

fn micros_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A body of exactly `size` bytes that starts with its push time, so the consumer can
/// measure push→ack latency.
fn body(size: usize) -> String {
    let mut body = format!("{:016}", micros_since_epoch());
    body.push_str(&"x".repeat(size.saturating_sub(body.len())));
    body
}

fn pushed_at(body: &str) -> Option<u64> {
    body.get(..16)?.parse().ok()
}

#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub size: usize,
    pub batch: usize,
    pub producers: usize,
    pub consumers: usize,
    pub messages: u64,
    pub time_limit: Duration,
    /// Message groups the pushes spread over, round-robin (0: no groups).
    pub groups: u64,
}

/// The group of the `n`th message of a producer's stream (`None` without groups).
fn group(groups: u64, producer: usize, n: u64) -> Option<String> {
    (groups > 0).then(|| {
        format!(
            "g{}",
            (n.wrapping_mul(7).wrapping_add(producer as u64)) % groups
        )
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRun {
    pub target: &'static str,
    pub acked: u64,
    pub elapsed_secs: f64,
    pub msgs_per_sec: f64,
    pub requests: u64,
    pub push: Latency,
    pub pull: Latency,
    pub ack: Latency,
    pub push_to_ack: Latency,
    /// Filled in by the caller from `INFO commandstats`.
    pub redis_commands_per_message: f64,
    pub script_calls_per_request: f64,
    /// Redis time spent in scripts per acked message (push, pull and ack together), µs.
    pub redis_script_usec_per_message: f64,
}

struct Counters {
    pushed: AtomicU64,
    acked: AtomicU64,
    requests: AtomicU64,
    stop: AtomicBool,
}

/// Runs producers and consumers until `messages` are acked or the time limit passes.
pub async fn throughput(target: Arc<Target>, w: Workload) -> Result<ThroughputRun, String> {
    let counters = Arc::new(Counters {
        pushed: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let deadline = started + w.time_limit;

    let mut producers = Vec::new();
    for p in 0..w.producers {
        let share = w.messages / w.producers as u64
            + u64::from((p as u64) < w.messages % w.producers as u64);
        let (target, counters) = (target.clone(), counters.clone());
        producers.push(tokio::spawn(async move {
            let mut push = histogram();
            let mut sent = 0u64;
            while sent < share
                && Instant::now() < deadline
                && !counters.stop.load(Ordering::Relaxed)
            {
                let n = (share - sent).min(w.batch as u64) as usize;
                let messages = (0..n)
                    .map(|i| (body(w.size), group(w.groups, p, sent + i as u64)))
                    .collect();
                let t = Instant::now();
                target.push(messages).await?;
                push.saturating_record(t.elapsed().as_micros() as u64);
                counters.requests.fetch_add(1, Ordering::Relaxed);
                counters.pushed.fetch_add(n as u64, Ordering::Relaxed);
                sent += n as u64;
            }
            Ok::<_, String>(push)
        }));
    }

    let mut consumers = Vec::new();
    for _ in 0..w.consumers {
        let (target, counters) = (target.clone(), counters.clone());
        consumers.push(tokio::spawn(async move {
            let (mut pull, mut ack, mut e2e) = (histogram(), histogram(), histogram());
            while counters.acked.load(Ordering::Relaxed) < w.messages && Instant::now() < deadline {
                let t = Instant::now();
                let delivered = target.pull(w.batch as u32, 60_000).await?;
                pull.saturating_record(t.elapsed().as_micros() as u64);
                counters.requests.fetch_add(1, Ordering::Relaxed);
                if delivered.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let (handles, bodies): (Vec<String>, Vec<String>) =
                    delivered.into_iter().map(|d| (d.handle, d.body)).unzip();
                let t = Instant::now();
                let n = target.ack(handles, false).await?;
                ack.saturating_record(t.elapsed().as_micros() as u64);
                counters.requests.fetch_add(1, Ordering::Relaxed);
                let now = micros_since_epoch();
                for b in &bodies {
                    if let Some(at) = pushed_at(b) {
                        e2e.saturating_record(now.saturating_sub(at));
                    }
                }
                counters.acked.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok::<_, String>((pull, ack, e2e))
        }));
    }

    let progress = {
        let counters = counters.clone();
        let name = target.name();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let acked = counters.acked.load(Ordering::Relaxed);
                eprintln!(
                    "  [{name}] {:>5.1}s pushed {:>9} acked {:>9} ({:>8} msg/s)",
                    started.elapsed().as_secs_f64(),
                    counters.pushed.load(Ordering::Relaxed),
                    acked,
                    acked - last
                );
                last = acked;
            }
        })
    };

    let mut push = histogram();
    for p in producers {
        let h = p.await.map_err(|e| e.to_string())??;
        push.add(&h).map_err(|e| e.to_string())?;
    }
    let (mut pull, mut ack, mut e2e) = (histogram(), histogram(), histogram());
    let mut failure = None;
    for c in consumers {
        match c.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((p, a, e)) => {
                pull.add(&p).map_err(|e| e.to_string())?;
                ack.add(&a).map_err(|e| e.to_string())?;
                e2e.add(&e).map_err(|e| e.to_string())?;
            }
            Err(e) => failure = Some(e),
        }
    }
    counters.stop.store(true, Ordering::Relaxed);
    progress.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let acked = counters.acked.load(Ordering::Relaxed);
    Ok(ThroughputRun {
        target: target.name(),
        acked,
        elapsed_secs: elapsed,
        msgs_per_sec: acked as f64 / elapsed,
        requests: counters.requests.load(Ordering::Relaxed),
        push: Latency::of(&push),
        pull: Latency::of(&pull),
        ack: Latency::of(&ack),
        push_to_ack: Latency::of(&e2e),
        redis_commands_per_message: 0.0,
        script_calls_per_request: 0.0,
        redis_script_usec_per_message: 0.0,
    })
}

/// Records `samples` pull latencies into `histogram` with the queue holding a steady
/// backlog: each pulled batch is retried at once, so the backlog neither grows nor shrinks.
pub async fn pull_latency(
    target: &Target,
    batch: u32,
    samples: usize,
    histogram: &mut Histogram<u64>,
) -> Result<(), String> {
    for _ in 0..samples {
        let t = Instant::now();
        let delivered = target.pull(batch, 60_000).await?;
        histogram.saturating_record(t.elapsed().as_micros() as u64);
        if delivered.is_empty() {
            return Err("the backlog ran dry while measuring pull latency".into());
        }
        let handles = delivered.into_iter().map(|d| d.handle).collect();
        target.ack(handles, true).await?;
    }
    Ok(())
}

/// Fills the queue with `count` messages of `size` bytes, `concurrency` batches at a time.
pub async fn prefill(
    target: Arc<Target>,
    count: u64,
    size: usize,
    concurrency: usize,
) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (target, next) = (target.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(100, Ordering::Relaxed);
                if start >= count {
                    return Ok::<_, String>(());
                }
                let n = (count - start).min(100) as usize;
                target
                    .push((0..n).map(|_| (body(size), None)).collect())
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_carry_their_push_time() {
        let b = body(256);
        assert_eq!(b.len(), 256);
        let at = pushed_at(&b).expect("timestamp");
        assert!(at <= micros_since_epoch());
        assert_eq!(body(16).len(), 16);
    }
}
