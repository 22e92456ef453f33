#!/usr/bin/env bash
# How the work spreads over a Redis Cluster's primaries (issue 15's scaling target).
#
# The same workload (leaseq-bench --scenario spread: 30 queues, one producer and one
# consumer each, B=100) against a 1-primary Cluster (port 7400 with its replica on 7401,
# started here) and the 3-primary Cluster of scripts/cluster.sh (7100-7105, a replica
# each), alternating, REPEATS times. Both have replicas: feeding one costs a primary CPU. On a 2-core machine everything shares the cores, so wall-clock msg/s
# cannot show the scaling; the figure is each primary's CPU per message: with a core per
# primary, Redis could carry about 1 / (busiest primary's CPU per message).
#
#   scripts/cluster-scaling.sh            # REPEATS=3 MESSAGES=120000
#   scripts/cluster-scaling.sh stop       # stops the 1-primary Cluster (and cluster.sh's)
set -euo pipefail
cd "$(dirname "$0")/.."

repeats="${REPEATS:-3}"
messages="${MESSAGES:-120000}"
single=7400
replica=7401
out="target/cluster-scaling"
mkdir -p "$out"

if [ "${1:-}" = stop ]; then
  for port in $single $replica; do
    pidfile="data/cluster/$port/redis.pid"
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -rf "data/cluster/$port"
  done
  exec scripts/cluster.sh stop
fi

scripts/cluster.sh start >/dev/null
for port in $single $replica; do
  mkdir -p data/cluster/$port
  redis-cli -p $port ping >/dev/null 2>&1 && continue
  redis-server --port $port --bind 127.0.0.1 --daemonize yes \
    --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
    --appendonly yes --appendfsync everysec --save '' \
    --dir "$PWD/data/cluster/$port" --pidfile "$PWD/data/cluster/$port/redis.pid" \
    --logfile "$PWD/data/cluster/$port/redis.log"
  for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
done
if redis-cli -p $single cluster info | grep -q 'cluster_slots_assigned:0'; then
  redis-cli -p $single cluster addslotsrange 0 16383 >/dev/null
  redis-cli -p $replica cluster meet 127.0.0.1 $single >/dev/null
  sleep 1
  redis-cli -p $replica cluster replicate "$(redis-cli -p $single cluster myid)" >/dev/null
fi
for _ in $(seq 100); do
  redis-cli -p $single cluster info | grep -q 'cluster_state:ok' \
    && redis-cli -p $single info replication | grep -q 'state=online' && break
  sleep 0.1
done

cargo build --release --quiet -p leaseq-bench
bench() {
  local seeds="$1" cpu="$2" file="$3"
  LEASEQ__REDIS__CLUSTER_NODES="$seeds" ./target/release/leaseq-bench --scenario spread \
    --spread-queues 30 --batch 100 --messages "$messages" --cpu-nodes "$cpu" > "$file"
}
for run in $(seq "$repeats"); do
  bench "[\"redis://127.0.0.1:$single\"]" "redis://127.0.0.1:$single" "$out/one-$run.json"
  bench '["redis://127.0.0.1:7100","redis://127.0.0.1:7101","redis://127.0.0.1:7102"]' \
    "redis://127.0.0.1:7100,redis://127.0.0.1:7101,redis://127.0.0.1:7102" "$out/three-$run.json"
done

python3 - "$out" "$repeats" <<'PY'
import json, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
def load(kind):
    return [json.load(open(f"{out}/{kind}-{r}.json")) for r in range(1, repeats + 1)]
one, three = load("one"), load("three")
def med(runs, f): return statistics.median(f(r) for r in runs)
one_usec = med(one, lambda r: r["busiest_node_usec_per_message"])
three_usec = med(three, lambda r: r["busiest_node_usec_per_message"])
three_total = med(three, lambda r: sum(n["usec_per_message"] for n in r["nodes"]))
print(f"1 primary : {med(one, lambda r: r['msgs_per_sec']):.0f} msg/s, Redis CPU {one_usec:.1f} µs/message")
print(f"3 primaries: {med(three, lambda r: r['msgs_per_sec']):.0f} msg/s, Redis CPU {three_total:.1f} µs/message in all, busiest primary {three_usec:.1f} µs/message")
for r in three:
    print("   shares:", ", ".join(f"{n['node'].rsplit(':', 1)[1]} {n['share']:.2f}" for n in r["nodes"]))
print(f"capacity with a core per primary, 3 / 1: {one_usec / three_usec:.2f}x (target >= 2.4)")
PY
