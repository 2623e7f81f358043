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

// dumpClickHouse renders every row of every table of the test database.
func (c *cluster) dumpClickHouse() string {
	db := c.env["CLICKHOUSE_DATABASE"]
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
// published r, interval, p-value and rho. A tenth team with four respondents appears
// nowhere; no raw employee id reaches JetStream, ClickHouse, metrics or logs.
func TestLinkageEndToEndReproducesReference(t *testing.T) {
	c := newCluster(t)
	c.env["CXLINK_PULSE_PERIOD"] = "10m"
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
	var row []any
	deadline := time.Now().Add(time.Minute)
	for row == nil {
		if rows := c.query(q, start); len(rows) > 0 {
			row = rows[0]
		} else if time.Now().After(deadline) {
			t.Fatal("no linkage row for the period")
		} else {
			time.Sleep(200 * time.Millisecond)
		}
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

	// kilo below the threshold: no pulse row, no team-period, not in any count.
	if n := c.query("SELECT count() FROM " + db + ".employee_pulses WHERE team = 'kilo'")[0][0].(*uint64); *n != 0 {
		t.Errorf("%d kilo pulses stored", *n)
	}
	if n := c.query("SELECT count() FROM " + db + ".employee_pulses FINAL")[0][0].(*uint64); *n != 45 {
		t.Errorf("%d pulses stored, want the 45 of the nine teams", *n)
	}
	procMetrics := get(t, c.processor.URL(t)+"/metrics")
	if !strings.Contains(procMetrics, `cxlink_linkage_teams{customer_metric="ces",employee_metric="engagement",lag="0",scope="period"} 9`) {
		t.Errorf("linkage gauges missing from the process role's metrics")
	}
	places := map[string]string{
		"ClickHouse": c.dumpClickHouse(), "process metrics": procMetrics, "ingest metrics": get(t, url+"/metrics"),
		"process log": c.processor.Log(), "ingest log": ingestLogs.String(), "JetStream": c.dumpStream(),
	}
	for where, text := range places {
		if strings.Contains(text, rawPrefix) {
			t.Errorf("a raw employee id is in %s", where)
		}
		if where != "JetStream" && strings.Contains(text, "kilo") {
			// JetStream holds the accepted pulses (pseudonymized) until the processor
			// can decide: it is the processor's own state, replayed.
			t.Errorf("team kilo, below the anonymity threshold, is in %s", where)
		}
	}
	if !strings.Contains(places["JetStream"], "emp-") || !strings.Contains(places["ClickHouse"], "emp-") {
		t.Error("no pseudonyms found: the check above proves nothing")
	}

	// An ingest without a key refuses pulses, naming the field.
	noKey := maps.Clone(c.env)
	delete(noKey, "CXLINK_EMPLOYEE_ID_KEY")
	code, body := postTo(t, apptest.StartRole(t, noKey, io.Discard, "ingest").URL, events[:1])
	if code != http.StatusBadRequest || !strings.Contains(body, `"field":"employee_id"`) || !strings.Contains(body, "CXLINK_EMPLOYEE_ID_KEY") {
		t.Errorf("without a key: %d %s", code, body)
	}
}

// A simulated contact centre with two hours of history: in effort_impact and in
// `cxlink report` the rare, hard plan_correction ranks above the common, easy
// refund_request; the linkage recovers the simulator's engagement → CES lag.
func TestSimulatedEffortImpactAndReport(t *testing.T) {
	c := newCluster(t)
	c.env["CXLINK_PULSE_PERIOD"] = "10m"
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
				Pearson        *float64  `json:"pearson_r"`
				CI             []float64 `json:"ci95"`
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
	for _, l := range rep.Linkage.Results {
		if l.Scope == "pooled" && l.EmployeeMetric == "engagement" && l.CustomerMetric == "ces" && l.Pearson != nil {
			t.Logf("engagement → ces, lag %d: r = %+.2f [%+.2f, %+.2f], %d teams, %d pairs", l.Lag, *l.Pearson, l.CI[0], l.CI[1], l.Teams, l.Pairs)
		}
	}
}
