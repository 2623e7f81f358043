# The one way the local scripts run a server in the background: ClickHouse, Prometheus,
# Alertmanager (clickhouse.sh, prometheus.sh, alertmanager.sh) and the demo's alerts
# receiver (demo.sh). The server's pid is in $pid_file, its output in $log_file, and it
# is ready once it accepts connections on 127.0.0.1:$port.
#
# The sourcing script sets name (the server's name, also looked for in its command line
# so that a reused pid is not taken for it), pid_file, log_file, port, and optionally
# ports (every port it binds; default: $port); it defines launch (start the server in the
# background, so that $! is its pid; print nothing) and ready_message (what start says
# once the server is ready). Then daemon_main "$@" runs start, stop or status.

log() { printf '%s: %s\n' "$name" "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# running_pid prints the pid of the running server, or fails.
running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  local pid p
  if pid=$(running_pid); then
    log "already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  # Else the readiness check below would be answered by whoever holds the port.
  for p in ${ports:-$port}; do
    if port_open "$p"; then
      log "port $p on 127.0.0.1 is in use by another process; choose another (see the top of $0)"
      exit 1
    fi
  done
  launch
  pid=$!
  echo "$pid" >"$pid_file"
  local deadline=$((SECONDS + ${start_timeout:-30}))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      log "did not start; last lines of $log_file:"
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.1
  done
  log "ready (pid $pid) on 127.0.0.1:$port, $(ready_message)"
}

stop() {
  local pid
  if pid=$(running_pid); then
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
    log "stopped (pid $pid)"
  fi
  rm -f "$pid_file"
}

status() {
  local pid
  if pid=$(running_pid); then
    echo "$name running (pid $pid) on 127.0.0.1:$port, log $log_file"
  else
    echo "$name not running"
    return 3
  fi
}

daemon_main() {
  case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
  esac
}
