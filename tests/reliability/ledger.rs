//! What the clients saw: which pushes were confirmed, every delivery, every confirmed
//! ack, and the requests' outcomes. The verdict is computed from this alone.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
struct Delivery {
    message_id: String,
    attempts: u64,
    /// When the pull that returned it was sent.
    pull_sent: Instant,
}

#[derive(Debug, Default)]
struct NumberLog {
    deliveries: Vec<Delivery>,
    /// When the first ack of it was confirmed (the ack reply arrived without a warning
    /// for its lease).
    acked: Option<Instant>,
    /// Ack requests for one of its leases that failed (connection cut, 503).
    ack_failures: u32,
    /// Deliveries its consumer dropped without acking.
    abandoned: u32,
}

/// Everything the clients learned, per message number.
pub struct Ledger {
    confirmed: Vec<AtomicBool>,
    numbers: Mutex<Vec<NumberLog>>,
    /// Deliveries whose body was not one this run pushed, or not intact.
    pub corrupt: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
    pub connection_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub push_requests: AtomicU64,
    pub pull_requests: AtomicU64,
    pub ack_requests: AtomicU64,
}

impl Ledger {
    pub fn new(messages: u64) -> Self {
        Self {
            confirmed: (0..messages).map(|_| AtomicBool::new(false)).collect(),
            numbers: Mutex::new((0..messages).map(|_| NumberLog::default()).collect()),
            corrupt: AtomicU64::new(0),
            statuses: Mutex::new(BTreeMap::new()),
            connection_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            push_requests: AtomicU64::new(0),
            pull_requests: AtomicU64::new(0),
            ack_requests: AtomicU64::new(0),
        }
    }

    fn numbers(&self) -> std::sync::MutexGuard<'_, Vec<NumberLog>> {
        self.numbers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self, status: u16) {
        *self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn confirm_push(&self, numbers: &[u64]) {
        for &n in numbers {
            self.confirmed[n as usize].store(true, Ordering::Relaxed);
        }
    }

    /// `(number, message id, attempts)` for each message of one pull reply.
    pub fn delivered(&self, pull_sent: Instant, messages: &[(u64, String, u64)]) {
        let mut numbers = self.numbers();
        for (n, message_id, attempts) in messages {
            numbers[*n as usize].deliveries.push(Delivery {
                message_id: message_id.clone(),
                attempts: *attempts,
                pull_sent,
            });
        }
    }

    pub fn acked(&self, numbers: &[u64], at: Instant) {
        let mut log = self.numbers();
        for &n in numbers {
            log[n as usize].acked.get_or_insert(at);
        }
    }

    pub fn ack_failed(&self, numbers: &[u64]) {
        let mut log = self.numbers();
        for &n in numbers {
            log[n as usize].ack_failures += 1;
        }
    }

    pub fn abandoned(&self, numbers: &[u64]) {
        let mut log = self.numbers();
        for &n in numbers {
            log[n as usize].abandoned += 1;
        }
    }

    pub fn delivered_count(&self) -> u64 {
        self.numbers()
            .iter()
            .filter(|l| !l.deliveries.is_empty())
            .count() as u64
    }

    pub fn verdict(&self) -> Verdict {
        let numbers = self.numbers();
        let mut v = Verdict {
            statuses: self
                .statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            connection_errors: self.connection_errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            push_requests: self.push_requests.load(Ordering::Relaxed),
            pull_requests: self.pull_requests.load(Ordering::Relaxed),
            ack_requests: self.ack_requests.load(Ordering::Relaxed),
            ..Verdict::default()
        };
        for (n, log) in numbers.iter().enumerate() {
            let confirmed = self.confirmed[n].load(Ordering::Relaxed);
            v.pushed_confirmed += u64::from(confirmed);
            if log.deliveries.is_empty() {
                v.lost += u64::from(confirmed);
                continue;
            }
            v.delivered += 1;
            v.deliveries += log.deliveries.len() as u64;
            v.abandoned_deliveries += u64::from(log.abandoned);
            if log.deliveries.len() <= log.abandoned as usize {
                v.abandoned_never_redelivered += 1;
            }
            v.acks_confirmed += u64::from(log.acked.is_some());
            let first_id = &log.deliveries[0].message_id;
            if log.deliveries.iter().any(|d| &d.message_id != first_id) {
                v.stored_twice += 1;
            }
            let mut attempts: Vec<u64> = log.deliveries.iter().map(|d| d.attempts).collect();
            attempts.sort_unstable();
            if attempts.windows(2).any(|w| w[0] == w[1]) {
                // Two clients held the same delivery: a lease was handed out twice.
                v.same_delivery_twice += 1;
            }
            let extra = log.deliveries.len() as u64 - 1;
            if extra == 0 {
                continue;
            }
            v.duplicated_messages += 1;
            v.duplicate_deliveries += extra;
            // A pull that began after an ack of this message was confirmed cannot return
            // it: the message was already gone from Redis.
            if let Some(acked) = log.acked {
                v.unjustified_duplicates += log
                    .deliveries
                    .iter()
                    .filter(|d| d.pull_sent > acked)
                    .count() as u64;
            }
            // Why the earlier deliveries were not acked: their consumer dropped them, or
            // an ack was lost, or the lease expired otherwise (its pull reply was lost,
            // or the ack came after the visibility timeout).
            let abandoned = u64::from(log.abandoned).min(extra);
            let lost_acks = u64::from(log.ack_failures).min(extra - abandoned);
            v.duplicates_after_abandoned_lease += abandoned;
            v.duplicates_after_lost_ack += lost_acks;
            v.duplicates_after_expired_lease += extra - abandoned - lost_acks;
        }
        v
    }
}

/// The figures of one run and the properties they must have.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    pub pushed_confirmed: u64,
    /// Distinct messages delivered at least once.
    pub delivered: u64,
    pub deliveries: u64,
    pub acks_confirmed: u64,
    /// Confirmed pushes never delivered.
    pub lost: u64,
    pub duplicated_messages: u64,
    pub duplicate_deliveries: u64,
    /// Redeliveries after a consumer dropped its lease unacked (it expired).
    pub duplicates_after_abandoned_lease: u64,
    /// Redeliveries after an ack request failed (the broker was killed or Redis down).
    pub duplicates_after_lost_ack: u64,
    /// Other redeliveries after a lease expired: its pull reply was lost, or the ack
    /// came after the visibility timeout.
    pub duplicates_after_expired_lease: u64,
    /// Deliveries dropped unacked by their consumer, on purpose.
    pub abandoned_deliveries: u64,
    /// Messages whose every delivery was dropped: their lease never expired into a
    /// redelivery.
    pub abandoned_never_redelivered: u64,
    /// Deliveries that began after the message's ack was confirmed.
    pub unjustified_duplicates: u64,
    /// Numbers delivered under two message ids: a retried push stored twice.
    pub stored_twice: u64,
    pub same_delivery_twice: u64,
    pub corrupt: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub connection_errors: u64,
    pub timeouts: u64,
    pub push_requests: u64,
    pub pull_requests: u64,
    pub ack_requests: u64,
}

impl Verdict {
    pub fn server_errors(&self, allowed: &[u16]) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 500 && !allowed.contains(s))
            .map(|(_, n)| n)
            .sum()
    }
}
