//! Wake-ups for long-polling pulls, across broker processes.
//!
//! Scripts that make messages visible `PUBLISH` on the name of the queue's `due` key,
//! with how many. Each process keeps one subscription to `{prefix}:*:due` (on a
//! Cluster, on one of its seed nodes: a `PUBLISH` reaches every node) and
//! wakes at most that many of the pulls of that queue waiting in it: a push of one
//! message to a queue with 400 waiting pulls costs one more pull, not 400. A woken pull
//! that finds nothing (another took the message) simply waits again. A lost wake-up (Redis restarting, say) only delays a waiting
//! pull to its next timer: waiters also sleep no longer than the next delayed message
//! or lease expiry, and never past their own deadline. Nobody polls Redis in a loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use super::keys::Role;
use crate::model::QueueId;

/// Waiting pulls by queue.
#[derive(Debug, Default)]
pub struct Wakeups {
    waiting: Mutex<HashMap<QueueId, Arc<Notify>>>,
}

/// A registration to be woken for one queue; unregisters when dropped.
pub struct Waiter<'a> {
    wakeups: &'a Wakeups,
    queue: QueueId,
    pub notify: Arc<Notify>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .wakeups
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and ours. Then nobody else waits on this queue here.
        if Arc::strong_count(&self.notify) <= 2 {
            waiting.remove(&self.queue);
        }
    }
}

impl Wakeups {
    pub fn wait_for(&self, queue: QueueId) -> Waiter<'_> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let notify = waiting.entry(queue).or_default().clone();
        Waiter {
            wakeups: self,
            queue,
            notify,
        }
    }

    /// Wakes up to `messages` of the pulls waiting on `queue`.
    fn wake(&self, queue: QueueId, messages: usize) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = waiting.get(&queue) {
            // Every waiter holds a clone besides the map's. Waking no more than there are
            // leaves no stored permit behind to wake a later pull for nothing; and a pull
            // that drops a wake-up unused passes it on to the next (tokio's `Notify`).
            let waiters = Arc::strong_count(notify).saturating_sub(1);
            for _ in 0..messages.min(waiters) {
                notify.notify_one();
            }
        }
    }

    /// How many messages a wake-up announces; an unreadable payload wakes one pull.
    fn announced(payload: &[u8]) -> usize {
        std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
    }

    /// The queue id in a channel name `{prefix}:{<queue id>}:due`.
    fn queue_of(channel: &str) -> Option<QueueId> {
        let start = channel.find('{')? + 1;
        let end = start + channel[start..].find('}')?;
        QueueId::parse(&channel[start..end])
    }

    /// Listens for wake-ups until the process ends, reconnecting after failures. A
    /// Cluster delivers every `PUBLISH` on every node, so one subscription to any of its
    /// `nodes` hears all; after a failure the next node is tried, so a dead node (its
    /// replica promoted meanwhile) does not silence wake-ups until it returns.
    pub async fn listen(self: Arc<Self>, nodes: Vec<redis::Client>, prefix: String) {
        let pattern = format!("{prefix}:*:{}", Role::Due.name());
        for client in nodes.iter().cycle() {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.psubscribe(&pattern).await {
                    Ok(()) => {
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Some(queue) = Self::queue_of(message.get_channel_name()) {
                                self.wake(queue, Self::announced(message.get_payload_bytes()));
                            }
                        }
                        tracing::warn!("wake-up subscription ended; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not subscribe to wake-ups"),
                },
                Err(e) => tracing::debug!(error = %e, "wake-up connection failed; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_read_from_the_channel_name() {
        let id = QueueId::generate();
        assert_eq!(Wakeups::queue_of(&format!("lq:{{{id}}}:ready")), Some(id));
        assert_eq!(Wakeups::queue_of("lq:{a:acct}:queues"), None);
    }

    #[tokio::test]
    async fn a_wake_up_wakes_as_many_waiters_as_messages_arrived() {
        use std::task::{Context, Poll};

        let wakeups = Wakeups::default();
        let queue = QueueId::generate();
        let waiters: Vec<_> = (0..5).map(|_| wakeups.wait_for(queue)).collect();
        let mut woken: Vec<_> = waiters
            .iter()
            .map(|w| Box::pin(w.notify.notified()))
            .collect();
        for future in &mut woken {
            future.as_mut().enable();
        }
        wakeups.wake(queue, 2);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut pending = Vec::new();
        for mut future in woken {
            if future.as_mut().poll(&mut cx) == Poll::Pending {
                pending.push(future);
            }
        }
        assert_eq!(pending.len(), 3);
        // More messages than waiters wakes each of them.
        wakeups.wake(queue, 100);
        for future in &mut pending {
            assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(()));
        }
        assert_eq!(Wakeups::announced(b"7"), 7);
        assert_eq!(Wakeups::announced(b"junk"), 1);
    }

    #[test]
    fn waiters_unregister_when_the_last_one_leaves() {
        let wakeups = Wakeups::default();
        let queue = QueueId::generate();
        let first = wakeups.wait_for(queue);
        let second = wakeups.wait_for(queue);
        drop(first);
        assert!(wakeups.waiting.lock().expect("lock").contains_key(&queue));
        drop(second);
        assert!(!wakeups.waiting.lock().expect("lock").contains_key(&queue));
    }
}
