package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/cxlink/cxlink/processors/retention"
)

const day = 24 * time.Hour

func parse(t *testing.T, environ map[string]string) (retention.Config, error) {
	t.Helper()
	c := retention.DefaultConfig()
	err := env.ParseWithOptions(&c, env.Options{Environment: environ})
	return c, err
}

func TestConfig(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Keep(retention.Raw) != 400*day || c.Keep(retention.Rollups) != 180*day || c.Keep(retention.Results) != 400*day {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(7*day, 16*7*day); err != nil {
		t.Errorf("defaults are invalid: %v", err)
	}
	c, err = parse(t, map[string]string{"CXLINK_RETENTION_RAW": "0", "CXLINK_RETENTION_ROLLUPS": "2w", "CXLINK_RETENTION_RESULTS": "1y"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Keep(retention.Raw) != 0 || c.Keep(retention.Rollups) != 14*day || c.Keep(retention.Results) != 365*day {
		t.Errorf("parsed: %+v", c)
	}
	if _, err := parse(t, map[string]string{"CXLINK_RETENTION_RAW": "400 days"}); err == nil {
		t.Error("400 days accepted")
	}
}

func TestValidateNamesEverySetting(t *testing.T) {
	c := retention.Config{Raw: model.Duration(30 * day), Rollups: model.Duration(7 * day), Results: model.Duration(-day)}
	err := c.Validate(7*day, 16*7*day)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"CXLINK_RETENTION_RAW: 30d is shorter than what the analytics stage reads (linkage periods and effort-impact windows) (112d)",
		"CXLINK_RETENTION_ROLLUPS: 7d is shorter than the longest window (CXLINK_WINDOWS) and a day (8d)",
		"CXLINK_RETENTION_RESULTS: -1d is negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// The least allowed, and 0 (forever), are fine.
	ok := retention.Config{Raw: model.Duration(112 * day), Rollups: model.Duration(8 * day)}
	if err := ok.Validate(7*day, 112*day); err != nil {
		t.Error(err)
	}
}

type store struct {
	parts   []retention.Partition
	dropped []string
	fail    string
}

func (s *store) Partitions(context.Context) ([]retention.Partition, error) { return s.parts, nil }

func (s *store) DropPartition(_ context.Context, p retention.Partition) error {
	if p.ID == s.fail {
		return errors.New("refused")
	}
	s.dropped = append(s.dropped, p.Table+"/"+p.ID)
	return nil
}

// A partition is dropped once its whole range ended by now − retention (its end at the
// cutoff included), never while open, never with a retention of 0; a failed drop does not
// stop the others and fails the run.
func TestRunOnceDropsWhatEndedBeforeTheCutoff(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	cutoff := now.Add(-10 * day)
	part := func(table string, class retention.Class, id string, end time.Time, open bool) retention.Partition {
		return retention.Partition{Table: table, Class: class, ID: id, Start: end.Add(-day), End: end, Open: open}
	}
	s := &store{fail: "fails", parts: []retention.Partition{
		part("rollup_buckets", retention.Rollups, "at-cutoff", cutoff, false),
		part("rollup_buckets", retention.Rollups, "a-second-later", cutoff.Add(time.Second), false),
		part("rollup_buckets", retention.Rollups, "fails", cutoff.Add(-day), false),
		part("rollup_buckets", retention.Rollups, "older", cutoff.Add(-2*day), false),
		part("drift_events", retention.Results, "open", cutoff.Add(-day), true),
		part("drift_events", retention.Results, "closed", cutoff.Add(-day), false),
		part("tickets", retention.Raw, "forever", time.Unix(0, 0), false),
	}}
	reg := prometheus.NewRegistry()
	cfg := retention.Config{Rollups: model.Duration(10 * day), Results: model.Duration(10 * day)}
	j := retention.New(cfg, retention.Options{Store: s, Registerer: reg, Now: func() time.Time { return now }})
	dropped, err := j.RunOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %v, want the failed drop's", err)
	}
	if got, want := strings.Join(s.dropped, " "), "rollup_buckets/at-cutoff rollup_buckets/older drift_events/closed"; got != want {
		t.Errorf("dropped %s, want %s", got, want)
	}
	if len(dropped) != 3 {
		t.Errorf("RunOnce returned %d partitions, want 3", len(dropped))
	}
	if n := testutil.CollectAndCount(reg, "cxlink_retention_dropped_partitions_total"); n != 3 {
		t.Errorf("%d series of dropped partitions, want one per table seen (3)", n)
	}
	if n := value(t, reg, "cxlink_retention_runs_total", "error"); n != 1 {
		t.Errorf("failed runs = %v", n)
	}
	if n := value(t, reg, "cxlink_retention_dropped_partitions_total", "rollup_buckets"); n != 2 {
		t.Errorf("dropped rollup_buckets partitions = %v, want 2", n)
	}
}

// value reads one counter by name and the value of its only label.
func value(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
