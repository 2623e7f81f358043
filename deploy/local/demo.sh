#!/usr/bin/env bash
# The all-in-one demo on one machine: a private ClickHouse, Prometheus and Alertmanager
# (installed with apt-get when missing), `cxlink alerts-receiver` standing in for on-call's
# pager (it prints every notification to .cxlink/alerts.log), then `cxlink run` with
# embedded JetStream, the drift detector and the contact-centre simulator. Ctrl-C stops
# cxlink; `deploy/local/demo.sh stop` stops the servers too.
#
#   deploy/local/demo.sh [cxlink run flags…]
#   e.g. deploy/local/demo.sh --drift "category=login_problem,after=2m,for=15m,ces=-2"
#   deploy/local/demo.sh report [--format json]   (while or after the demo runs)
#   deploy/local/demo.sh followups [--owner billing] [--overdue]
set -euo pipefail
cd "$(dirname "$0")/../.."

export CXLINK_DATA_DIR=${CXLINK_DATA_DIR:-$PWD/.cxlink}
# The demo imports two hours of simulated history at once: sync the embedded JetStream
# every second rather than per event (cxlink's default), which is ten times faster here.
export CXLINK_NATS_SYNC=${CXLINK_NATS_SYNC:-1s}
# Ports clear of the system services a package install may have started (9000, 8123, 9090).
export CLICKHOUSE_PORT=${CLICKHOUSE_PORT:-19000} CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-18123}
export CLICKHOUSE_INTERSERVER_PORT=${CLICKHOUSE_INTERSERVER_PORT:-19009}
export CLICKHOUSE_ADDR=127.0.0.1:$CLICKHOUSE_PORT
export CXLINK_HTTP_PORT=${CXLINK_HTTP_PORT:-8080}
export CXLINK_HTTP_ADDR=127.0.0.1:$CXLINK_HTTP_PORT
prometheus_port=${PROMETHEUS_PORT:-19090}
# Employees answer a pulse every 10 minutes in the demo: link per 10-minute period, and
# compute linkage and effort impact every minute. A period's team results are published
# a minute after it ends (the product waits an hour after a weekly period).
export CXLINK_PULSE_PERIOD=${CXLINK_PULSE_PERIOD:-10m}
export CXLINK_PULSE_GRACE=${CXLINK_PULSE_GRACE:-1m}
export CXLINK_ANALYTICS_EVERY=${CXLINK_ANALYTICS_EVERY:-1m}
export ALERTMANAGER_PORT=${ALERTMANAGER_PORT:-19093} ALERTS_RECEIVER_PORT=${ALERTS_RECEIVER_PORT:-19094}
# Who owns what: alerts for these categories go to their department's receiver.
export CXLINK_OWNERS=${CXLINK_OWNERS:-"category:plan_correction=product,category:login_problem=web,category:cancellation=marketing,category:billing_question=billing,*=support"}
# Drift is judged on the last 10 minutes against the hour before them (the product: the
# last hour against the 7 days before), so that a drift shows within minutes. The hour, not
# the whole history: the simulation starts with no open tickets, so its first hour holds
# only the quickly solved, easy ones and would make any present look worse.
export CXLINK_WINDOWS=${CXLINK_WINDOWS:-10m,1h,24h,7d} CXLINK_DRIFT_RECENT=${CXLINK_DRIFT_RECENT:-10m}
export CXLINK_DRIFT_BASELINE=${CXLINK_DRIFT_BASELINE:-1h}
# The simulator posts two hours of history at start: accept it all into the windows
# (and the drift baselines) rather than counting half of it as late.
export CXLINK_ALLOWED_LATENESS=${CXLINK_ALLOWED_LATENESS:-3h}
# Follow-up cases: a bad answer becomes a case for its owner, posted to the owner's webhook
# (here the demo's receiver, which checks the signature and prints it to alerts.log).
# Nobody calls back in the demo, so cases become overdue after the due time, and an owner
# with five overdue for 15 minutes gets CXLinkFollowUpsOverdue.
export CXLINK_FOLLOWUP_RULES=${CXLINK_FOLLOWUP_RULES:-"ces<=2, csat<=1, nps<=2"}
export CXLINK_FOLLOWUP_DUE=${CXLINK_FOLLOWUP_DUE:-"billing=10m, *=30m"}
receiver_url=http://127.0.0.1:$ALERTS_RECEIVER_PORT/followups
export CXLINK_FOLLOWUP_WEBHOOKS=${CXLINK_FOLLOWUP_WEBHOOKS:-"product=$receiver_url/product, web=$receiver_url/web, marketing=$receiver_url/marketing, billing=$receiver_url/billing, *=$receiver_url/support"}
export CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE=${CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE:-$CXLINK_DATA_DIR/followup-webhook-secret}

if [ "${1:-}" = report ] || [ "${1:-}" = followups ]; then
  exec "$CXLINK_DATA_DIR/bin/cxlink" "$@"
fi

if [ "${1:-}" = stop ]; then
  deploy/local/alerts-receiver.sh stop
  deploy/local/prometheus.sh stop
  deploy/local/alertmanager.sh stop
  deploy/local/clickhouse.sh stop
  exit 0
fi

deploy/local/packages.sh
deploy/local/clickhouse.sh start
deploy/local/alertmanager.sh start
deploy/local/prometheus.sh start
echo "building cxlink…" >&2
mkdir -p "$CXLINK_DATA_DIR/bin"
go build -o "$CXLINK_DATA_DIR/bin/cxlink" ./cmd/cxlink
if [ ! -s "$CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 >"$CXLINK_FOLLOWUP_WEBHOOK_SECRET_FILE")
fi
# A new build: the receiver restarts with it (and the follow-up secret, from the environment).
deploy/local/alerts-receiver.sh stop
deploy/local/alerts-receiver.sh start

cat >&2 <<BANNER

cxlink demo: a simulated contact centre posts events to http://$CXLINK_HTTP_ADDR/v1/events

  Metrics     curl -s http://$CXLINK_HTTP_ADDR/metrics | grep '^cxlink_rolling_responses'
  Prometheus  http://127.0.0.1:$prometheus_port  (try: cxlink:rolling_mean{survey="ces",window="1h",dimension="category"}
              or cxlink:drift_z{survey="ces",dimension="category"}; alerts: http://127.0.0.1:$prometheus_port/alerts)
  Alerts      tail -f $CXLINK_DATA_DIR/alerts.log   (what on-call receives, by owner; Alertmanager: http://127.0.0.1:$ALERTMANAGER_PORT)
  ClickHouse  clickhouse-client --port $CLICKHOUSE_PORT -d cxlink

Example queries (rollups: every window as of the current minute):
  SELECT key AS category, responses, round(mean, 2) AS ces, round(pct_difficult, 1) AS pct_difficult
  FROM rollups WHERE survey = 'ces' AND \`window\` = '1h' AND dimension = 'category' ORDER BY ces;

  SELECT toStartOfHour(bucket_start) + 3600 AS hour_end, sum(responses) AS n, round(sum(score_sum) / n, 2) AS ces
  FROM rollup_buckets FINAL WHERE survey = 'ces' AND dimension = 'overall'
    AND bucket_start >= toStartOfHour(now()) - INTERVAL 6 HOUR GROUP BY hour_end ORDER BY hour_end;

  SELECT team, count() AS surveys, round(avg(standard_score), 2) AS ces
  FROM survey_responses FINAL WHERE survey = 'ces' AND late = 0 GROUP BY team ORDER BY ces;

  SELECT started_at, ended_at, key, owner, detector, round(peak_statistic, 1) AS peak_z
  FROM drift_events FINAL ORDER BY started_at DESC LIMIT 10;

Effort-impact ranking and EX–CX linkage (computed every minute; the first after ~1 min):
  deploy/local/demo.sh report

Follow-up cases (rules: $CXLINK_FOLLOWUP_RULES; due: $CXLINK_FOLLOWUP_DUE), each also
printed to alerts.log as its owner's webhook receives it:
  deploy/local/demo.sh followups [--owner billing] [--overdue]
  curl -s http://$CXLINK_HTTP_ADDR/metrics | grep '^cxlink_followup_\(open\|overdue\)_cases'
  SELECT id, owner, state, due_at, survey, score, customer_id, ticket_id, category, comment
  FROM followups FINAL WHERE state != 'closed' ORDER BY due_at LIMIT 20;

Ctrl-C stops cxlink (accepted events are kept); 'deploy/local/demo.sh stop' stops the servers.

BANNER
# Two hours of history first, so that rollups and pulses have data from the start.
exec "$CXLINK_DATA_DIR/bin/cxlink" run --simulate --history 2h --pulse-every 10m "$@"
