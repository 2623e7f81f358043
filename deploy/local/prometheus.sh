#!/usr/bin/env bash
# A private Prometheus for the local demo, scraping cxlink on loopback every 5 s with the
# project's rules (deploy/prometheus/rules), sending alerts to the demo's Alertmanager
# (ALERTMANAGER_PORT, default 19093). Data and log under ${CXLINK_DATA_DIR:-.cxlink}/prometheus.
#
#   deploy/local/prometheus.sh start|stop
#
# PROMETHEUS_PORT (default 19090, clear of a system Prometheus on 9090) and CXLINK_HTTP_PORT
# (the cxlink process to scrape, default 8080).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
data_root=${CXLINK_DATA_DIR:-.cxlink}
mkdir -p "$data_root/prometheus"
dir=$(cd "$data_root/prometheus" && pwd)
port=${PROMETHEUS_PORT:-19090}
target=127.0.0.1:${CXLINK_HTTP_PORT:-8080}
alertmanager=127.0.0.1:${ALERTMANAGER_PORT:-19093}
pid_file=$dir/prometheus.pid
log_file=$dir/prometheus.log

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && grep -q prometheus "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

write_config() {
  cat >"$dir/prometheus.yml" <<CONFIG
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $repo/deploy/prometheus/rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['$alertmanager']
scrape_configs:
  - job_name: cxlink
    static_configs:
      - targets: ['$target']
CONFIG
}

start() {
  local pid
  if pid=$(running_pid); then
    log "already running (pid $pid) on http://127.0.0.1:$port"
    return 0
  fi
  command -v prometheus >/dev/null || "$repo/deploy/local/packages.sh"
  write_config
  (exec nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" >>"$log_file" 2>&1 </dev/null) &
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
  log "ready on http://127.0.0.1:$port, scraping $target"
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
