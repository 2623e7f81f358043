package deploy

// The ClickHouse users of deploy/clickhouse on the real ClickHouse of this machine
// (18.16, configured by XML): the writer migrates and writes both databases; Grafana's
// read-only user runs every dashboard query, and can neither read the database of
// individual employee answers nor write anything.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// demoPassword is the password deploy/clickhouse ships (to be replaced).
const demoPassword = "change-me"

func TestClickHouseUsers(t *testing.T) {
	users, err := os.ReadFile("clickhouse/users.d/cxlink.xml")
	if err != nil {
		t.Fatal(err)
	}
	srv := chtest.StartWithUsers(t, string(users))
	ctx := t.Context()

	// The writer creates both databases and writes to each.
	cfg := srv.Config("cxlink")
	cfg.User, cfg.Password = "cxlink", demoPassword
	w, err := clickhouse.Open(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Migrate(ctx); err != nil {
		t.Fatalf("the writer cannot migrate: %v", err)
	}
	if w.PrivateDatabase() != "cxlink_private" {
		t.Fatalf("private database %s", w.PrivateDatabase())
	}
	at := time.Now().UTC().Truncate(time.Second)
	o := records.Origin{ReceivedAt: at, Seq: 1, Version: records.Version(1, 0)}
	if err := w.WriteBatch(ctx, &records.Batch{
		Surveys: []records.Survey{{Origin: o, ID: "s1", Survey: "ces", OccurredAt: at, Score: 5, ScaleMin: 1, ScaleMax: 7, StandardScore: 5, Team: "alpha"}},
		Pulses:  []records.Pulse{{Origin: o, ID: "p1", EmployeeID: "emp-1", Team: "alpha", Question: "engagement", OccurredAt: at, Score: 4, ScaleMin: 1, ScaleMax: 5}},
	}); err != nil {
		t.Fatalf("the writer cannot write: %v", err)
	}

	// As the datasource connects: its default database is the dashboards' one, in which
	// the panels' queries (naming none) run.
	g, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: "cxlink", Username: "grafana", Password: demoPassword}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var n uint64
	if err := g.QueryRow(ctx, "SELECT count() FROM cxlink.survey_responses FINAL").Scan(&n); err != nil || n != 1 {
		t.Fatalf("grafana reads the dashboards' database: %d %v", n, err)
	}
	// Grafana's datasource sets max_execution_time on every query.
	if err := g.QueryRow(ch.Context(ctx, ch.WithSettings(ch.Settings{"max_execution_time": 30})), "SELECT count() FROM cxlink.rollups").Scan(&n); err != nil {
		t.Fatalf("grafana with max_execution_time: %v", err)
	}
	refused := map[string]string{
		"read the private database":  "SELECT count() FROM cxlink_private.employee_pulses",
		"read a private column":      "SELECT employee_id FROM cxlink_private.employee_pulses",
		"insert":                     "INSERT INTO cxlink.team_periods (period, team) SELECT '7d', 'x'",
		"create a table":             "CREATE TABLE cxlink.x (a UInt8) ENGINE = Memory",
		"drop a table":               "DROP TABLE cxlink.linkage",
		"alter a table":              "ALTER TABLE cxlink.linkage DELETE WHERE 1",
		"create a database":          "CREATE DATABASE grafana_own",
		"copy into another database": "CREATE TABLE default.y ENGINE = Memory AS SELECT * FROM cxlink.team_periods",
	}
	for what, q := range refused {
		if err := run(ctx, g, q); err == nil {
			t.Errorf("grafana could %s: %s", what, q)
		} else {
			t.Logf("grafana may not %s: %v", what, firstLine(err))
		}
	}
	if err := w.Conn().QueryRow(ctx, "SELECT count() FROM cxlink_private.employee_pulses FINAL").Scan(&n); err != nil || n != 1 {
		t.Errorf("the pulse is not in the private database for the writer: %d %v", n, err)
	}

	// Nor does it learn anything of it from the system tables: no table name, part or
	// column.
	for _, q := range []string{"SELECT count() FROM system.tables WHERE database = 'cxlink_private'",
		"SELECT count() FROM system.parts WHERE database = 'cxlink_private'",
		"SELECT count() FROM system.columns WHERE database = 'cxlink_private'"} {
		var k uint64
		if err := g.QueryRow(ctx, q).Scan(&k); err != nil || k != 0 {
			t.Errorf("grafana: %s → %d %v", q, k, err)
		}
	}

	// Every ClickHouse query of every dashboard runs as grafana.
	ran := 0
	from, to := at.Add(-24*time.Hour), at.Add(time.Minute)
	for name, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				if q.Datasource.UID != "clickhouse" {
					continue
				}
				for _, vars := range combinations(d) {
					sql := dashboards.ExpandClickHouseMacros(dashboards.ExpandVars(q.RawSQL, vars), from, to, time.Minute)
					rows, err := g.Query(ctx, sql)
					if err != nil {
						t.Errorf("%s %q as grafana: %v\n%s", name, p.Title, err, sql)
						continue
					}
					rows.Close()
					ran++
				}
			}
		}
	}
	if ran < 10 {
		t.Fatalf("only %d dashboard queries ran", ran)
	}
	t.Logf("%d dashboard queries ran as the read-only user", ran)
}

func run(ctx context.Context, c ch.Conn, q string) error {
	if strings.HasPrefix(q, "SELECT") || strings.HasPrefix(q, "SHOW") {
		rows, err := c.Query(ctx, q)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		defer rows.Close()
		return rows.Err()
	}
	return c.Exec(ctx, q)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
