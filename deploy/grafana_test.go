package deploy

// Every query of every Grafana dashboard in grafana/dashboards runs here against a real
// cxlink fed by the simulator: ClickHouse panels against its ClickHouse (Grafana's
// ClickHouse macros and the dashboard variables expanded as the plugin and Grafana do),
// Prometheus panels against a real Prometheus scraping it with the project's recording
// rules. A panel whose query fails, or whose metric does not exist, fails the build.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/ingest/simulator"
)

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name    string `json:"name"`
			Current struct {
				Value string `json:"value"`
			} `json:"current"`
			Options []struct {
				Value string `json:"value"`
			} `json:"options"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID            int    `json:"id"`
		Type          string `json:"type"`
		PluginVersion string `json:"pluginVersion"`
		Title         string `json:"title"`
		Datasource    struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		// Options of an XY chart: which fields are x and y.
		Options struct {
			Mapping string `json:"mapping"`
			Series  []struct {
				X, Y struct {
					Matcher struct {
						ID      string `json:"id"`
						Options string `json:"options"`
					} `json:"matcher"`
				}
			} `json:"series"`
		} `json:"options"`
		Targets []struct {
			RefID      string `json:"refId"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			PluginVersion string          `json:"pluginVersion"`
			EditorType    string          `json:"editorType"`
			RawSQL        string          `json:"rawSql"`
			Expr          string          `json:"expr"`
			QueryType     string          `json:"queryType"`
			Format        json.RawMessage `json:"format"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboards(t testing.TB) map[string]dashboard {
	t.Helper()
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(files) < 5 {
		t.Fatalf("dashboards: %v", files)
	}
	out := map[string]dashboard{}
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Errorf("%s: uid %q, title %q, %d panels", f, d.UID, d.Title, len(d.Panels))
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share the uid %s", f, other, d.UID)
		}
		uids[d.UID] = f
		out[filepath.Base(f)] = d
	}
	return out
}

// composePins are the versions of Grafana and of its ClickHouse plugin that
// docker-compose.yml pins: the dashboards are written for them.
func composePins(t *testing.T) (grafana, plugin string) {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	g := regexp.MustCompile(`image: grafana/grafana:(\d+\.\d+\.\d+)\n`).FindSubmatch(b)
	p := regexp.MustCompile(`GF_PLUGINS_PREINSTALL_SYNC: grafana-clickhouse-datasource@(\d+\.\d+\.\d+)\n`).FindSubmatch(b)
	if g == nil || p == nil {
		t.Fatal("docker-compose.yml pins no Grafana image or ClickHouse plugin version (grafana/grafana:X.Y.Z, GF_PLUGINS_PREINSTALL_SYNC: grafana-clickhouse-datasource@X.Y.Z)")
	}
	return string(g[1]), string(p[1])
}

// databaseName matches a table named with its database: the dashboards' queries run in
// the datasource's default database, which is cxlink's CLICKHOUSE_DATABASE.
var databaseName = regexp.MustCompile(`(?i)\b(FROM|JOIN)\s+[a-z_][a-z0-9_]*\.`)

// TestDashboardsAreWellFormed checks what Grafana needs to load them without a server.
func TestDashboardsAreWellFormed(t *testing.T) {
	grafanaVersion, pluginVersion := composePins(t)
	for name, d := range loadDashboards(t) {
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", name, p.ID)
			}
			ids[p.ID] = true
			if len(p.Targets) == 0 {
				t.Errorf("%s %q: no query", name, p.Title)
			}
			// Without an explicit mapping current Grafana plots the first number as x and
			// every other number as y; without the panel's version it migrates the options
			// as those of a pre-11.1 XY chart.
			if p.Type == "xychart" {
				o := p.Options
				if p.PluginVersion != grafanaVersion || o.Mapping != "manual" || len(o.Series) == 0 {
					t.Errorf("%s %q: XY chart of Grafana %q with mapping %q and %d series, want Grafana %s, manual, one or more",
						name, p.Title, p.PluginVersion, o.Mapping, len(o.Series), grafanaVersion)
				}
				for _, s := range o.Series {
					if s.X.Matcher.ID != "byName" || s.Y.Matcher.ID != "byName" || s.X.Matcher.Options == "" || s.Y.Matcher.Options == "" {
						t.Errorf("%s %q: series without x and y fields by name: %+v", name, p.Title, s)
					}
				}
			}
			for _, q := range p.Targets {
				switch q.Datasource.UID {
				case "clickhouse":
					if q.Datasource.Type != "grafana-clickhouse-datasource" || q.RawSQL == "" || q.Format == nil || (q.QueryType != "table" && q.QueryType != "timeseries") {
						t.Errorf("%s %q: ClickHouse target %+v", name, p.Title, q)
					}
					if q.PluginVersion != pluginVersion || q.EditorType != "sql" {
						t.Errorf("%s %q: target of plugin version %q, editor %q; want %s (docker-compose.yml), sql: else the editor migrates it as a v3 query",
							name, p.Title, q.PluginVersion, q.EditorType, pluginVersion)
					}
					if m := databaseName.FindString(q.RawSQL); m != "" {
						t.Errorf("%s %q: %q names a database; the datasource's default database serves", name, p.Title, m)
					}
					if strings.Contains(q.RawSQL, "$__timeInterval") {
						t.Errorf("%s %q: $__timeInterval expands to toStartOfInterval, which ClickHouse 18.16 lacks: use intDiv(toUInt32(col), $__interval_s)", name, p.Title)
					}
				case "prometheus":
					if q.Datasource.Type != "prometheus" || q.Expr == "" {
						t.Errorf("%s %q: Prometheus target %+v", name, p.Title, q)
					}
				default:
					t.Errorf("%s %q: datasource uid %q is not one of provisioning/datasources (clickhouse, prometheus)", name, p.Title, q.Datasource.UID)
				}
			}
		}
	}
	b, err := os.ReadFile("grafana/provisioning/datasources/datasources.yml")
	if err != nil || !strings.Contains(string(b), "uid: clickhouse") || !strings.Contains(string(b), "uid: prometheus") {
		t.Errorf("datasources.yml does not provision the uids the dashboards use: %v", err)
	}
	if b, err := os.ReadFile("grafana/provisioning/dashboards/dashboards.yml"); err != nil || !strings.Contains(string(b), "/var/lib/grafana/dashboards") {
		t.Errorf("dashboards provider: %v", err)
	}
}

// fixtureRows: FIXTURE rows for the tables of stages that may not have written anything
// yet in a short run (no drift, say), so that their panels return data. They are inserted
// only into an empty table, and fail to insert if the migrated schema differs.
// INSERT … SELECT: clickhouse-go's Exec of INSERT … VALUES hangs on ClickHouse 18.16.
// Times are placeholders that fixtureSQL fills with one instant: 18.16 evaluates {now} in
// each branch of a UNION ALL, and refuses the insert when the branches straddle a second
// ("values of constants are different in source and result").
var fixtureRows = map[string]string{
	"effort_impact": `INSERT INTO %s.effort_impact
		SELECT '7d', {minute}, 'plan_correction', 55, 0.01, 0.04, 19.3, 1260, 2.1, 40, 3.35, 3.0, 3.7, 56.4, 43.3, 68.7, 0.43, 1, 'ok', {now}, 1
		UNION ALL SELECT '7d', {minute}, 'refund_request', 3166, 0.6, 0.4, 272.6, 310, 1.1, 900, 6.31, 6.28, 6.34, 0.2, 0.1, 0.4, 0.001, 2, 'ok', {now}, 1
		UNION ALL SELECT '7d', {minute}, 'login_problem', 3, 0.001, 0.001, 0.2, 200, NULL, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'too_few_responses', {now}, 1`,
	"team_periods": `INSERT INTO %s.team_periods
		SELECT 'week', {hour}, 'alpha', 7, 3.9, 0.8, 7, 20, 40, 20, 40, 5.1, 12.5, 30, 80, {now}, 1
		UNION ALL SELECT 'week', {hour}, 'beta', 6, 3.1, 1.1, 6, -10, 30, 40, 35, 4.2, 30, 28, 60, {now}, 1`,
	"linkage": `INSERT INTO %s.linkage
		SELECT 'week', {hour} - 3600, 'period', 1, 0, 'engagement', 'ces', 6, 6, 1, 4, 0.57, 0.6, -0.15, 0.9, 0.108, 0.89, 'ok', 'too_uncertain', {now}, 1
		UNION ALL SELECT 'week', {hour}, 'period', 1, 0, 'engagement', 'ces', 6, 6, 1, 4, 0.61, 0.66, -0.1, 0.91, 0.09, 0.89, 'ok', 'too_uncertain', {now}, 1
		UNION ALL SELECT 'week', {hour}, 'period', 1, 1, 'engagement', 'ces', 3, 3, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'too_few_teams', 'no_result', {now}, 1
		UNION ALL SELECT 'week', {hour}, 'between_teams', 4, 0, 'engagement', 'ces', 6, 24, 4, 4, 0.52, 0.5, -0.49, 0.94, 0.29, 0.89, 'ok', 'too_uncertain', {now}, 1
		UNION ALL SELECT 'week', {hour}, 'within_teams', 4, 0, 'engagement', 'ces', 6, 24, 4, 14, 0.61, NULL, 0.13, 0.86, 0.02, 0.64, 'ok', 'underpowered', {now}, 1`,
	"drift_events": `INSERT INTO %s.drift_events
		SELECT 'ces', 'category', 'plan_correction', 'product', 'mean', 'worse', {now} - 3600, {now} - 600, {now} - 1800,
			-4.1, 2.9, 4.2, 40, 900, '1h', '7d', 1`,
}

// fixtureSQL fills a fixture's database and time placeholders: {now} is now, {minute} and
// {hour} its start of minute and hour, each a DateTime literal of the same instant.
func fixtureSQL(rows, database string, now time.Time) string {
	at := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	return strings.NewReplacer("{now}", at(now), "{minute}", at(now.Truncate(time.Minute)),
		"{hour}", at(now.Truncate(time.Hour))).Replace(fmt.Sprintf(rows, database))
}

// combinations lists every assignment of the dashboard's variables to their options.
func combinations(d dashboard) []map[string]string {
	out := []map[string]string{{}}
	for _, v := range d.Templating.List {
		var next []map[string]string
		for _, o := range v.Options {
			for _, c := range out {
				m := map[string]string{v.Name: o.Value}
				for k, x := range c {
					m[k] = x
				}
				next = append(next, m)
			}
		}
		out = next
	}
	return out
}

func defaults(d dashboard) map[string]string {
	m := map[string]string{}
	for _, v := range d.Templating.List {
		m[v.Name] = v.Current.Value
	}
	return m
}

var metricNameRe = regexp.MustCompile(`\bcxlink[_:][a-zA-Z0-9_:]+`)

func TestDashboardQueries(t *testing.T) {
	boards := loadDashboards(t)
	in := apptest.Start(t, nil, map[string]string{
		"CXLINK_WINDOWS":           "1h,24h,7d",
		"CXLINK_ROLLUP_STEP":       "10s",
		"CXLINK_BACKFILL":          "1m",
		"CXLINK_ALLOWED_LATENESS":  "1h",
		"CXLINK_STREAM_PARTITIONS": "2",
		// Link per 10-minute pulse period, as the simulator pulses, and often.
		"CXLINK_PULSE_PERIOD":    "10m",
		"CXLINK_PULSE_GRACE":     "0s",
		"CXLINK_ANALYTICS_EVERY": "10s",
		// Unhappy answers open follow-up cases for the follow-ups dashboard.
		"CXLINK_FOLLOWUP_RULES": "ces<=2, nps<=6",
	})
	db := in.Database()
	// Panel queries run as the ClickHouse plugin runs them: on a connection whose default
	// database is the datasource's defaultDatabase.
	grafana := in.CH.Conn(t, db)

	// A simulated contact centre: half an hour of history on time (lateness 1 h), then live.
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() {
		_, err := simulator.Run(simCtx, simulator.Config{Target: in.URL, Rate: 4, Teams: 6, AgentsPerTeam: 8, Seed: 7,
			PulseEvery: 10 * time.Minute, History: 30 * time.Minute, Duration: 10 * time.Minute, BatchSize: 500},
			slog.New(slog.DiscardHandler))
		simDone <- err
	}()
	t.Cleanup(func() { stopSim(); <-simDone })

	fixtureTime := time.Now()
	for table, rows := range fixtureRows {
		if in.Count(fmt.Sprintf("SELECT count() FROM %s.%s", db, table)) == 0 {
			t.Logf("FIXTURE rows for %s: nothing written yet", table)
			if err := in.DB.Conn().Exec(t.Context(), fixtureSQL(rows, db, fixtureTime)); err != nil {
				t.Fatalf("FIXTURE rows for %s do not fit its schema (reconcile the panels and this fixture with the migration): %v", table, err)
			}
		}
	}

	prom := apptest.StartPrometheus(t, apptest.PrometheusConfig{Targets: []string{in.Addr},
		RuleFiles: []string{proc.RepoPath(t, "deploy/prometheus/rules/*.yml")}})
	// Wait for the history to be stored and rolled up, and for Prometheus to have scraped
	// the rolling gauges and evaluated the recording rules over them.
	in.WaitCount(500, fmt.Sprintf("SELECT count() FROM %s.survey_responses FINAL", db))
	in.WaitCount(1, fmt.Sprintf("SELECT count() FROM %s.rollups WHERE `window` = '7d' AND dimension = 'team'", db))
	// The drift panel draws categories with 20 responses in both windows at one tick.
	in.WaitCount(1, fmt.Sprintf("SELECT count() FROM %s.rollups WHERE survey = 'ces' AND dimension = 'category' AND `window` = '1h' AND responses >= 20", db))
	in.WaitCount(1, fmt.Sprintf("SELECT count() FROM %s.linkage FINAL WHERE scope = 'period' AND status = 'ok' AND lag = 0", db))
	in.WaitCount(1, fmt.Sprintf("SELECT count() FROM %s.followups FINAL WHERE state != 'closed'", db))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := prom.QueryRange(`cxlink:rolling_mean{survey="ces",window="1h",dimension="category"}`, time.Now().Add(-time.Minute), time.Now(), 5*time.Second)
		if err == nil && len(r.Data.Result) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cxlink:rolling_mean in Prometheus after a minute: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Enough scrapes for rate() over the panels' interval.
	for {
		r, err := prom.QueryRange(`sum(rate(cxlink_ingest_events_total[15s])) > 0`, time.Now().Add(-5*time.Second), time.Now(), 5*time.Second)
		if err == nil && len(r.Data.Result) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rate of cxlink_ingest_events_total in Prometheus: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The names cxlink exports, and the recording rules': Prometheus panels may use no other.
	resp, err := http.Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exported, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Counters with labels appear on /metrics only once used: also accept a name that a
	// component registers in its source.
	var sources strings.Builder
	filepath.WalkDir("..", func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, _ := os.ReadFile(p)
			sources.Write(b)
		}
		return nil
	})
	rules, _ := filepath.Glob("prometheus/rules/*.yml")
	var ruleText string
	for _, f := range rules {
		b, _ := os.ReadFile(f)
		ruleText += string(b)
	}

	to := time.Now().Add(time.Minute)
	from := to.Add(-24 * time.Hour)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range boards {
			if !yield(k) {
				return
			}
		}
	})
	ran, empty := 0, 0
	for _, name := range names {
		d := boards[name]
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				what := fmt.Sprintf("%s %q", name, p.Title)
				switch q.Datasource.UID {
				case "clickhouse":
					seen := map[string]bool{}
					for _, vars := range combinations(d) {
						sql := dashboards.ExpandClickHouseMacros(dashboards.ExpandVars(q.RawSQL, vars), from, to, time.Minute)
						if seen[sql] {
							continue
						}
						seen[sql] = true
						if strings.Contains(sql, "$") {
							t.Errorf("%s: unexpanded macro or variable in\n%s", what, sql)
							continue
						}
						rows, err := grafana.Query(t.Context(), sql)
						if err != nil {
							t.Errorf("%s %v: %v\n%s", what, vars, err, sql)
							continue
						}
						for _, s := range p.Options.Series {
							for _, field := range []string{s.X.Matcher.Options, s.Y.Matcher.Options} {
								if !slices.Contains(rows.Columns(), field) {
									t.Errorf("%s: the XY chart plots field %q, which the query does not return (%v)", what, field, rows.Columns())
								}
							}
						}
						n := 0
						for rows.Next() {
							n++
						}
						err = rows.Err()
						rows.Close()
						if err != nil {
							t.Errorf("%s %v: %v", what, vars, err)
						}
						ran++
						if n == 0 && fmt.Sprint(vars) == fmt.Sprint(defaults(d)) {
							empty++
							t.Errorf("%s: no rows from real data with the default variables %v", what, vars)
						}
					}
				case "prometheus":
					expr := strings.ReplaceAll(dashboards.ExpandVars(q.Expr, defaults(d)), "$__rate_interval", "15s")
					for _, m := range metricNameRe.FindAllString(expr, -1) {
						base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
						if !strings.Contains(string(exported), "\n"+base) && !strings.Contains(ruleText, "record: "+m) && !strings.Contains(sources.String(), `"`+base+`"`) {
							t.Errorf("%s: %s is neither exported by cxlink nor a recording rule", what, m)
						}
					}
					r, err := prom.QueryRange(expr, time.Now().Add(-2*time.Minute), time.Now(), 5*time.Second)
					if err != nil {
						t.Errorf("%s: %v\n%s", what, err, expr)
						continue
					}
					ran++
					if len(r.Data.Result) == 0 {
						// Legitimately empty: nothing failed, nothing is firing.
						t.Logf("%s: no series now (%s)", what, expr)
					}
				}
			}
		}
	}
	t.Logf("ran %d panel queries (every variable combination of ClickHouse panels); %d empty with default variables", ran, empty)
}
