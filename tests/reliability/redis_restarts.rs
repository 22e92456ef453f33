//! Two brokers on a Redis of their own with `appendfsync always`; Redis SIGKILLed and
//! restarted twice mid-load. The brokers are never restarted.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Load, LoadShape, assert_nothing_lost, broker_env, report, token};
use crate::processes::{BrokerProcess, RedisProcess, workdir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_loses_no_acknowledged_push_and_brokers_recover() {
    let dir = workdir("redis-restarts");
    let mut redis = RedisProcess::start(&dir).await;
    let prefix = format!("lqrel:{}", uuid::Uuid::now_v7().simple());
    let secret = format!("jwt-{prefix}");
    let env = broker_env(&redis.url(), &prefix, &secret);
    let mut brokers = Vec::new();
    for i in 0..2 {
        brokers.push(BrokerProcess::start(&env, dir.join(format!("broker-{i}.log"))).await);
    }
    let pids: Vec<_> = brokers.iter().map(BrokerProcess::pid).collect();
    let shape = LoadShape::from_env();
    let load = Load::setup(
        shape.clone(),
        brokers.iter().map(BrokerProcess::url).collect(),
        token(&secret),
    )
    .await;

    let started = Instant::now();
    let run = tokio::spawn(load.clone().drive());
    let mut restarts = 0u64;
    let mut downtime = Duration::ZERO;
    // Kill Redis when a third and two thirds of the messages have been delivered, so
    // both happen with pushes, leases and acks in flight.
    for share in [3, 3 * 2] {
        let target = shape.messages * share as u64 / 9;
        while load.ledger.delivered_count() < target && !run.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if run.is_finished() {
            break;
        }
        let down = Instant::now();
        redis.kill().await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        redis.restart().await;
        downtime += down.elapsed();
        restarts += 1;
    }
    run.await.expect("the load ran to completion");
    let elapsed = started.elapsed();

    let figures = load.final_figures().await;
    let verdict = load.ledger.verdict();
    report(
        "redis-restarts",
        &shape,
        json!({"brokers": brokers.len(), "redis_sigkills": restarts,
               "redis_down_seconds": downtime.as_secs_f64(),
               "appendfsync": "always", "seconds": elapsed.as_secs_f64(), "logs": dir}),
        &verdict,
        &figures,
    );
    assert_eq!(
        restarts, 2,
        "the run ended before Redis could be restarted twice"
    );
    for broker in &mut brokers {
        assert!(broker.is_running(), "a broker exited while Redis was down");
    }
    assert_eq!(
        brokers.iter().map(BrokerProcess::pid).collect::<Vec<_>>(),
        pids,
        "brokers recover without a restart"
    );
    assert_eq!(brokers.iter().map(|b| b.starts).sum::<u32>(), 2);
    // While Redis is down the brokers answer 503 (code 15000), fast; nothing else 5xx.
    assert_nothing_lost(&verdict, &figures, &[503]);
    assert!(
        verdict.statuses.get(&503).copied().unwrap_or(0) > 0,
        "no request noticed the outage: {verdict:#?}"
    );
    for mut broker in brokers {
        broker.kill().await;
    }
    redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
