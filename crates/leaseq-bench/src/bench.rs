//! The scenarios, their arguments and the run that ties them together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use secrecy::SecretString;
use serde::Serialize;

use crate::target::{HttpTarget, RawTarget, Target};
use crate::workload::{Latency, ThroughputRun, Workload};
use crate::{redis_info, report, workload};
use leaseq::auth::{TokenRequest, all_scopes};
use leaseq::broker::command::NewQueue;
use leaseq::broker::lease::LeaseSigner;
use leaseq::broker::{Broker, Limits};
use leaseq::config::{JwtKey, Secrets, Settings};
use leaseq::model::{Access, AccountId, QueueId};
use leaseq::model::{ContentType, NewMessage, QueueName};
use leaseq::startup::Application;
use leaseq::store::{Store, StoreOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Producers push, consumers pull and ack, until N messages are acked.
    Throughput,
    /// Pull latency with 10 000 and 1 000 000 messages queued.
    Backlog,
    /// Redis memory per queued message.
    Memory,
    /// Time of a `GET /metrics` scrape with many queues.
    Scrape,
    /// Everything `make bench` records in docs/benchmarks.md.
    Standard,
    /// Push delivery to a local receiver: throughput at batch 100 and 1, and
    /// push-to-delivery latency at 1 000 msg/s (printed, not written).
    Listeners,
    /// The throughput workload over --spread-queues queues at once (one producer and one
    /// consumer each), with the CPU each Redis node of --cpu-nodes spent per message:
    /// how a Cluster spreads the work over its primaries (printed as JSON, not written).
    Spread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// The broker over HTTP, then the same cycle on Redis directly, and their ratio.
    Both,
    Http,
    RawRedis,
}

/// Measure throughput, latency, Redis commands and memory (see docs/benchmarks.md).
#[derive(Debug, Clone, Parser)]
#[command(name = "leaseq-bench", version)]
pub struct BenchArgs {
    /// A TOML file overriding config/default.toml (for redis.url and the key prefix).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "throughput")]
    pub scenario: Scenario,
    #[arg(long, value_enum, default_value = "both")]
    pub target: TargetKind,
    /// Base URL of a running broker (e.g. http://127.0.0.1:8080); default: start one in
    /// this process on a free port, against redis.url.
    #[arg(long)]
    pub url: Option<String>,
    /// Token for --url (needs queues:write, messages:push, messages:pull on --account).
    #[arg(long, env = "LEASEQ_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Account the benchmark queues are created in.
    #[arg(long, default_value = "bench")]
    pub account: String,
    /// Message body size in bytes (S); at least 16.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Messages per push and per pull (B), 1 to 100.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Producer tasks (P).
    #[arg(long, default_value_t = 2)]
    pub producers: usize,
    /// Consumer tasks (C).
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Messages to push, consume and ack (N).
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Time limit of one throughput run.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub time_limit: Duration,
    /// Repeat each measurement and report the median run.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Backlog sizes for the backlog scenario.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    pub backlogs: Vec<u64>,
    /// Pulls measured at each backlog size.
    #[arg(long, default_value_t = 6000)]
    pub backlog_samples: usize,
    /// Queues (each holding one message) for the scrape scenario.
    #[arg(long, default_value_t = 10_000)]
    pub scrape_queues: usize,
    /// Message groups each throughput push spreads its messages over (0: none; SPEC §13).
    #[arg(long, default_value_t = 0)]
    pub groups: u64,
    /// Queues of the spread scenario.
    #[arg(long, default_value_t = 30)]
    pub spread_queues: usize,
    /// Redis nodes whose CPU the spread scenario reads (`INFO cpu`), e.g. a Cluster's
    /// primaries; default: redis.url.
    #[arg(long, value_delimiter = ',')]
    pub cpu_nodes: Vec<String>,
    /// Messages queued for the memory scenario.
    #[arg(long, default_value_t = 100_000)]
    pub memory_messages: u64,
    /// Print the results as JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the results as Markdown to this file (what `make bench` does).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// The median run of one throughput configuration, and every run's msgs/s.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    pub target: &'static str,
    pub batch: usize,
    pub size: usize,
    pub producers: usize,
    pub consumers: usize,
    pub messages: u64,
    pub runs_msgs_per_sec: Vec<f64>,
    pub median: ThroughputRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacklogResult {
    pub backlog: u64,
    pub pull_batch: u32,
    pub pull: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub messages: u64,
    pub body_bytes: usize,
    pub used_memory_delta: i64,
    pub bytes_per_message: f64,
    pub overhead_per_message: f64,
    /// Key role → `MEMORY USAGE` bytes per message.
    pub by_key: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    pub command: String,
    pub throughput: Vec<ThroughputResult>,
    pub backlog: Vec<BacklogResult>,
    pub memory: Option<MemoryResult>,
    pub scrape: Option<ScrapeResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScrapeResult {
    pub queues: usize,
    /// Each scrape's time, ms (metrics cache off, so every one reads Redis).
    pub scrapes_ms: Vec<f64>,
    pub median_ms: f64,
    /// Median time of the Redis reads alone (the store's pipelines, no HTTP, no text).
    pub read_median_ms: f64,
    pub bytes: usize,
    /// Resident memory of this process, which holds the broker, before the queues were
    /// created and after the scrapes (kB; 0 where /proc cannot tell).
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
}

/// The spread scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SpreadResult {
    pub queues: usize,
    pub batch: usize,
    pub messages: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub nodes: Vec<NodeCpu>,
    /// The busiest node's CPU per message: with a core per node, the rate Redis could
    /// carry is about 1 / this.
    pub busiest_node_usec_per_message: f64,
}

/// One Redis node's CPU (user + system) during a spread run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCpu {
    pub node: String,
    pub cpu_seconds: f64,
    pub usec_per_message: f64,
    /// Share of the nodes' CPU.
    pub share: f64,
}

/// Scrapes of the scrape scenario.
pub const SCRAPES: usize = 10;

/// CPU seconds (user + system) each Redis node has used, from `INFO cpu`.
async fn nodes_cpu(nodes: &[String]) -> Result<Vec<f64>, String> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut conn = redis::Client::open(node.as_str())
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("{node}: {e}"))?;
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("{node}: {e}"))?;
        out.push(redis_info::cpu_seconds(&info).ok_or(format!("{node}: no used_cpu in INFO"))?);
    }
    Ok(out)
}

/// This process's resident memory, kB (Linux /proc; 0 elsewhere).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What the benchmark talks to: Redis (always) and a broker.
struct Bench {
    args: BenchArgs,
    account: AccountId,
    store: Store,
    /// Creates the raw target's queues with every rule a broker applies to one.
    broker: Broker,
    redis: redis::aio::MultiplexedConnection,
    http: Option<(String, String)>,
    client: reqwest::Client,
}

pub async fn run(args: BenchArgs, command: String) -> Result<(), String> {
    validate(&args)?;
    let mut settings = Settings::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    settings.redis.key_prefix = format!(
        "{}bench:{}",
        settings.redis.key_prefix,
        uuid::Uuid::now_v7().simple()
    );
    let account =
        AccountId::parse(&args.account).ok_or("--account must be 1-64 of A-Z a-z 0-9 _ -")?;
    let store = Store::connect(&StoreOptions {
        url: settings.redis.url.expose().to_owned(),
        cluster_nodes: settings
            .redis
            .cluster_nodes
            .iter()
            .map(|node| node.expose().to_owned())
            .collect(),
        wait_replicas: 0,
        key_prefix: settings.redis.key_prefix.clone(),
        timeout: Duration::from_secs(30),
        reveal_batch: settings.redis.reveal_batch,
        reply_bytes: settings.limits.reply_bytes,
    })
    .map_err(|e| e.to_string())?;
    let redis = redis::Client::open(settings.redis.url.expose())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis at {}: {e}", settings.redis.url.endpoint()))?;
    let needs_http = args.target != TargetKind::RawRedis
        || matches!(
            args.scenario,
            Scenario::Backlog | Scenario::Standard | Scenario::Listeners | Scenario::Spread
        );
    let http = if !needs_http {
        None
    } else if let Some(url) = &args.url {
        let token = args
            .token
            .clone()
            .ok_or("--url needs --token (or LEASEQ_BENCH_TOKEN)")?;
        Some((url.trim_end_matches('/').to_owned(), token))
    } else {
        Some(start_broker(&settings, &account)?)
    };
    // The raw target's leases are never acked through a broker: any key signs them.
    let lease_key = uuid::Uuid::now_v7().simple().to_string();
    let broker = Broker::new(
        store.clone(),
        LeaseSigner::new(lease_key.as_bytes()),
        Limits {
            // The scrape scenario may create more queues than one account may hold.
            queues_per_account: usize::MAX,
            ..Limits::default()
        },
    );
    let bench = Bench {
        args: args.clone(),
        account,
        store,
        broker,
        redis,
        http,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| e.to_string())?,
    };

    let mut results = Results {
        command,
        ..Results::default()
    };
    match args.scenario {
        Scenario::Spread => {
            let nodes = if args.cpu_nodes.is_empty() {
                vec![settings.redis.url.expose().to_owned()]
            } else {
                args.cpu_nodes.clone()
            };
            let spread = bench.spread(&nodes).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&spread).map_err(|e| e.to_string())?
            );
            return Ok(());
        }
        Scenario::Listeners => {
            let (url, token) = bench.http.clone().ok_or("no broker")?;
            let results =
                crate::listeners::run(&bench.client, &url, &token, &args.account, args.runs)
                    .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?
            );
            return Ok(());
        }
        Scenario::Throughput => {
            let w = bench.workload(args.batch, args.messages);
            results.throughput = bench.throughput(w).await?;
        }
        Scenario::Backlog => results.backlog = bench.backlog().await?,
        Scenario::Memory => results.memory = Some(bench.memory().await?),
        Scenario::Scrape => results.scrape = Some(bench.scrape().await?),
        Scenario::Standard => {
            results.memory = Some(bench.memory().await?);
            results.throughput = bench.throughput(bench.workload(100, args.messages)).await?;
            let single = bench.workload(1, (args.messages / 10).max(1));
            results.throughput.extend(bench.throughput(single).await?);
            results.backlog = bench.backlog().await?;
            results.scrape = Some(bench.scrape().await?);
        }
    }

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report::text(&results));
    }
    if let Some(path) = &args.write {
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        let updated = report::replace_generated(&existing, &report::markdown(&results));
        std::fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn validate(args: &BenchArgs) -> Result<(), String> {
    if args.size < 16 || args.size > 128_000 {
        return Err("--size must be from 16 to 128000 bytes".into());
    }
    if !(1..=100).contains(&args.batch) {
        return Err("--batch must be from 1 to 100".into());
    }
    if args.producers == 0 || args.consumers == 0 || args.messages == 0 || args.runs == 0 {
        return Err("--producers, --consumers, --messages and --runs must be at least 1".into());
    }
    Ok(())
}

/// Starts the broker in this process on a free port; returns its URL and a token.
fn start_broker(settings: &Settings, account: &AccountId) -> Result<(String, String), String> {
    let mut settings = settings.clone();
    settings.server.bind = "127.0.0.1:0".into();
    // Every scrape of the scrape scenario reads Redis.
    settings.metrics.cache_ms = 0;
    // The listeners scenario's receiver is on loopback.
    settings.listeners.allow_private_destinations = true;
    // The retention sweep is background work, not part of any request: keep its script
    // calls out of the per-request counts (its queues are all young here anyway).
    settings.retention.sweep_interval_ms = 3_600_000;
    let secrets = Secrets {
        jwt: JwtKey::Secret(SecretString::from(
            uuid::Uuid::now_v7().simple().to_string(),
        )),
        lease: SecretString::from(uuid::Uuid::now_v7().simple().to_string()),
        lease_previous: None,
    };
    let keys = settings.token_keys(&secrets).map_err(|e| e.to_string())?;
    let app = Application::build(&settings, &secrets).map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let token = keys
        .mint(&TokenRequest {
            subject: "bench".into(),
            accounts: vec![account.to_string()],
            scope: all_scopes(),
            queues: None,
            ttl: Duration::from_secs(24 * 3600),
        })
        .map_err(|e| e.to_string())?;
    Ok((url, token))
}

impl Bench {
    fn workload(&self, batch: usize, messages: u64) -> Workload {
        Workload {
            size: self.args.size,
            batch,
            producers: self.args.producers,
            consumers: self.args.consumers,
            messages,
            time_limit: self.args.time_limit,
            groups: self.args.groups,
        }
    }

    /// A fresh queue, driven over HTTP or on Redis directly.
    async fn queue(&self, http: bool) -> Result<(Target, QueueId), String> {
        let name = format!("bench-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        if http {
            let (url, token) = self.http.clone().ok_or("no broker to talk to")?;
            let accounts = format!("{url}/client/v4/accounts/{}/queues", self.account);
            let response = self
                .client
                .post(&accounts)
                .bearer_auth(&token)
                .json(&serde_json::json!({"queue_name": name}))
                .send()
                .await
                .map_err(|e| format!("creating a queue at {url}: {e}"))?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
            let id = body["result"]["queue_id"]
                .as_str()
                .and_then(QueueId::parse)
                .ok_or_else(|| format!("creating a queue: {status}: {body}"))?;
            let target = HttpTarget {
                client: self.client.clone(),
                queue_url: format!("{accounts}/{id}"),
                token,
            };
            Ok((Target::Http(target), id))
        } else {
            let new = NewQueue {
                name: QueueName::parse(&name).ok_or("bad queue name")?,
                settings: Default::default(),
                jurisdiction: None,
            };
            let queue = self
                .broker
                .create_queue(&Access::account(self.account.clone()), &new)
                .await
                .map_err(|e| e.to_string())?;
            let target = RawTarget {
                store: self.store.clone(),
                access: Access::account(self.account.clone()),
                queue: queue.id,
            };
            Ok((Target::Raw(Box::new(target)), queue.id))
        }
    }

    /// Gives the queue a consumer allowing `max_retries` redeliveries.
    async fn allow_retries(&self, id: QueueId, max_retries: u32) -> Result<(), String> {
        let (url, token) = self.http.clone().ok_or("no broker to talk to")?;
        let consumers = format!(
            "{url}/client/v4/accounts/{}/queues/{id}/consumers",
            self.account
        );
        let body =
            serde_json::json!({"type": "http_pull", "settings": {"max_retries": max_retries}});
        let response = self
            .client
            .post(&consumers)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("creating a consumer: {}", response.status()));
        }
        Ok(())
    }

    async fn drop_queue(&self, id: QueueId) -> Result<(), String> {
        self.store
            .delete_queue(&Access::account(self.account.clone()), id)
            .await
            .map_err(|e| e.to_string())
            .map(|_| ())
    }

    async fn commandstats(
        &self,
    ) -> Result<std::collections::HashMap<String, redis_info::CommandStat>, String> {
        let mut conn = self.redis.clone();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(redis_info::parse_commandstats(&info))
    }

    async fn throughput(&self, w: Workload) -> Result<Vec<ThroughputResult>, String> {
        let kinds: &[bool] = match self.args.target {
            TargetKind::Both => &[false, true],
            TargetKind::Http => &[true],
            TargetKind::RawRedis => &[false],
        };
        // Runs of the targets alternate, so a noisy moment of the machine hits both alike.
        let mut runs: Vec<Vec<ThroughputRun>> = vec![Vec::new(); kinds.len()];
        for run in 0..self.args.runs {
            for (k, &http) in kinds.iter().enumerate() {
                let (target, id) = self.queue(http).await?;
                eprintln!(
                    "throughput: {} B={} S={} P={} C={} N={} (run {}/{})",
                    target.name(),
                    w.batch,
                    w.size,
                    w.producers,
                    w.consumers,
                    w.messages,
                    run + 1,
                    self.args.runs
                );
                let before = self.commandstats().await?;
                let mut result = workload::throughput(Arc::new(target), w).await?;
                let delta = redis_info::command_delta(&before, &self.commandstats().await?);
                result.redis_commands_per_message = delta.total as f64 / result.acked.max(1) as f64;
                result.script_calls_per_request =
                    delta.scripts as f64 / result.requests.max(1) as f64;
                result.redis_script_usec_per_message =
                    delta.script_usec as f64 / result.acked.max(1) as f64;
                self.drop_queue(id).await?;
                runs[k].push(result);
            }
        }
        let mut out = Vec::new();
        for mut runs in runs {
            runs.sort_by(|a, b| a.msgs_per_sec.total_cmp(&b.msgs_per_sec));
            let runs_msgs_per_sec = runs.iter().map(|r| r.msgs_per_sec).collect();
            let median = runs.swap_remove(runs.len() / 2);
            out.push(ThroughputResult {
                target: median.target,
                batch: w.batch,
                size: w.size,
                producers: w.producers,
                consumers: w.consumers,
                messages: w.messages,
                runs_msgs_per_sec,
                median,
            });
        }
        Ok(out)
    }

    /// Fills one queue per backlog size, then samples their pull latency in alternating
    /// rounds, so a noisy moment of the machine hits every size alike.
    async fn backlog(&self) -> Result<Vec<BacklogResult>, String> {
        const ROUNDS: usize = 10;
        let pull_batch = 10;
        let mut queues = Vec::new();
        for &backlog in &self.args.backlogs {
            let (target, id) = self.queue(true).await?;
            // Each sampled batch is retried at once; enough retries that no message
            // reaches its last delivery and leaves the backlog while it is measured.
            self.allow_retries(id, 100).await?;
            let raw = Target::Raw(Box::new(RawTarget {
                store: self.store.clone(),
                access: Access::account(self.account.clone()),
                queue: id,
            }));
            eprintln!(
                "backlog: filling {backlog} messages of {} bytes",
                self.args.size
            );
            workload::prefill(Arc::new(raw), backlog, self.args.size, 4).await?;
            queues.push((backlog, target, id, workload::histogram()));
        }
        let per_round = self.args.backlog_samples.div_ceil(ROUNDS);
        eprintln!("backlog: {ROUNDS} rounds of {per_round} pulls of {pull_batch} per backlog size");
        for _ in 0..ROUNDS {
            for (_, target, _, histogram) in &mut queues {
                workload::pull_latency(target, pull_batch, per_round, histogram).await?;
            }
        }
        let mut out = Vec::new();
        for (backlog, _, id, histogram) in queues {
            self.drop_queue(id).await?;
            out.push(BacklogResult {
                backlog,
                pull_batch,
                pull: Latency::of(&histogram),
            });
        }
        Ok(out)
    }

    /// Creates `scrape_queues` queues holding one message each, then times five scrapes.
    async fn scrape(&self) -> Result<ScrapeResult, String> {
        let (url, _) = self.http.clone().ok_or("no broker to scrape")?;
        let count = self.args.scrape_queues;
        let rss_before_kb = rss_kb();
        eprintln!("scrape: creating {count} queues with one message each");
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (broker, next) = (self.broker.clone(), next.clone());
            let access = Access::account(self.account.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    let new = NewQueue {
                        name: QueueName::parse(&format!(
                            "scrape-{}",
                            &uuid::Uuid::now_v7().simple().to_string()[16..]
                        ))
                        .ok_or("bad name")?,
                        settings: Default::default(),
                        jurisdiction: None,
                    };
                    let queue = broker
                        .create_queue(&access, &new)
                        .await
                        .map_err(|e| e.to_string())?;
                    let message = NewMessage {
                        name: None,
                        content_type: ContentType::Text,
                        body: "x".repeat(64),
                        delay_ms: None,
                        dedup_id: None,
                        group_id: None,
                    };
                    broker
                        .push(&access, queue.id, &[message])
                        .await
                        .map_err(|e| e.to_string())?;
                    ids.push(queue.id);
                }
                Ok::<_, String>(ids)
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.map_err(|e| e.to_string())??);
        }
        let mut scrapes_ms = Vec::new();
        let mut reads_ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..SCRAPES {
            let started = std::time::Instant::now();
            let mut response = self
                .client
                .get(format!("{url}/metrics"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            // Read as Prometheus does, piece by piece: the process also holds the
            // broker, whose memory is measured.
            bytes = 0;
            while let Some(piece) = response.chunk().await.map_err(|e| e.to_string())? {
                bytes += piece.len();
            }
            scrapes_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let rss_after_kb = rss_kb();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            self.broker.queue_stats().await.map_err(|e| e.to_string())?;
            reads_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        eprintln!("scrape: deleting the queues");
        for id in ids {
            self.drop_queue(id).await?;
        }
        let median = |runs: &[f64]| {
            let mut sorted = runs.to_vec();
            sorted.sort_by(f64::total_cmp);
            sorted[sorted.len() / 2]
        };
        Ok(ScrapeResult {
            queues: count,
            median_ms: median(&scrapes_ms),
            read_median_ms: median(&reads_ms),
            scrapes_ms,
            bytes,
            rss_before_kb,
            rss_after_kb,
        })
    }

    /// `--scenario spread`: see [`Scenario::Spread`].
    async fn spread(&self, nodes: &[String]) -> Result<SpreadResult, String> {
        let queues = self.args.spread_queues.max(1);
        let per_queue = (self.args.messages / queues as u64).max(1);
        let mut targets = Vec::with_capacity(queues);
        for _ in 0..queues {
            let (target, id) = self.queue(true).await?;
            targets.push((Arc::new(target), id));
        }
        let workload = Workload {
            producers: 1,
            consumers: 1,
            ..self.workload(self.args.batch, per_queue)
        };
        eprintln!(
            "spread: {queues} queues x {per_queue} messages, B={}, CPU of {}",
            self.args.batch,
            nodes.join(", ")
        );
        let before = nodes_cpu(nodes).await?;
        let started = std::time::Instant::now();
        let tasks: Vec<_> = targets
            .iter()
            .map(|(target, _)| tokio::spawn(workload::throughput(target.clone(), workload)))
            .collect();
        let mut runs = Vec::with_capacity(tasks.len());
        for task in tasks {
            runs.push(task.await.map_err(|e| e.to_string())??);
        }
        let seconds = started.elapsed().as_secs_f64();
        let after = nodes_cpu(nodes).await?;
        for (_, id) in &targets {
            self.drop_queue(*id).await?;
        }
        let messages: u64 = runs.iter().map(|r| r.acked).sum();
        let spent: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let total: f64 = spent.iter().sum();
        let nodes: Vec<NodeCpu> = nodes
            .iter()
            .zip(&spent)
            .map(|(node, &cpu)| NodeCpu {
                node: node.clone(),
                cpu_seconds: cpu,
                usec_per_message: cpu * 1e6 / messages.max(1) as f64,
                share: if total > 0.0 { cpu / total } else { 0.0 },
            })
            .collect();
        Ok(SpreadResult {
            queues,
            batch: self.args.batch,
            messages,
            seconds,
            msgs_per_sec: messages as f64 / seconds,
            busiest_node_usec_per_message: nodes
                .iter()
                .map(|n| n.usec_per_message)
                .fold(0.0, f64::max),
            nodes,
        })
    }

    async fn memory(&self) -> Result<MemoryResult, String> {
        let messages = self.args.memory_messages;
        let (target, id) = self.queue(false).await?;
        let mut conn = self.redis.clone();
        let used = |info: String| redis_info::info_field(&info, "used_memory").unwrap_or(0) as i64;
        let before = used(
            redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?,
        );
        eprintln!(
            "memory: queueing {messages} messages of {} bytes",
            self.args.size
        );
        workload::prefill(Arc::new(target), messages, self.args.size, 4).await?;
        let after = used(
            redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?,
        );
        let mut by_key = Vec::new();
        for (role, key) in self.store.queue_key_names(id) {
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(bytes) = bytes {
                by_key.push((role.to_owned(), bytes as f64 / messages as f64));
            }
        }
        self.drop_queue(id).await?;
        let per_message = (after - before) as f64 / messages as f64;
        Ok(MemoryResult {
            messages,
            body_bytes: self.args.size,
            used_memory_delta: after - before,
            bytes_per_message: per_message,
            overhead_per_message: per_message - self.args.size as f64,
            by_key,
        })
    }
}
