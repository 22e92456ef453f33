#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the dashboard's browser test, installing
# it with apt when it is missing (as ensure-redis.sh does for Redis). Fails when it
# cannot be installed; `make ui-test` then skips with that message.
set -euo pipefail
browser="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$browser" ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "ensure-chromium: no $browser and no apt-get" >&2; exit 1; }
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
echo "ensure-chromium: installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get install -y chromium >/dev/null 2>&1 \
  || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y chromium >/dev/null; } \
  || { echo "ensure-chromium: apt-get could not install chromium" >&2; exit 1; }
[ -x "$browser" ]
