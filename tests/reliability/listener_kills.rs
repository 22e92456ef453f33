//! Push delivery while brokers die: three brokers share a listener's lane through Redis;
//! one of them is SIGKILLed and restarted every second while messages are pushed and
//! delivered. Every message whose push was answered 2xx must reach the receiver.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::harness::{ACCOUNT, broker_env, env_u64, token};
use crate::processes::{BrokerProcess, workdir};

/// A receiver that takes ~10 ms per delivery (so kills land mid-delivery) and records
/// every message id with how often it came.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let shared = web::Data::new(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        App::new().app_data(shared.clone()).default_service(web::to(
            |body: web::Bytes, seen: web::Data<Arc<Mutex<Vec<String>>>>| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let delivery: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let ids = delivery["messages"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(|m| m["body"].as_str())
                            .map(str::to_owned)
                    })
                    .into_iter()
                    .flatten();
                seen.lock().expect("lock").extend(ids);
                HttpResponse::Ok().finish()
            },
        ))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_killed_mid_delivery_still_deliver_every_message() {
    let dir = workdir("listener-kills");
    let redis_url =
        std::env::var("LEASEQ__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("lqrel:{}", uuid::Uuid::now_v7().simple());
    let secret = format!("jwt-{prefix}");
    let mut env = broker_env(&redis_url, &prefix, &secret);
    env.push((
        "LEASEQ__LISTENERS__ALLOW_PRIVATE_DESTINATIONS".into(),
        "true".into(),
    ));
    let mut brokers = Vec::new();
    for i in 0..3 {
        brokers.push(BrokerProcess::start(&env, dir.join(format!("broker-{i}.log"))).await);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let token = token(&secret);
    let api = |broker: &BrokerProcess, path: &str| {
        format!("{}/client/v4/accounts/{ACCOUNT}{path}", broker.url())
    };
    let (hook, seen) = receiver().await;
    let queue: Value = client
        .post(api(&brokers[0], "/queues"))
        .bearer_auth(&token)
        .json(&json!({"queue_name": "pushed"}))
        .send()
        .await
        .expect("create queue")
        .json()
        .await
        .expect("JSON");
    let queue = queue["result"]["queue_id"]
        .as_str()
        .expect("queue_id")
        .to_owned();
    let created = client
        .post(api(&brokers[0], &format!("/queues/{queue}/listeners")))
        .bearer_auth(&token)
        .json(&json!({"name": "hook", "notify_url": hook,
                      "settings": {"batch_size": 20, "timeout_ms": 1000, "retry_delay": 0,
                                   "max_retries": 100}}))
        .send()
        .await
        .expect("create listener");
    assert_eq!(created.status().as_u16(), 200);

    let messages = env_u64("LEASEQ_RELIABILITY_LISTENER_MESSAGES", 3_000);
    let confirmed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let started = Instant::now();
    // Producers: batches of 20, each to the next broker, retried elsewhere on failure.
    let push = {
        let (client, token, confirmed) = (client.clone(), token.clone(), confirmed.clone());
        let urls: Vec<String> = brokers
            .iter()
            .map(|b| api(b, &format!("/queues/{queue}/messages/batch")))
            .collect();
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut next = 0usize;
            while n < messages {
                let bodies: Vec<String> = (n..(n + 20).min(messages))
                    .map(|i| format!("m{i}"))
                    .collect();
                let batch: Vec<Value> = bodies
                    .iter()
                    .map(|b| json!({"body": b, "dedup_id": b}))
                    .collect();
                loop {
                    let url = &urls[next % urls.len()];
                    next += 1;
                    let sent = client
                        .post(url)
                        .bearer_auth(&token)
                        .json(&json!({"messages": batch}))
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        confirmed
                            .lock()
                            .expect("lock")
                            .extend(bodies.iter().cloned());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                n += bodies.len() as u64;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Kill one broker a second, in turn, while pushes run and for a while after.
    let mut kills = 0;
    let mut victim = 0;
    while !push.is_finished() || kills < 4 {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        brokers[victim].kill().await;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        brokers[victim].restart().await;
        victim = (victim + 1) % brokers.len();
    }
    push.await.expect("pushes finished");
    // Everything confirmed must arrive: claims held by a killed broker lapse after the
    // listener's timeout plus 5 s, and its lane's hold after 10 s.
    let confirmed = confirmed.lock().expect("lock").clone();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: HashSet<String> = seen.lock().expect("lock").iter().cloned().collect();
        let missing = confirmed.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} confirmed messages never delivered (logs: {})",
            confirmed.len(),
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliveries = seen.lock().expect("lock").len();
    eprintln!(
        "listener-kills: {} messages, {kills} SIGKILLs, {deliveries} deliveries ({} repeated), {:.1} s",
        confirmed.len(),
        deliveries - confirmed.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(confirmed.len() as u64, messages);
}
