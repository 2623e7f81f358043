#!/usr/bin/env bash
# A private Alertmanager for the local demo with the project's routing
# (deploy/alertmanager/alertmanager.yml), its webhooks pointed at `cxlink alerts-receiver`
# on loopback, and groups sent within seconds instead of minutes so that the demo shows
# alerts quickly. Data and log under ${CXLINK_DATA_DIR:-.cxlink}/alertmanager.
#
#   deploy/local/alertmanager.sh start|stop|status
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

binary() {
  command -v prometheus-alertmanager || command -v alertmanager
}

write_config() {
  sed -e "s|http://alert-receiver:9094|$receiver|" \
    -e 's|group_wait: 30s|group_wait: 5s|' \
    -e 's|group_wait: 5m|group_wait: 2m|' \
    -e 's|group_interval: 5m|group_interval: 10s|' \
    "$repo/deploy/alertmanager/alertmanager.yml" >"$dir/alertmanager.yml"
}

# launch starts Alertmanager in the background.
launch() {
  binary >/dev/null || "$repo/deploy/local/packages.sh"
  write_config
  # --cluster.listen-address= : a single instance, no gossip port.
  (exec nohup "$(binary)" --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >>"$log_file" 2>&1 </dev/null) &
}

ready_message() { echo "notifying $receiver/<receiver>"; }

name=alertmanager
. "$repo/deploy/local/lib/daemon.sh"
daemon_main "$@"
