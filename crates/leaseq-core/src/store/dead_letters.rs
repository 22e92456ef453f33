//! Moves between queues: dead letters into the dead-letter queue, and redrives back.
//!
//! A move spans two queues, so it cannot be one script on a cluster: each is a copy
//! (which skips ids the receiving queue already holds), then a removal from the sender,
//! so a crash in between repeats the copy and neither loses nor doubles a message.

use redis::{ScriptInvocation, Value};

use super::codec::CorruptData;
use super::keys::Keys;
use super::script::{KeySet, Op, Reply, access_arg, bytes, code, lua_script, text};
use super::{Store, StoreError};
use crate::model::{Access, QueueId, QueueName};

/// Dead letters waiting in a queue's outbox, and where they are to go.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    pub dead_letter_queue: Option<QueueName>,
    /// `(message id, record)` as the source queue held them.
    pub entries: Vec<(String, Vec<u8>)>,
    /// More dead letters wait beyond these.
    pub more: bool,
}

struct DeadOutbox<'a> {
    access: &'a Access,
    queue: QueueId,
    max: u32,
    reply_bytes: usize,
}

impl Op for DeadOutbox<'_> {
    lua_script!("dead_outbox", KeySet::Queue);
    /// `None`: no such queue.
    type Output = Option<DeadLetters>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.max)
            .arg(self.reply_bytes);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let entries = reply
            .rest(3)
            .chunks_exact(2)
            .map(|pair| Ok((text(&pair[0])?, bytes(&pair[1])?.to_vec())))
            .collect::<Result<Vec<_>, CorruptData>>()?;
        Ok(Some(DeadLetters {
            dead_letter_queue: QueueName::parse(&reply.text(1)?),
            entries,
            more: reply.count(2)? == 1,
        }))
    }
}

struct DeadReceive<'a> {
    access: &'a Access,
    queue: QueueId,
    from: Option<QueueId>,
    entries: &'a [(String, Vec<u8>)],
    now_ms: u64,
}

impl Op for DeadReceive<'_> {
    lua_script!("dead_receive", KeySet::Queue);
    /// `None`: no such queue; else how many messages were new here.
    type Output = Option<u64>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.from.map(|q| q.to_string()).unwrap_or_default())
            .arg(self.now_ms);
        for (id, record) in self.entries {
            invocation.arg(id).arg(record);
        }
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        reply.count(1).map(Some)
    }
}

/// Clears ids from a queue's dead-letter outbox.
struct DeadForget<'a> {
    access: &'a Access,
    queue: QueueId,
    ids: &'a [&'a str],
}

impl Op for DeadForget<'_> {
    lua_script!("dead_forget", KeySet::Queue);
    type Output = ();

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access));
        for id in self.ids {
            invocation.arg(*id);
        }
    }

    fn decode(&self, _: Reply) -> Result<(), CorruptData> {
        Ok(())
    }
}

/// One step of a redrive's scan of a dead-letter queue.
#[derive(Debug, Clone)]
pub struct Redrivable {
    /// `(id, record, source queue)` of each message to move.
    pub entries: Vec<(String, Vec<u8>, QueueId)>,
    /// The scan has not been through every dead letter yet: call again.
    pub more: bool,
}

struct RedriveTake<'a> {
    access: &'a Access,
    queue: QueueId,
    source: Option<QueueId>,
    max: u32,
    reply_bytes: usize,
}

impl Op for RedriveTake<'_> {
    lua_script!("redrive_take", KeySet::Queue);
    /// `None`: no such queue.
    type Output = Option<Redrivable>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.source.map(|q| q.to_string()).unwrap_or_default())
            .arg(self.max)
            .arg(self.reply_bytes);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        let entry = |e: &[Value]| -> Result<_, CorruptData> {
            Ok((text(&e[0])?, bytes(&e[1])?.to_vec(), text(&e[2])?))
        };
        let mut entries = Vec::new();
        for e in reply.rest(2).chunks_exact(3) {
            let (id, record, source) = entry(e)?;
            // An origin that is not a queue id cannot be redriven anywhere: it stays.
            if let Some(source) = QueueId::parse(&source) {
                entries.push((id, record, source));
            }
        }
        Ok(Some(Redrivable {
            entries,
            more: reply.count(1)? == 1,
        }))
    }
}

struct RedriveRelease<'a> {
    access: &'a Access,
    queue: QueueId,
    ids: &'a [&'a str],
}

impl Op for RedriveRelease<'_> {
    lua_script!("redrive_release", KeySet::Queue);
    /// How many of the messages the dead-letter queue still held (0 if it is gone).
    type Output = u64;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access));
        for id in self.ids {
            invocation.arg(*id);
        }
    }

    fn decode(&self, reply: Reply) -> Result<u64, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(0);
        }
        reply.count(1)
    }
}

impl Store {
    /// Up to `max` dead letters waiting in the queue's outbox. `None`: no such queue.
    pub async fn dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
        max: u32,
    ) -> Result<Option<DeadLetters>, StoreError> {
        self.call(DeadOutbox {
            access,
            queue,
            max,
            reply_bytes: self.reply_bytes,
        })
        .await
    }

    /// Stores messages moved from queue `from` into `queue` (dead letters into the
    /// dead-letter queue, or a redrive back), skipping ids it already holds; `from` is
    /// remembered for a later redrive when given. `None`: no such queue; else how many
    /// were new.
    pub async fn receive_moved(
        &self,
        access: &Access,
        queue: QueueId,
        from: Option<QueueId>,
        entries: &[(String, Vec<u8>)],
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.call(DeadReceive {
            access,
            queue,
            from,
            entries,
            now_ms,
        })
        .await
    }

    /// Clears delivered dead letters from the queue's outbox.
    pub async fn forget_dead_letters(
        &self,
        access: &Access,
        queue: QueueId,
        ids: &[&str],
    ) -> Result<(), StoreError> {
        self.call(DeadForget { access, queue, ids }).await
    }

    /// Up to `max` messages of this dead-letter queue that came from another queue (only
    /// from `source` when given), from one bounded step of a scan that the next call
    /// continues. `None`: no such queue.
    pub async fn redrivable(
        &self,
        access: &Access,
        queue: QueueId,
        source: Option<QueueId>,
        max: u32,
    ) -> Result<Option<Redrivable>, StoreError> {
        self.call(RedriveTake {
            access,
            queue,
            source,
            max,
            reply_bytes: self.reply_bytes,
        })
        .await
    }

    /// Deletes redriven messages from the dead-letter queue; returns how many it held.
    pub async fn release_redriven(
        &self,
        access: &Access,
        queue: QueueId,
        ids: &[&str],
    ) -> Result<u64, StoreError> {
        self.call(RedriveRelease { access, queue, ids }).await
    }
}
