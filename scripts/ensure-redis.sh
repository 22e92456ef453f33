#!/usr/bin/env bash
# Makes sure a Redis answers at $LEASEQ__REDIS__URL (default redis://127.0.0.1:6379).
#
# When nothing answers and the URL points at this machine, starts redis-server with
# deploy/redis.conf (AOF on) and its data under ./data/redis, installing the
# redis-server package first when it is missing. A remote URL that does not answer is
# an error: we never start a Redis the configuration does not point at.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${LEASEQ__REDIS__URL:-redis://127.0.0.1:6379}"
hostport="${url#*://}"        # drop the scheme
hostport="${hostport##*@}"    # drop credentials
hostport="${hostport%%/*}"    # drop the database number
host="${hostport%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=6379
[ -n "$host" ] || host=127.0.0.1

answers() {
  # Any reply (PONG, or an auth error) means a Redis is listening.
  local reply
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [ -n "$reply" ]
}

if answers 2>/dev/null; then
  exit 0
fi

case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "ensure-redis: nothing answers at $host:$port and it is not local; not starting one" >&2; exit 1 ;;
esac

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get install -y redis-server >/dev/null 2>&1 \
    || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y redis-server >/dev/null; }
  # The package may have started its own service on the default port.
  if answers 2>/dev/null; then exit 0; fi
fi

data_dir="$PWD/data/redis"
mkdir -p "$data_dir"
echo "ensure-redis: starting redis-server on $host:$port (data in $data_dir)" >&2
redis-server deploy/redis.conf \
  --port "$port" --bind 127.0.0.1 \
  --dir "$data_dir" --daemonize yes \
  --pidfile "$data_dir/redis.pid" --logfile "$data_dir/redis.log"

for _ in $(seq 1 50); do
  if answers 2>/dev/null; then exit 0; fi
  sleep 0.1
done
echo "ensure-redis: redis-server did not come up; see $data_dir/redis.log" >&2
exit 1
