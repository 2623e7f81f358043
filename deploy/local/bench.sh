#!/usr/bin/env bash
# Measures in one run, on this machine:
#  - the whole path (HTTP → JetStream → processors → ClickHouse) with the embedded
#    JetStream syncing before every acknowledgement (the default) and with NATS's
#    2-minute interval, and their ratio; the rate ingest answered at (publish alone);
#    the latency from a request to its rows being queryable (p50, p99); the rate a
#    restarted pipeline replays the stream at, next to a plain durable consumer's;
#  - `nats bench js pub async --dedup` on the same server with each policy;
#  - `cxlink import` of 100,000 rows into the default `cxlink run` (sync always);
#  - where the CPU time of the whole path goes.
#
#   deploy/local/bench.sh [events]     (default 100000)
#
# CXLINK_BENCH_COMPARE=/path/to/another/cxlink also imports the same rows with that
# binary (e.g. one built from an older commit) and prints the ratio of the two rates.
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-100000}
rows=100000
out=${CXLINK_DATA_DIR:-.cxlink}/bench
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)

deploy/local/packages.sh
if [ ! -x "$out/bin/nats" ]; then
  echo "installing the nats CLI (natscli v0.5.0) into $out/bin" >&2
  GOBIN=$out/bin go install github.com/nats-io/natscli/nats@v0.5.0
fi

echo "whole pipeline, $events events per policy (4 senders, 500 events a request)…" >&2
PATH=$out/bin:$PATH CXLINK_BENCH_PROFILE_DIR=$out go test -run '^$' -bench WholePipeline -benchtime "${events}x" \
  -count 1 -timeout 60m -o "$out/cxlink.test" ./cmd/cxlink/ >"$out/pipeline.txt" 2>&1 || {
  cat "$out/pipeline.txt"
  exit 1
}
awk '
  /^BenchmarkWholePipeline\/sync=/ {
    split($1, name, "[=-]"); p = name[2]; policies[++n] = p
    for (i = 5; i < NF; i += 2) v[p, $(i + 1)] = $i
  }
  function row(label, unit, fmt) {
    printf "%-44s", label
    for (j = 1; j <= n; j++) printf fmt, v[policies[j], unit]
    printf "\n"
  }
  END {
    if (n == 0) { print "no benchmark result"; exit 1 }
    printf "%-44s", ""; for (j = 1; j <= n; j++) printf "%14s", "sync " policies[j]; printf "\n"
    row("whole pipeline, events/s", "events/s", "%14.0f")
    row("ingest answered (publish), events/s", "ingest-events/s", "%14.0f")
    row("nats bench js pub async --dedup, msgs/s", "nats-bench-msgs/s", "%14.0f")
    row("whole pipeline / nats bench", "ratio", "%14.2f")
    row("ingest to queryable p50, ms", "p50-ms", "%14.0f")
    row("ingest to queryable p99, ms", "p99-ms", "%14.0f")
    row("replay after a restart, events/s", "replay-events/s", "%14.0f")
    row("durable consumer, acking each, msgs/s", "consume-msgs/s", "%14.0f")
    for (j = 1; j <= n; j++) if (v[policies[j], "always/lazy"] != "")
      printf "whole pipeline, sync always / sync %s: %.2f\n", policies[j], v[policies[j], "always/lazy"]
  }' "$out/pipeline.txt"

echo
echo "cxlink import of $rows rows into \`cxlink run\` (defaults: sync always)…" >&2
go build -o "$out/bin/cxlink" ./cmd/cxlink
file=$out/import-rows.ndjson
if [ ! -s "$file" ]; then
  # Tickets and their CES surveys, spread over the past year (raw tables only: late).
  awk -v n="$rows" 'BEGIN {
    srand(1); now = systime()
    for (i = 0; i < n; i++) {
      t = strftime("%Y-%m-%dT%H:%M:%SZ", now - 7200 - int(rand() * 365 * 86400), 1)
      if (i % 2 == 0)
        printf "{\"id\":\"hist-%d\",\"type\":\"ticket\",\"occurred_at\":\"%s\",\"ticket_id\":\"T%d\",\"status\":\"solved\",\"category\":\"category-%d\",\"channel\":\"chat\",\"team\":\"team-%d\",\"agent_id\":\"agent-%d\",\"handle_seconds\":%d,\"contacts\":%d,\"source\":\"history\"}\n", i, t, i / 2, i % 7, i % 6, i % 48, 300 + i % 900, 1 + i % 3
      else
        printf "{\"id\":\"hist-%d\",\"type\":\"survey_response\",\"occurred_at\":\"%s\",\"ticket_id\":\"T%d\",\"survey\":\"ces\",\"score\":%d,\"customer_id\":\"c%d\",\"comment\":\"quick and friendly\",\"source\":\"history\"}\n", i, t, int(i / 2), 1 + i % 7, i
    }
  }' >"$file"
fi
export CLICKHOUSE_PORT=${CLICKHOUSE_PORT:-19200} CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-19201}
export CLICKHOUSE_INTERSERVER_PORT=${CLICKHOUSE_INTERSERVER_PORT:-19202}
CXLINK_DATA_DIR=$out deploy/local/clickhouse.sh start >/dev/null
trap 'CXLINK_DATA_DIR=$out deploy/local/clickhouse.sh stop >/dev/null 2>&1 || true' EXIT
http_port=${CXLINK_BENCH_HTTP_PORT:-18490}

# import_rate NAME BINARY: imports the rows with BINARY into a fresh `BINARY run`;
# prints the rows/s.
import_rate() {
  local name=$1 bin=$2 dir=$out/import-$1 pid start end
  rm -rf "$dir" && mkdir -p "$dir"
  CXLINK_DATA_DIR=$dir CLICKHOUSE_ADDR=127.0.0.1:$CLICKHOUSE_PORT CLICKHOUSE_DATABASE=bench_import_$name \
    CXLINK_HTTP_ADDR=127.0.0.1:$http_port "$bin" run >"$dir/run.log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do
    curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break
    sleep 0.2
  done
  start=$(date +%s.%N)
  "$bin" import --quiet --target "http://127.0.0.1:$http_port" --state "$dir/state.json" \
    --report "$dir/errors.csv" "$file" >"$dir/import.txt" 2>&1 || { cat "$dir/import.txt" >&2; kill "$pid"; return 1; }
  end=$(date +%s.%N)
  kill "$pid" && wait "$pid" || true
  sed 's/^/  /' "$dir/import.txt" >&2
  awk -v n="$rows" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f\n", n / (e - s) }'
}
rate=$(import_rate current "$out/bin/cxlink")
echo "cxlink import: $rows rows at $rate rows/s"
if [ -n "${CXLINK_BENCH_COMPARE:-}" ]; then
  other=$(import_rate compare "$CXLINK_BENCH_COMPARE")
  echo "cxlink import with $CXLINK_BENCH_COMPARE: $other rows/s; this tree is $(awk -v a="$rate" -v b="$other" 'BEGIN { printf "%.1f", a / b }') times as fast"
fi

echo
for policy in always 2m; do
  echo "CPU profile of the whole pipeline with sync $policy, while events flowed (cumulative; ClickHouse runs outside it):"
  go tool pprof -top -cum "$out/cxlink.test" "$out/cpu-sync=$policy.pprof" 2>/dev/null | sed -n '4,5p'
  go tool pprof -top -cum -nodecount 400 "$out/cxlink.test" "$out/cpu-sync=$policy.pprof" 2>/dev/null |
    grep -E 'httpapi\.\(\*Handler\)\.serveEvents|event\.Validator\.Decode|stream\.\(\*Publisher\)\.Publish|pipeline\.\(\*worker\)\.(handle|apply)$|pipeline\.\(\*writer\)\.run$|clickhouse\.\(\*Client\)\.WriteBatch$|nats-server.*processJetStream(Atomic)?(Batch)?Msg$|nats-server.*\(\*consumer\)\.processAck|filestore.*writeMsgRecord$|encoding/json\.(Marshal|Unmarshal)$|syscall\.Fsync' || true
  echo
done
