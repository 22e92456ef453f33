#!/usr/bin/env bash
# Deletes what earlier test and benchmark runs left in the local Redis: every key under
# the prefixes only they use (lqtest:, lqcompat:, lqui:, lqfuzz:, lqrel:, lqbench:, each
# followed by a fresh id per run). Tests never clean up after themselves (each has a
# prefix of its own, so they need not), and on a developer's machine the leftovers grow
# by hundreds of MB a day: the AOF rewrites they cause skew benchmarks, and at
# deploy/redis.conf's maxmemory (noeviction) every write would fail. `make test` runs
# this first; it never touches other keys (no FLUSHALL), but do not run it while
# another test run uses the same Redis.
set -euo pipefail
url="${LEASEQ__REDIS__URL:-redis://127.0.0.1:6379}"
command -v redis-cli >/dev/null 2>&1 || exit 0
for prefix in lqtest lqcompat lqui lqfuzz lqrel lqbench; do
  redis-cli -u "$url" --scan --pattern "$prefix:*" \
    | xargs -r -n 500 redis-cli -u "$url" unlink >/dev/null
done
