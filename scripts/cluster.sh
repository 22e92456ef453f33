#!/usr/bin/env bash
# A local Redis Cluster for development and tests: 3 masters and 3 replicas of Debian's
# redis-server on loopback, AOF on, data under ./data/cluster/<port>.
#
#   scripts/cluster.sh start   # prints the seed nodes for redis.cluster_nodes
#   scripts/cluster.sh stop    # stops exactly the processes it started (by PID)
#   scripts/cluster.sh status
#
# Ports: CLUSTER_PORT (default 7100) to CLUSTER_PORT + 5.
set -euo pipefail
cd "$(dirname "$0")/.."

base="${CLUSTER_PORT:-7100}"
dir="data/cluster"
ports=()
for i in 0 1 2 3 4 5; do ports+=($((base + i))); done

ensure_redis_server() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "cluster: installing redis-server" >&2
    apt-get install -y redis-server >/dev/null
  fi
}

up() {
  redis-cli -p "$1" ping >/dev/null 2>&1
}

start() {
  ensure_redis_server
  mkdir -p "$dir"
  for port in "${ports[@]}"; do
    if up "$port"; then continue; fi
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
      --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
      --cluster-node-timeout 2000 --appendonly yes --appendfsync everysec \
      --dir "$PWD/$dir/$port" --pidfile "$PWD/$dir/$port/redis.pid" \
      --logfile "$PWD/$dir/$port/redis.log" --save ''
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 50); do up "$port" && break; sleep 0.1; done
    up "$port" || { echo "cluster: redis on $port did not start" >&2; exit 1; }
  done
  # Nodes that already know each other (a restart) only need time to agree again; a
  # node alone is new, and the cluster is created.
  if redis-cli -p "$base" cluster info | grep -q 'cluster_known_nodes:1\b'; then
    local nodes=()
    for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
  fi
  for _ in $(seq 200); do
    redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok' \
    || { echo "cluster: not ok; see $dir/*/redis.log" >&2; exit 1; }
  # Every primary's replica in sync, so a write waiting for one (wait_replicas) can
  # succeed from the start.
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do
      local info
      info="$(redis-cli -p "$port" info replication)"
      grep -q 'role:master' <<< "$info" || break
      grep -q 'state=online' <<< "$info" && break
      sleep 0.1
    done
  done
  local seeds=()
  for port in "${ports[@]:0:3}"; do seeds+=("\"redis://127.0.0.1:$port\""); done
  echo "cluster: ok on ports ${ports[0]}-${ports[5]}"
  echo "redis.cluster_nodes = [$(IFS=,; echo "${seeds[*]}")]"
}

stop() {
  for port in "${ports[@]}"; do
    local pidfile="$dir/$port/redis.pid"
    if [ -f "$pidfile" ]; then
      local pid
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      # Gone before returning, so a start right after finds the port free.
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"
    fi
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) for port in "${ports[@]}"; do
            printf '%s ' "$port"; up "$port" && echo up || echo down
          done ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
