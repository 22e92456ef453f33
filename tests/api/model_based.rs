//! A model-based test of the storage core (issue 11): random sequences of push, pull,
//! ack, retry, lease expiry (a manual clock), delete, purge, dead-lettering and redrive
//! against an in-memory model of the rules. After every step the broker must agree with
//! the model: what a pull returns (exactly the oldest visible messages, each once and
//! never one leased elsewhere), attempts, ack and retry counts, and exact backlog
//! metrics. At the end every message pushed is accounted for.
//!
//! A second run adds message groups (SPEC §13): messages of three groups and ungrouped
//! ones, under a `group_max_inflight` of 0, 1 or 2. A pull's exact choice then depends
//! on how the rounds fall, so it is checked by what must hold whatever they are: each
//! lane gives a prefix of its visible messages in lane order (see `Place`; a retried
//! or expired message of a strict FIFO group keeps its place and holds the group), no group
//! passes its cap, the batch is as full as the lanes allow, and no lane gives three
//! more than another that still had messages to give (a lane joins at the round after
//! the one in progress; a message deleted while it waited leaves its round unused).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use leaseq::model::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with_clock};

/// Seeds run by `make test`; each runs `STEPS` random operations.
const SEEDS: u64 = 12;
const STEPS: usize = 120;
/// The work queue consumer's max_retries: a message is delivered at most this + 1 times.
const MAX_RETRIES: u32 = 1;
/// The dead-letter queue has no consumer: the default applies, and no dead-letter queue.
const DEFAULT_MAX_RETRIES: u32 = 3;
/// The groups of the grouped run; `None` pushes ungrouped messages beside them.
const GROUPS: [Option<&str>; 4] = [None, Some("a"), Some("b"), Some("c")];

/// xorshift64*: a few lines, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Not leased: visible from this time (ms) on.
    Due(u64),
    /// Leased under this lease id until this time (ms).
    Leased { lease: String, until: u64 },
}

#[derive(Debug, Clone)]
struct Message {
    body: String,
    /// Deliveries in this life.
    attempts: u32,
    state: State,
    /// Counts the message's entries into a queue: leases of an earlier life ack nothing.
    life: u32,
    group: Option<String>,
    /// Its place in its lane; a strict FIFO group keeps it through a retry or an
    /// expired lease.
    place: Place,
}

/// A message's place in its lane's order. Ungrouped messages, and grouped ones that
/// wait for a delay, stand by when they become due, then id: `(at, 0, 0, 0, id)`. A
/// grouped message due at once takes its group's next round there and then, after
/// those whose delay ended by then: `(now, 1, call, at, id)`, `call` counting the
/// broker calls; within one call by due time, then id.
type Place = (u64, u8, u64, u64, String);

fn place(group: &Option<String>, id: &str, at: u64, now: u64, call: u64) -> Place {
    if group.is_none() || at > now {
        (at, 0, 0, 0, id.to_owned())
    } else {
        (now, 1, call, at, id.to_owned())
    }
}

/// A lease the test holds: for which message, queue and life it was issued.
#[derive(Debug, Clone)]
struct Held {
    lease: String,
    id: String,
    queue: usize,
    life: u32,
}

#[derive(Default)]
struct Model {
    /// Per queue (0: the work queue, 1: its dead-letter queue): id -> message.
    queues: [BTreeMap<String, Message>; 2],
    pushed: usize,
    /// Messages that left for good: acked, deleted, purged or dropped.
    gone: usize,
    /// The work queue's group_max_inflight (the dead-letter queue has none).
    cap: u32,
    /// Strict FIFO: group -> until when (ms) it waits for its retried head.
    holds: HashMap<String, u64>,
    /// Broker calls so far (see `Place`).
    calls: u64,
    /// Group -> its messages deleted (or acked by an expired lease) while they waited:
    /// each was given a round, which its later messages then wait for.
    deleted: [HashMap<String, usize>; 2],
}

impl Model {
    fn max_retries(queue: usize) -> u32 {
        if queue == 0 {
            MAX_RETRIES
        } else {
            DEFAULT_MAX_RETRIES
        }
    }

    /// What a pull or peek does first: expired leases come back, or, after their last
    /// allowed delivery, leave the queue (see `bury`).
    fn reclaim(&mut self, queue: usize, now: u64) {
        self.calls += 1;
        let call = self.calls;
        let expired: Vec<String> = self.queues[queue]
            .iter()
            .filter(|(_, m)| matches!(m.state, State::Leased { until, .. } if until <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(message) = self.queues[queue].get_mut(&id) else {
                continue;
            };
            let State::Leased { until, .. } = message.state else {
                continue;
            };
            if message.attempts > Self::max_retries(queue) {
                self.bury(queue, &id, now);
            } else if queue == 0 && self.cap == 1 && message.group.is_some() {
                // It keeps its place; the lease expired, so no hold.
                message.state = State::Due(now);
            } else {
                message.place = place(&message.group, &id, until, now, call);
                message.state = State::Due(until);
            }
        }
    }

    /// Whether a due message at `at` is visible now, its group's hold included.
    fn is_visible(&self, queue: usize, message: &Message, at: u64, now: u64) -> bool {
        let held = queue == 0
            && message
                .group
                .as_ref()
                .and_then(|g| self.holds.get(g))
                .is_some_and(|&until| until > now);
        at <= now && !held
    }

    /// The visible messages of each lane (group, or `None` for the ungrouped ones), in
    /// lane order (see `Place`).
    fn lanes(&self, queue: usize, now: u64) -> BTreeMap<Option<String>, Vec<String>> {
        let mut lanes: BTreeMap<Option<String>, Vec<(Place, String)>> = BTreeMap::new();
        for (id, m) in &self.queues[queue] {
            if let State::Due(at) = m.state
                && self.is_visible(queue, m, at, now)
            {
                lanes
                    .entry(m.group.clone())
                    .or_default()
                    .push((m.place.clone(), id.clone()));
            }
        }
        lanes
            .into_iter()
            .map(|(lane, mut due)| {
                due.sort();
                (lane, due.into_iter().map(|(_, id)| id).collect())
            })
            .collect()
    }

    /// A group's deleted messages stop counting against its fairness once it has no
    /// message waiting (see `deleted`).
    fn forget_deletions(&mut self) {
        for (queue, deleted) in self.queues.iter().zip(&mut self.deleted) {
            deleted.retain(|group, _| {
                queue
                    .values()
                    .any(|m| m.group.as_deref() == Some(group) && matches!(m.state, State::Due(_)))
            });
        }
    }

    /// Leased messages of `group` in `queue`.
    fn leased(&self, queue: usize, group: &str) -> u32 {
        self.queues[queue]
            .values()
            .filter(|m| {
                m.group.as_deref() == Some(group) && matches!(m.state, State::Leased { .. })
            })
            .count() as u32
    }

    /// A message whose last delivery failed: from the work queue into the dead-letter
    /// queue, a new life; from the dead-letter queue, which has none, dropped.
    fn bury(&mut self, queue: usize, id: &str, now: u64) {
        if queue == 1 {
            if self.queues[1].remove(id).is_some() {
                self.gone += 1;
            }
            return;
        }
        if let Some(mut message) = self.queues[0].remove(id) {
            message.attempts = 0;
            message.place = place(&message.group, id, now, now, self.calls);
            message.state = State::Due(now);
            message.life += 1;
            self.queues[1].insert(id.to_owned(), message);
        }
    }

    /// The visible messages of a queue, in the order a pull takes them.
    fn visible(&self, queue: usize, now: u64) -> Vec<String> {
        let mut due: Vec<(u64, &String)> = self.queues[queue]
            .iter()
            .filter_map(|(id, m)| match m.state {
                State::Due(at) if at <= now => Some((at, id)),
                _ => None,
            })
            .collect();
        due.sort();
        due.into_iter().map(|(_, id)| id.clone()).collect()
    }
}

struct Run {
    /// Whether pushes carry groups (then pulls are checked by their properties).
    grouped: bool,
    app: TestApp,
    clock: ManualClock,
    queues: [String; 2],
    model: Model,
    held: Vec<Held>,
    rng: Rng,
    seq: usize,
}

impl Run {
    fn now(&self) -> u64 {
        use leaseq::model::Clock;
        self.clock.now_ms()
    }

    async fn post(&self, queue: usize, path: &str, body: Value) -> Value {
        let reply = self
            .app
            .post(&format!("/queues/{}{path}", self.queues[queue]), body)
            .await;
        reply.assert_ok().clone()
    }

    async fn push(&mut self) {
        let n = 1 + self.rng.below(4) as usize;
        let now = self.now();
        let mut messages = Vec::new();
        let mut delays = Vec::new();
        for _ in 0..n {
            self.seq += 1;
            let delay = if self.rng.below(4) == 0 { 1 } else { 0 };
            let group = if self.grouped {
                GROUPS[self.rng.below(GROUPS.len() as u64) as usize]
            } else {
                None
            };
            let mut message = json!({"body": format!("m{}", self.seq), "delay_seconds": delay});
            if let Some(group) = group {
                message["group_id"] = json!(group);
            }
            messages.push(message);
            delays.push((format!("m{}", self.seq), delay, group));
        }
        self.post(0, "/messages/batch", json!({"messages": messages}))
            .await;
        self.model.calls += 1;
        // The ids are the broker's: learn them from a listing of the queue.
        let listed = self
            .app
            .get(&format!(
                "/queues/{}/messages?per_page=1000",
                self.queues[0]
            ))
            .await;
        let known: Vec<String> = self.model.queues[0].keys().cloned().collect();
        for m in listed.assert_ok().as_array().expect("page") {
            let id = m["id"].as_str().expect("id").to_owned();
            if known.contains(&id) {
                continue;
            }
            let body = m["body"].as_str().expect("body").to_owned();
            let (delay, group) = delays
                .iter()
                .find(|(b, _, _)| *b == body)
                .map(|(_, d, g)| (*d, g.map(str::to_owned)))
                .expect("a message just pushed");
            assert_eq!(m["group_id"].as_str(), group.as_deref(), "{m}");
            let at = now + delay * 1000;
            let place = place(&group, &id, at, now, self.model.calls);
            self.model.queues[0].insert(
                id,
                Message {
                    body,
                    attempts: 0,
                    state: State::Due(at),
                    life: 0,
                    group,
                    place,
                },
            );
        }
        self.model.pushed += n;
    }

    async fn pull(&mut self, queue: usize) {
        let now = self.now();
        self.model.reclaim(queue, now);
        let batch = 1 + self.rng.below(5) as usize;
        let timeout = 100 + self.rng.below(1500);
        let expected: Vec<String> = self
            .model
            .visible(queue, now)
            .into_iter()
            .take(batch)
            .collect();
        let result = self
            .post(
                queue,
                "/messages/pull",
                json!({"batch_size": batch, "visibility_timeout_ms": timeout}),
            )
            .await;
        let got = result["messages"].as_array().expect("messages");
        let ids: Vec<String> = got
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect();
        if self.grouped {
            self.check_round_robin(queue, batch, &ids, now);
        } else {
            assert_eq!(ids, expected, "pull of queue {queue} at {now}");
        }
        for m in got {
            let id = m["id"].as_str().expect("id").to_owned();
            let lease = m["lease_id"].as_str().expect("lease").to_owned();
            let message = self.model.queues[queue]
                .get_mut(&id)
                .expect("pulled a live message");
            message.attempts += 1;
            assert_eq!(m["attempts"], message.attempts, "attempts of {id}");
            assert_eq!(m["body"], message.body.as_str());
            message.state = State::Leased {
                lease: lease.clone(),
                until: now + timeout,
            };
            self.held.push(Held {
                lease,
                id,
                queue,
                life: message.life,
            });
        }
    }

    /// What a grouped pull must have done, whatever the rotation.
    fn check_round_robin(&self, queue: usize, batch: usize, ids: &[String], now: u64) {
        let lanes = self.model.lanes(queue, now);
        let cap = if queue == 0 { self.model.cap } else { 0 };
        let mut got: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for id in ids {
            let message = self.model.queues[queue]
                .get(id)
                .unwrap_or_else(|| panic!("pulled {id}, which the model does not hold"));
            got.entry(message.group.clone())
                .or_default()
                .push(id.clone());
        }
        // Per lane: how many it could give (visible, and room under the cap).
        let available: BTreeMap<&Option<String>, usize> = lanes
            .iter()
            .map(|(lane, visible)| {
                let room = match (lane, cap) {
                    (Some(group), 1..) => cap.saturating_sub(self.model.leased(queue, group)),
                    _ => u32::MAX,
                };
                (lane, visible.len().min(room as usize))
            })
            .collect();
        let context =
            format!("queue {queue} at {now}, batch {batch}: got {got:?}, lanes {lanes:?}");
        for (lane, ids) in &got {
            let visible = lanes.get(lane).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(
                ids.as_slice(),
                &visible[..ids.len().min(visible.len())],
                "lane {lane:?} gave a prefix of its visible messages in order: {context}"
            );
            assert!(
                ids.len() <= available[lane],
                "lane {lane:?} within its cap: {context}"
            );
        }
        let total: usize = available.values().sum();
        assert_eq!(
            ids.len(),
            total.min(batch),
            "as full as the lanes allow: {context}"
        );
        // A lane joins at the round after the one in progress, where the others may
        // still have one message to give; a deleted message leaves a round unused.
        let most = got.values().map(Vec::len).max().unwrap_or(0);
        for (lane, &can) in &available {
            let gave = got.get(*lane).map_or(0, Vec::len);
            let skipped = lane
                .as_ref()
                .and_then(|g| self.model.deleted[queue].get(g))
                .copied()
                .unwrap_or(0);
            assert!(
                gave + 2 + skipped >= most || gave == can,
                "round-robin: lane {lane:?} gave {gave} of {can} while another gave {most}: {context}"
            );
        }
    }

    /// Acks and retries a random handful of held leases (current or not).
    async fn ack(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let now = self.now();
        let queue = self.held[self.rng.below(self.held.len() as u64) as usize].queue;
        let mut acks = Vec::new();
        let mut retries = Vec::new();
        let (mut ack_count, mut retry_count) = (0, 0);
        let mut taken = Vec::new();
        let mut picked = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let candidates: Vec<usize> = (0..self.held.len())
                .filter(|i| self.held[*i].queue == queue && !taken.contains(i))
                .collect();
            if candidates.is_empty() {
                break;
            }
            let i = candidates[self.rng.below(candidates.len() as u64) as usize];
            taken.push(i);
            let retry = (self.rng.below(3) == 0).then(|| self.rng.below(2));
            picked.push((self.held[i].clone(), retry));
        }
        // The broker takes every ack first, then every retry.
        self.model.calls += 1;
        let call = self.model.calls;
        for (held, retry) in &picked {
            if retry.is_some() {
                continue;
            }
            acks.push(json!({"lease_id": held.lease}));
            let message = self.model.queues[queue].get(&held.id);
            if message.is_some_and(|m| m.life == held.life) {
                // An expired lease acks too, perhaps a message waiting again.
                if let Some(Message {
                    group: Some(group),
                    state: State::Due(_),
                    ..
                }) = message
                {
                    *self.model.deleted[queue].entry(group.clone()).or_default() += 1;
                }
                ack_count += 1;
                self.model.queues[queue].remove(&held.id);
                self.model.gone += 1;
            }
        }
        for (held, retry) in &picked {
            let Some(delay) = *retry else { continue };
            retries.push(json!({"lease_id": held.lease, "delay_seconds": delay}));
            let Some(message) = self.model.queues[queue].get_mut(&held.id) else {
                continue;
            };
            let current = matches!(&message.state,
                State::Leased { lease, until } if *lease == held.lease && *until > now);
            if !current {
                continue;
            }
            retry_count += 1;
            if message.attempts > Model::max_retries(queue) {
                self.model.bury(queue, &held.id, now);
            } else if queue == 0 && self.model.cap == 1 && message.group.is_some() {
                // Strict FIFO: back at its place, the group held for the delay.
                message.state = State::Due(now);
                if delay > 0 {
                    let group = message.group.clone().unwrap_or_default();
                    let until = now + delay * 1000;
                    let hold = self.model.holds.entry(group).or_insert(0);
                    *hold = (*hold).max(until);
                }
            } else {
                let at = now + delay * 1000;
                message.place = place(&message.group, &held.id, at, now, call);
                message.state = State::Due(at);
            }
        }
        taken.sort_unstable();
        for i in taken.into_iter().rev() {
            self.held.swap_remove(i);
        }
        let result = self
            .post(
                queue,
                "/messages/ack",
                json!({"acks": acks, "retries": retries}),
            )
            .await;
        assert_eq!(result["ackCount"], ack_count, "{result}");
        assert_eq!(result["retryCount"], retry_count, "{result}");
    }

    async fn delete(&mut self) {
        let ids: Vec<String> = self.model.queues[0].keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.below(ids.len() as u64) as usize].clone();
        if let Some(Message {
            group: Some(group),
            state: State::Due(_),
            ..
        }) = self.model.queues[0].get(&id)
        {
            *self.model.deleted[0].entry(group.clone()).or_default() += 1;
        }
        self.app
            .request(
                Method::DELETE,
                &format!("/queues/{}/messages/{id}", self.queues[0]),
                None,
            )
            .await
            .assert_ok();
        self.model.queues[0].remove(&id);
        self.model.gone += 1;
    }

    async fn purge(&mut self) {
        self.app
            .post(
                &format!("/queues/{}/purge", self.queues[0]),
                json!({"delete_messages_permanently": true}),
            )
            .await
            .assert_ok();
        self.model.gone += self.model.queues[0].len();
        self.model.queues[0].clear();
        self.model.holds.clear();
        self.model.deleted[0].clear();
    }

    async fn redrive(&mut self) {
        let now = self.now();
        let moved = self.post(1, "/redrive", json!({})).await;
        // Every dead letter came from queue 0, and all fit in one step.
        assert_eq!(moved["redriven"], self.model.queues[1].len(), "{moved}");
        self.model.calls += 1;
        for (id, mut message) in std::mem::take(&mut self.model.queues[1]) {
            message.attempts = 0;
            message.place = place(&message.group, &id, now, now, self.model.calls);
            message.state = State::Due(now);
            message.life += 1;
            self.model.queues[0].insert(id, message);
        }
    }

    async fn check_metrics(&self) {
        for (queue, id) in self.queues.iter().enumerate() {
            let metrics = self.app.metrics(id).await;
            assert_eq!(
                metrics["backlog_count"],
                self.model.queues[queue].len(),
                "backlog of queue {queue}"
            );
            let bytes: usize = self.model.queues[queue]
                .values()
                .map(|m| m.body.len())
                .sum();
            assert_eq!(metrics["backlog_bytes"], bytes, "bytes of queue {queue}");
        }
    }
}

async fn run(seed: u64, grouped: bool) {
    let (app, clock) = spawn_app_with_clock(|_| {}).await;
    let work = app.create_queue("work").await;
    let cap = if grouped { (seed % 3) as u32 } else { 0 };
    app.request(
        Method::PATCH,
        &format!("/queues/{work}"),
        Some(json!({"settings": {"group_max_inflight": cap}})),
    )
    .await
    .assert_ok();
    let dead = app.create_queue("work-dead").await;
    app.post(
        &format!("/queues/{work}/consumers"),
        json!({"type": "http_pull", "dead_letter_queue": "work-dead", "settings": {"max_retries": MAX_RETRIES}}),
    )
    .await
    .assert_ok();
    let mut run = Run {
        grouped,
        app,
        clock,
        queues: [work, dead],
        model: Model {
            cap,
            ..Model::default()
        },
        held: Vec::new(),
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        seq: 0,
    };
    for _ in 0..STEPS {
        match run.rng.below(100) {
            0..=24 => run.push().await,
            25..=49 => run.pull(0).await,
            50..=69 => run.ack().await,
            70..=84 => run
                .clock
                .advance(Duration::from_millis(run.rng.below(1500))),
            85..=89 => run.delete().await,
            90..=93 => run.pull(1).await,
            94..=97 => run.redrive().await,
            _ => run.purge().await,
        }
        run.model.forget_deletions();
        run.check_metrics().await;
    }
    // Drain: everything left is delivered and acked, nothing more, nothing less.
    run.clock.advance(Duration::from_secs(3600));
    for queue in [0, 1] {
        loop {
            let now = run.now();
            run.model.reclaim(queue, now);
            let visible = run.model.visible(queue, now);
            let result = run
                .post(queue, "/messages/pull", json!({"batch_size": 100}))
                .await;
            let got = result["messages"].as_array().expect("messages").clone();
            let ids: Vec<String> = got
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned())
                .collect();
            if run.grouped {
                run.check_round_robin(queue, 100, &ids, now);
            } else {
                assert_eq!(ids, visible.into_iter().take(100).collect::<Vec<_>>());
            }
            if got.is_empty() {
                break;
            }
            let acks: Vec<Value> = got
                .iter()
                .map(|m| json!({"lease_id": m["lease_id"]}))
                .collect();
            let acked = run
                .post(queue, "/messages/ack", json!({"acks": acks}))
                .await;
            assert_eq!(acked["ackCount"], got.len());
            for id in ids {
                run.model.queues[queue].remove(&id);
                run.model.gone += 1;
            }
        }
    }
    assert!(run.model.queues.iter().all(BTreeMap::is_empty));
    assert_eq!(
        run.model.gone, run.model.pushed,
        "seed {seed}: every message accounted for"
    );
    run.check_metrics().await;
}

#[tokio::test]
async fn random_operations_agree_with_the_model_of_the_rules() {
    for seed in 1..=SEEDS {
        run(seed, false).await;
    }
}

#[tokio::test]
async fn random_operations_on_message_groups_keep_the_rules_of_groups() {
    for seed in 1..=SEEDS {
        run(seed, true).await;
    }
}
