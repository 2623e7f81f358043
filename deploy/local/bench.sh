#!/usr/bin/env bash
# Measures the whole path (HTTP → JetStream → processors → ClickHouse) next to
# `nats bench js pub async --dedup` on the same JetStream server in the same run, and
# prints where the CPU time goes.
#
#   deploy/local/bench.sh [events]     (default 200000)
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-200000}
out=${CXLINK_DATA_DIR:-.cxlink}/bench
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)

deploy/local/packages.sh
if [ ! -x "$out/bin/nats" ]; then
  echo "installing the nats CLI (natscli v0.5.0) into $out/bin" >&2
  GOBIN=$out/bin go install github.com/nats-io/natscli/nats@v0.5.0
fi

PATH=$out/bin:$PATH go test -run '^$' -bench WholePipeline -benchtime "${events}x" -count 1 \
  -cpuprofile "$out/cpu.pprof" -o "$out/cxlink.test" ./cmd/cxlink/ | grep -v '^ *20[0-9][0-9]\.'
echo
echo "CPU profile, by package (cumulative; the ClickHouse server runs outside this profile):"
go tool pprof -top -cum "$out/cxlink.test" "$out/cpu.pprof" 2>/dev/null | sed -n '1,6p'
go tool pprof -top -cum -nodecount 400 "$out/cxlink.test" "$out/cpu.pprof" 2>/dev/null |
  grep -E 'httpapi\.\(\*Handler\)\.serveEvents|event\.Validator\.Decode|stream\.\(\*Publisher\)\.Publish|pipeline\.\(\*worker\)\.(handle|apply)|pipeline\.\(\*writer\)\.run|clickhouse\.\(\*Client\)\.WriteBatch|nats-server.*processJetStreamMsg|filestore.*writeMsgRecord|encoding/json\.(Marshal|Unmarshal)$' || true
