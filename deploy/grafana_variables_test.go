package deploy

// Grafana variables reach the dashboards' SQL as text a viewer can choose (a dashboard
// URL sets var-<name>=<anything>). Quote-doubling (Grafana's sqlstring format) is not
// enough for ClickHouse, whose string literals also take backslash escapes: \' ends
// nothing and lets the rest of the value out. So every variable enters ClickHouse SQL
// percent-encoded by Grafana (${name:percentencode}, which leaves only letters, digits
// and -_.~%) inside a string literal, decoded by ClickHouse itself:
// decodeURLComponent('${name:percentencode}'). And every variable is a custom one that
// accepts its listed options only (allowCustomValue false).

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// sqlString is Grafana's sqlstring format: quotes doubled, the value quoted.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var (
	anyVariable  = regexp.MustCompile(`\$\{?([a-z_]+)`)
	safeVariable = regexp.MustCompile(`decodeURLComponent\('\$\{([a-z_]+):percentencode\}'\)`)
)

// Every variable in a ClickHouse query is percent-encoded in a literal and decoded by
// ClickHouse, and accepts its listed options only.
func TestDashboardVariablesAreQuoted(t *testing.T) {
	checked := 0
	for name, d := range loadDashboards(t) {
		raw, err := os.ReadFile("grafana/dashboards/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(d.Templating.List); n > 0 && strings.Count(string(raw), `"allowCustomValue": false`) != n {
			t.Errorf("%s: every variable must accept its options only (allowCustomValue false)", name)
		}
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				if q.Datasource.UID != "clickhouse" {
					continue
				}
				for _, m := range anyVariable.FindAllStringSubmatch(safeVariable.ReplaceAllString(q.RawSQL, ""), -1) {
					if !strings.HasPrefix(m[1], "__") {
						t.Errorf("%s %q: variable %s is not decodeURLComponent('${%s:percentencode}')", name, p.Title, m[1], m[1])
					}
				}
				checked += len(safeVariable.FindAllString(q.RawSQL, -1))
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d variable uses in ClickHouse queries", checked)
	}
}

// hostile are values a viewer could put into a dashboard URL: another statement, a
// condition that is always true, a UNION reaching for employee answers, and the
// backslash that defeats quote-doubling.
var hostile = []string{
	"24h'; DROP TABLE cxlink.linkage; --",
	"x' OR '1'='1",
	"0 OR 1 = 1",
	"x') UNION ALL SELECT employee_id FROM cxlink_private.employee_pulses --",
	`\' OR 1 = 1 OR \'`,
	"x\\' OR 1 = 1 --\n",
}

// Run as Grafana's read-only user on ClickHouse 18.16, every dashboard query with a
// hostile value in any variable runs as one query that treats the value as text: it
// returns what a value matching nothing returns (its own 0 rows), runs nothing else, and
// changes nothing. The same values quoted only by doubling quotes break out of the
// literal, which shows the test would catch it.
func TestHostileVariableValues(t *testing.T) {
	users, err := os.ReadFile("clickhouse/users.d/cxlink.xml")
	if err != nil {
		t.Fatal(err)
	}
	srv := chtest.StartWithUsers(t, string(users))
	ctx := t.Context()
	cfg := srv.Config("cxlink")
	cfg.User, cfg.Password = "cxlink", demoPassword
	w, err := clickhouse.Open(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	o := records.Origin{ReceivedAt: at, Seq: 1, Version: records.Version(1, 0)}
	var buckets []records.Bucket
	for _, dim := range []string{"overall", "category", "channel", "team"} {
		key := map[string]string{"overall": ""}[dim]
		if dim != "overall" {
			key = "alpha"
		}
		buckets = append(buckets, records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: at.Truncate(time.Minute).Add(-10 * time.Minute),
			Responses: 2, ScoreSum: 10, Positive: 1, SquareSum: 50, Version: 1})
	}
	if err := w.WriteBatch(ctx, &records.Batch{
		Surveys: []records.Survey{{Origin: o, ID: "s1", Survey: "ces", OccurredAt: at, Score: 5, ScaleMin: 1, ScaleMax: 7, StandardScore: 5, Team: "alpha"}},
		Pulses:  []records.Pulse{{Origin: o, ID: "p1", EmployeeID: "emp-1", Team: "alpha", Question: "engagement", OccurredAt: at, Score: 4, ScaleMin: 1, ScaleMax: 5}},
		Buckets: buckets,
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteWindows(ctx, time.Minute, []effort.Window{{Name: "1h", Length: time.Hour}, {Name: "24h", Length: 24 * time.Hour}, {Name: "7d", Length: 7 * 24 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	for table, rows := range fixtureRows {
		if err := w.Conn().Exec(ctx, fixtureSQL(rows, "cxlink", at)); err != nil {
			t.Fatalf("rows for %s: %v", table, err)
		}
	}
	g, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: "cxlink", Username: "grafana", Password: demoPassword}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// state is what a hostile query could change: the tables of both databases and the
	// rows of the tables the dashboards read.
	state := func() string {
		var tables uint64
		if err := w.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database IN ('cxlink', 'cxlink_private')").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("%d tables", tables)
		for _, table := range []string{"linkage", "survey_responses", "rollup_buckets", "rollup_windows", "cxlink_private.employee_pulses"} {
			if !strings.Contains(table, ".") {
				table = "cxlink." + table
			}
			var n uint64
			if err := w.Conn().QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out += fmt.Sprintf(", %s %d", table, n)
		}
		return out
	}
	before := state()
	count := func(sql string) (int, error) {
		rows, err := g.Query(ctx, sql)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		return n, rows.Err()
	}

	from, to := at.Add(-24*time.Hour), at.Add(time.Hour)
	ran, broke := 0, 0
	for name, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				if q.Datasource.UID != "clickhouse" {
					continue
				}
				for _, v := range d.Templating.List {
					if !strings.Contains(q.RawSQL, "${"+v.Name+":") {
						continue
					}
					expand := func(value string, format func(string) string) string {
						vars := defaults(d)
						vars[v.Name] = value
						sql := q.RawSQL
						if format != nil { // as if the dashboard used another format
							sql = strings.ReplaceAll(sql, "decodeURLComponent('${"+v.Name+":percentencode}')", format(value))
						}
						return dashboards.ExpandClickHouseMacros(dashboards.ExpandVars(sql, vars), from, to, time.Minute)
					}
					what := fmt.Sprintf("%s %q, %s", name, p.Title, v.Name)
					want, err := count(expand("matches-nothing", nil))
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					for _, value := range hostile {
						got, err := count(expand(value, nil))
						ran++
						if err != nil || got != want {
							t.Errorf("%s = %q: %d rows, %v; want the %d rows of a value matching nothing", what, value, got, err, want)
						}
						// Quote-doubling alone: the backslash payloads escape the literal.
						if strings.Contains(value, `\'`) {
							if got, err := count(expand(value, sqlString)); err != nil || got != want {
								broke++
							}
						}
					}
				}
			}
		}
	}
	if after := state(); after != before {
		t.Errorf("the database changed under hostile variable values: %s, was %s", after, before)
	}
	t.Logf("%d queries with a hostile variable value ran as the read-only user, each treating it as text; "+
		"with quote-doubling only, %d of the backslash payloads broke out of their literal", ran, broke)
	if ran < 30 || broke == 0 {
		t.Fatalf("ran %d hostile queries, %d broke out with quote-doubling: the test would not catch a regression", ran, broke)
	}
}
