package main

// End-to-end tests of the EX–CX linkage, anonymity and effort impact: events over HTTP,
// the process role as a child process running the analytics stage, results read back
// from ClickHouse, the metrics and the logs.

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/simulator"
	"github.com/cxlink/cxlink/ingest/stream"
)

// testEmployeeKey pseudonymizes employee ids in the end-to-end tests.
const testEmployeeKey = "e2e-test-employee-id-key-0123456789"

func postTo(t *testing.T, url string, events []map[string]any) (int, string) {
	t.Helper()
	resp, raw, err := apptest.PostNDJSON(nil, url+"/v1/events", events)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// dumpClickHouse renders every row of every table of the test database (the dashboards'
// one; dumpDatabase(db + "_private") the private one).
func (c *cluster) dumpClickHouse() string { return c.dumpDatabase(c.env["CLICKHOUSE_DATABASE"]) }

func (c *cluster) dumpDatabase(db string) string {
	var out strings.Builder
	for _, r := range c.query("SELECT name FROM system.tables WHERE database = ? AND engine != 'View'", db) {
		table := *r[0].(*string)
		for _, line := range show(c.query("SELECT * FROM " + db + ".`" + table + "`")) {
			out.WriteString(table + ": " + line)
		}
	}
	return out.String()
}

// dumpStream returns the payload of every message in the stream.
func (c *cluster) dumpStream() string {
	ctx := c.t.Context()
	s, err := c.js.Stream(ctx, stream.Name)
	if err != nil {
		c.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var out strings.Builder
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			c.t.Fatalf("message %d: %v", seq, err)
		}
		out.Write(m.Data)
		for k, v := range m.Header {
			out.WriteString(k + ":" + strings.Join(v, ",") + "\n")
		}
	}
	return out.String()
}

func readTuna(t *testing.T) (x, y []float64) {
	f, err := os.Open("../../processors/linkage/testdata/hollander_wolfe_tuna.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[1:] {
		a, _ := strconv.ParseFloat(r[0], 64)
		b, _ := strconv.ParseFloat(r[1], 64)
		x, y = append(x, a), append(y, b)
	}
	return x, y
}

// Nine teams whose engagement means are the tuna data's x / 20 (on 1–5) and whose CES
// means are its y (on 1–7), sent over HTTP: the linkage row read from ClickHouse has R's
// published r, interval, p-value and rho. A tenth team with four respondents is stored
// in the private database only and published nowhere; no raw employee id reaches
// JetStream, ClickHouse, metrics or logs, and no pseudonym the dashboards' database.
func TestLinkageEndToEndReproducesReference(t *testing.T) {
	c := newCluster(t)
	c.env["CXLINK_PULSE_PERIOD"] = "10m"
	c.env["CXLINK_PULSE_GRACE"] = "0s"
	c.env["CXLINK_ANALYTICS_EVERY"] = "1s"
	c.env["CXLINK_LOG_LEVEL"] = "debug"
	c.startProcessor()
	ingestLogs := &apptest.LogBuffer{}
	url := apptest.StartRole(t, maps.Clone(c.env), ingestLogs, "ingest").URL

	// The previous 10-minute period: ended, so the stage links it. Its events are more
	// than the allowed lateness (10 min) old at times: late events count in linkage.
	period := 10 * time.Minute
	start := time.Now().UTC().Truncate(period).Add(-period)
	at := func(i int) string { return start.Add(time.Minute + time.Duration(i)*time.Second).Format(time.RFC3339) }
	const rawPrefix = "hr-7731-"
	x, y := readTuna(t)
	var events []map[string]any
	teams := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"}
	for i, team := range teams {
		for j := range 5 {
			events = append(events, map[string]any{"id": fmt.Sprintf("pulse-%d-%d", i, j), "type": "employee_pulse",
				"occurred_at": at(j), "employee_id": fmt.Sprintf("%s%s-%d", rawPrefix, team, j), "team": team,
				"question": "engagement", "score": x[i] / 20})
		}
		for j := range 10 {
			score := y[i] - 0.5
			if j%2 == 1 {
				score = y[i] + 0.5
			}
			events = append(events, map[string]any{"id": fmt.Sprintf("ces-%d-%d", i, j), "type": "survey_response",
				"occurred_at": at(j), "survey": "ces", "score": score, "team": team})
		}
	}
	// kilo: four respondents, below the threshold of 5; also a pulse sent twice by one
	// employee, which is still one respondent.
	for j := range 4 {
		events = append(events, map[string]any{"id": fmt.Sprintf("pulse-kilo-%d", j), "type": "employee_pulse",
			"occurred_at": at(j), "employee_id": fmt.Sprintf("%skilo-%d", rawPrefix, j), "team": "kilo",
			"question": "engagement", "score": 1})
	}
	events = append(events, map[string]any{"id": "pulse-kilo-again", "type": "employee_pulse", "occurred_at": at(9),
		"employee_id": rawPrefix + "kilo-0", "team": "kilo", "question": "engagement", "score": 2})
	if code, body := postTo(t, url, events); code != http.StatusAccepted || !strings.Contains(body, `"accepted":`+strconv.Itoa(len(events))) {
		t.Fatalf("%d %s", code, body)
	}
	// The answer names ids only: no employee id comes back either.
	c.waitProcessed()

	db := c.env["CLICKHOUSE_DATABASE"]
	q := "SELECT teams, status, pearson_r, ci_low, ci_high, p_value, spearman_r FROM " + db + ".linkage FINAL " +
		"WHERE period = '10m' AND scope = 'period' AND lag = 0 AND employee_metric = 'engagement' AND customer_metric = 'ces' AND period_start = ?"
	// A run may link the period before every team's figures are published (a team is
	// published once its answers settled for a run interval): wait for the run that
	// links all nine.
	var row []any
	deadline := time.Now().Add(time.Minute)
	for {
		if rows := c.query(q, start); len(rows) > 0 {
			row = rows[0]
			if *row[0].(*uint32) == 9 {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if row == nil {
		t.Fatal("no linkage row for the period")
	}
	f := func(i int) float64 { return **row[i].(**float64) }
	r7 := func(v float64, d int) string { return strconv.FormatFloat(v, 'f', d, 64) }
	if *row[0].(*uint32) != 9 || *row[1].(*string) != "ok" {
		t.Fatalf("teams %d, status %s", *row[0].(*uint32), *row[1].(*string))
	}
	for _, ch := range [][3]string{
		{"Pearson r", r7(f(2), 7), "0.5711816"}, {"CI low", r7(f(3), 7), "-0.1497426"}, {"CI high", r7(f(4), 7), "0.8955795"},
		{"p", r7(f(5), 4), "0.1082"}, {"Spearman", r7(f(6), 7), "0.6000000"},
	} {
		if ch[1] != ch[2] {
			t.Errorf("%s from ClickHouse = %s, published %s", ch[0], ch[1], ch[2])
		} else {
			t.Logf("%s = %s (published %s)", ch[0], ch[1], ch[2])
		}
	}

	// Every pulse is stored, in the private database: kilo's too (a fifth respondent
	// may still come), but kilo is published nowhere.
	if n := c.query("SELECT count() FROM " + db + "_private.employee_pulses FINAL WHERE team = 'kilo'")[0][0].(*uint64); *n != 5 {
		t.Errorf("%d kilo pulses stored, want 5", *n)
	}
	if n := c.query("SELECT count() FROM " + db + "_private.employee_pulses FINAL")[0][0].(*uint64); *n != 50 {
		t.Errorf("%d pulses stored, want the 45 of the nine teams and kilo's 5", *n)
	}
	procMetrics := get(t, c.processor.URL(t)+"/metrics")
	if !strings.Contains(procMetrics, `cxlink_linkage_teams{customer_metric="ces",employee_metric="engagement",lag="0",scope="period"} 9`) {
		t.Errorf("linkage gauges missing from the process role's metrics")
	}
	private := c.dumpDatabase(db + "_private")
	places := map[string]string{
		"ClickHouse": c.dumpClickHouse(), "process metrics": procMetrics, "ingest metrics": get(t, url+"/metrics"),
		"process log": c.processor.Log(), "ingest log": ingestLogs.String(), "JetStream": c.dumpStream(),
		"the private database": private,
	}
	for where, text := range places {
		if strings.Contains(text, rawPrefix) {
			t.Errorf("a raw employee id is in %s", where)
		}
		if where != "JetStream" && where != "the private database" && strings.Contains(text, "kilo") {
			// JetStream and the private database hold the accepted pulses
			// (pseudonymized), kilo's too; nothing that anyone else reads does.
			t.Errorf("team kilo, below the anonymity threshold, is in %s", where)
		}
	}
	if strings.Contains(places["ClickHouse"], "emp-") {
		t.Error("a pseudonymized employee id is in the dashboards' database: it holds per-employee rows")
	}
	if !strings.Contains(places["JetStream"], "emp-") || !strings.Contains(private, "emp-") || !strings.Contains(private, "kilo") {
		t.Error("no pseudonyms found: the checks above prove nothing")
	}

	// An ingest without a key refuses pulses, naming the field.
	noKey := maps.Clone(c.env)
	delete(noKey, "CXLINK_EMPLOYEE_ID_KEY")
	code, body := postTo(t, apptest.StartRole(t, noKey, io.Discard, "ingest").URL, events[:1])
	if code != http.StatusBadRequest || !strings.Contains(body, `"field":"employee_id"`) || !strings.Contains(body, "CXLINK_EMPLOYEE_ID_KEY") {
		t.Errorf("without a key: %d %s", code, body)
	}
}

// The constructed data set of processors/linkage/testdata/opposite_signs.csv, six
// teams in the four ended 10-minute periods before now, sent over HTTP as pulses and
// CES responses: from ClickHouse, the between-team result is negative (the more engaged
// teams have the harder customers) and the within-team result positive (a team's
// customers find things easier when its engagement is up), each with its own degrees of
// freedom; the process role's gauges and `cxlink report` show both.
func TestLinkageBetweenAndWithinTeamsEndToEnd(t *testing.T) {
	c := newCluster(t)
	c.env["CXLINK_PULSE_PERIOD"] = "10m"
	c.env["CXLINK_PULSE_GRACE"] = "0s"
	c.env["CXLINK_ANALYTICS_EVERY"] = "1s"
	c.startProcessor()

	f, err := os.Open("../../processors/linkage/testdata/opposite_signs.csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	period := 10 * time.Minute
	first := time.Now().UTC().Truncate(period).Add(-4 * period)
	var events []map[string]any
	for _, r := range recs[1:] {
		team := r[0]
		p, _ := strconv.Atoi(r[1])
		engagement, _ := strconv.ParseFloat(r[2], 64)
		ces, _ := strconv.ParseFloat(r[3], 64)
		at := func(i int) string {
			return first.Add(time.Duration(p)*period + time.Minute + time.Duration(i)*time.Second).Format(time.RFC3339)
		}
		for j := range 5 { // the same five employees every period
			events = append(events, map[string]any{"id": fmt.Sprintf("pulse-%s-%d-%d", team, p, j), "type": "employee_pulse",
				"occurred_at": at(j), "employee_id": fmt.Sprintf("%s-%d", team, j), "team": team,
				"question": "engagement", "score": engagement})
		}
		for j := range 10 { // mean ces: half of them 0.5 below, half 0.5 above
			score := ces - 0.5
			if j%2 == 1 {
				score = ces + 0.5
			}
			events = append(events, map[string]any{"id": fmt.Sprintf("ces-%s-%d-%d", team, p, j), "type": "survey_response",
				"occurred_at": at(j), "survey": "ces", "score": score, "team": team})
		}
	}
	if a := c.post(events); a.Accepted != len(events) {
		t.Fatalf("accepted %d of %d: %+v", a.Accepted, len(events), a.Results)
	}
	c.waitProcessed()

	// The latest run's lag-0 rows, once they hold all four periods.
	db := c.env["CLICKHOUSE_DATABASE"]
	q := "SELECT scope, teams, pairs, periods, df, status, pearson_r, ci_low, ci_high, p_value, min_detectable_r, reading FROM " + db +
		".linkage FINAL WHERE period = '10m' AND scope IN ('between_teams', 'within_teams') AND lag = 0 " +
		"AND employee_metric = 'engagement' AND customer_metric = 'ces' AND pairs = 24 " +
		"AND period_start = (SELECT max(period_start) FROM " + db + ".linkage WHERE scope = 'within_teams') ORDER BY scope"
	var rows [][]any
	deadline := time.Now().Add(time.Minute)
	for len(rows) < 2 {
		if rows = c.query(q); len(rows) < 2 && time.Now().After(deadline) {
			t.Fatalf("no between and within rows over the four periods: %v", show(c.query("SELECT * FROM "+db+".linkage FINAL WHERE scope != 'period' AND lag = 0 AND customer_metric = 'ces'")))
		} else if len(rows) < 2 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("from ClickHouse:\n%s", strings.Join(show(rows), ""))
	type result struct {
		teams, pairs uint32
		periods      uint16
		df           uint32
		status       string
		r, lo, hi, p float64
		detectable   float64
		reading      string
	}
	parse := func(row []any) result {
		f := func(i int) float64 { return **row[i].(**float64) }
		if *row[5].(*string) != "ok" {
			t.Fatalf("%s: status %s", *row[0].(*string), *row[5].(*string))
		}
		return result{*row[1].(*uint32), *row[2].(*uint32), *row[3].(*uint16), **row[4].(**uint32), *row[5].(*string),
			f(6), f(7), f(8), f(9), f(10), *row[11].(*string)}
	}
	between, within := parse(rows[0]), parse(rows[1])
	// Six teams: n = 6, df = 4. 24 pairs of 6 teams in 4 periods: df = 24 − 6 − 4 = 14.
	if between.teams != 6 || between.df != 4 || between.hi >= 0 || between.detectable < 0.85 {
		t.Errorf("between teams: %+v", between)
	}
	if within.teams != 6 || within.periods != 4 || within.df != 14 || within.lo <= 0 || within.detectable > between.detectable {
		t.Errorf("within teams: %+v", within)
	}

	metrics := get(t, c.processor.URL(t)+"/metrics")
	for _, want := range []string{
		`cxlink_linkage_df{customer_metric="ces",employee_metric="engagement",lag="0",scope="between_teams"} 4`,
		`cxlink_linkage_df{customer_metric="ces",employee_metric="engagement",lag="0",scope="within_teams"} 14`,
		`cxlink_linkage_min_detectable_r{customer_metric="ces",employee_metric="engagement",lag="0",scope="within_teams"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("process metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `scope="pooled"`) {
		t.Error("a pooled gauge is still exported")
	}

	var out bytes.Buffer
	if err := app.Run(t.Context(), []string{"report"}, app.Options{Environ: c.env, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("cxlink report:\n%s", text)
	link := text[strings.Index(text, "EX–CX linkage"):]
	b, w := strings.Index(link, "Between teams:"), strings.Index(link, "Within teams:")
	if b < 0 || w < b {
		t.Fatalf("the report lacks the between-team and within-team sections")
	}
	line := func(section string) string {
		for _, l := range strings.Split(section, "\n") {
			if strings.HasPrefix(l, "engagement → ces ") && strings.Fields(l)[3] == "0" {
				return l
			}
		}
		t.Fatalf("no engagement → ces lag 0 line in\n%s", section)
		return ""
	}
	for _, s := range []struct {
		name, line string
		res        result
	}{{"between", line(link[b:w]), between}, {"within", line(link[w:]), within}} {
		for _, want := range []string{fmt.Sprintf("%+.2f", s.res.r), fmt.Sprintf("[%+.2f, %+.2f]", s.res.lo, s.res.hi),
			fmt.Sprintf("|r| ≥ %.2f", s.res.detectable), fmt.Sprintf(" %d ", s.res.df)} {
			if !strings.Contains(s.line, want) {
				t.Errorf("%s line lacks %q: %s", s.name, want, s.line)
			}
		}
	}
	if !strings.Contains(text, "80% power") {
		t.Error("the report does not say what detectable means")
	}
	if err := app.Run(t.Context(), []string{"report", "--scope", "pooled"}, app.Options{Environ: c.env, Stdout: io.Discard, Stderr: io.Discard}); err == nil ||
		!strings.Contains(err.Error(), "between_teams and within_teams replace it") {
		t.Errorf("--scope pooled: %v", err)
	}
}

// A simulated contact centre with two hours of history: in effort_impact and in
// `cxlink report` the rare, hard plan_correction ranks above the common, easy
// refund_request; the linkage recovers the simulator's engagement → CES lag.
func TestSimulatedEffortImpactAndReport(t *testing.T) {
	c := newCluster(t)
	c.env["CXLINK_PULSE_PERIOD"] = "10m"
	c.env["CXLINK_PULSE_GRACE"] = "0s"
	c.env["CXLINK_ANALYTICS_EVERY"] = "1s"
	c.startProcessor()
	stats, err := simulator.Run(t.Context(), simulator.Config{
		Target: strings.TrimSuffix(c.ingestURL, "/v1/events"), Rate: 10, Seed: 42, History: 2 * time.Hour,
		PulseEvery: 10 * time.Minute, Duration: time.Millisecond, BatchSize: 1000,
	}, slog.New(slog.DiscardHandler))
	if err != nil || stats.Rejected > 0 {
		t.Fatalf("simulator: %+v %v", stats, err)
	}
	t.Logf("simulator sent %d events", stats.Events)
	c.waitProcessed()
	// The stage writes every second; wait for a run that saw everything.
	db := c.env["CLICKHOUSE_DATABASE"]
	after := time.Now().Add(time.Second)
	deadline := time.Now().Add(time.Minute)
	for {
		rows := c.query("SELECT count() FROM "+db+".effort_impact FINAL WHERE computed_at > ?", after)
		if *rows[0][0].(*uint64) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no effort impact written")
		}
		time.Sleep(200 * time.Millisecond)
	}
	var out bytes.Buffer
	if err := app.Run(t.Context(), []string{"report"}, app.Options{Environ: c.env, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("cxlink report:\n%s", text)
	seven := text[:strings.Index(text, "30d window")]
	pc, rr := strings.Index(seven, "plan_correction"), strings.Index(seven, "refund_request")
	if pc < 0 || rr < 0 || pc > rr {
		t.Fatalf("in the 7d ranking plan_correction is at %d, refund_request at %d", pc, rr)
	}
	out.Reset()
	if err := app.Run(t.Context(), []string{"report", "--format", "json"}, app.Options{Environ: c.env, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		EffortImpact []struct {
			Window, Category string
			Rank             *int
		} `json:"effort_impact"`
		Linkage struct {
			Results []struct {
				Scope          string
				Lag            int
				EmployeeMetric string `json:"employee_metric"`
				CustomerMetric string `json:"customer_metric"`
				Teams, Pairs   int
				Status         string
				DF             *uint32   `json:"df"`
				Pearson        *float64  `json:"pearson_r"`
				CI             []float64 `json:"ci95"`
				Says           string
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	rank := map[string]int{}
	for _, r := range rep.EffortImpact {
		if r.Window == "7d" && r.Rank != nil {
			rank[r.Category] = *r.Rank
		}
	}
	if rank["plan_correction"] == 0 || rank["refund_request"] == 0 || rank["plan_correction"] >= rank["refund_request"] {
		t.Fatalf("json ranks: %v", rank)
	}
	// The same ranking is in ClickHouse.
	ranks := show(c.query("SELECT category, impact_rank FROM " + db + ".effort_impact FINAL WHERE `window` = '7d' AND window_end = (SELECT max(window_end) FROM " + db + ".effort_impact) AND category IN ('plan_correction', 'refund_request') ORDER BY impact_rank"))
	if len(ranks) != 2 || !strings.HasPrefix(ranks[0], "plan_correction") {
		t.Fatalf("effort_impact ranks: %v", ranks)
	}
	// The simulator builds in a link of a team's engagement to its customers' CES a
	// period later: within teams, lag 1 finds it.
	found := false
	for _, l := range rep.Linkage.Results {
		if l.EmployeeMetric == "engagement" && l.CustomerMetric == "ces" && l.Pearson != nil {
			t.Logf("%s, engagement → ces, lag %d: r = %+.2f [%+.2f, %+.2f], %d teams, %d pairs, df %d: %s", l.Scope, l.Lag, *l.Pearson, l.CI[0], l.CI[1], l.Teams, l.Pairs, *l.DF, l.Says)
			if l.Scope == "between_teams" && *l.DF != uint32(l.Teams)-2 {
				t.Errorf("between teams: df %d for %d teams", *l.DF, l.Teams)
			}
			found = found || l.Scope == "within_teams" && l.Lag == 1 && l.CI[0] > 0
		}
	}
	if !found {
		t.Error("within teams, lag 1 does not find the simulator's engagement → CES link")
	}
}
