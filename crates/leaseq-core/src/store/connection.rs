//! The connection every store call goes through: one Redis node, or a Redis Cluster.
//! Scripts and plain commands route alike (a Cluster by each call's first key: every
//! queue script's keys share the queue's slot); pipelines spanning queues go through
//! [`super::Store::query_groups`], which a Cluster splits by slot.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

/// How to reach Redis, made once; [`Connection::get`] hands out a usable handle.
#[derive(Clone)]
pub(super) enum Connection {
    Single {
        conn: ConnectionManager,
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    /// Connected on first use, so a broker starts while the Cluster is down and answers
    /// 503 until it is up, as with one node.
    Cluster {
        client: ClusterClient,
        conn: Arc<OnceCell<ClusterConnection>>,
    },
}

/// A handle for one call.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub fn single(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Connection::Single {
            conn,
            client,
            config,
        })
    }

    pub fn cluster(nodes: &[String], timeout: Duration) -> redis::RedisResult<Self> {
        let client = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()?;
        Ok(Connection::Cluster {
            client,
            conn: Arc::default(),
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster { .. })
    }

    /// A handle for a call; on a Cluster, connects first if nobody has yet.
    pub async fn get(&self) -> redis::RedisResult<Conn> {
        match self {
            Connection::Single { conn, .. } => Ok(Conn::Single(conn.clone())),
            Connection::Cluster { client, conn } => conn
                .get_or_try_init(|| client.get_async_connection())
                .await
                .map(|c| Conn::Cluster(c.clone())),
        }
    }

    /// The same Redis through a connection of its own, driven by the caller's runtime
    /// (one node); a Cluster connection is shared.
    pub fn own(&self) -> Self {
        match self {
            Connection::Single { client, config, .. } => {
                match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
                    Ok(conn) => Connection::Single {
                        conn,
                        client: client.clone(),
                        config: config.clone(),
                    },
                    // Cannot fail with a configuration `single` accepted; sharing is
                    // correct too.
                    Err(_) => self.clone(),
                }
            }
            Connection::Cluster { .. } => self.clone(),
        }
    }
}

impl Conn {
    /// `WAIT replicas timeout_ms` on the node that holds `key`'s slot: how many replicas
    /// have acknowledged every write made there through this connection so far.
    pub async fn wait(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<i64> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::with_key(key, SlotAddr::Master);
                let value = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                redis::from_redis_value(value).map_err(redis::RedisError::from)
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
