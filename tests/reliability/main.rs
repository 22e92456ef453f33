//! Reliability runs: the real broker binary, several processes on one Redis, under load,
//! while brokers are SIGKILLed and restarted, or while Redis itself is killed and restarted.
//!
//! Every run pushes numbered messages (retrying failed pushes with a `dedup_id`, so a
//! retry never stores a second copy), pulls and acks them until the queue is empty, and
//! then checks the ledger: every push that got a 2xx was delivered; nothing is left in
//! the queue or its dead-letter queue; a message was delivered again only when its
//! earlier lease was not acked before the later pull began (the lease expired or the
//! ack was lost); and no request got a 5xx other than a Redis-down 503, or hung.
//!
//! Sizes come from the environment, so CI runs a short form and `make reliability` the
//! full one (see docs/reliability.md):
//! `LEASEQ_RELIABILITY_MESSAGES` (default 20 000), `LEASEQ_RELIABILITY_KILL_EVERY_MS`
//! (default 1 000, so even a fast short run sees several kills; `make reliability`
//! uses 2 000), `LEASEQ_RELIABILITY_REPORT` (a file to append each run's figures to,
//! as JSON lines).

mod broker_kills;
mod cluster_failover;
mod harness;
mod ledger;
mod listener_kills;
mod processes;
mod redis_restarts;
