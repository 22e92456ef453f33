//! Three brokers on one Redis; one of them SIGKILLed and restarted every few seconds
//! while producers push and consumers pull and ack.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Load, LoadShape, assert_nothing_lost, broker_env, env_u64, report, token};
use crate::processes::{BrokerProcess, workdir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_killed_mid_load_lose_no_acknowledged_message() {
    let dir = workdir("broker-kills");
    let redis_url =
        std::env::var("LEASEQ__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("lqrel:{}", uuid::Uuid::now_v7().simple());
    let secret = format!("jwt-{prefix}");
    let env = broker_env(&redis_url, &prefix, &secret);
    let mut brokers = Vec::new();
    for i in 0..3 {
        brokers.push(BrokerProcess::start(&env, dir.join(format!("broker-{i}.log"))).await);
    }
    let shape = LoadShape::from_env();
    let load = Load::setup(
        shape.clone(),
        brokers.iter().map(BrokerProcess::url).collect(),
        token(&secret),
    )
    .await;

    let kill_every = Duration::from_millis(env_u64("LEASEQ_RELIABILITY_KILL_EVERY_MS", 1_000));
    let started = Instant::now();
    let run = tokio::spawn(load.clone().drive());
    let mut kills = 0u64;
    let mut victim = 0;
    while !run.is_finished() {
        tokio::time::sleep(kill_every).await;
        if run.is_finished() {
            break;
        }
        brokers[victim].kill().await;
        kills += 1;
        // Down long enough for clients to notice and go elsewhere.
        tokio::time::sleep(Duration::from_millis(300)).await;
        brokers[victim].restart().await;
        victim = (victim + 1) % brokers.len();
    }
    run.await.expect("the load ran to completion");
    let elapsed = started.elapsed();

    let figures = load.final_figures().await;
    let verdict = load.ledger.verdict();
    report(
        "broker-kills",
        &shape,
        json!({"brokers": brokers.len(), "sigkills": kills,
               "kill_every_ms": kill_every.as_millis() as u64,
               "seconds": elapsed.as_secs_f64(), "logs": dir}),
        &verdict,
        &figures,
    );
    assert!(
        kills >= 2,
        "the run was too short to kill anything ({kills} kills)"
    );
    assert_nothing_lost(&verdict, &figures, &[]);
    for mut broker in brokers {
        broker.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
