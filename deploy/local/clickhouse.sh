#!/usr/bin/env bash
# A private ClickHouse for the local demo: its own config, data and log under
# ${CXLINK_DATA_DIR:-.cxlink}/clickhouse, listening on loopback only.
#
#   deploy/local/clickhouse.sh start|stop|status
#
# Ports: CLICKHOUSE_PORT (native, default 9000), CLICKHOUSE_HTTP_PORT (8123),
# CLICKHOUSE_INTERSERVER_PORT (9009). Without a server binary, start installs Debian's
# clickhouse-server and clickhouse-client with apt-get.
set -euo pipefail

data_root=${CXLINK_DATA_DIR:-.cxlink}
mkdir -p "$data_root/clickhouse"
dir=$(cd "$data_root/clickhouse" && pwd) # the server wants absolute paths
port=${CLICKHOUSE_PORT:-9000}
http_port=${CLICKHOUSE_HTTP_PORT:-8123}
interserver_port=${CLICKHOUSE_INTERSERVER_PORT:-9009}
pid_file=$dir/clickhouse-server.pid
log_file=$dir/clickhouse-server.log
start_timeout=${CLICKHOUSE_START_TIMEOUT:-30} # seconds

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

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

# client_cmd prints the command that runs a client, one word per line.
client_cmd() {
  if command -v clickhouse-client >/dev/null; then
    command -v clickhouse-client
  elif command -v clickhouse >/dev/null; then
    command -v clickhouse
    echo client
  else
    return 1
  fi
}

install_clickhouse() {
  local missing=()
  server_cmd >/dev/null || missing+=(clickhouse-server)
  client_cmd >/dev/null || missing+=(clickhouse-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    log "no ClickHouse found and no apt-get to install it; install ${missing[*]} and try again"
    exit 1
  fi
  log "installing ${missing[*]} with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  # The pid must still be our server, not a process that reused the number.
  [ -n "$pid" ] && grep -q clickhouse "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <console>1</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$port</tcp_port>
    <http_port>$http_port</http_port>
    <interserver_http_port>$interserver_port</interserver_http_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
EOF
  cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <!-- Idle connections notice a shutdown within a second (default 10). -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default></default>
    </quotas>
</yandex>
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

answers() {
  local client
  if mapfile -t client < <(client_cmd); then
    "${client[@]}" --host 127.0.0.1 --port "$port" -q 'SELECT 1' >/dev/null 2>&1
  else
    port_open "$port"
  fi
}

start() {
  local pid
  if pid=$(running_pid); then
    log "already running (pid $pid)"
    echo "127.0.0.1:$port"
    return 0
  fi
  # Else the readiness check below would be answered by whoever holds the port.
  local p
  for p in "$port" "$http_port" "$interserver_port"; do
    if port_open "$p"; then
      log "port $p on 127.0.0.1 is in use by another process; choose others with CLICKHOUSE_PORT, CLICKHOUSE_HTTP_PORT, CLICKHOUSE_INTERSERVER_PORT"
      exit 1
    fi
  done
  install_clickhouse
  local server
  mapfile -t server < <(server_cmd)
  write_config
  log "starting ${server[*]} in $dir (log: $log_file)"
  (cd "$dir" && exec nohup "${server[@]}" --config-file="$dir/config.xml" >>"$log_file" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$pid_file"
  local deadline=$((SECONDS + start_timeout))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      log "the server exited; last lines of $log_file:"
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "no answer on 127.0.0.1:$port after ${start_timeout}s; last lines of $log_file:"
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.1
  done
  log "ready (pid $pid); CLICKHOUSE_ADDR=127.0.0.1:$port"
  echo "127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    log "not running"
    rm -f "$pid_file"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "still running 15s after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pid_file"
  log "stopped (pid $pid)"
}

status() {
  local pid
  if pid=$(running_pid); then
    echo "running (pid $pid) on 127.0.0.1:$port, data in $dir"
  else
    echo "not running"
    return 3
  fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
