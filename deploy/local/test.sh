#!/usr/bin/env bash
# Runs every check and test of cxlink against real components: an in-process NATS
# JetStream, private ClickHouse servers started from the local binary, promtool and
# docker-compose. Installs the packages it needs first (deploy/local/packages.sh).
#
#   deploy/local/test.sh [go test flags…]     e.g. deploy/local/test.sh -run TestPipeline
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/local/packages.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt'ed:" $unformatted >&2
  exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
# The fault-injection suite (cmd/cxlink/fault_test.go) writes its counts here; longer
# runs: CXLINK_FAULT_SEEDS=10 CXLINK_FAULT_LOAD=60s deploy/local/test.sh -run Fault
export CXLINK_FAULT_REPORT=${CXLINK_FAULT_REPORT:-$(mktemp -t cxlink-fault-report.XXXXXX)}
# The slowest package (cmd/cxlink: the end-to-end, fault and scale-out suites, race-built
# child processes) takes longest; the timeout ends a hung run within CI's 30 minutes.
go test -race -count=1 -timeout 22m "$@" ./...
if [ -s "$CXLINK_FAULT_REPORT" ]; then
  echo "== fault injection"
  cat "$CXLINK_FAULT_REPORT"
fi
# Fuzzing, a bounded time per target (CXLINK_FUZZTIME, e.g. 10m for a longer hunt); the
# corpus is committed under testdata/fuzz and also runs as plain tests above.
fuzztime=${CXLINK_FUZZTIME:-20s}
for target in ./ingest/event:FuzzDecode ./ingest/httpapi:FuzzHandler; do
  echo "== fuzz ${target#*:} for $fuzztime"
  go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "${target%%:*}" | tail -n 15
done
