//! Push delivery to listeners (SPEC §9): the outbound HTTP edge. Every broker process
//! runs one [`Deliverer`]; it claims listeners' lanes through Redis (so N processes
//! share them), sends each lane's messages in signed batches, and hands the outcome back
//! to the broker, which keeps the rules (attempts, backoff, dead letters, liveness).

pub mod guard;
pub mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use crate::broker::Broker;
use crate::broker::listeners::{AttemptOutcome, DeliveryRecord};
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::model::{ContentType, Listener, ListenerHealth, StoredMessage};
use crate::store::LaneRef;
use guard::Destinations;

/// A claimed lane is another worker's again after this long if this process dies.
const LANE_HOLD_MS: u64 = 10_000;
/// An idle or paused lane is looked at again this often (a push makes it due at once).
const IDLE_LOOK_MS: u64 = 30_000;
/// How often an idle worker looks at the schedule for lanes made due by other processes.
const SCHEDULE_POLL: Duration = Duration::from_millis(100);
/// Most of a receiver's answer read, for partial retries.
const ANSWER_BYTES: usize = 64 * 1024;

/// The body of a delivery.
#[derive(Serialize)]
struct Delivery<'a> {
    queue_id: String,
    listener_id: String,
    messages: Vec<DeliveredMessage<'a>>,
}

#[derive(Serialize)]
struct DeliveredMessage<'a> {
    id: String,
    /// JSON as its JSON text, text as a JSON string.
    body: Body<'a>,
    content_type: ContentType,
    attempts: u32,
    timestamp_ms: u64,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

/// A 2xx answer may name messages to retry.
#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    retries: Vec<AnswerRetry>,
}

#[derive(Deserialize)]
struct AnswerRetry {
    id: String,
    #[serde(default)]
    delay_seconds: Option<u32>,
}

/// What this process knows of lanes it is delivering: a lane claimed again while in
/// flight is marked, so its task looks once more before it lets go.
type InFlight = Arc<Mutex<HashMap<LaneRef, bool>>>;

#[derive(Clone)]
pub struct Deliverer {
    broker: Broker,
    client: reqwest::Client,
    destinations: Destinations,
    metrics: Arc<Metrics>,
    lanes: Arc<Semaphore>,
    in_flight: InFlight,
}

impl Deliverer {
    pub fn new(
        broker: Broker,
        destinations: Destinations,
        metrics: Arc<Metrics>,
        lanes_in_flight: usize,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            broker,
            client: guard::client(destinations)?,
            destinations,
            metrics,
            lanes: Arc::new(Semaphore::new(lanes_in_flight.max(1))),
            in_flight: InFlight::default(),
        })
    }

    /// Claims due lanes and delivers them, forever.
    pub async fn run(self) {
        loop {
            let free = self.lanes.available_permits();
            if free == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let claimed = self
                .broker
                .claim_lanes(u32::try_from(free.min(32)).unwrap_or(32), LANE_HOLD_MS)
                .await;
            match claimed {
                Ok(lanes) if lanes.is_empty() => self.broker.lanes_due(SCHEDULE_POLL).await,
                Ok(lanes) => {
                    for lane in lanes {
                        self.start(lane);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "delivery schedule unreadable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Delivers `lane` in a task of its own, unless this process is at it already.
    fn start(&self, lane: LaneRef) {
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = in_flight.get_mut(&lane) {
                *again = true;
                return;
            }
            in_flight.insert(lane.clone(), false);
        }
        let Ok(permit) = self.lanes.clone().try_acquire_owned() else {
            // Counted free a moment ago; the hold makes another look at it later.
            self.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&lane);
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let next = match this.deliver_lane(&lane).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, queue = %lane.queue, listener = %lane.listener,
                        "delivery interrupted; the lane is retried");
                    Some(this.broker.now_ms() + 1_000)
                }
            };
            this.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&lane);
            if let Some(at) = next
                && let Err(e) = this.broker.reschedule_lane(&lane, at).await
            {
                tracing::warn!(error = %e, "lane not rescheduled; its hold expires instead");
            }
            drop(permit);
        });
    }

    /// Whether the lane was claimed again meanwhile (and clears the mark).
    fn claimed_again(&self, lane: &LaneRef) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(lane)
            .map(std::mem::take)
            .unwrap_or(false)
    }

    /// Delivers what the lane holds that is due; returns when it next needs a look
    /// (`None`: the listener is gone).
    async fn deliver_lane(
        &self,
        lane: &LaneRef,
    ) -> Result<Option<u64>, crate::broker::BrokerError> {
        let Some(mut listener) = self.broker.open_lane(lane).await? else {
            return Ok(None);
        };
        let labels = lane_labels(lane);
        self.metrics
            .listener_backlog([&labels[0], &labels[1], &labels[2]], listener.backlog);
        let now = self.broker.now_ms();
        if listener.settings.paused {
            return Ok(Some(now + IDLE_LOOK_MS));
        }
        if let ListenerHealth::Down { next_probe_ms, .. } = listener.health {
            if now < next_probe_ms {
                return Ok(Some(next_probe_ms));
            }
            let alive = self.probe(&listener).await;
            match self.broker.set_listener_health(lane, alive).await? {
                None => return Ok(None),
                Some(updated) => listener = updated,
            }
            if let ListenerHealth::Down { next_probe_ms, .. } = listener.health {
                return Ok(Some(next_probe_ms));
            }
        }
        let concurrency = listener.settings.max_concurrency.max(1) as usize;
        let mut attempts = FuturesUnordered::new();
        let mut next_due = 0u64;
        let mut drained = false;
        let mut went_down = false;
        loop {
            while !drained && !went_down && attempts.len() < concurrency {
                let Some((messages, due)) = self.broker.claim_batch(lane, &listener).await? else {
                    return Ok(None);
                };
                next_due = due;
                if messages.is_empty() {
                    drained = !self.claimed_again(lane);
                    if drained {
                        break;
                    }
                    continue;
                }
                attempts.push(self.attempt(lane, &listener, messages));
            }
            let Some(result) = attempts.next().await else {
                break;
            };
            match result? {
                Attempted::Gone => return Ok(None),
                Attempted::Settled { next_due_ms } => next_due = next_due_ms,
                Attempted::Down => went_down = true,
            }
        }
        if went_down
            && let Some(Listener {
                health: ListenerHealth::Down { next_probe_ms, .. },
                ..
            }) = self.broker.open_lane(lane).await?
        {
            return Ok(Some(next_probe_ms));
        }
        let idle = self.broker.now_ms() + IDLE_LOOK_MS;
        Ok(Some(if next_due == 0 {
            idle
        } else {
            next_due.min(idle)
        }))
    }

    /// One signed request with `messages`, its outcome settled with the broker.
    async fn attempt(
        &self,
        lane: &LaneRef,
        listener: &Listener,
        messages: Vec<(StoredMessage, u32)>,
    ) -> Result<Attempted, crate::broker::BrokerError> {
        let started_ms = self.broker.now_ms();
        let started = Instant::now();
        let (status, outcome, error) = self.send(lane, listener, &messages).await;
        let elapsed = started.elapsed();
        self.metrics
            .listener_request(matches!(outcome, AttemptOutcome::Delivered { .. }), elapsed);
        let record = DeliveryRecord {
            attempted_ms: started_ms,
            message_ids: messages.iter().map(|(m, _)| m.id.to_string()).collect(),
            status,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            error: error.clone(),
        };
        // One line per attempt: never the body, the URL's query or the secret.
        tracing::info!(
            queue = %lane.queue,
            listener = %lane.listener,
            status,
            duration_ms = record.duration_ms,
            messages = messages.len(),
            error = error.as_deref().unwrap_or(""),
            "delivery attempt"
        );
        let Some(settled) = self
            .broker
            .settle_batch(lane, listener, &messages, &outcome, &record)
            .await?
        else {
            return Ok(Attempted::Gone);
        };
        let labels = lane_labels(lane);
        let labels = [labels[0].as_str(), labels[1].as_str(), labels[2].as_str()];
        for (outcome, count) in [
            (DeliveryOutcome::Delivered, settled.acked),
            (DeliveryOutcome::Retried, settled.retried),
            (DeliveryOutcome::DeadLettered, settled.dead_lettered),
            (DeliveryOutcome::Dropped, settled.dropped),
        ] {
            self.metrics.listener_messages(labels, outcome, count);
        }
        if outcome == AttemptOutcome::Failed
            && listener.liveness_url.is_some()
            && !self.probe(listener).await
        {
            self.broker.set_listener_health(lane, false).await?;
            return Ok(Attempted::Down);
        }
        Ok(Attempted::Settled {
            next_due_ms: settled.next_due_ms,
        })
    }

    /// Sends one delivery: the status (0: no answer), the outcome, and why it failed.
    async fn send(
        &self,
        lane: &LaneRef,
        listener: &Listener,
        messages: &[(StoredMessage, u32)],
    ) -> (u16, AttemptOutcome, Option<String>) {
        let failed = |status: u16, why: String| (status, AttemptOutcome::Failed, Some(why));
        let body = match delivery_body(lane, messages) {
            Ok(body) => body,
            Err(e) => return failed(0, format!("body: {e}")),
        };
        // DNS is checked by the client's resolver; an IP-literal host here.
        if let Err(e) = self.destinations.check_syntax(&listener.notify_url) {
            return failed(0, format!("notify_url {e}"));
        }
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let timestamp = self.broker.now_ms() / 1000;
        let now = self.broker.now_ms();
        let mut secrets = vec![&listener.secret];
        if let Some((previous, until)) = &listener.previous_secret
            && *until > now
        {
            secrets.push(previous);
        }
        let signature = signature::header(&secrets, &id, timestamp, &body);
        let request = self
            .client
            .post(&listener.notify_url)
            .timeout(Duration::from_millis(listener.settings.timeout_ms))
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return failed(0, describe(&e)),
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return failed(status, format!("answered {status}"));
        }
        // Partial retries, from a JSON answer that names them; anything else acks all.
        let mut answer = Vec::new();
        while answer.len() < ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) => break,
                // The answer was 2xx: the messages were taken; a cut-off body only loses
                // the retries it may have named.
                Err(_) => break,
            }
        }
        let answer: Answer = serde_json::from_slice(&answer).unwrap_or_default();
        let retries = answer
            .retries
            .into_iter()
            .map(|r| (r.id, r.delay_seconds))
            .collect();
        (status, AttemptOutcome::Delivered { retries }, None)
    }

    /// Whether the listener's liveness URL answers 2xx (true without one).
    async fn probe(&self, listener: &Listener) -> bool {
        let Some(url) = &listener.liveness_url else {
            return true;
        };
        if self.destinations.check_syntax(url).is_err() {
            return false;
        }
        self.client
            .get(url)
            .timeout(Duration::from_millis(listener.settings.timeout_ms))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// How one attempt ended, for the lane's loop.
enum Attempted {
    Settled {
        next_due_ms: u64,
    },
    /// The listener's liveness probe failed: it is down.
    Down,
    /// The listener (or its queue) is gone.
    Gone,
}

fn lane_labels(lane: &LaneRef) -> [String; 3] {
    [
        lane.account.to_string(),
        lane.queue.to_string(),
        lane.listener.to_string(),
    ]
}

fn delivery_body(
    lane: &LaneRef,
    messages: &[(StoredMessage, u32)],
) -> Result<Vec<u8>, serde_json::Error> {
    let mut delivered = Vec::with_capacity(messages.len());
    for (message, attempts) in messages {
        let body = match message.content_type {
            ContentType::Json => Body::Json(serde_json::from_str(&message.body)?),
            ContentType::Text => Body::Text(&message.body),
        };
        delivered.push(DeliveredMessage {
            id: message.id.to_string(),
            body,
            content_type: message.content_type,
            attempts: *attempts,
            timestamp_ms: message.timestamp_ms,
        });
    }
    serde_json::to_vec(&Delivery {
        queue_id: lane.queue.to_string(),
        listener_id: lane.listener.to_string(),
        messages: delivered,
    })
}

/// A failed request in a few words, for the delivery log: no URL (it may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<guard::Refused>() {
            return format!("destination refused: {refused}");
        }
        source = cause.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() {
        "redirected".into()
    } else {
        "request failed".into()
    }
}
