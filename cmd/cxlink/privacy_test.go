package main

// The employee-data promises end to end, each attack tried as an adversary would and its
// outcome asserted (docs/privacy.md): differencing (a sixth answer after five changes
// nothing anyone can read), padding (a non-HR credential cannot post pulses), an
// importer id guessed from an employee directory, and a week of HR pulses imported
// after the fact giving that week's team periods and linkage.

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/auth"
)

// readCSV reads a test data file into maps by column.
func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, col := range recs[0] {
			m[col] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// postAs posts NDJSON events with a header, and returns the code and the answer.
func postAs(t *testing.T, url string, header map[string]string, events []map[string]any) (int, string) {
	t.Helper()
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range events {
		enc.Encode(e)
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", &body)
	req.Header.Set("Content-Type", "application/x-ndjson")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// Last week's pulses of 43 teams, imported today from an HR export through `cxlink
// import`, give last week's 43 team periods and a linkage row whose coefficient, interval
// and p are R's cor.test on the same team means (testdata/README.md says how they were
// computed apart from this code). No per-employee row reaches the dashboards' database,
// and no stored id can be recomputed from the employee directory.
func TestImportedWeekOf43Teams(t *testing.T) {
	const idKey = "hr-import-id-key-kept-by-the-hr-team"
	in := apptest.Start(t, nil, map[string]string{
		"CXLINK_EMPLOYEE_ID_KEY": testEmployeeKey,
		"CXLINK_ANALYTICS_EVERY": "2s",
		"CXLINK_PULSE_GRACE":     "1m",
	})
	db := in.Database()
	week := 7 * 24 * time.Hour
	lastMonday := time.Now().UTC().Truncate(week).Add(-week) // periods align like time.Truncate
	dir := t.TempDir()
	when := func(r map[string]string) time.Time {
		var day int
		fmt.Sscan(r["day"], &day)
		hm, _ := time.Parse("15:04", r["time"])
		return lastMonday.Add(time.Duration(day)*24*time.Hour + time.Duration(hm.Hour())*time.Hour + time.Duration(hm.Minute())*time.Minute)
	}

	// The HR export as the HR tool writes it, with last week's dates.
	pulses := readCSV(t, "testdata/hr_pulse_43_teams.csv")
	var export strings.Builder
	export.WriteString("response_id,submitted_at,employee,team,engagement,enps\n")
	respondents := map[string]int{}
	engSum := map[string]float64{}
	for _, r := range pulses {
		fmt.Fprintf(&export, "%s,%s,%s,%s,%s,%s\n", r["response_id"], when(r).Format(time.RFC3339), r["employee"], r["team"], r["engagement"], r["enps"])
		respondents[r["team"]]++
		var e float64
		fmt.Sscan(r["engagement"], &e)
		engSum[r["team"]] += e
	}
	exportPath := filepath.Join(dir, "pulse-export.csv")
	if err := os.WriteFile(exportPath, []byte(export.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mapping, _ := filepath.Abs("../../deploy/import/hr_pulse.yml")
	var out bytes.Buffer
	if err := app.Run(t.Context(), []string{"import", "--target", in.URL, "--mapping", mapping, "--quiet",
		"--state", filepath.Join(dir, "state.json"), "--report", filepath.Join(dir, "errors.csv"), exportPath},
		app.Options{Stdout: &out, Environ: map[string]string{"CXLINK_IMPORT_ID_KEY": idKey}}); err != nil {
		t.Fatalf("import: %v\n%s", err, out.String())
	}
	t.Logf("cxlink import: %s", strings.TrimSpace(out.String()))
	if want := fmt.Sprintf("%d accepted, 0 duplicates, 0 rejected", 2*len(pulses)); !strings.Contains(out.String(), want) {
		t.Fatalf("import summary lacks %q", want)
	}
	// The customers' CES of the same week.
	var ces []map[string]any
	for _, r := range readCSV(t, "testdata/ces_43_teams.csv") {
		var score float64
		fmt.Sscan(r["score"], &score)
		ces = append(ces, map[string]any{"id": r["id"], "type": "survey_response", "survey": "ces", "score": score,
			"team": r["team"], "occurred_at": when(r).Format(time.RFC3339)})
	}
	if code, body := postTo(t, in.URL, ces); code != http.StatusAccepted {
		t.Fatalf("ces: %d %s", code, body)
	}

	in.WaitCount(uint64(2*len(pulses)), "SELECT count() FROM "+db+"_private.employee_pulses FINAL")
	in.WaitCount(43, "SELECT count() FROM "+db+".team_periods FINAL WHERE period = '7d' AND period_start = ? AND engagement IS NOT NULL AND ces IS NOT NULL", lastMonday)
	in.WaitCount(1, "SELECT count() FROM "+db+".linkage FINAL WHERE period = '7d' AND scope = 'period' AND lag = 0 AND "+
		"employee_metric = 'engagement' AND customer_metric = 'ces' AND period_start = ? AND status = 'ok' AND teams = 43", lastMonday)

	// Every team's published engagement is its respondents' mean, with all of them.
	for _, r := range in.Query("SELECT team, engagement_respondents, engagement FROM "+db+".team_periods FINAL WHERE period = '7d' AND period_start = ?", lastMonday) {
		team, n, mean := r[0].(string), r[1].(uint32), *r[2].(*float64)
		if int(n) != respondents[team] || math.Abs(mean-engSum[team]/float64(n)) > 1e-12 {
			t.Errorf("%s: %d respondents, mean %v; the export has %d, mean %v", team, n, mean, respondents[team], engSum[team]/float64(respondents[team]))
		}
	}
	row := in.Query("SELECT pearson_r, ci_low, ci_high, p_value, spearman_r FROM "+db+".linkage FINAL WHERE period = '7d' AND scope = 'period' AND lag = 0 AND "+
		"employee_metric = 'engagement' AND customer_metric = 'ces' AND period_start = ?", lastMonday)[0]
	got := func(i int) float64 { return *row[i].(*float64) }
	for _, c := range []struct {
		what       string
		got, want  float64
		relTol     float64
		absTol     float64
		formatting string
	}{
		{"Pearson r", got(0), 0.9406295443160644, 0, 1e-9, "%.10f"},
		{"95% CI low", got(1), 0.8923995372558642, 0, 1e-9, "%.10f"},
		{"95% CI high", got(2), 0.9676113020429855, 0, 1e-9, "%.10f"},
		{"p", got(3), 7.571687421166651e-21, 1e-6, 0, "%.6e"},
		{"Spearman rho", got(4), 0.9103552558129222, 0, 1e-9, "%.10f"},
	} {
		if d := math.Abs(c.got - c.want); d > c.absTol+c.relTol*math.Abs(c.want) {
			t.Errorf("%s from ClickHouse "+c.formatting+", R's cor.test "+c.formatting, c.what, c.got, c.want)
		} else {
			t.Logf("%s = "+c.formatting+" (cor.test "+c.formatting+")", c.what, c.got, c.want)
		}
	}

	// No per-employee row in the dashboards' database: no employee column, no
	// pseudonym, no raw id.
	if n := in.Count("SELECT count() FROM system.columns WHERE database = ? AND name = 'employee_id'", db); n != 0 {
		t.Errorf("%d tables of the dashboards' database have an employee_id column", n)
	}
	var dump strings.Builder
	for _, r := range in.Query("SELECT name FROM system.tables WHERE database = ? AND engine != 'View'", db) {
		for _, line := range show(in.Query("SELECT * FROM " + db + ".`" + r[0].(string) + "`")) {
			dump.WriteString(line)
		}
	}
	if s := dump.String(); strings.Contains(s, "emp-") || regexp.MustCompile(`\bE0\d{3}\b`).MatchString(s) || strings.Contains(s, "r-1001") {
		t.Error("an employee's pseudonym, id or response id is in the dashboards' database")
	}

	// The attacker holds the employee directory and the export's layout, even every
	// column of a row, and derives ids as an unkeyed importer would: none is stored.
	var ids []string
	for _, r := range in.Query("SELECT id FROM " + db + "_private.employee_pulses FINAL") {
		ids = append(ids, r[0].(string))
	}
	guesses := 0
	for _, r := range pulses {
		for _, q := range []string{"engagement", "enps"} {
			for _, cols := range [][]string{{r["response_id"]},
				{r["response_id"], when(r).Format(time.RFC3339), r["employee"], r["team"], r["engagement"], r["enps"]}} {
				h := sha256.New()
				h.Write([]byte("hr-pulse\x00" + q))
				for _, c := range cols {
					h.Write([]byte{0})
					h.Write([]byte(c))
				}
				guesses++
				if guess := "hr-pulse:" + q + ":" + hex.EncodeToString(h.Sum(nil)[:12]); slices.Contains(ids, guess) {
					t.Fatalf("stored id %s recomputed from the directory without the key", guess)
				}
			}
		}
	}
	if len(ids) != 2*len(pulses) || !strings.HasPrefix(ids[0], "hr-pulse:") {
		t.Fatalf("stored ids %d: %v…", len(ids), ids[:min(3, len(ids))])
	}
	t.Logf("%d id guesses from the directory, none stored", guesses)
}

// A sixth answer after five: the adversary reads every table of the dashboards'
// database, every metric cxlink exports about employees or the linkage, and every
// query of the dashboards before and after it, and finds nothing changed. Four more
// respondents (k new ones since the publication) do change them: the reads could see it.
func TestDifferencingAttackChangesNothing(t *testing.T) {
	day := 24 * time.Hour
	if until := time.Until(time.Now().UTC().Truncate(day).Add(day)); until < 3*time.Minute {
		time.Sleep(until + time.Second) // the periods must not turn over during the test
	}
	in := apptest.Start(t, nil, map[string]string{
		"CXLINK_EMPLOYEE_ID_KEY":   testEmployeeKey,
		"CXLINK_PULSE_PERIOD":      "1d",
		"CXLINK_PULSE_GRACE":       "0s",
		"CXLINK_ANALYTICS_EVERY":   "1s",
		"CXLINK_LINKAGE_MIN_TEAMS": "6",
		"CXLINK_DRIFT_DELAY":       "1s",
	})
	db := in.Database()
	yesterday := time.Now().UTC().Truncate(day).Add(-day)
	teams := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	var events []map[string]any
	pulse := func(id, emp, team string, at time.Time, engagement, enps int) {
		events = append(events,
			map[string]any{"id": id + "-eng", "type": "employee_pulse", "occurred_at": at.Format(time.RFC3339), "employee_id": emp,
				"team": team, "question": "engagement", "score": engagement},
			map[string]any{"id": id + "-enps", "type": "employee_pulse", "occurred_at": at.Format(time.RFC3339), "employee_id": emp,
				"team": team, "question": "enps", "score": enps})
	}
	// Three days, yesterday and the two before (the drift detector's baseline): five
	// employees per team, and customers' CES.
	for d := 3; d >= 1; d-- {
		start := time.Now().UTC().Truncate(day).Add(-time.Duration(d) * day)
		for i, team := range teams {
			for e := range 5 {
				pulse(fmt.Sprintf("d%d-%s-%d", d, team, e), fmt.Sprintf("%s-%d", team, e), team, start.Add(time.Hour+time.Duration(e)*time.Minute),
					1+(i+e)%5, (3*i+e)%11)
			}
			for j := range 12 {
				events = append(events, map[string]any{"id": fmt.Sprintf("ces-d%d-%s-%d", d, team, j), "type": "survey_response",
					"survey": "ces", "score": 1 + (i+j)%7, "team": team, "occurred_at": start.Add(2 * time.Hour).Format(time.RFC3339)})
			}
		}
	}
	if code, body := postTo(t, in.URL, events); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	in.WaitCount(uint64(len(teams)*3), "SELECT count() FROM "+db+".team_periods FINAL WHERE engagement_respondents = 5 AND enps_respondents = 5")
	in.WaitCount(1, "SELECT count() FROM "+db+".linkage FINAL WHERE scope = 'period' AND status = 'ok' AND period_start = ?", yesterday)

	runs := func() float64 {
		return metricValue(t, get(t, in.URL+"/metrics"), `cxlink_analytics_runs_total{outcome="ok"}`)
	}
	settle := func() {
		// Three more runs of the analytics stage, and of the drift detector.
		for r0 := runs(); runs() < r0+3; {
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
	}
	settle()
	cutoff := time.Now().UTC().Add(-5 * time.Second)
	before := observe(t, in, cutoff)
	if !strings.Contains(before.metrics, `survey="engagement"`) || !strings.Contains(before.metrics, `key="alpha"`) ||
		!strings.Contains(before.metrics, "cxlink_linkage_pearson_r") {
		t.Fatalf("the drift detector and the linkage export nothing about alpha's engagement: the comparison would prove nothing\n%s", before.metrics)
	}

	// The sixth answer: a new employee of alpha, yesterday, the lowest scores.
	events = nil
	pulse("late-sixth", "alpha-new-5", "alpha", yesterday.Add(20*time.Hour), 1, 0)
	if code, body := postTo(t, in.URL, events); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	in.WaitCount(uint64(len(teams)*3*5*2+2), "SELECT count() FROM "+db+"_private.employee_pulses FINAL")
	settle()
	after := observe(t, in, cutoff)
	for _, part := range []struct{ what, before, after string }{
		{"the dashboards' database", before.tables, after.tables},
		{"the metrics", before.metrics, after.metrics},
		{"the dashboards' queries", before.dashboards, after.dashboards},
	} {
		if part.before != part.after {
			t.Errorf("the sixth answer changed %s:\n%s", part.what, diffLines(part.before, part.after))
		}
	}
	if !t.Failed() {
		t.Logf("unchanged after the sixth answer: %d table lines, %d metric lines, %d dashboard query lines",
			strings.Count(before.tables, "\n"), strings.Count(before.metrics, "\n"), strings.Count(before.dashboards, "\n"))
	}

	// Four more new respondents: ten, five more than published, and the figures move.
	events = nil
	for e := 6; e <= 9; e++ {
		pulse(fmt.Sprintf("late-%d", e), fmt.Sprintf("alpha-new-%d", e), "alpha", yesterday.Add(21*time.Hour), 1, 0)
	}
	if code, body := postTo(t, in.URL, events); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	in.WaitCount(1, "SELECT count() FROM "+db+".team_periods FINAL WHERE team = 'alpha' AND period_start = ? AND engagement_respondents = 10 AND enps_respondents = 10", yesterday)
}

// observed is what an adversary with dashboard and Prometheus access reads.
type observed struct{ tables, metrics, dashboards string }

// observe reads every table of the dashboards' database (rows of ticks after cutoff
// aside: time moves them, not answers; computed_at and version aside: when a row was
// written again says nothing new), the metrics about employees and the linkage, and
// every ClickHouse query of the dashboards over a range ending at cutoff.
func observe(t *testing.T, in *apptest.Instance, cutoff time.Time) observed {
	t.Helper()
	db := in.Database()
	var o observed
	var tables strings.Builder
	for _, r := range in.Query("SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", db) {
		name, engine := r[0].(string), r[1].(string)
		var cols []string
		timeCol := ""
		for _, c := range in.Query("SELECT name FROM system.columns WHERE database = ? AND table = ?", db, name) {
			col := c[0].(string)
			switch col {
			case "computed_at", "version", "applied_at":
				continue
			case "window_end":
				timeCol = col
			}
			cols = append(cols, "`"+col+"`")
		}
		q := "SELECT " + strings.Join(cols, ", ") + " FROM " + db + ".`" + name + "`"
		if strings.HasPrefix(engine, "Replacing") {
			q += " FINAL"
		}
		if timeCol != "" {
			q += fmt.Sprintf(" WHERE %s <= toDateTime(%d)", timeCol, cutoff.Unix())
		}
		q += " ORDER BY " + strings.Join(cols, ", ")
		for _, line := range show(in.Query(q)) {
			tables.WriteString(name + " " + line)
		}
	}
	o.tables = tables.String()

	var metrics []string
	for _, line := range strings.Split(get(t, in.URL+"/metrics"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "cxlink_linkage_") || strings.HasPrefix(line, "cxlink_pulse_") ||
			strings.Contains(line, `survey="engagement"`) || strings.Contains(line, `survey="enps"`) ||
			(strings.HasPrefix(line, "cxlink_drift_") && !strings.HasPrefix(line, "cxlink_drift_last_evaluated") && !strings.HasPrefix(line, "cxlink_drift_evaluation")) {
			metrics = append(metrics, line)
		}
	}
	sort.Strings(metrics)
	o.metrics = strings.Join(metrics, "\n") + "\n"

	var dash strings.Builder
	files, _ := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	macro := regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)
	for _, f := range files {
		var d struct {
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Current struct {
						Value string `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					RawSQL string `json:"rawSql"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, _ := os.ReadFile(f)
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				if q.RawSQL == "" {
					continue
				}
				sql := macro.ReplaceAllString(q.RawSQL, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", cutoff.Add(-7*24*time.Hour).Unix(), cutoff.Unix()))
				sql = strings.NewReplacer("$__fromTime", fmt.Sprintf("toDateTime(%d)", cutoff.Add(-7*24*time.Hour).Unix()),
					"$__toTime", fmt.Sprintf("toDateTime(%d)", cutoff.Unix()), "$__interval_s", "60").Replace(sql)
				for _, v := range d.Templating.List {
					sql = strings.ReplaceAll(strings.ReplaceAll(sql, "${"+v.Name+"}", v.Current.Value), "$"+v.Name, v.Current.Value)
				}
				// Queries of "the latest" tick or run read time, not answers: pin them.
				if strings.Contains(sql, "max(window_end)") {
					continue
				}
				for _, line := range show(in.DashboardQuery(sql)) {
					dash.WriteString(filepath.Base(f) + " " + p.Title + ": " + line)
				}
			}
		}
	}
	o.dashboards = dash.String()
	return o
}

// metricValue is the value of the series named exactly by series in a /metrics text.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// diffLines lists the lines only in a or only in b.
func diffLines(a, b string) string {
	in := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		in[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		in[l]--
	}
	var out []string
	for l, n := range in {
		if n > 0 {
			out = append(out, "- "+l)
		} else if n < 0 {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// Padding: a helpdesk's token (a credentials line without a scope, as written before
// scopes) posts fake pulses to release a team with one real respondent: every one is
// rejected, naming the field, and nothing is stored. An HR token of team alpha cannot
// post for bravo. (An HR token can post for its own teams: docs/privacy.md says what
// that leaves open.)
func TestPaddingAttackIsRefused(t *testing.T) {
	helpdesk, line, err := auth.NewToken("zendesk")
	if err != nil {
		t.Fatal(err)
	}
	legacyLine := strings.TrimSuffix(line, " types=survey_response,ticket")
	hr, hrLine, err := auth.NewToken("hr", "types=employee_pulse", "teams=alpha")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(file, []byte(legacyLine+"\n"+hrLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := apptest.Start(t, nil, map[string]string{"CXLINK_EMPLOYEE_ID_KEY": testEmployeeKey, "CXLINK_AUTH_FILE": file})
	db := in.Database()
	now := time.Now().UTC().Format(time.RFC3339)
	fake := func(team string, n int) []map[string]any {
		var out []map[string]any
		for i := range n {
			out = append(out, map[string]any{"id": fmt.Sprintf("pad-%s-%d", team, i), "type": "employee_pulse", "occurred_at": now,
				"employee_id": fmt.Sprintf("fake-%d", i), "team": team, "question": "engagement", "score": 5})
		}
		return out
	}
	code, body := postAs(t, in.URL, map[string]string{"Authorization": "Bearer " + helpdesk}, fake("alpha", 4))
	if code != http.StatusBadRequest || strings.Count(body, `"field":"type"`) != 4 || !strings.Contains(body, "HR source") {
		t.Errorf("four fake pulses with a helpdesk's token: %d %s", code, body)
	}
	code, body = postAs(t, in.URL, map[string]string{"Authorization": "Bearer " + hr}, fake("bravo", 4))
	if code != http.StatusBadRequest || strings.Count(body, `"field":"team"`) != 4 {
		t.Errorf("pulses for bravo with alpha's HR token: %d %s", code, body)
	}
	// The same helpdesk token still sends what it may.
	code, body = postAs(t, in.URL, map[string]string{"Authorization": "Bearer " + helpdesk}, []map[string]any{{"id": "csat-1",
		"type": "survey_response", "survey": "csat", "score": 4, "team": "alpha", "occurred_at": now}})
	if code != http.StatusAccepted {
		t.Fatalf("a survey with the helpdesk's token: %d %s", code, body)
	}
	in.WaitCount(1, "SELECT count() FROM "+db+".survey_responses FINAL")
	if code, body := postAs(t, in.URL, map[string]string{"Authorization": "Bearer " + hr}, fake("alpha", 1)); code != http.StatusAccepted {
		t.Fatalf("alpha's HR token for alpha: %d %s", code, body)
	}
	in.WaitCount(1, "SELECT count() FROM "+db+"_private.employee_pulses FINAL")
	if n := in.Count("SELECT count() FROM " + db + "_private.employee_pulses FINAL WHERE id LIKE 'pad-%' AND team != 'alpha' OR id IN ('pad-alpha-1', 'pad-alpha-2', 'pad-alpha-3')"); n != 0 {
		t.Errorf("%d padded pulses stored", n)
	}
	if ok := metricValue(t, get(t, in.URL+"/metrics"), `cxlink_ingest_rejections_total{field="type"}`); ok != 4 {
		t.Errorf("rejections on type: %v", ok)
	}
}
