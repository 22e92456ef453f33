//! Every Redis key leaseq uses is built here.
//!
//! Keys of one queue share the hash tag `{<queue_id>}`, so each script touches one
//! Redis Cluster slot. Account-level keys use the tag `{a:<account_id>}`, which can
//! never equal a queue id (those are 32 hex characters).

use crate::model::{AccountId, QueueId};

/// The keys of one queue, in the order the message scripts take them.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// HASH: queue metadata, consumer settings, byte counter and lease sequence.
    pub meta: String,
    /// HASH: message id -> record.
    pub msg: String,
    /// LIST: ids ready for delivery, oldest first.
    pub ready: String,
    /// ZSET: id -> time (ms) it becomes visible.
    pub delayed: String,
    /// ZSET: id -> lease expiry (ms).
    pub leased: String,
    /// ZSET: each distinct push time (ms) of live messages, scored by itself.
    pub age: String,
    /// HASH: push time (ms) -> number of live messages pushed then.
    pub age_count: String,
    /// HASH: id -> record of messages on their way to the dead-letter queue.
    pub dead: String,
    /// HASH: push time (ms) -> the ids pushed then, concatenated (for retention).
    pub age_ids: String,
    /// ZSET: dedup id -> until when (ms) a repeat is ignored.
    pub dedup: String,
    /// HASH: id -> the queue a dead letter came from, for redrive.
    pub origin: String,
}

impl QueueKeys {
    /// All keys with their roles, in the order the message scripts take them.
    pub fn named(&self) -> [(&'static str, &str); 11] {
        [
            ("meta", &self.meta),
            ("msg", &self.msg),
            ("ready", &self.ready),
            ("delayed", &self.delayed),
            ("leased", &self.leased),
            ("age", &self.age),
            ("age_count", &self.age_count),
            ("dead", &self.dead),
            ("age_ids", &self.age_ids),
            ("dedup", &self.dedup),
            ("origin", &self.origin),
        ]
    }

    /// All keys, in the order the message scripts take them.
    pub fn all(&self) -> [&str; 11] {
        self.named().map(|(_, key)| key)
    }
}

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` must not contain `{` or `}` (checked by the config), or it would become
    /// the hash tag of every key.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn queue(&self, id: QueueId) -> QueueKeys {
        let base = format!("{}:{{{}}}:", self.prefix, id);
        QueueKeys {
            meta: format!("{base}meta"),
            msg: format!("{base}msg"),
            ready: format!("{base}ready"),
            delayed: format!("{base}delayed"),
            leased: format!("{base}leased"),
            age: format!("{base}age"),
            age_count: format!("{base}age_count"),
            dead: format!("{base}dead"),
            age_ids: format!("{base}age_ids"),
            dedup: format!("{base}dedup"),
            origin: format!("{base}origin"),
        }
    }

    /// ZSET: queue id -> when (ms) the retention sweep next needs to look at it.
    pub fn sweep_schedule(&self) -> String {
        format!("{}:sweep", self.prefix)
    }

    /// HASH: queue name -> queue id, for one account.
    pub fn account_queues(&self, account: &AccountId) -> String {
        format!("{}:{{a:{}}}:queues", self.prefix, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_tag(key: &str) -> &str {
        let start = key.find('{').expect("tag start") + 1;
        let end = start + key[start..].find('}').expect("tag end");
        &key[start..end]
    }

    #[test]
    fn every_key_of_a_queue_shares_its_hash_tag() {
        let id = QueueId::generate();
        let keys = Keys::new("lq").queue(id);
        for key in keys.all() {
            assert_eq!(hash_tag(key), id.to_string(), "{key}");
            assert!(key.starts_with("lq:{"), "{key}");
        }
    }

    #[test]
    fn account_keys_have_their_own_tag() {
        let account = AccountId::parse("acme").expect("valid");
        assert_eq!(
            Keys::new("lq").account_queues(&account),
            "lq:{a:acme}:queues"
        );
    }
}
