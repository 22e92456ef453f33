//! The two things a benchmark can drive: the broker over HTTP, or the same Redis
//! scripts called directly (the ceiling of the design on this machine).

use serde::Deserialize;
use serde_json::json;

use leaseq::model::{Access, ContentType, GroupId, MessageId, NewMessage, QueueId, now_ms};
use leaseq::store::{BacklogQuota, LeaseOutcome, PushReply, Store};

/// One delivered message: the handle to ack it with, and its body.
pub struct Delivery {
    pub handle: String,
    pub body: String,
}

pub struct HttpTarget {
    pub client: reqwest::Client,
    /// `…/client/v4/accounts/{account}/queues/{queue_id}`
    pub queue_url: String,
    pub token: String,
}

pub struct RawTarget {
    pub store: Store,
    pub access: Access,
    pub queue: QueueId,
}

pub enum Target {
    Http(HttpTarget),
    Raw(Box<RawTarget>),
}

#[derive(Deserialize)]
struct PullEnvelope {
    result: PullBody,
}

#[derive(Deserialize)]
struct PullBody {
    messages: Vec<PulledMessage>,
}

#[derive(Deserialize)]
struct PulledMessage {
    lease_id: String,
    body: String,
}

#[derive(Deserialize)]
struct AckEnvelope {
    result: AckBody,
}

#[derive(Deserialize)]
struct AckBody {
    #[serde(rename = "ackCount")]
    ack_count: usize,
    #[serde(rename = "retryCount")]
    retry_count: usize,
}

impl HttpTarget {
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, String> {
        let response = self
            .client
            .post(format!("{}{path}", self.queue_url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("POST {path}: {status}: {text}"));
        }
        response
            .json()
            .await
            .map_err(|e| format!("POST {path}: {e}"))
    }
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Http(_) => "http",
            Target::Raw(_) => "raw-redis",
        }
    }

    /// Pushes `messages` (body, group) in one request (a single push when there is one).
    pub async fn push(&self, messages: Vec<(String, Option<String>)>) -> Result<(), String> {
        match self {
            Target::Http(http) => {
                let one = |(body, group): &(String, Option<String>)| match group {
                    Some(group) => json!({"body": body, "content_type": "text", "group_id": group}),
                    None => json!({"body": body, "content_type": "text"}),
                };
                let body = if messages.len() == 1 {
                    one(&messages[0])
                } else {
                    json!({"messages": messages.iter().map(one).collect::<Vec<_>>()})
                };
                let path = if messages.len() == 1 {
                    "/messages"
                } else {
                    "/messages/batch"
                };
                http.post::<serde_json::Value>(path, body).await.map(|_| ())
            }
            Target::Raw(raw) => {
                let messages: Vec<NewMessage> = messages
                    .into_iter()
                    .map(|(body, group)| NewMessage {
                        name: None,
                        content_type: ContentType::Text,
                        body,
                        delay_ms: None,
                        dedup_id: None,
                        group_id: group.as_deref().and_then(GroupId::parse),
                    })
                    .collect();
                let quota = BacklogQuota::NONE;
                match raw
                    .store
                    .push(&raw.access, raw.queue, &messages, quota, now_ms())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    PushReply::Pushed { .. } => Ok(()),
                    other => Err(format!("push refused: {other:?}")),
                }
            }
        }
    }

    pub async fn pull(
        &self,
        batch_size: u32,
        visibility_timeout_ms: u64,
    ) -> Result<Vec<Delivery>, String> {
        match self {
            Target::Http(http) => {
                let body = json!({"batch_size": batch_size, "visibility_timeout_ms": visibility_timeout_ms});
                let envelope: PullEnvelope = http.post("/messages/pull", body).await?;
                Ok(envelope
                    .result
                    .messages
                    .into_iter()
                    .map(|m| Delivery {
                        handle: m.lease_id,
                        body: m.body,
                    })
                    .collect())
            }
            Target::Raw(raw) => {
                let pulled = raw
                    .store
                    .pull(
                        &raw.access,
                        raw.queue,
                        Some(batch_size),
                        Some(visibility_timeout_ms),
                        0,
                        now_ms(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let leaseq::store::PullReply::Pulled(pulled) = pulled else {
                    return Err("queue not found or paused".to_owned());
                };
                Ok(pulled
                    .messages
                    .into_iter()
                    .map(|m| Delivery {
                        handle: format!("{}:{}", m.id, m.lease_generation),
                        body: m.body,
                    })
                    .collect())
            }
        }
    }

    /// Acks `handles` (or retries them at once, when `retry`); returns how many succeeded.
    pub async fn ack(&self, handles: Vec<String>, retry: bool) -> Result<usize, String> {
        match self {
            Target::Http(http) => {
                let entries: Vec<_> = handles.iter().map(|h| json!({"lease_id": h})).collect();
                let body = if retry {
                    json!({"retries": entries})
                } else {
                    json!({"acks": entries})
                };
                let envelope: AckEnvelope = http.post("/messages/ack", body).await?;
                Ok(envelope.result.ack_count + envelope.result.retry_count)
            }
            Target::Raw(raw) => {
                // A raw handle is `<message id>:<lease generation>`.
                let leases = handles
                    .iter()
                    .map(|h| {
                        h.split_once(':')
                            .and_then(|(id, generation)| {
                                Some((MessageId::parse(id)?, generation.parse().ok()?))
                            })
                            .ok_or_else(|| format!("bad raw handle {h}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // A raw retry needs the lease generation; the backlog scenario only retries over HTTP.
                if retry {
                    return Err("the raw target does not retry".into());
                }
                let acked = raw
                    .store
                    .ack(&raw.access, raw.queue, &leases, &[], now_ms())
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "queue not found".to_owned())?;
                Ok(acked
                    .acked
                    .into_iter()
                    .filter(|&a| a == LeaseOutcome::Applied)
                    .count())
            }
        }
    }
}
