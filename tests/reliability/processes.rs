//! Child processes the runs start, kill and restart: broker processes (the real
//! `leaseq` binary) and, for the Redis restart run, a Redis server of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A fresh directory for one run's logs and data, under cargo's temporary directory.
pub fn workdir(run: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("reliability")
        .join(format!("{run}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("work directory");
    dir
}

/// A port nothing listens on right now. Restarted processes reuse theirs, so clients
/// find them again at the same address.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Kills the process with SIGKILL (what `start_kill` sends on Unix) and reaps it.
async fn sigkill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// The broker binary: `LEASEQ_BIN` when set, else the one cargo built for this test.
fn broker_binary() -> PathBuf {
    std::env::var_os("LEASEQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_leaseq")))
}

/// One `leaseq serve` process on a fixed port.
pub struct BrokerProcess {
    pub port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    pub starts: u32,
}

impl BrokerProcess {
    pub async fn start(env: &[(String, String)], log: PathBuf) -> Self {
        let mut broker = Self {
            port: free_port(),
            env: env.to_vec(),
            log,
            child: None,
            starts: 0,
        };
        broker.restart().await;
        broker
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Still the same process, never having exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown hook runs, in-flight requests are cut.
    pub async fn kill(&mut self) {
        sigkill(&mut self.child).await;
    }

    /// Starts the process (again) on its port and waits until it answers `/healthz`.
    pub async fn restart(&mut self) {
        self.kill().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let child = Command::new(broker_binary())
                .arg("serve")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("LEASEQ__SERVER__BIND", format!("127.0.0.1:{}", self.port))
                .stdin(Stdio::null())
                .stdout(log_file(&self.log))
                .stderr(log_file(&self.log))
                .kill_on_drop(true)
                .spawn()
                .expect("broker binary starts");
            self.child = Some(child);
            self.starts += 1;
            if self.wait_healthy(deadline).await {
                return;
            }
            // The port may still be held by the killed process's socket for a moment.
            assert!(
                Instant::now() < deadline,
                "broker on port {} did not come up; see {}",
                self.port,
                self.log.display()
            );
            self.kill().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_healthy(&mut self, deadline: Instant) -> bool {
        let client = reqwest::Client::new();
        let url = format!("{}/healthz", self.url());
        while Instant::now() < deadline {
            if !self.is_running() {
                return false;
            }
            if let Ok(r) = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                && r.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// A `redis-server` of the run's own, with AOF and `appendfsync always`: every write
/// Redis acknowledges is on disk first, so a kill loses none of them.
pub struct RedisProcess {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisProcess {
    pub async fn start(dir: &Path) -> Self {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir).expect("redis directory");
        let mut redis = Self {
            port: free_port(),
            dir,
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn kill(&mut self) {
        sigkill(&mut self.child).await;
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "redis-server runs (it is on PATH after `make redis`, which installs it when missing)",
            );
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("redis url");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                // PING answers while the AOF is still loading; this waits for the data.
                let loaded: redis::RedisResult<i64> =
                    redis::cmd("DBSIZE").query_async(&mut conn).await;
                if loaded.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up; see {}",
                self.dir.join("redis.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
