//! A Cluster primary SIGKILLed under load: its replica is promoted, the broker answers
//! 503 (code 15000) meanwhile and then serves again without a restart, and with
//! `durability.wait_replicas = 1` no acknowledged push is lost. (The promoted replica
//! has no replica of its own until the dead node comes back: until then, writes that
//! must reach one are 503s.)

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ACCOUNT, broker_env, token};
use crate::processes::{BrokerProcess, workdir};

/// A Cluster of its own (ports 7200-7205), so killing a primary disturbs no other test.
const PORT: u16 = 7200;

fn cluster(action: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(format!("{root}/scripts/cluster.sh"))
        .arg(action)
        .env("CLUSTER_PORT", PORT.to_string())
        .current_dir(root)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/cluster.sh runs");
    assert!(status.success(), "cluster.sh {action}");
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The port of the primary that holds `key`'s slot.
fn primary_of(key: &str) -> u16 {
    let slot: u16 = redis_cli(PORT, &["cluster", "keyslot", key])
        .trim()
        .parse()
        .expect("a slot");
    for line in redis_cli(PORT, &["cluster", "nodes"]).lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if !fields[2].contains("master") || fields[2].contains("fail") {
            continue;
        }
        for range in &fields[8..] {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(start), Ok(end)) = (start.parse::<u16>(), end.parse::<u16>())
                && (start..=end).contains(&slot)
            {
                let port = fields[1].split(['@', ':']).nth(1).expect("port");
                return port.parse().expect("a port");
            }
        }
    }
    panic!("no primary holds slot {slot}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_load_loses_no_acknowledged_message() {
    cluster("start");
    let dir = workdir("cluster-failover");
    let prefix = format!("lqrel:{}", uuid::Uuid::now_v7().simple());
    let secret = format!("jwt-{prefix}");
    let mut env = broker_env(&format!("redis://127.0.0.1:{PORT}"), &prefix, &secret);
    let seeds: Vec<String> = (0..3)
        .map(|i| format!("\"redis://127.0.0.1:{}\"", PORT + i))
        .collect();
    env.push((
        "LEASEQ__REDIS__CLUSTER_NODES".into(),
        format!("[{}]", seeds.join(",")),
    ));
    env.push(("LEASEQ__DURABILITY__WAIT_REPLICAS".into(), "1".into()));
    let broker = BrokerProcess::start(&env, dir.join("broker.log")).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let token = token(&secret);
    let api = format!("{}/client/v4/accounts/{ACCOUNT}", broker.url());
    // A new Cluster's replicas may still be syncing: until then a write waiting for one
    // is a 503.
    let deadline = Instant::now() + Duration::from_secs(30);
    let queue = loop {
        let created: Value = client
            .post(format!("{api}/queues"))
            .bearer_auth(&token)
            .json(&json!({"queue_name": "failover"}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        if let Some(id) = created["result"]["queue_id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no queue: {created}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let victim = primary_of(&format!("{{{queue}}}"));

    // Push numbered messages, each retried until acknowledged; kill the queue's primary
    // a second in.
    let mut confirmed = HashSet::new();
    let mut unavailable = 0;
    let started = Instant::now();
    let mut killed = false;
    for n in 0..300u32 {
        if !killed && started.elapsed() > Duration::from_secs(1) {
            let pid = std::fs::read_to_string(format!(
                "{}/data/cluster/{victim}/redis.pid",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("the primary's pid");
            Command::new("kill")
                .arg("-9")
                .arg(pid.trim())
                .status()
                .expect("kill");
            killed = true;
            // A supervisor brings the dead node back: it rejoins as the promoted
            // replica's replica, so writes can again reach one.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(3));
                cluster("start");
            });
        }
        let body = format!("m{n}");
        loop {
            let reply = client
                .post(format!("{api}/queues/{queue}/messages"))
                .bearer_auth(&token)
                .json(&json!({"body": body, "dedup_id": body}))
                .send()
                .await;
            match reply.map(|r| r.status().as_u16()) {
                Ok(200) => {
                    confirmed.insert(body.clone());
                    break;
                }
                Ok(503) | Err(_) => {
                    unavailable += 1;
                    assert!(started.elapsed() < Duration::from_secs(60), "no recovery");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(other) => panic!("unexpected {other}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(killed);
    // Everything acknowledged is there, once.
    let mut seen = HashSet::new();
    loop {
        let pulled: Value = client
            .post(format!("{api}/queues/{queue}/messages/pull"))
            .bearer_auth(&token)
            .json(&json!({"batch_size": 100, "visibility_timeout_ms": 60000}))
            .send()
            .await
            .expect("pull")
            .json()
            .await
            .expect("json");
        let messages = pulled["result"]["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            assert!(
                seen.insert(m["body"].as_str().expect("body").to_owned()),
                "twice: {m}"
            );
        }
    }
    let missing: Vec<_> = confirmed.difference(&seen).collect();
    eprintln!(
        "cluster-failover: {} pushed, {unavailable} answers of 503 or none while the replica took over, {} lost",
        confirmed.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "lost {missing:?}");
    assert_eq!(confirmed.len(), 300);
    drop(broker);
    cluster("stop");
}
