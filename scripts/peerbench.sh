#!/usr/bin/env bash
# Side by side with the peers: ../shared/peerbench's run_peers.sh against Redis Streams,
# NATS JetStream and leaseq's HTTP API (cf-http) in one invocation, as issue targets are
# read (docs/benchmarks.md). Starts its own Redis for leaseq (AOF everysec, port 6392)
# and a release broker on 127.0.0.1:8092, and stops both by PID.
#
#   scripts/peerbench.sh                       # durable, B=100 / B=1 / paced, medians of 3
#   REPEATS=1 SCENARIOS=single scripts/peerbench.sh
# Knobs are run_peers.sh's (REPEATS, SCENARIOS, N_BATCH, N_SINGLE, ...); BACKENDS adds
# peers (cf-http is always included). Needs nats-server (apt-get install nats-server).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERBENCH=${PEERBENCH:-../shared/peerbench}
WORK=${WORK:-target/peerbench-run}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
REDIS_PORT=6392
BROKER=127.0.0.1:8092

command -v nats-server >/dev/null || { echo "peerbench.sh: install nats-server first" >&2; exit 1; }
CARGO_TARGET_DIR=target/peerbench cargo build --release --quiet --manifest-path "$PEERBENCH/Cargo.toml"
cargo build --release --quiet

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
redis-server deploy/redis.conf --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
  --appendfsync everysec --save '' --daemonize no --logfile "$WORK/redis/redis.log" ${REDIS_EXTRA:-} &
pids+=($!)
redis_pid=$!

secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export LEASEQ__REDIS__URL=redis://127.0.0.1:$REDIS_PORT LEASEQ__SERVER__BIND=$BROKER
export LEASEQ__AUTH__JWT_SECRET=$(secret) LEASEQ__AUTH__LEASE_SECRET=$(secret)
export LEASEQ__LOG__LEVEL=warn
target/release/leaseq serve >"$WORK/broker.log" 2>&1 &
pids+=($!)
broker_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://$BROKER/readyz" >/dev/null && break
  sleep 0.1
done
token=$(target/release/leaseq token --account bench --ttl 24h)

redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
BIN=$PWD/target/peerbench/release/peerbench MODES=durable \
  BACKENDS="${BACKENDS:-redis-streams nats-jetstream} cf-http" \
  CF_URL=http://$BROKER/client/v4 CF_ACCOUNT=bench CF_PID=$broker_pid CF_REDIS_PID=$redis_pid \
  PEERBENCH_TOKEN=$token REPEATS=${REPEATS:-3} WORK="$WORK" EXTRA_BACKENDS="${EXTRA_BACKENDS:-}" \
  "$PEERBENCH/run_peers.sh"

# Every Redis command leaseq ran (scripts' inner commands included), for commands per
# message: divide by the messages the cf-http rows moved.
redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' |
  awk -F'[:=,]' '/^cmdstat_/ { calls += $3; print } END { print "redis commands in all:", calls }' \
  >"$WORK/commandstats.txt"
tail -1 "$WORK/commandstats.txt"
# CPU seconds of each server process over the whole invocation.
echo "cpu seconds: redis $(ps -o times= -p "$redis_pid"), broker $(ps -o times= -p "$broker_pid")" |
  tee -a "$WORK/commandstats.txt"
