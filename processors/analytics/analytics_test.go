package analytics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
)

type fakeStore struct {
	emp        []records.EmployeeAggregate // the private database's groups
	cust       []records.CustomerAggregate
	teams      map[string]records.TeamPeriod // team_periods under FINAL, by team and period
	clock      time.Time
	dropBefore time.Time
	reads      []string
	written    Result
	failRead   bool
}

func (f *fakeStore) ServerNow(context.Context) (time.Time, error) { return f.clock, nil }

func (f *fakeStore) DropPulsesBefore(_ context.Context, t time.Time) ([]string, error) {
	f.dropBefore = t
	return nil, nil
}

func (f *fakeStore) PulseGroups(_ context.Context, p time.Duration, off int64, from, to, since, closedFrom time.Time, min int) ([]records.EmployeeAggregate, error) {
	f.reads = append(f.reads, fmt.Sprintf("pulses %s..%s since %s closed from %s min %d", from.Format(time.RFC3339), to.Format(time.RFC3339),
		since.Format(time.RFC3339), closedFrom.Format(time.RFC3339), min))
	if f.failRead {
		return nil, errors.New("clickhouse down")
	}
	var out []records.EmployeeAggregate
	for _, a := range f.emp {
		if !a.PeriodStart.Before(from) && a.PeriodStart.Before(to) && a.Respondents >= uint64(min) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeStore) TeamPeriods(_ context.Context, period string, from, to time.Time) ([]records.TeamPeriod, error) {
	var out []records.TeamPeriod
	for _, r := range f.teams {
		if r.Period == period && !r.PeriodStart.Before(from) && r.PeriodStart.Before(to) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeStore) CustomerAggregates(_ context.Context, p time.Duration, off int64, from, to time.Time) ([]records.CustomerAggregate, error) {
	return f.cust, nil
}

func (f *fakeStore) CategoryTickets(_ context.Context, from, to time.Time) ([]records.CategoryTickets, error) {
	f.reads = append(f.reads, "tickets "+to.Sub(from).String())
	return []records.CategoryTickets{{Category: "billing", Tickets: 10}}, nil
}

func (f *fakeStore) CategoryCES(_ context.Context, from, to time.Time) ([]records.CategoryCES, error) {
	return []records.CategoryCES{{Category: "billing", Responses: 40, Sum: 160, Variance: 1, Difficult: 10}}, nil
}

func (f *fakeStore) WriteAnalytics(_ context.Context, teams []records.TeamPeriod, links []records.Linkage, impact []records.EffortImpact, at time.Time, v uint64) error {
	f.written = Result{Teams: teams, Linkage: links, Impact: impact}
	if f.teams == nil {
		f.teams = map[string]records.TeamPeriod{}
	}
	for _, r := range teams {
		f.teams[r.Team+r.PeriodStart.String()] = r
	}
	return nil
}

func testPulses() pulses.Config {
	return pulses.DefaultConfig()
}

func testConfig() Config {
	return Config{Enabled: "auto", Every: time.Minute, Span: 3, MaxLag: 1, MinTeams: 4, MinResponses: 1, ImpactWindows: effort.MustParseWindows("7d,30d"), ImpactMinResponses: 30}
}

func TestRunOnceWritesAndExportsTheCurrentLinkage(t *testing.T) {
	now := time.Date(2026, 3, 11, 15, 4, 5, 0, time.UTC) // a Wednesday
	monday := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	last := monday.Add(-7 * 24 * time.Hour)
	st := &fakeStore{clock: now}
	for i, v := range []float64{2.5, 3, 3.5, 4, 4.5} {
		team := fmt.Sprintf("t%d", i)
		st.emp = append(st.emp, records.EmployeeAggregate{Team: team, Question: "engagement", PeriodStart: last, Respondents: 5, Sum: 5 * v})
		st.cust = append(st.cust, records.CustomerAggregate{Team: team, Survey: "ces", PeriodStart: last, Responses: 20, Sum: 20 * (v + float64(i%2)), Negative: 1})
	}
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(), Options{Store: st, Pulses: testPulses(), Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Pulses of the closed periods of the lookback (and its slack), all groups at
	// first; impact 7d and 30d.
	if got := strings.Join(st.reads, "; "); got != "pulses 2025-12-01T00:00:00Z..2026-03-09T00:00:00Z since 0001-01-01T00:00:00Z closed from 0001-01-01T00:00:00Z min 5; tickets 168h0m0s; tickets 720h0m0s" {
		t.Fatalf("reads: %s", got)
	}
	if len(st.written.Teams) != 5 || len(st.written.Impact) != 2 || st.written.Impact[0].WindowEnd != now.Truncate(time.Minute) {
		t.Fatalf("written: %+v", st.written)
	}
	// Answers no period can publish any more are deleted: those before the lookback.
	if want := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC); !st.dropBefore.Equal(want) {
		t.Fatalf("answers deleted before %s, want %s", st.dropBefore, want)
	}
	// lag 0, engagement–ces: between teams and period; within teams needs teams seen in
	// two periods; other pairs lack data.
	out, err := testutil.GatherAndCount(reg, "cxlink_linkage_pearson_r")
	if err != nil || out != 2 {
		t.Fatalf("pearson gauges: %d %v", out, err)
	}
	between := map[string]string{"scope": "between_teams", "lag": "0", "employee_metric": "engagement", "customer_metric": "ces"}
	if teams := gauge(t, reg, "cxlink_linkage_teams", between); teams != 5 {
		t.Fatalf("teams gauge %v", teams)
	}
	// Five teams: 3 degrees of freedom, and only a correlation of 0.94 or more would be
	// found with 80% power.
	if df, md := gauge(t, reg, "cxlink_linkage_df", between), gauge(t, reg, "cxlink_linkage_min_detectable_r", between); df != 3 || md < 0.93 || md > 0.94 {
		t.Fatalf("df %v, detectable %v", df, md)
	}
	// Between and within teams for each of 2 lags × 6 metric pairs, and the period rows
	// of the pairs with data: engagement–ces and engagement–pct_difficult (no variance).
	if n, _ := testutil.GatherAndCount(reg, "cxlink_linkage_teams"); n != 2*2*6+2 {
		t.Fatalf("teams series: %d", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "cxlink_analytics_runs_total"); n != 2 {
		t.Fatalf("runs series %d", n)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}

	// The next run reads only what changed since: rows stored since this run (less the
	// store's lag), and periods closed since.
	st.reads = nil
	if err := s.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := st.reads[0]; got != "pulses 2025-12-01T00:00:00Z..2026-03-09T00:00:00Z since 2026-03-11T14:58:05Z closed from 2026-03-09T00:00:00Z min 5" {
		t.Fatalf("second run reads %s", got)
	}
	if len(st.written.Teams) != 0 {
		t.Fatalf("nothing changed, yet rows were written again: %+v", st.written.Teams)
	}

	st.failRead = true
	if err := s.RunOnce(t.Context()); err == nil {
		t.Fatal("no error")
	}
	if v := testutil.ToFloat64(s.metrics.runs.WithLabelValues("error")); v != 1 {
		t.Fatalf("errors counted %v", v)
	}
}

func TestActiveAndValidate(t *testing.T) {
	c := testConfig()
	for enabled, want := range map[string]bool{"auto": true, "on": true, "off": false} {
		c.Enabled = enabled
		if c.Active() != want {
			t.Errorf("CXLINK_ANALYTICS=%s: Active() = %v", enabled, !want)
		}
	}
	bad := Config{Enabled: "maybe", Every: 0, Span: 0, MaxLag: -1, MinTeams: 3, MinResponses: 0, ImpactWindows: nil, ImpactMinResponses: 0}
	err := bad.Validate()
	for _, v := range []string{"CXLINK_ANALYTICS:", "CXLINK_ANALYTICS_EVERY", "CXLINK_LINKAGE_SPAN", "CXLINK_LINKAGE_MAX_LAG", "CXLINK_LINKAGE_MIN_TEAMS", "CXLINK_LINKAGE_MIN_RESPONSES", "CXLINK_IMPACT_WINDOWS", "CXLINK_IMPACT_MIN_RESPONSES"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("%v lacks %s", err, v)
		}
	}
}

// gauge returns the value of the series of name with exactly labels.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// The disclosure policy in the stage: a closed week is published at 5 respondents; a
// sixth changes nothing written or exported; the tenth publishes again; the open week
// is never published, whatever its respondents.
func TestStagePublishesByThePolicy(t *testing.T) {
	now := time.Date(2026, 3, 11, 15, 4, 5, 0, time.UTC) // a Wednesday
	monday := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	last := monday.Add(-7 * 24 * time.Hour)
	st := &fakeStore{clock: now}
	group := func(team string, start time.Time, answers ...float64) records.EmployeeAggregate {
		g := records.EmployeeAggregate{Team: team, Question: "engagement", PeriodStart: start, Respondents: uint64(len(answers))}
		for _, a := range answers {
			g.Sum, g.SquareSum = g.Sum+a, g.SquareSum+a*a
		}
		return g
	}
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(), Options{Store: st, Pulses: testPulses(), Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	run := func(groups ...records.EmployeeAggregate) []records.TeamPeriod {
		t.Helper()
		st.emp = groups
		if err := s.RunOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		return st.written.Teams
	}
	five := []float64{4, 4, 3, 5, 2}
	open := group("red", monday, 1, 1, 1, 1, 1, 1, 1)
	written := run(group("red", last, five...), open)
	if len(written) != 1 || !written[0].PeriodStart.Equal(last) || *written[0].Engagement != 3.6 || written[0].EngagementRespondents != 5 {
		t.Fatalf("first publication: %+v", written)
	}
	if written := run(group("red", last, append(five, 1)...), open); len(written) != 0 {
		t.Fatalf("a sixth answer was published: %+v", written)
	}
	if got := st.teams["red"+last.String()]; *got.Engagement != 3.6 || got.EngagementRespondents != 5 {
		t.Fatalf("team_periods after the sixth answer: %+v", got)
	}
	written = run(group("red", last, append(five, 1, 2, 3, 4, 5)...), open)
	if len(written) != 1 || written[0].EngagementRespondents != 10 || math.Abs(*written[0].Engagement-3.3) > 1e-12 {
		t.Fatalf("ten respondents: %+v", written)
	}
	if v := testutil.ToFloat64(s.metrics.published); v != 2 {
		t.Fatalf("publications counted %v, want 2", v)
	}
}
