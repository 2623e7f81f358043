#!/usr/bin/env bash
# A private Prometheus for the local demo, scraping cxlink on loopback every 5 s with the
# project's rules (deploy/prometheus/rules), sending alerts to the demo's Alertmanager
# (ALERTMANAGER_PORT, default 19093). Data and log under ${CXLINK_DATA_DIR:-.cxlink}/prometheus.
#
#   deploy/local/prometheus.sh start|stop|status
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

# launch starts Prometheus in the background.
launch() {
  command -v prometheus >/dev/null || "$repo/deploy/local/packages.sh"
  write_config
  (exec nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" >>"$log_file" 2>&1 </dev/null) &
}

ready_message() { echo "scraping $target"; }

name=prometheus
. "$repo/deploy/local/lib/daemon.sh"
daemon_main "$@"
