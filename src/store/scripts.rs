//! The Lua scripts, one per operation, loaded from `lua/`.
//!
//! `lib.lua` is prepended to each so helpers are shared without `SCRIPT LOAD` tricks.
//! `redis::Script::invoke_async` sends EVALSHA and reloads on NOSCRIPT.

use redis::Script;

const LIB: &str = include_str!("lua/lib.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{LIB}\n{body}"))
}

pub struct Scripts {
    pub push: Script,
    pub pull: Script,
    pub ack: Script,
    pub peek: Script,
    pub metrics: Script,
    pub create_queue: Script,
    pub update_queue: Script,
    pub delete_queue: Script,
    pub consumer_upsert: Script,
    pub consumer_delete: Script,
    pub claim_name: Script,
    pub release_name: Script,
    pub purge: Script,
    pub extend: Script,
    pub expire: Script,
    pub message_get: Script,
    pub message_delete: Script,
    pub message_list: Script,
    pub redrive_take: Script,
    pub redrive_release: Script,
    pub sweep_claim: Script,
    pub dead_outbox: Script,
    pub dead_receive: Script,
    pub dead_forget: Script,
}

impl Scripts {
    pub fn load() -> Self {
        Self {
            push: script(include_str!("lua/push.lua")),
            pull: script(include_str!("lua/pull.lua")),
            ack: script(include_str!("lua/ack.lua")),
            peek: script(include_str!("lua/peek.lua")),
            metrics: script(include_str!("lua/metrics.lua")),
            create_queue: script(include_str!("lua/create_queue.lua")),
            update_queue: script(include_str!("lua/update_queue.lua")),
            delete_queue: script(include_str!("lua/delete_queue.lua")),
            consumer_upsert: script(include_str!("lua/consumer_upsert.lua")),
            consumer_delete: script(include_str!("lua/consumer_delete.lua")),
            claim_name: script(include_str!("lua/claim_name.lua")),
            release_name: script(include_str!("lua/release_name.lua")),
            purge: script(include_str!("lua/purge.lua")),
            extend: script(include_str!("lua/extend.lua")),
            expire: script(include_str!("lua/expire.lua")),
            message_get: script(include_str!("lua/message_get.lua")),
            message_delete: script(include_str!("lua/message_delete.lua")),
            message_list: script(include_str!("lua/message_list.lua")),
            redrive_take: script(include_str!("lua/redrive_take.lua")),
            redrive_release: script(include_str!("lua/redrive_release.lua")),
            sweep_claim: script(include_str!("lua/sweep_claim.lua")),
            dead_outbox: script(include_str!("lua/dead_outbox.lua")),
            dead_receive: script(include_str!("lua/dead_receive.lua")),
            dead_forget: script(include_str!("lua/dead_forget.lua")),
        }
    }
}
