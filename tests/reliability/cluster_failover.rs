//! A Cluster primary SIGKILLed under load: its replica is promoted, the broker answers
//! 503 (code 15000) meanwhile and then serves again without a restart, and with
//! `durability.wait_replicas = 1` no acknowledged push is lost. (The promoted replica
//! has no replica of its own until the dead node comes back: until then, writes that
//! must reach one are 503s.)

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    ACCOUNT, Load, LoadShape, assert_nothing_lost, broker_env, env_u64, report, token,
};
use crate::processes::{BrokerProcess, workdir};

/// Each test has a Cluster of its own (its port to port + 5), so killing a primary or
/// stopping the Cluster disturbs no other test.
const FAILOVER_PORT: u16 = 7200;
const KILLS_PORT: u16 = 7300;

fn cluster(port: u16, action: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(format!("{root}/scripts/cluster.sh"))
        .arg(action)
        .env("CLUSTER_PORT", port.to_string())
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

/// The port of the primary of the Cluster on `port` that holds `key`'s slot.
fn primary_of(port: u16, key: &str) -> u16 {
    let slot: u16 = redis_cli(port, &["cluster", "keyslot", key])
        .trim()
        .parse()
        .expect("a slot");
    for line in redis_cli(port, &["cluster", "nodes"]).lines() {
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
    cluster(FAILOVER_PORT, "start");
    let dir = workdir("cluster-failover");
    let prefix = format!("lqrel:{}", uuid::Uuid::now_v7().simple());
    let secret = format!("jwt-{prefix}");
    let env = cluster_env(FAILOVER_PORT, &prefix, &secret);
    let broker = BrokerProcess::start(&env, dir.join("broker.log")).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let token = token(&secret);
    let api = format!("{}/client/v4/accounts/{ACCOUNT}", broker.url());
    await_replicated_writes(&broker.url(), &token).await;
    let queue = create_queue(&client, &api, &token, "failover").await;
    let victim = primary_of(FAILOVER_PORT, &format!("{{{queue}}}"));
    // The broker again, with the victim as its first seed node, which is where it
    // subscribes for wake-ups: killing it must cost neither messages nor wake-ups.
    drop(broker);
    let mut env = env;
    let seeds: Vec<String> = std::iter::once(victim)
        .chain((FAILOVER_PORT..FAILOVER_PORT + 6).filter(|&p| p != victim))
        .map(|port| format!("\"redis://127.0.0.1:{port}\""))
        .collect();
    env.retain(|(k, _)| k != "LEASEQ__REDIS__CLUSTER_NODES");
    env.push((
        "LEASEQ__REDIS__CLUSTER_NODES".into(),
        format!("[{}]", seeds.join(",")),
    ));
    let broker = BrokerProcess::start(&env, dir.join("broker-2.log")).await;
    let api = format!("{}/client/v4/accounts/{ACCOUNT}", broker.url());

    // Push numbered messages, each retried until acknowledged; kill the queue's primary
    // a second in.
    let mut confirmed = HashSet::new();
    let mut unavailable = 0;
    let started = Instant::now();
    let mut killed = false;
    for n in 0..300u32 {
        if !killed && started.elapsed() > Duration::from_secs(1) {
            kill_node(victim);
            killed = true;
            // A supervisor brings the dead node back: it rejoins as the promoted
            // replica's replica, so writes can again reach one.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(3));
                cluster(FAILOVER_PORT, "start");
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

    // Wake-ups survived the seed node's death: a long poll ends at the push, not at its
    // deadline.
    let woken = create_queue(&client, &api, &token, "woken").await;
    let poll = tokio::spawn({
        let (client, url, token) = (
            client.clone(),
            format!("{api}/queues/{woken}/messages/pull"),
            token.clone(),
        );
        async move {
            let reply: Value = client
                .post(url)
                .bearer_auth(&token)
                .json(&json!({"wait_time_ms": 8_000}))
                .send()
                .await
                .expect("pull")
                .json()
                .await
                .expect("json");
            (Instant::now(), reply)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushed_at = Instant::now();
    let pushed = client
        .post(format!("{api}/queues/{woken}/messages"))
        .bearer_auth(&token)
        .json(&json!({"body": "wake up"}))
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 200);
    let (returned_at, reply) = poll.await.expect("poll");
    assert_eq!(reply["result"]["messages"][0]["body"], "wake up", "{reply}");
    assert!(
        returned_at.duration_since(pushed_at) < Duration::from_secs(4),
        "the long poll was not woken by the push"
    );
    drop(broker);
    cluster(FAILOVER_PORT, "stop");
}

/// Three brokers on the Cluster with `wait_replicas = 1`: one broker SIGKILLed and
/// restarted every `LEASEQ_RELIABILITY_KILL_EVERY_MS`, and the queue's primary
/// SIGKILLed once, a third of the way in (its replica takes over; the dead node comes
/// back as a replica 3 s later). Nothing acknowledged may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_and_a_primary_killed_under_load_lose_no_acknowledged_message() {
    cluster(KILLS_PORT, "start");
    let dir = workdir("cluster-kills");
    let prefix = format!("lqrel:{}", uuid::Uuid::now_v7().simple());
    let secret = format!("jwt-{prefix}");
    let env = cluster_env(KILLS_PORT, &prefix, &secret);
    let mut brokers = Vec::new();
    for i in 0..3 {
        brokers.push(BrokerProcess::start(&env, dir.join(format!("broker-{i}.log"))).await);
    }
    await_replicated_writes(&brokers[0].url(), &token(&secret)).await;
    let shape = LoadShape::from_env();
    let load = Load::setup(
        shape.clone(),
        brokers.iter().map(BrokerProcess::url).collect(),
        token(&secret),
    )
    .await;
    let victim = primary_of(KILLS_PORT, &format!("{{{}}}", load.queue_id));

    let kill_every = Duration::from_millis(env_u64("LEASEQ_RELIABILITY_KILL_EVERY_MS", 1_000));
    let started = Instant::now();
    let run = tokio::spawn(load.clone().drive());
    let (mut kills, mut victim_broker, mut primary_killed) = (0u64, 0, false);
    while !run.is_finished() {
        tokio::time::sleep(kill_every).await;
        if run.is_finished() {
            break;
        }
        if !primary_killed && load.ledger.delivered_count() >= shape.messages / 3 {
            kill_node(victim);
            primary_killed = true;
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(3));
                cluster(KILLS_PORT, "start");
            });
        }
        brokers[victim_broker].kill().await;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        brokers[victim_broker].restart().await;
        victim_broker = (victim_broker + 1) % brokers.len();
    }
    run.await.expect("the load ran to completion");
    let elapsed = started.elapsed();

    let figures = load.final_figures().await;
    let verdict = load.ledger.verdict();
    report(
        "cluster-kills",
        &shape,
        json!({"brokers": brokers.len(), "broker_sigkills": kills, "primary_sigkills": 1,
               "kill_every_ms": kill_every.as_millis() as u64, "wait_replicas": 1,
               "seconds": elapsed.as_secs_f64(), "logs": dir}),
        &verdict,
        &figures,
    );
    assert!(
        primary_killed,
        "the run ended before the primary was killed"
    );
    assert!(kills >= 2, "the run was too short ({kills} broker kills)");
    // 503s while the replica took over, and while it had no replica of its own.
    assert_nothing_lost(&verdict, &figures, &[503]);
    for mut broker in brokers {
        broker.kill().await;
    }
    cluster(KILLS_PORT, "stop");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Creates a queue through the broker at `api`; its id.
async fn create_queue(client: &reqwest::Client, api: &str, token: &str, name: &str) -> String {
    let created: Value = client
        .post(format!("{api}/queues"))
        .bearer_auth(token)
        .json(&json!({ "queue_name": name }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    created["result"]["queue_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no queue: {created}"))
        .to_owned()
}

/// Broker environment for the Cluster on `port`, writes waiting for one replica.
fn cluster_env(port: u16, prefix: &str, secret: &str) -> Vec<(String, String)> {
    let mut env = broker_env(&format!("redis://127.0.0.1:{port}"), prefix, secret);
    let seeds: Vec<String> = (0..3)
        .map(|i| format!("\"redis://127.0.0.1:{}\"", port + i))
        .collect();
    env.push((
        "LEASEQ__REDIS__CLUSTER_NODES".into(),
        format!("[{}]", seeds.join(",")),
    ));
    env.push(("LEASEQ__DURABILITY__WAIT_REPLICAS".into(), "1".into()));
    env
}

/// SIGKILLs the Redis node on `port`.
fn kill_node(port: u16) {
    let pid = std::fs::read_to_string(format!(
        "{}/data/cluster/{port}/redis.pid",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the node's pid");
    Command::new("kill")
        .arg("-9")
        .arg(pid.trim())
        .status()
        .expect("kill");
}

/// Waits until a write is acknowledged by a replica: a new Cluster's replicas may still
/// be syncing, and until then such a write is a 503.
async fn await_replicated_writes(broker: &str, token: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = client
            .post(format!("{broker}/client/v4/accounts/{ACCOUNT}/queues"))
            .bearer_auth(token)
            .json(&json!({"queue_name": format!("warm-{}", uuid::Uuid::now_v7().simple())}))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if matches!(created, Ok(200)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no replicated write: {created:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
