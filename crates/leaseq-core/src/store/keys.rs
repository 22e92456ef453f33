//! Every Redis key leaseq uses is built here.
//!
//! Keys of one queue share the hash tag `{<queue_id>}`, so each script touches one
//! Redis Cluster slot. Account-level keys use the tag `{a:<account_id>}`, which can
//! never equal a queue id (those are 32 hex characters); schedule shards use `{s:<n>}`.

#[cfg(test)]
use crate::model::ListenerId;
use crate::model::{AccountId, QueueId};

/// What each key of a queue holds. The order of [`Role::ALL`] is the order every queue
/// script takes the keys in (`KEYS[1]`, `KEYS[2]`, …); the Lua prelude names them
/// ([`Role::lua_name`]) from this list (see `script.rs`), so it is written nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HASH: queue metadata, consumer settings, counters and the lease sequence.
    Meta,
    /// HASH: message id -> record.
    Msg,
    /// ZSET: every live message not leased -> when (ms) it became or becomes visible.
    Due,
    /// ZSET: every leased message -> when (ms) its lease expires.
    Leased,
    /// ZSET: each distinct timestamp of live messages, scored by itself.
    Age,
    /// HASH: timestamp -> the ids of the live messages carrying it, concatenated.
    AgeIds,
    /// HASH: id -> record of messages on their way to the dead-letter queue.
    Dead,
    /// ZSET: dedup id -> until when (ms) a repeat is ignored.
    Dedup,
    /// HASH: id -> the queue a dead letter came from, for redrive.
    Origin,
    /// HASH: listener id -> its record (JSON; see `listeners.rs`).
    Listeners,
    /// HASH: id of a message some listener lane holds -> how many lanes still hold it.
    Refs,
    /// HASH: id of a named message (discue's `name`) -> its name.
    Names,
    /// ZSET: grouped messages not yet visible (member: id, then group) -> when (ms) they
    /// become visible (see "Message groups" in `lua/lib.lua`).
    GroupDelayed,
    /// ZSET: visible grouped messages (member: id, then group) -> their round.
    Rounds,
    /// ZSET: group -> the last round it was given (dropped some time after pulls pass it).
    Groups,
    /// ZSET, all scores 0: `<group>\0<round, 16 digits>\0<id>` for every message parked
    /// while its group had no room under `group_max_inflight`.
    Parked,
    /// HASH: id -> round, of each parked message and each one leased under strict FIFO.
    RoundOf,
    /// HASH: group -> how many of its messages are parked.
    GroupParked,
    /// HASH: group -> how many of its messages are leased.
    GroupInflight,
    /// ZSET: group -> until when (ms) its head waits after a retry or an expired lease
    /// (strict FIFO: `group_max_inflight` 1).
    GroupHold,
    /// LIST (layout 1): ids ready for delivery; emptied into `Due` by the migration.
    LegacyReady,
    /// ZSET (layout 1): delayed ids; moved into `Due` by the migration.
    LegacyDelayed,
    /// HASH (layout 1): timestamp -> live messages carrying it; dropped by the migration.
    LegacyAgeCount,
}

impl Role {
    pub const ALL: [Role; 23] = [
        Role::Meta,
        Role::Msg,
        Role::Due,
        Role::Leased,
        Role::Age,
        Role::AgeIds,
        Role::Dead,
        Role::Dedup,
        Role::Origin,
        Role::Listeners,
        Role::Refs,
        Role::Names,
        Role::GroupDelayed,
        Role::Rounds,
        Role::Groups,
        Role::Parked,
        Role::RoundOf,
        Role::GroupParked,
        Role::GroupInflight,
        Role::GroupHold,
        Role::LegacyReady,
        Role::LegacyDelayed,
        Role::LegacyAgeCount,
    ];

    /// The key's last segment.
    pub fn name(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Msg => "msg",
            Role::Due => "due",
            Role::Leased => "leased",
            Role::Age => "age",
            Role::AgeIds => "age_ids",
            Role::Dead => "dead",
            Role::Dedup => "dedup",
            Role::Origin => "origin",
            Role::Listeners => "listeners",
            Role::Refs => "refs",
            Role::Names => "names",
            Role::GroupDelayed => "group_delayed",
            Role::Rounds => "rounds",
            Role::Groups => "groups",
            Role::Parked => "parked",
            Role::RoundOf => "round_of",
            Role::GroupParked => "group_parked",
            Role::GroupInflight => "group_inflight",
            Role::GroupHold => "group_hold",
            Role::LegacyReady => "ready",
            Role::LegacyDelayed => "delayed",
            Role::LegacyAgeCount => "age_count",
        }
    }

    /// Its name in Lua: `K_` and the variant in upper snake case.
    pub fn lua_name(self) -> String {
        let variant = format!("{self:?}");
        let mut name = String::from("K");
        for c in variant.chars() {
            if c.is_uppercase() {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        name
    }
}

/// The keys of a listener's lane, `{prefix}:{<queue id>}:l:<listener id>:<part>`, in
/// the queue's slot. Lua builds them with `lane_key(lid, LANE_<PART>)`, which the
/// prelude generates from this list (see `script.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanePart {
    /// ZSET: message id -> when (ms) it is next due; a claimed one, when its claim lapses.
    Due,
    /// HASH: message id -> delivery attempts so far.
    Attempts,
    /// LIST: the latest delivery attempts, newest first (JSON entries).
    Log,
    /// HASH: id -> record of messages on their way to the listener's dead-letter queue.
    Dead,
}

impl LanePart {
    pub const ALL: [LanePart; 4] = [
        LanePart::Due,
        LanePart::Attempts,
        LanePart::Log,
        LanePart::Dead,
    ];

    /// The key's last segment.
    pub fn name(self) -> &'static str {
        match self {
            LanePart::Due => "due",
            LanePart::Attempts => "att",
            LanePart::Log => "log",
            LanePart::Dead => "dead",
        }
    }

    /// Its name in Lua: `LANE_` and the variant in upper case.
    pub fn lua_name(self) -> String {
        format!("LANE_{}", format!("{self:?}").to_uppercase())
    }
}

/// The segment between a queue's tag and a listener id in lane keys.
pub const LANE_SEGMENT: &str = "l";

/// The keys of one queue, `{prefix}:{<queue id>}:<role>`, in [`Role::ALL`] order.
#[derive(Debug, Clone)]
pub struct QueueKeys([String; Role::ALL.len()]);

impl QueueKeys {
    /// All keys, in the order the queue scripts take them.
    pub fn all(&self) -> &[String] {
        &self.0
    }
}

impl std::ops::Index<Role> for QueueKeys {
    type Output = str;

    fn index(&self, role: Role) -> &str {
        &self.0[role as usize]
    }
}

/// Shards of each schedule (retention, deliveries) on a Redis Cluster. A queue's entries
/// live in the shard its id picks, each shard under a hash tag of its own, so the
/// schedules of many queues spread over the primaries instead of making one hot key.
/// One node has a single shard, under the unsharded names.
pub const CLUSTER_SCHEDULE_SHARDS: u8 = 16;

/// The two schedules, which exist once per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `queue id` -> when (ms) the retention sweep next needs to look at the queue.
    Sweep,
    /// `<account>/<queue id>/<listener id>` -> when (ms) the listener's lane next needs
    /// a delivery worker.
    Deliveries,
}

impl Schedule {
    pub const ALL: [Schedule; 2] = [Schedule::Sweep, Schedule::Deliveries];

    fn name(self) -> &'static str {
        match self {
            Schedule::Sweep => "sweep",
            Schedule::Deliveries => "deliveries",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    schedule_shards: u8,
}

impl Keys {
    /// `prefix` must not contain `{` or `}` (checked by the config), or it would become
    /// the hash tag of every key. One schedule shard: see [`Keys::sharded_schedules`].
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            schedule_shards: 1,
        }
    }

    /// These keys with each schedule split into `shards` (a Cluster's layout).
    pub fn sharded_schedules(self, shards: u8) -> Self {
        Self {
            schedule_shards: shards.max(1),
            ..self
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn queue(&self, id: QueueId) -> QueueKeys {
        QueueKeys(Role::ALL.map(|role| self.queue_key(id, role)))
    }

    /// One key of a queue, for a caller that needs only a few of them.
    pub fn queue_key(&self, id: QueueId, role: Role) -> String {
        format!("{}:{{{id}}}:{}", self.prefix, role.name())
    }

    /// One key of a listener's lane, as Lua's `lane_key` builds it (scripts alone use
    /// lane keys; this spells one out for the tests).
    #[cfg(test)]
    pub fn lane(&self, queue: QueueId, listener: ListenerId, part: LanePart) -> String {
        format!(
            "{}:{{{queue}}}:{LANE_SEGMENT}:{listener}:{}",
            self.prefix,
            part.name()
        )
    }

    /// The shards of each schedule.
    pub fn schedule_shards(&self) -> std::ops::Range<u8> {
        0..self.schedule_shards
    }

    /// The schedule shard that holds a queue's entries (its lanes' too).
    pub fn schedule_shard(&self, queue: QueueId) -> u8 {
        // The last byte of a UUIDv7 is random.
        queue.as_bytes()[15] % self.schedule_shards
    }

    /// ZSET: one shard of a schedule (see [`Schedule`]).
    pub fn schedule(&self, schedule: Schedule, shard: u8) -> String {
        if self.schedule_shards == 1 {
            self.unsharded_schedule(schedule)
        } else {
            format!("{}:{{s:{shard}}}:{}", self.prefix, schedule.name())
        }
    }

    /// The schedule of a queue: the shard its id picks.
    pub fn queue_schedule(&self, schedule: Schedule, queue: QueueId) -> String {
        self.schedule(schedule, self.schedule_shard(queue))
    }

    /// ZSET: a schedule as one node keeps it, whole; a Cluster moves what it finds
    /// there into its shards (`migrate.rs`).
    pub fn unsharded_schedule(&self, schedule: Schedule) -> String {
        format!("{}:{}", self.prefix, schedule.name())
    }

    /// STRING: the key layout every queue has been moved onto (see `migrate.rs`).
    pub fn layout(&self) -> String {
        format!("{}:layout", self.prefix)
    }

    /// STRING: the shared rate limit state of an account (`rate_limits`).
    pub fn account_rate(&self, account: &AccountId) -> String {
        format!("{}:{{a:{}}}:rate", self.prefix, account)
    }

    /// STRING: the shared rate limit state of a queue (`rate_limits`).
    pub fn queue_rate(&self, queue: QueueId) -> String {
        format!("{}:{{{queue}}}:rate", self.prefix)
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
    fn one_node_keeps_each_schedule_whole_under_its_unsharded_name() {
        let keys = Keys::new("lq");
        let queue = QueueId::generate();
        assert_eq!(keys.schedule_shards(), 0..1);
        assert_eq!(keys.queue_schedule(Schedule::Sweep, queue), "lq:sweep");
        assert_eq!(
            keys.queue_schedule(Schedule::Deliveries, queue),
            keys.unsharded_schedule(Schedule::Deliveries)
        );
    }

    #[test]
    fn a_cluster_spreads_each_schedule_over_shards_with_tags_of_their_own() {
        let keys = Keys::new("lq").sharded_schedules(CLUSTER_SCHEDULE_SHARDS);
        let mut used = std::collections::HashSet::new();
        for _ in 0..2_000 {
            let queue = QueueId::generate();
            let shard = keys.schedule_shard(queue);
            assert!(keys.schedule_shards().contains(&shard));
            let key = keys.queue_schedule(Schedule::Sweep, queue);
            assert_eq!(hash_tag(&key), format!("s:{shard}"));
            used.insert(shard);
        }
        assert_eq!(
            used.len(),
            usize::from(CLUSTER_SCHEDULE_SHARDS),
            "every shard used"
        );
        assert_eq!(
            keys.schedule(Schedule::Deliveries, 3),
            "lq:{s:3}:deliveries"
        );
        assert_eq!(keys.unsharded_schedule(Schedule::Sweep), "lq:sweep");
    }

    #[test]
    fn lane_keys_extend_the_queue_keys_and_keep_their_hash_tag() {
        let keys = Keys::new("lq");
        let queue = QueueId::generate();
        let listener = ListenerId::generate();
        let meta = &keys.queue(queue)[Role::Meta];
        let base = meta
            .strip_suffix(Role::Meta.name())
            .expect("meta ends the key");
        for part in LanePart::ALL {
            let lane = keys.lane(queue, listener, part);
            assert_eq!(
                lane,
                format!("{base}{LANE_SEGMENT}:{listener}:{}", part.name())
            );
            assert_eq!(hash_tag(&lane), hash_tag(meta));
        }
    }

    #[test]
    fn every_key_of_a_queue_shares_its_hash_tag() {
        let id = QueueId::generate();
        let keys = Keys::new("lq").queue(id);
        for key in keys.all() {
            assert_eq!(hash_tag(key), id.to_string(), "{key}");
            assert!(key.starts_with("lq:{"), "{key}");
        }
        assert_eq!(keys[Role::AgeIds], format!("lq:{{{id}}}:age_ids"));
        assert_eq!(Role::LegacyAgeCount.lua_name(), "K_LEGACY_AGE_COUNT");
        assert_eq!(Role::Meta.lua_name(), "K_META");
    }

    #[test]
    fn roles_are_listed_in_their_declaration_order() {
        for (i, role) in Role::ALL.iter().enumerate() {
            assert_eq!(*role as usize, i, "{role:?}");
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
