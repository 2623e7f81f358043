// Package apptest is the one harness of cxlink's end-to-end tests: it starts the real
// thing on free loopback ports, stops it when the test ends, and shows its logs when the
// test fails.
//
//   - cxlink: Start (a whole `cxlink run` on a private ClickHouse), StartRole (any
//     command in the test's process), NewChild/StartChild (a role as its own OS process,
//     which can be killed -9; the package's TestMain calls Main).
//   - ClickHouse: sinks/clickhouse/chtest (a private server, or one given by address).
//   - Prometheus and Alertmanager: StartPrometheus, StartAlertmanager (Debian's binaries).
//   - NATS: the embedded server of ingest/broker in the test's process, or a cluster of
//     real nats-server processes from apptest/natstest.
//   - Any other process: apptest/proc, which all of the above run on.
//
// Import it from tests only.
package apptest

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// Instance is a running cxlink.
type Instance struct {
	t *testing.T
	// URL is the base URL of its HTTP API, e.g. http://127.0.0.1:41234; Addr its
	// host:port.
	URL, Addr string
	// Env is the environment it runs with.
	Env map[string]string
	// CH is the ClickHouse server, DB a client of its database.
	CH *chtest.Server
	DB *clickhouse.Client

	datasource ch.Conn // DashboardQuery's, once used
}

// Defaults are the environment of Start, before the caller's additions: short steps and
// waits so that tests see results quickly.
var Defaults = map[string]string{
	"CXLINK_HTTP_ADDR":         "127.0.0.1:0",
	"CXLINK_STREAM_PARTITIONS": "2",
	"CXLINK_WINDOWS":           "10m,1h",
	"CXLINK_ROLLUP_STEP":       "1s",
	"CXLINK_ALLOWED_LATENESS":  "10m",
	"CXLINK_ATTRIBUTION_WAIT":  "1m",
	"CXLINK_BATCH_MAX_DELAY":   "100ms",
	// Long enough for renewals on a loaded machine: at 3 s a busy run lost its leases
	// over and over.
	"CXLINK_LEASE_TTL":          "10s",
	"CXLINK_SNAPSHOT_EVERY":     "2s",
	"CLICKHOUSE_DIAL_TIMEOUT":   "2s",
	"CLICKHOUSE_INSERT_TIMEOUT": "10s",
}

// Start runs `cxlink run` with Defaults and env on a new database of ch (a new private
// server when ch is nil) and stops it when the test ends.
func Start(t *testing.T, ch *chtest.Server, env map[string]string) *Instance {
	t.Helper()
	if ch == nil {
		ch = chtest.Start(t)
	}
	database := ch.NewDatabase(t)
	e := maps.Clone(Defaults)
	e["CXLINK_DATA_DIR"] = t.TempDir()
	maps.Copy(e, ch.Env(database))
	maps.Copy(e, env)
	in := &Instance{t: t, Env: e, CH: ch}

	role := StartRole(t, e, TestLog(t, "cxlink"), "run")
	in.URL, in.Addr = role.URL, role.Addr
	var err error
	if in.DB, err = clickhouse.Open(t.Context(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.DB.Close() })
	return in
}

// Database is the instance's ClickHouse database.
func (in *Instance) Database() string { return in.Env["CLICKHOUSE_DATABASE"] }

// Query runs q and returns its rows as Go values (strings, numbers, times).
func (in *Instance) Query(q string, args ...any) [][]any {
	in.t.Helper()
	return values(ScanRows(in.t, in.DB.Conn(), q, args...))
}

// DashboardQuery is Query for a dashboard panel's query: it runs as Grafana's ClickHouse
// datasource runs it, with the instance's database as the default one (the queries name
// none).
func (in *Instance) DashboardQuery(q string) [][]any {
	in.t.Helper()
	if in.datasource == nil {
		in.datasource = in.CH.Conn(in.t, in.Database())
	}
	return values(ScanRows(in.t, in.datasource, q))
}

// values replaces each pointer of rows by the value it points to.
func values(rows [][]any) [][]any {
	for _, vals := range rows {
		for i, v := range vals {
			vals[i] = reflect.ValueOf(v).Elem().Interface()
		}
	}
	return rows
}

// ScanRows runs q on conn and returns its rows, each value a pointer to the column's Go
// type (*string, *uint64, *time.Time, …); a failure ends the test.
func ScanRows(t testing.TB, conn ch.Conn, q string, args ...any) [][]any {
	t.Helper()
	rows, err := conn.Query(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out [][]any
	types := rows.ColumnTypes()
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Count runs a query that returns one number.
func (in *Instance) Count(q string, args ...any) uint64 {
	in.t.Helper()
	rows := in.Query(q, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		in.t.Fatalf("%s: %d rows", q, len(rows))
	}
	switch v := rows[0][0].(type) {
	case uint64:
		return v
	default:
		var n uint64
		fmt.Sscan(fmt.Sprint(v), &n)
		return n
	}
}

// WaitCount waits until the query's number is at least want. It gives up after five
// minutes: a limit for a stuck run, not a speed test (a busy machine takes minutes over
// what takes seconds).
func (in *Instance) WaitCount(want uint64, q string, args ...any) uint64 {
	in.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n := in.Count(q, args...)
		if n >= want {
			return n
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("after five minutes %d < %d: %s", n, want, q)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
