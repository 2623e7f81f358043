#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages cxlink's demo and tests run for real, when missing:
#   clickhouse-server/-client  the database (tests start private servers from it)
#   prometheus                 promtool checks and tests the alerting and recording rules;
#                              the alerting end-to-end test and the demo run prometheus
#   prometheus-alertmanager    amtool checks the Alertmanager configuration; the alerting
#                              test and the demo run prometheus-alertmanager
#   docker-compose             validates docker-compose.yml offline (no engine needed)
#   libzookeeper-java          ZooKeeper, which the ClickHouse cluster test
#   default-jre-headless       (sinks/clickhouse/chtest) runs for replicated tables, and the
#                              Java it runs on (the zookeeper package adds only scripts and a
#                              service, and depends on a desktop Java)
# Go modules come from the module proxy through `go` itself.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v docker-compose >/dev/null || missing+=(docker-compose)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(libzookeeper-java)
command -v java >/dev/null || missing+=(default-jre-headless)

if [ ${#missing[@]} -gt 0 ]; then
  echo "packages.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: cxlink runs private ones.
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
