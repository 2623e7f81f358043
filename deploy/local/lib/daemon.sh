# Shared by the demo's server scripts (prometheus.sh, alertmanager.sh): a server started in
# the background with its pid in $pid_file and its output in $log_file, ready once it
# accepts connections on 127.0.0.1:$port. The sourcing script sets name, pid_file,
# log_file and port, and defines launch (start the server in the background; print
# nothing) and ready_message.

log() { printf '%s.sh: %s\n' "$name" "$*" >&2; }

# running_pid prints the pid of the running server, or fails.
running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  local pid
  if pid=$(running_pid); then
    log "already running (pid $pid) on http://127.0.0.1:$port"
    return 0
  fi
  launch
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
  log "ready on http://127.0.0.1:$port, $(ready_message)"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pid_file"
}

daemon_main() {
  case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
  esac
}
