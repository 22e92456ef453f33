//! Encoding of what leaseq stores in Redis: message records and queue metadata.

use std::collections::HashMap;

use crate::model::{
    AccountId, Consumer, ConsumerId, ConsumerSettings, ContentType, GroupId, Jurisdiction,
    MessageId, Queue, QueueId, QueueName, QueueSettings, StoredMessage,
};

/// Data in Redis that leaseq could not have written.
#[derive(Debug, thiserror::Error)]
#[error("corrupt data in Redis: {0}")]
pub struct CorruptData(pub String);

/// A message record, version 2:
/// `2<t|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<body>`,
/// or, for a message of a group, version 3:
/// `3<t|j><timestamp_ms>:<attempts>:<lease_generation>:<entry_generation>:<group length>:<group><body>`.
///
/// `entry_generation` is the queue's lease sequence when the message entered the queue
/// (0 for a push; a fresh value when a dead-letter move or a redrive brings it back), so
/// leases from an earlier life, all numbered at or below it, ack nothing. The group
/// travels in the record so that it follows the message wherever the record goes (dead
/// letters, redrives). Version 1 records (`<t|j><timestamp_ms>:<attempts>:<lease_generation>:<body>`,
/// written before the entry generation existed) read as entry generation 0. The Lua
/// scripts read and rewrite the same header (`parse_record` and `record` in
/// `lua/lib.lua`).
pub fn encode_record(
    content_type: ContentType,
    timestamp_ms: u64,
    group: Option<&GroupId>,
    body: &str,
) -> String {
    let group = group.map(GroupId::as_str);
    let mut rec = String::with_capacity(body.len() + 30 + group.map_or(0, str::len));
    match group {
        None => rec.push(RECORD_VERSION),
        Some(_) => rec.push(GROUPED_RECORD_VERSION),
    }
    rec.push(content_tag(content_type));
    rec.push_str(&timestamp_ms.to_string());
    rec.push_str(":0:0:0:");
    if let Some(group) = group {
        rec.push_str(&group.len().to_string());
        rec.push(':');
        rec.push_str(group);
    }
    rec.push_str(body);
    rec
}

/// The first byte of a version 2 record (version 1 records start with the content tag).
pub const RECORD_VERSION: char = '2';
/// The first byte of a version 3 record: a version 2 record with a group.
pub const GROUPED_RECORD_VERSION: char = '3';

fn content_tag(content_type: ContentType) -> char {
    match content_type {
        ContentType::Text => 't',
        ContentType::Json => 'j',
    }
}

pub fn decode_record(id: &str, rec: &[u8]) -> Result<StoredMessage, CorruptData> {
    let corrupt = || CorruptData(format!("message record {id:?}"));
    let id = MessageId::parse(id).ok_or_else(corrupt)?;
    // Version 2 has one more number (the entry generation) than version 1; version 3
    // one more again (the group's length), then the group.
    let (rec, fields) = match rec.first() {
        Some(b'2') => (&rec[1..], 4),
        Some(b'3') => (&rec[1..], 5),
        _ => (rec, 3),
    };
    let content_type = match rec.first() {
        Some(b't') => ContentType::Text,
        Some(b'j') => ContentType::Json,
        _ => return Err(corrupt()),
    };
    let mut rest = &rec[1..];
    let mut numbers = [0u64; 5];
    for n in &mut numbers[..fields] {
        let colon = rest.iter().position(|&b| b == b':').ok_or_else(corrupt)?;
        *n = std::str::from_utf8(&rest[..colon])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(corrupt)?;
        rest = &rest[colon + 1..];
    }
    let group_id = if fields == 5 {
        let len = usize::try_from(numbers[4]).map_err(|_| corrupt())?;
        let group = rest.get(..len).ok_or_else(corrupt)?;
        rest = &rest[len..];
        let group = std::str::from_utf8(group).map_err(|_| corrupt())?;
        Some(GroupId::parse(group).ok_or_else(corrupt)?)
    } else {
        None
    };
    let body = String::from_utf8(rest.to_vec()).map_err(|_| corrupt())?;
    Ok(StoredMessage {
        id,
        content_type,
        timestamp_ms: numbers[0],
        attempts: u32::try_from(numbers[1]).map_err(|_| corrupt())?,
        lease_generation: numbers[2],
        group_id,
        body,
    })
}

/// The version of the key layout a queue is stored in (its `meta.layout`; none means 1).
/// Queues of layout 1 are moved onto this one by `lua/migrate.lua`.
pub const LAYOUT: u32 = 2;

/// Queue metadata fields, as written by `create_queue.lua` and `update_queue.lua`.
pub fn queue_fields(queue: &Queue) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("account", queue.account.to_string()),
        ("name", queue.name.to_string()),
        ("created_ms", queue.created_ms.to_string()),
        ("layout", LAYOUT.to_string()),
    ];
    if let Some(jurisdiction) = queue.jurisdiction {
        fields.push(("jurisdiction", jurisdiction.as_str().to_owned()));
    }
    fields.extend(settings_fields(&queue.settings, queue.modified_ms));
    fields
}

/// The fields a queue update rewrites.
pub fn settings_fields(settings: &QueueSettings, modified_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("modified_ms", modified_ms.to_string()),
        ("delivery_delay", settings.delivery_delay.to_string()),
        (
            "delivery_paused",
            u8::from(settings.delivery_paused).to_string(),
        ),
        ("retention", settings.message_retention_period.to_string()),
        ("dedup_window", settings.dedup_window_seconds.to_string()),
        ("max_messages", settings.max_backlog_messages.to_string()),
        ("max_bytes", settings.max_backlog_bytes.to_string()),
        (
            "group_max_inflight",
            settings.group_max_inflight.to_string(),
        ),
    ]
}

/// The consumer fields (without `c_id` and `c_created_ms`, which the script sets once).
pub fn consumer_fields(
    dead_letter_queue: Option<&QueueName>,
    settings: &ConsumerSettings,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "c_dlq",
            dead_letter_queue.map(|n| n.to_string()).unwrap_or_default(),
        ),
        ("c_batch_size", settings.batch_size.to_string()),
        ("c_max_retries", settings.max_retries.to_string()),
        ("c_retry_delay", settings.retry_delay.to_string()),
        ("c_retry_delay_max", settings.retry_delay_max.to_string()),
        (
            "c_visibility_timeout_ms",
            settings.visibility_timeout_ms.to_string(),
        ),
    ]
}

pub fn decode_queue(id: QueueId, fields: &HashMap<String, String>) -> Result<Queue, CorruptData> {
    let corrupt = |field: &str| CorruptData(format!("queue {id} field {field}"));
    let text = |field: &'static str| fields.get(field).ok_or_else(|| corrupt(field));
    let number = |field: &'static str| -> Result<u64, CorruptData> {
        text(field)?.parse().map_err(|_| corrupt(field))
    };
    let optional_number = |field: &'static str| -> Result<u64, CorruptData> {
        fields
            .get(field)
            .map_or(Ok(0), |v| v.parse().map_err(|_| corrupt(field)))
    };
    let small = |field: &'static str| -> Result<u32, CorruptData> {
        u32::try_from(number(field)?).map_err(|_| corrupt(field))
    };
    let consumer = match fields.get("c_id") {
        None => None,
        Some(raw) => Some(Consumer {
            id: ConsumerId::parse(raw).ok_or_else(|| corrupt("c_id"))?,
            created_ms: number("c_created_ms")?,
            dead_letter_queue: match text("c_dlq")?.as_str() {
                "" => None,
                name => Some(QueueName::parse(name).ok_or_else(|| corrupt("c_dlq"))?),
            },
            settings: ConsumerSettings {
                batch_size: small("c_batch_size")?,
                max_retries: small("c_max_retries")?,
                retry_delay: small("c_retry_delay")?,
                // Consumers written before the setting existed have none: off.
                retry_delay_max: u32::try_from(optional_number("c_retry_delay_max")?)
                    .map_err(|_| corrupt("c_retry_delay_max"))?,
                visibility_timeout_ms: number("c_visibility_timeout_ms")?,
            },
        }),
    };
    Ok(Queue {
        id,
        account: AccountId::parse(text("account")?).ok_or_else(|| corrupt("account"))?,
        name: QueueName::parse(text("name")?).ok_or_else(|| corrupt("name"))?,
        created_ms: number("created_ms")?,
        modified_ms: number("modified_ms")?,
        settings: QueueSettings {
            delivery_delay: small("delivery_delay")?,
            delivery_paused: text("delivery_paused")? == "1",
            message_retention_period: small("retention")?,
            dedup_window_seconds: fields
                .get("dedup_window")
                .and_then(|v| v.parse().ok())
                .unwrap_or(QueueSettings::default().dedup_window_seconds),
            // Queues written before the quota existed have none of their own.
            max_backlog_messages: optional_number("max_messages")?,
            max_backlog_bytes: optional_number("max_bytes")?,
            group_max_inflight: u32::try_from(optional_number("group_max_inflight")?)
                .map_err(|_| corrupt("group_max_inflight"))?,
        },
        consumer,
        purged_ms: fields.get("purged_ms").and_then(|v| v.parse().ok()),
        jurisdiction: fields
            .get("jurisdiction")
            .map(|j| Jurisdiction::parse(j).ok_or_else(|| corrupt("jurisdiction")))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let id = MessageId::generate();
        let rec = encode_record(ContentType::Json, 1_710_950_954_154, None, r#"{"a":"b:c"}"#);
        assert_eq!(rec, r#"2j1710950954154:0:0:0:{"a":"b:c"}"#);
        let msg = decode_record(&id.to_string(), rec.as_bytes()).expect("decodes");
        assert_eq!(msg.id, id);
        assert_eq!(msg.content_type, ContentType::Json);
        assert_eq!(msg.timestamp_ms, 1_710_950_954_154);
        assert_eq!((msg.attempts, msg.lease_generation), (0, 0));
        assert_eq!(msg.group_id, None);
        assert_eq!(msg.body, r#"{"a":"b:c"}"#);
    }

    #[test]
    fn grouped_records_carry_their_group_before_the_body() {
        let id = MessageId::generate();
        let group = GroupId::parse("order:7 é").expect("valid");
        let rec = encode_record(ContentType::Text, 5, Some(&group), "12:body");
        assert_eq!(rec, "3t5:0:0:0:10:order:7 é12:body");
        let msg = decode_record(&id.to_string(), rec.as_bytes()).expect("decodes");
        assert_eq!(msg.group_id, Some(group));
        assert_eq!(msg.body, "12:body");
        for bad in ["3t5:0:0:0:99:ab", "3t5:0:0:0:0:body", "3t5:0:0:0:x:ab"] {
            assert!(
                decode_record(&id.to_string(), bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn version_1_records_are_still_read() {
        let id = MessageId::generate();
        let msg = decode_record(&id.to_string(), b"t1710950954154:3:42:1:2:body").expect("decodes");
        assert_eq!(msg.content_type, ContentType::Text);
        assert_eq!((msg.attempts, msg.lease_generation), (3, 42));
        assert_eq!(msg.body, "1:2:body");
        let v2 =
            decode_record(&id.to_string(), b"2t1710950954154:3:42:7:1:2:body").expect("decodes");
        assert_eq!((v2.attempts, v2.lease_generation), (3, 42));
        assert_eq!(v2.body, "1:2:body");
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let id = MessageId::generate().to_string();
        for bad in [
            "",
            "x1:0:0:",
            "t1:0:",
            "tx:0:0:",
            "t1:99999999999:0:b",
            "2t1:0:0:",
            "2x1:0:0:0:",
            "2",
        ] {
            assert!(decode_record(&id, bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queues_round_trip() {
        let queue = Queue {
            id: QueueId::generate(),
            account: AccountId::parse("acct").expect("valid"),
            name: QueueName::parse("orders").expect("valid"),
            created_ms: 1,
            modified_ms: 2,
            settings: QueueSettings {
                delivery_delay: 3,
                delivery_paused: true,
                message_retention_period: 60,
                dedup_window_seconds: 300,
                max_backlog_messages: 7,
                max_backlog_bytes: 8,
                group_max_inflight: 1,
            },
            consumer: None,
            purged_ms: None,
            jurisdiction: None,
        };
        let mut fields: HashMap<String, String> = queue_fields(&queue)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(decode_queue(queue.id, &fields).expect("decodes"), queue);

        let settings = ConsumerSettings {
            batch_size: 9,
            ..ConsumerSettings::default()
        };
        let dlq = QueueName::parse("dead").expect("valid");
        fields.extend(
            consumer_fields(Some(&dlq), &settings)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
        let consumer_id = ConsumerId::generate();
        fields.insert("c_id".into(), consumer_id.to_string());
        fields.insert("c_created_ms".into(), "5".into());
        let decoded = decode_queue(queue.id, &fields).expect("decodes");
        assert_eq!(
            decoded.consumer,
            Some(Consumer {
                id: consumer_id,
                created_ms: 5,
                dead_letter_queue: Some(dlq),
                settings
            })
        );
    }
}
