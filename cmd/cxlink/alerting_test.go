package main

// End-to-end test of drift alerting with real processes on loopback: cxlink (`run`:
// ingest, embedded JetStream, processors and the drift detector, in this process) with a
// private ClickHouse, a real Prometheus scraping it every second with the project's rules,
// a real Alertmanager with the project's routing, and a webhook receiver in the test.
// Only time constants are scaled: windows of 10 s and 2 min instead of 1 h and 7 d, rule
// `for:` and `keep_firing_for:` minutes become seconds, Alertmanager groups in 1 s.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// A CES pattern whose every whole cycle has the same mean (5.2) and spread: a series
// made of it is stable, so only an injected drift can move its z.
var cesCycle = []float64{7, 6, 6, 5, 4, 7, 6, 3, 2, 6}

type feeder struct {
	url      string
	mu       sync.Mutex
	seq      int
	pos      map[string]int
	drifting bool
}

// events returns n CES responses for category at t; a drifting category's answers are
// 2.5 points lower (at least 1).
func (f *feeder) events(category string, n int, at time.Time, drift bool) []map[string]any {
	var out []map[string]any
	for range n {
		score := cesCycle[f.pos[category]%len(cesCycle)]
		f.pos[category]++
		if drift {
			score = math.Max(1, score-2.5)
		}
		f.seq++
		out = append(out, map[string]any{"id": fmt.Sprintf("al-%d", f.seq), "type": "survey_response",
			"occurred_at": at.UTC().Format(time.RFC3339Nano), "survey": "ces", "score": score, "category": category,
			"team": supportTeam})
	}
	return out
}

func (f *feeder) post(events []map[string]any) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range events {
		enc.Encode(e)
	}
	resp, err := http.Post(f.url, "application/x-ndjson", &body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("post: %d %s", resp.StatusCode, raw)
	}
	return nil
}

// Per second: the drifting category, a healthy one, and one with too few answers for a
// 10 s window (10 < 30) that drifts too. One team handles them all, so the drift drags
// the team down with it.
const (
	supportTeam      = "alpha"           // owner support
	driftingCategory = "plan_correction" // owner product
	healthyCategory  = "refund_request"  // owner support
	sparseCategory   = "login_problem"   // owner web
	perSecond        = 20
)

// batch returns the events of one tenth of a second at t.
func (f *feeder) batch(t time.Time, tenth int) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events(driftingCategory, perSecond/10, t, f.drifting)
	ev = append(ev, f.events(healthyCategory, perSecond/10, t, false)...)
	if tenth%10 == 0 {
		ev = append(ev, f.events(sparseCategory, 1, t, f.drifting)...)
	}
	return ev
}

func (f *feeder) setDrift(on bool) {
	f.mu.Lock()
	f.drifting = on
	f.mu.Unlock()
}

func TestDriftAlertReachesOwner(t *testing.T) {
	ctx := t.Context()

	// The webhook receiver on-call would have.
	rcv, hookURL := startReceiver(t)

	// cxlink run, in this process.
	ch := chtest.Start(t)
	database := ch.NewDatabase(t)
	env := map[string]string{
		"CXLINK_DATA_DIR":         t.TempDir(),
		"CXLINK_HTTP_ADDR":        "127.0.0.1:0",
		"CXLINK_WINDOWS":          "10s,2m",
		"CXLINK_ROLLUP_STEP":      "1s",
		"CXLINK_ALLOWED_LATENESS": "10m",
		"CXLINK_ATTRIBUTION_WAIT": "10s",
		"CXLINK_BATCH_MAX_DELAY":  "100ms",
		"CXLINK_DRIFT_DELAY":      "500ms",
		"CXLINK_OWNERS":           "category:plan_correction=product,category:login_problem=web,*=support",
	}
	maps.Copy(env, ch.Env(database))
	cxlink := apptest.StartRole(t, env, nil, "run")

	// Two and a half minutes of stable history, so that baselines are full, a second of
	// it per request. It ends where it started: chasing the clock never ends when a
	// loaded machine posts more slowly than the time it stands for.
	f := &feeder{url: cxlink.URL + "/v1/events", pos: map[string]int{}}
	historyEnd := time.Now()
	start := historyEnd.Add(-150 * time.Second)
	var history []map[string]any
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		if at.After(historyEnd) || i%10 == 0 && len(history) > 0 {
			if err := f.post(history); err != nil {
				t.Fatal(err)
			}
			history = nil
		}
		if at.After(historyEnd) {
			break
		}
		history = append(history, f.batch(at, i)...)
	}
	// Then live, every 100 ms, until the test ends.
	feedCtx, stopFeed := context.WithCancel(ctx)
	feedDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-feedCtx.Done():
				feedDone <- nil
				return
			case now := <-tick.C:
				if err := f.post(f.batch(now, i)); err != nil {
					feedDone <- err
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		stopFeed()
		if err := <-feedDone; err != nil {
			t.Errorf("feeding events: %v", err)
		}
	})

	// Prometheus and Alertmanager start once the detector has evaluated, so that the
	// drift metrics are there from their first scrape.
	apptest.WaitMetric(t, cxlink.URL+"/metrics", `cxlink_drift_z{detector="mean",dimension="category",key="plan_correction",owner="product",survey="ces"}`)
	am := apptest.StartAlertmanager(t, alertmanagerConfig(t, hookURL))
	prom := prometheusWithScaledRules(t, cxlink.Addr, am.Addr)
	prom.WaitQuery(`cxlink:drift_enough_responses{key="plan_correction"}`, time.Minute)

	// A quiet spell first: nothing may fire while every series is stable.
	time.Sleep(10 * time.Second)
	if got := rcv.all(); len(got) > 0 {
		t.Fatalf("notifications before any drift: %s", describe(got))
	}

	driftStart := time.Now()
	f.setDrift(true)
	isDrop := func(n notification, status string) bool {
		if n.body.Status != status || n.path != "/product" {
			return false
		}
		for _, a := range n.body.Alerts {
			if a.Labels["alertname"] == "CXLinkCESDrop" && a.Labels["category"] == driftingCategory && a.Labels["owner"] == "product" {
				return true
			}
		}
		return false
	}
	fired := rcv.waitFor(t, "firing CXLinkCESDrop for plan_correction at /product", 90*time.Second,
		func(n notification) bool { return isDrop(n, "firing") })
	t.Logf("drift start → firing notification at the owner's receiver: %s", fired.at.Sub(driftStart).Round(100*time.Millisecond))
	for _, a := range fired.body.Alerts {
		t.Logf("  %s %v: %s", a.Status, a.Labels, a.Annotations["description"])
		if a.Annotations["summary"] == "" || !strings.Contains(a.Annotations["runbook"], "runbook.md#cxlinkcesdrop") {
			t.Errorf("alert without summary or runbook: %+v", a)
		}
	}

	// The team handling the category drops too, and Prometheus fires for it, but
	// Alertmanager holds it back while its category drops: support is not paged for a
	// problem that is not theirs.
	prom.WaitQuery(`ALERTS{alertname="CXLinkCESDrop",dimension="team",key="alpha",alertstate="firing"}`, time.Minute)

	// The drift goes on a little, then stops: the alert must resolve.
	time.Sleep(5 * time.Second)
	driftEnd := time.Now()
	f.setDrift(false)
	resolved := rcv.waitFor(t, "resolved CXLinkCESDrop for plan_correction at /product", 120*time.Second,
		func(n notification) bool { return isDrop(n, "resolved") && n.at.After(driftEnd) })
	t.Logf("drift end → resolved notification: %s", resolved.at.Sub(driftEnd).Round(100*time.Millisecond))

	// Nothing for the healthy category, nor for the sparse one although it drifted as
	// hard (its recent window never had 30 responses), nor for the team (inhibited).
	all := rcv.all()
	t.Logf("all notifications: %s", describe(all))
	for _, n := range all {
		for _, a := range n.body.Alerts {
			if k := a.Labels["key"]; k == healthyCategory || k == sparseCategory || a.Labels["dimension"] == "team" {
				t.Errorf("notification for %s: %s", k, describe([]notification{n}))
			}
			if a.Labels["kind"] != "business" {
				t.Errorf("pipeline alert during the test: %v", a.Labels)
			}
		}
	}

	// The detector recorded the drift in ClickHouse: episodes that started after the drift
	// did and ended, the last when it ended. (On a starved machine a detector can find a
	// 10 s window short of responses mid-drift, which ends an episode and starts the next;
	// Alertmanager rides over that with keep_firing_for.)
	db, err := clickhouse.Open(ctx, ch.Config(database), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var (
		episodes       uint64
		started, ended time.Time
		peak           float64
	)
	if err := db.Conn().QueryRow(ctx, "SELECT count(), min(started_at), max(assumeNotNull(ended_at)), min(peak_statistic) FROM "+database+
		".drift_events FINAL WHERE key = ? AND detector = 'mean' AND direction = 'worse' AND isNotNull(ended_at)", driftingCategory).
		Scan(&episodes, &started, &ended, &peak); err != nil {
		t.Fatalf("drift episodes of %s: %v", driftingCategory, err)
	}
	t.Logf("drift_events: %s, %d episode(s) from %s to %s, peak z %.1f", driftingCategory, episodes,
		started.Sub(driftStart).Round(time.Second), ended.Sub(driftStart).Round(time.Second), peak)
	if episodes == 0 || started.Before(driftStart.Add(-time.Second)) || ended.Before(driftEnd.Add(-time.Second)) || peak > -3 {
		t.Errorf("%d episode(s) %s–%s peak %.1f do not match the drift %s–%s", episodes, started, ended, peak, driftStart, driftEnd)
	}
	var others uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM "+database+
		".drift_events FINAL WHERE key IN (?, ?)", healthyCategory, sparseCategory).Scan(&others); err != nil || others != 0 {
		t.Errorf("%d drift episodes of the healthy or sparse category (err %v)", others, err)
	}
}
