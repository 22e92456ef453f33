//! Queues, their names and their consumer.

use std::collections::HashMap;

use redis::{ScriptInvocation, Value};

use super::codec::{self, CorruptData};
use super::keys::{Keys, Role};
use super::script::{KeySet, Op, Reply, access_arg, code, lua_script, text};
use super::{Store, StoreError};
use crate::model::{
    Access, AccountId, Consumer, ConsumerId, Queue, QueueId, QueueName, QueueSettings,
};

/// The outcome of [`Store::create_queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateQueue {
    Created,
    NameTaken,
    /// The account already holds as many queue names as it may.
    TooManyQueues,
}

/// The outcome of [`Store::update_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateQueue {
    Updated(Box<Queue>),
    NotFound,
    NameTaken,
}

/// Whether a consumer write went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerWrite {
    Written(Box<Queue>),
    QueueNotFound,
    OtherConsumerExists,
}

/// The outcome of claiming a queue name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    Claimed,
    /// Held by this (maybe stale) holder id.
    Taken(String),
    AccountFull,
}

/// `{OK, field1, value1, …}` → the fields, or `None` for `NOT_FOUND`.
fn fields_after_ok(reply: &Reply) -> Result<Option<HashMap<String, String>>, CorruptData> {
    if reply.code()? != code::OK {
        return Ok(None);
    }
    reply
        .rest(1)
        .chunks_exact(2)
        .map(|pair| Ok((text(&pair[0])?, text(&pair[1])?)))
        .collect::<Result<_, _>>()
        .map(Some)
}

struct QueueCreate<'a> {
    queue: &'a Queue,
}

impl Op for QueueCreate<'_> {
    lua_script!("create_queue", KeySet::Queue);
    /// Whether the id was free (ids are random: taken means a bug or corruption).
    type Output = bool;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue.id).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        for (field, value) in codec::queue_fields(self.queue) {
            invocation.arg(field).arg(value);
        }
    }

    fn decode(&self, reply: Reply) -> Result<bool, CorruptData> {
        Ok(reply.code()? == code::OK)
    }
}

struct NameClaim<'a> {
    account: &'a AccountId,
    name: &'a QueueName,
    id: QueueId,
    /// A holder id the name may be taken from ("" for none).
    takeover: &'a str,
    /// Most names the account may hold (0: no limit).
    max_names: usize,
}

impl Op for NameClaim<'_> {
    lua_script!("claim_name", KeySet::One("NAMES"));
    type Output = Claim;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        vec![keys.account_queues(self.account)]
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(self.name.as_str())
            .arg(self.id.to_string())
            .arg(self.takeover)
            .arg(self.max_names);
    }

    fn decode(&self, reply: Reply) -> Result<Claim, CorruptData> {
        Ok(match reply.code()? {
            code::OK => Claim::Claimed,
            code::ACCOUNT_FULL => Claim::AccountFull,
            _ => Claim::Taken(reply.text(1)?),
        })
    }
}

struct NameRelease<'a> {
    account: &'a AccountId,
    name: &'a QueueName,
    id: QueueId,
}

impl Op for NameRelease<'_> {
    lua_script!("release_name", KeySet::One("NAMES"));
    type Output = ();

    fn keys(&self, keys: &Keys) -> Vec<String> {
        vec![keys.account_queues(self.account)]
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(self.name.as_str()).arg(self.id.to_string());
    }

    fn decode(&self, _: Reply) -> Result<(), CorruptData> {
        Ok(())
    }
}

struct QueueUpdate<'a> {
    queue: &'a Queue,
    /// The new name, when renaming.
    rename: Option<&'a QueueName>,
    settings: &'a QueueSettings,
    now_ms: u64,
}

impl Op for QueueUpdate<'_> {
    lua_script!("update_queue", KeySet::Queue);
    /// The queue after the update; `None`: no such queue.
    type Output = Option<Queue>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue.id).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(&Access::account(self.queue.account.clone())));
        if let Some(name) = self.rename {
            invocation.arg("name").arg(name.as_str());
        }
        for (field, value) in codec::settings_fields(self.settings, self.now_ms) {
            invocation.arg(field).arg(value);
        }
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        fields_after_ok(&reply)?
            .map(|fields| codec::decode_queue(self.queue.id, &fields))
            .transpose()
    }
}

struct QueueDelete<'a> {
    access: &'a Access,
    queue: QueueId,
}

impl Op for QueueDelete<'_> {
    lua_script!("delete_queue", KeySet::Queue);
    /// The deleted queue's name (`Some("")` if it had none); `None`: no such queue.
    type Output = Option<String>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation.arg(access_arg(self.access));
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        if reply.code()? != code::OK {
            return Ok(None);
        }
        Ok(Some(match reply.get(1)? {
            Value::Nil => String::new(),
            name => text(name)?,
        }))
    }
}

struct ConsumerUpsert<'a> {
    access: &'a Access,
    queue: QueueId,
    consumer: &'a Consumer,
    replace: bool,
}

impl Op for ConsumerUpsert<'_> {
    lua_script!("consumer_upsert", KeySet::Queue);
    type Output = ConsumerWrite;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(if self.replace { "replace" } else { "create" })
            .arg(self.consumer.id.to_string())
            .arg(self.consumer.created_ms);
        let consumer = self.consumer;
        for (field, value) in
            codec::consumer_fields(consumer.dead_letter_queue.as_ref(), &consumer.settings)
        {
            invocation.arg(field).arg(value);
        }
    }

    fn decode(&self, reply: Reply) -> Result<ConsumerWrite, CorruptData> {
        if reply.code()? == code::OTHER_CONSUMER {
            return Ok(ConsumerWrite::OtherConsumerExists);
        }
        Ok(match fields_after_ok(&reply)? {
            Some(fields) => {
                ConsumerWrite::Written(Box::new(codec::decode_queue(self.queue, &fields)?))
            }
            None => ConsumerWrite::QueueNotFound,
        })
    }
}

struct ConsumerDelete<'a> {
    access: &'a Access,
    queue: QueueId,
    consumer: ConsumerId,
    now_ms: u64,
}

impl Op for ConsumerDelete<'_> {
    lua_script!("consumer_delete", KeySet::Queue);
    /// `None`: no such queue; else whether the consumer existed.
    type Output = Option<bool>;

    fn keys(&self, keys: &Keys) -> Vec<String> {
        keys.queue(self.queue).all().to_vec()
    }

    fn args(&self, invocation: &mut ScriptInvocation<'_>) {
        invocation
            .arg(access_arg(self.access))
            .arg(self.consumer.to_string())
            .arg(self.now_ms);
    }

    fn decode(&self, reply: Reply) -> Result<Self::Output, CorruptData> {
        Ok(match reply.code()? {
            code::OK => Some(true),
            code::ABSENT => Some(false),
            _ => None,
        })
    }
}

impl Store {
    /// Writes a new queue and claims its name, unless the account already holds
    /// `max_queues` names.
    pub async fn create_queue(
        &self,
        queue: &Queue,
        max_queues: usize,
    ) -> Result<CreateQueue, StoreError> {
        if !self.call(QueueCreate { queue }).await? {
            return Err(CorruptData(format!("queue id {} already in use", queue.id)).into());
        }
        // The metadata exists before the name points at it, so a name whose queue has
        // no metadata can only be left over from an interrupted delete.
        let outcome = match self
            .claim_name(&queue.account, &queue.name, queue.id, max_queues)
            .await?
        {
            Claim::Claimed => return Ok(CreateQueue::Created),
            Claim::Taken(_) => CreateQueue::NameTaken,
            Claim::AccountFull => CreateQueue::TooManyQueues,
        };
        self.command::<()>(redis::cmd("UNLINK").arg(&self.keys.queue(queue.id)[Role::Meta]))
            .await?;
        Ok(outcome)
    }

    /// Points `name` at `id`, taking it over from a queue that no longer exists. A new
    /// name is refused once the account holds `max_names` (0: no limit).
    async fn claim_name(
        &self,
        account: &AccountId,
        name: &QueueName,
        id: QueueId,
        max_names: usize,
    ) -> Result<Claim, StoreError> {
        let mut takeover = String::new();
        // Two rounds: the second may take over a stale holder found by the first.
        for _ in 0..2 {
            let claim = NameClaim {
                account,
                name,
                id,
                takeover: &takeover,
                max_names,
            };
            let holder = match self.call(claim).await? {
                Claim::Taken(holder) => holder,
                settled => return Ok(settled),
            };
            if let Some(holder_id) = QueueId::parse(&holder) {
                let meta = &self.keys.queue(holder_id)[Role::Meta];
                if self.command::<bool>(redis::cmd("EXISTS").arg(meta)).await? {
                    return Ok(Claim::Taken(holder));
                }
            }
            takeover = holder;
        }
        Ok(Claim::Taken(takeover))
    }

    async fn release_name(
        &self,
        account: &AccountId,
        name: &QueueName,
        id: QueueId,
    ) -> Result<(), StoreError> {
        self.call(NameRelease { account, name, id }).await
    }

    /// Every queue of the account, oldest first, in two round trips.
    pub async fn list_queues(&self, account: &AccountId) -> Result<Vec<Queue>, StoreError> {
        let names: HashMap<String, String> = self
            .command(redis::cmd("HGETALL").arg(self.keys.account_queues(account)))
            .await?;
        let entries: Vec<(String, QueueId)> = names
            .into_iter()
            .filter_map(|(name, id)| QueueId::parse(&id).map(|id| (name, id)))
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let groups = entries
            .iter()
            .map(|(_, id)| {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(&self.keys.queue(*id)[Role::Meta]);
                vec![cmd]
            })
            .collect();
        let metas = self.query_groups(groups).await?;
        let mut queues = Vec::with_capacity(entries.len());
        for ((name, id), replies) in entries.into_iter().zip(metas) {
            let fields: HashMap<String, String> = match replies.first() {
                Some(reply) => redis::from_redis_value(reply.clone())
                    .map_err(|e| CorruptData(format!("queue {id} meta: {e}")))?,
                None => continue,
            };
            // Skip names left behind by an interrupted delete or rename.
            if fields.get("account").map(String::as_str) != Some(account.as_str())
                || fields.get("name") != Some(&name)
            {
                continue;
            }
            queues.push(codec::decode_queue(id, &fields)?);
        }
        queues.sort_by_key(|q| q.id);
        Ok(queues)
    }

    pub async fn get_queue(
        &self,
        account: &AccountId,
        id: QueueId,
    ) -> Result<Option<Queue>, StoreError> {
        let fields: HashMap<String, String> = self
            .command(redis::cmd("HGETALL").arg(&self.keys.queue(id)[Role::Meta]))
            .await?;
        if fields.get("account").map(String::as_str) != Some(account.as_str()) {
            return Ok(None);
        }
        Ok(Some(codec::decode_queue(id, &fields)?))
    }

    /// Renames (when `name` differs) and rewrites the settings.
    pub async fn update_queue(
        &self,
        current: &Queue,
        name: &QueueName,
        settings: &QueueSettings,
        now_ms: u64,
    ) -> Result<UpdateQueue, StoreError> {
        let renaming = *name != current.name;
        // A rename holds both names for a moment: not a new queue, so no limit.
        if renaming
            && self
                .claim_name(&current.account, name, current.id, 0)
                .await?
                != Claim::Claimed
        {
            return Ok(UpdateQueue::NameTaken);
        }
        let update = QueueUpdate {
            queue: current,
            rename: renaming.then_some(name),
            settings,
            now_ms,
        };
        let Some(updated) = self.call(update).await? else {
            return Ok(UpdateQueue::NotFound);
        };
        if renaming {
            self.release_name(&current.account, &current.name, current.id)
                .await?;
        }
        Ok(UpdateQueue::Updated(Box::new(updated)))
    }

    /// Deletes the queue and all its messages. `false`: no such queue.
    pub async fn delete_queue(&self, access: &Access, queue: QueueId) -> Result<bool, StoreError> {
        let Some(name) = self.call(QueueDelete { access, queue }).await? else {
            return Ok(false);
        };
        if let Some(name) = QueueName::parse(&name) {
            self.release_name(&access.account, &name, queue).await?;
        }
        Ok(true)
    }

    /// The live queue holding `name` in the account, if any.
    pub async fn find_queue(
        &self,
        account: &AccountId,
        name: &QueueName,
    ) -> Result<Option<QueueId>, StoreError> {
        let id: Option<String> = self
            .command(
                redis::cmd("HGET")
                    .arg(self.keys.account_queues(account))
                    .arg(name.as_str()),
            )
            .await?;
        let Some(id) = id.as_deref().and_then(QueueId::parse) else {
            return Ok(None);
        };
        Ok(self
            .get_queue(account, id)
            .await?
            .filter(|q| q.name == *name)
            .map(|q| q.id))
    }

    /// Creates (`replace = false`) or creates-or-replaces the queue's consumer.
    /// `consumer.created_ms` is the time of this write; a replaced consumer keeps its own.
    pub async fn write_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        consumer: &Consumer,
        replace: bool,
    ) -> Result<ConsumerWrite, StoreError> {
        self.call(ConsumerUpsert {
            access,
            queue,
            consumer,
            replace,
        })
        .await
    }

    /// `None`: no such queue; `Some(false)`: no such consumer.
    pub async fn delete_consumer(
        &self,
        access: &Access,
        queue: QueueId,
        consumer: ConsumerId,
        now_ms: u64,
    ) -> Result<Option<bool>, StoreError> {
        self.call(ConsumerDelete {
            access,
            queue,
            consumer,
            now_ms,
        })
        .await
    }
}
