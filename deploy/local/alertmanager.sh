#!/usr/bin/env bash
# A private Alertmanager for the local demo with the project's routing
# (deploy/alertmanager/alertmanager.yml), its webhooks pointed at `cxlink alerts-receiver`
# on loopback, and groups sent within seconds instead of minutes so that the demo shows
# alerts quickly. Data and log under ${CXLINK_DATA_DIR:-.cxlink}/alertmanager.
#
#   deploy/local/alertmanager.sh start|stop
#
# ALERTMANAGER_PORT (default 19093) and ALERTS_RECEIVER_PORT (default 19094, where
# `cxlink alerts-receiver` listens).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
data_root=${CXLINK_DATA_DIR:-.cxlink}
mkdir -p "$data_root/alertmanager"
dir=$(cd "$data_root/alertmanager" && pwd)
port=${ALERTMANAGER_PORT:-19093}
receiver=http://127.0.0.1:${ALERTS_RECEIVER_PORT:-19094}
pid_file=$dir/alertmanager.pid
log_file=$dir/alertmanager.log

log() { printf 'alertmanager.sh: %s\n' "$*" >&2; }

binary() {
  command -v prometheus-alertmanager || command -v alertmanager
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && grep -q alertmanager "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

write_config() {
  sed -e "s|http://alert-receiver:9094|$receiver|" \
    -e 's|group_wait: 30s|group_wait: 5s|' \
    -e 's|group_wait: 5m|group_wait: 2m|' \
    -e 's|group_interval: 5m|group_interval: 10s|' \
    "$repo/deploy/alertmanager/alertmanager.yml" >"$dir/alertmanager.yml"
}

start() {
  local pid bin
  if pid=$(running_pid); then
    log "already running (pid $pid) on http://127.0.0.1:$port"
    return 0
  fi
  binary >/dev/null || "$repo/deploy/local/packages.sh"
  bin=$(binary)
  write_config
  # --cluster.listen-address= : a single instance, no gossip port.
  (exec nohup "$bin" --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >>"$log_file" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$pid_file"
  local deadline=$((SECONDS + 30))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      log "did not start; last lines of $log_file:"
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.1
  done
  log "ready on http://127.0.0.1:$port, notifying $receiver/<receiver>"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
