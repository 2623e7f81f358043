#!/usr/bin/env bash
# The demo's stand-in for on-call's pager: `cxlink alerts-receiver` on loopback, printing
# every notification Alertmanager sends, and every follow-up case posted to it, into
# ${CXLINK_DATA_DIR:-.cxlink}/alerts.log.
# demo.sh builds cxlink into ${CXLINK_DATA_DIR:-.cxlink}/bin first.
#
#   deploy/local/alerts-receiver.sh start|stop|status
#
# ALERTS_RECEIVER_PORT (default 19094; alertmanager.sh sends there).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
data_root=${CXLINK_DATA_DIR:-.cxlink}
mkdir -p "$data_root"
dir=$(cd "$data_root" && pwd)
port=${ALERTS_RECEIVER_PORT:-19094}
pid_file=$dir/alerts-receiver.pid
log_file=$dir/alerts-receiver.err # its own log; the notifications go to alerts.log

launch() {
  if [ ! -x "$dir/bin/cxlink" ]; then
    log "no $dir/bin/cxlink: build it with go build -o $dir/bin/cxlink ./cmd/cxlink"
    exit 1
  fi
  (exec nohup "$dir/bin/cxlink" alerts-receiver --listen "127.0.0.1:$port" \
    >>"$dir/alerts.log" 2>>"$log_file" </dev/null) &
}

ready_message() { echo "notifications in $dir/alerts.log"; }

name=alerts-receiver
. "$repo/deploy/local/lib/daemon.sh"
daemon_main "$@"
