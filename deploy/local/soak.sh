#!/usr/bin/env bash
# The compressed-time soak (issue 11): 30 simulated days of a contact centre of 1,000
# agents, 50 teams and 30 categories (~60,000 customer events a day) through the
# processors' state machines into a private ClickHouse, then the start-up of the real
# pipeline (and of a whole cxlink process) over 1 and 5 days of history in an in-process
# JetStream, four idle minutes,
# and the run times of the analytics stage, the drift detector and every Grafana panel
# query. Prints Markdown tables (docs/storage.md, "Measured", holds one run's). About
# 10 minutes on 2 cores; not part of deploy/local/test.sh.
#
#   deploy/local/soak.sh
#
# CXLINK_SOAK_DAYS (30), CXLINK_SOAK_IDLE (4m), CXLINK_SOAK_PANEL_RUNS (50) and
# CXLINK_SOAK_PANEL_TIME (10s, the most time spent on one query in one scenario) change it.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${CXLINK_DATA_DIR:-.cxlink}/soak
mkdir -p "$out"

deploy/local/packages.sh
go test -run '^$' -bench '^BenchmarkSoak$' -benchtime 1x -count 1 -timeout 90m ./cmd/cxlink/ 2>&1 | tee "$out/soak.txt"
echo "saved in $out/soak.txt" >&2
