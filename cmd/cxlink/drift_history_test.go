package main

// End to end: a new deployment imports seven days of answers (late: they never enter the
// rolling windows) and goes live. Within its first minutes the drift detector judges the
// live window against a baseline drawn from that history: a category whose answers got
// much harder drifts, a healthy one does not.

import (
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

func TestDriftBaselineFromImportedHistory(t *testing.T) {
	ch := chtest.Start(t)
	database := ch.NewDatabase(t)
	env := maps.Clone(apptest.Defaults)
	maps.Copy(env, map[string]string{
		"CXLINK_DATA_DIR":     t.TempDir(),
		"CLICKHOUSE_ADDR":     ch.Addr(),
		"CLICKHOUSE_DATABASE": database,
		// Recent 10 minutes against the 7 days before them.
		"CXLINK_WINDOWS":     "10m,7d",
		"CXLINK_OWNERS":      "category:billing=billing, category:login=web, *=support",
		"CXLINK_DRIFT_DELAY": "2s",
	})
	url, _ := runCxlinkUntilStopped(t, env)
	db, err := clickhouse.Open(t.Context(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	now := time.Now().UTC()
	healthy := []int{5, 6, 6, 5, 7, 4, 6, 5, 6, 7} // mean 5.7
	drifted := []int{2, 1, 3, 2, 2, 1, 3, 2, 4, 2} // mean 2.2
	var history, live []map[string]any
	// Seven days of history: 700 answers per category, one every 14.4 minutes.
	for i := range 700 {
		occurred := now.Add(-7*24*time.Hour + time.Duration(i)*864*time.Second)
		for _, cat := range []string{"billing", "login"} {
			history = append(history, map[string]any{"id": fmt.Sprintf("hist-%s-%d", cat, i), "type": "survey_response",
				"survey": "ces", "score": healthy[i%len(healthy)], "category": cat, "occurred_at": occurred.Format(time.RFC3339)})
		}
	}
	// The live hour so far: 60 answers per category in the last 9 minutes.
	for i := range 60 {
		occurred := now.Add(-9*time.Minute + time.Duration(i)*9*time.Second)
		live = append(live,
			map[string]any{"id": fmt.Sprintf("live-billing-%d", i), "type": "survey_response", "survey": "ces",
				"score": healthy[i%len(healthy)], "category": "billing", "occurred_at": occurred.Format(time.RFC3339)},
			map[string]any{"id": fmt.Sprintf("live-login-%d", i), "type": "survey_response", "survey": "ces",
				"score": drifted[i%len(drifted)], "category": "login", "occurred_at": occurred.Format(time.RFC3339)})
	}
	for i := 0; i < len(history); i += 500 {
		if code, body := postTo(t, url, history[i:min(i+500, len(history))]); code/100 != 2 {
			t.Fatalf("import: %d %s", code, body)
		}
	}
	if code, body := postTo(t, url, live); code/100 != 2 {
		t.Fatalf("live: %d %s", code, body)
	}
	count := func(q string) uint64 {
		var n uint64
		if err := db.Conn().QueryRow(t.Context(), q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	followUpWait(t, time.Minute, func() bool {
		return count("SELECT count() FROM "+database+".survey_responses FINAL WHERE late = 1") == uint64(len(history))
	})
	started := time.Now()
	followUpWait(t, 2*time.Minute, func() bool {
		return count("SELECT count() FROM "+database+".drift_events FINAL WHERE dimension = 'category' AND key = 'login'") > 0
	})
	t.Logf("login's drift recorded %s after the history was stored", time.Since(started).Round(time.Second))
	var owner, direction string
	var baseline float64
	var baselineN uint64
	if err := db.Conn().QueryRow(t.Context(), "SELECT owner, direction, peak_baseline, peak_baseline_responses FROM "+database+
		".drift_events FINAL WHERE dimension = 'category' AND key = 'login' AND detector = 'mean'").Scan(&owner, &direction, &baseline, &baselineN); err != nil {
		t.Fatal(err)
	}
	if owner != "web" || direction != "worse" || baselineN < 600 || baseline < 5.5 || baseline > 5.9 {
		t.Fatalf("login's episode: owner %s, direction %s, baseline %.2f of %d responses", owner, direction, baseline, baselineN)
	}
	// Billing has been judged against the same history all along, and is fine.
	time.Sleep(5 * time.Second)
	if n := count("SELECT count() FROM " + database + ".drift_events FINAL WHERE dimension = 'category' AND key = 'billing'"); n != 0 {
		t.Fatalf("billing, healthy, has %d drift episodes", n)
	}
	m := regexp.MustCompile(`cxlink_drift_responses\{[^}]*key="billing"[^}]*side="baseline"[^}]*\} (\d+)`).FindStringSubmatch(get(t, url+"/metrics"))
	if n, _ := strconv.Atoi(m[len(m)-1]); m == nil || n < 600 {
		t.Errorf("billing's baseline is not the imported week: %v", m)
	}
}
