//! How many pulls may wait for messages at once in this process (long polling), per queue
//! and per account. A waiting pull holds a connection and a task, and each wake-up costs a
//! script call: the caps keep one tenant from piling them up.

use std::collections::HashMap;
use std::sync::Mutex;

use super::BrokerError;
use crate::model::{AccountId, QueueId};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Queue(QueueId),
    Account(AccountId),
}

/// The long polls waiting in this process.
#[derive(Debug)]
pub struct LongPolls {
    per_queue: usize,
    per_account: usize,
    waiting: Mutex<HashMap<Key, usize>>,
}

/// One admitted long poll; leaves the count when dropped.
#[derive(Debug)]
pub struct Admitted<'a> {
    polls: &'a LongPolls,
    keys: [Key; 2],
}

impl LongPolls {
    /// Caps of 0 mean no limit.
    pub fn new(per_queue: usize, per_account: usize) -> Self {
        Self {
            per_queue,
            per_account,
            waiting: Mutex::default(),
        }
    }

    /// Admits one more long poll on `queue` of `account`, or refuses it when either
    /// already has as many as it may.
    pub fn admit(&self, account: &AccountId, queue: QueueId) -> Result<Admitted<'_>, BrokerError> {
        let keys = [Key::Queue(queue), Key::Account(account.clone())];
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (key, limit, per) in [
            (&keys[0], self.per_queue, "queue"),
            (&keys[1], self.per_account, "account"),
        ] {
            if limit > 0 && waiting.get(key).copied().unwrap_or(0) >= limit {
                return Err(BrokerError::TooManyLongPolls { limit, per });
            }
        }
        for key in &keys {
            *waiting.entry(key.clone()).or_default() += 1;
        }
        Ok(Admitted { polls: self, keys })
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut waiting = self.polls.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            if let Some(n) = waiting.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    waiting.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_are_capped_per_queue_and_per_account_and_leave_when_dropped() {
        let polls = LongPolls::new(2, 3);
        let account = AccountId::parse("acct").expect("valid");
        let (a, b) = (QueueId::generate(), QueueId::generate());
        let first = polls.admit(&account, a).expect("admitted");
        let _second = polls.admit(&account, a).expect("admitted");
        assert!(matches!(
            polls.admit(&account, a),
            Err(BrokerError::TooManyLongPolls {
                limit: 2,
                per: "queue"
            })
        ));
        let _third = polls.admit(&account, b).expect("another queue");
        assert!(matches!(
            polls.admit(&account, b),
            Err(BrokerError::TooManyLongPolls {
                limit: 3,
                per: "account"
            })
        ));
        let other = AccountId::parse("other").expect("valid");
        drop(polls.admit(&other, b).expect("another account"));
        drop(first);
        polls.admit(&account, b).expect("room again");
        assert!(polls.waiting.lock().expect("lock").len() <= 3);
    }

    #[test]
    fn no_cap_means_no_limit() {
        let polls = LongPolls::new(0, 0);
        let account = AccountId::parse("acct").expect("valid");
        let queue = QueueId::generate();
        let admitted: Vec<_> = (0..100)
            .map(|_| polls.admit(&account, queue).expect("admitted"))
            .collect();
        assert_eq!(admitted.len(), 100);
    }
}
