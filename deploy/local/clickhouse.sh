#!/usr/bin/env bash
# A private ClickHouse for the local demo, listening on loopback only, with the
# repository's private-server configuration (deploy/clickhouse, which the tests use too)
# and its config, data and log under ${CXLINK_DATA_DIR:-.cxlink}/clickhouse.
#
#   deploy/local/clickhouse.sh start|stop|status
#
# Ports: CLICKHOUSE_PORT (native, default 9000), CLICKHOUSE_HTTP_PORT (8123),
# CLICKHOUSE_INTERSERVER_PORT (9009). Without a server binary, start installs Debian's
# clickhouse-server and clickhouse-client (deploy/local/packages.sh).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
data_root=${CXLINK_DATA_DIR:-.cxlink}
mkdir -p "$data_root/clickhouse"
dir=$(cd "$data_root/clickhouse" && pwd) # the server wants absolute paths
port=${CLICKHOUSE_PORT:-9000}
http_port=${CLICKHOUSE_HTTP_PORT:-8123}
interserver_port=${CLICKHOUSE_INTERSERVER_PORT:-9009}
ports="$port $http_port $interserver_port"
pid_file=$dir/clickhouse-server.pid
log_file=$dir/clickhouse-server.log

# server_cmd prints the command that runs a server, one word per line.
server_cmd() {
  if [ -x /usr/sbin/clickhouse-server ]; then
    echo /usr/sbin/clickhouse-server
  elif command -v clickhouse-server >/dev/null; then
    command -v clickhouse-server
  elif command -v clickhouse >/dev/null; then
    command -v clickhouse
    echo server
  else
    return 1
  fi
}

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  local f
  for f in config.xml users.xml; do
    sed -e "s|\${DIR}|$dir|g" -e "s|\${TCP_PORT}|$port|g" -e "s|\${HTTP_PORT}|$http_port|g" \
      -e "s|\${INTERSERVER_PORT}|$interserver_port|g" "$repo/deploy/clickhouse/$f" >"$dir/$f"
  done
}

# launch starts the server in the background.
launch() {
  server_cmd >/dev/null || "$repo/deploy/local/packages.sh"
  local server
  mapfile -t server < <(server_cmd)
  write_config
  (cd "$dir" && exec nohup "${server[@]}" --config-file="$dir/config.xml" >>"$log_file" 2>&1 </dev/null) &
}

ready_message() { echo "CLICKHOUSE_ADDR=127.0.0.1:$port, data in $dir"; }

name=clickhouse
. "$repo/deploy/local/lib/daemon.sh"
daemon_main "$@"
