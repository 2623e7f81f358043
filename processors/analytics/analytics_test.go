package analytics

import (
	"context"
	"errors"
	"fmt"
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
	emp      []records.EmployeeAggregate
	cust     []records.CustomerAggregate
	reads    []string
	written  Result
	failRead bool
}

func (f *fakeStore) EmployeeAggregates(_ context.Context, p time.Duration, off int64, from, to time.Time, min int) ([]records.EmployeeAggregate, error) {
	f.reads = append(f.reads, fmt.Sprintf("employees %s..%s min %d", from.Format(time.RFC3339), to.Format(time.RFC3339), min))
	if f.failRead {
		return nil, errors.New("clickhouse down")
	}
	return f.emp, nil
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
	f.written = Result{teams, links, impact}
	return nil
}

func testConfig() Config {
	return Config{Enabled: "auto", Every: time.Minute, Span: 3, MaxLag: 1, MinTeams: 4, MinResponses: 1, ImpactWindows: effort.MustParseWindows("7d,30d"), ImpactMinResponses: 30}
}

func TestRunOnceWritesAndExportsTheCurrentLinkage(t *testing.T) {
	now := time.Date(2026, 3, 11, 15, 4, 5, 0, time.UTC) // a Wednesday
	monday := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	last := monday.Add(-7 * 24 * time.Hour)
	st := &fakeStore{}
	for i, v := range []float64{2.5, 3, 3.5, 4, 4.5} {
		team := fmt.Sprintf("t%d", i)
		st.emp = append(st.emp, records.EmployeeAggregate{Team: team, Question: "engagement", PeriodStart: last, Respondents: 5, Sum: 5 * v})
		st.cust = append(st.cust, records.CustomerAggregate{Team: team, Survey: "ces", PeriodStart: last, Responses: 20, Sum: 20 * (v + float64(i%2)), Negative: 1})
	}
	reg := prometheus.NewRegistry()
	s, err := New(testConfig(), Options{Store: st, Pulses: pulses.Config{Period: pulses.MustParsePeriod("7d"), MinRespondents: 5}, Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Linkage reads span + lag periods ending with the last ended week; impact 7d and 30d.
	if got := strings.Join(st.reads, "; "); got != "employees 2026-02-09T00:00:00Z..2026-03-09T00:00:00Z min 5; tickets 168h0m0s; tickets 720h0m0s" {
		t.Fatalf("reads: %s", got)
	}
	if len(st.written.Teams) != 5 || len(st.written.Impact) != 2 || st.written.Impact[0].WindowEnd != now.Truncate(time.Minute) {
		t.Fatalf("written: %+v", st.written)
	}
	out, err := testutil.GatherAndCount(reg, "cxlink_linkage_pearson_r")
	if err != nil || out != 2 { // lag 0, engagement–ces: pooled and period; other pairs lack data
		t.Fatalf("pearson gauges: %d %v", out, err)
	}
	teams := gauge(t, reg, "cxlink_linkage_teams", map[string]string{"scope": "pooled", "lag": "0", "employee_metric": "engagement", "customer_metric": "ces"})
	if teams != 5 {
		t.Fatalf("teams gauge %v", teams)
	}
	if n, _ := testutil.GatherAndCount(reg, "cxlink_analytics_runs_total"); n != 2 {
		t.Fatalf("runs series %d", n)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %v", probs, err)
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
	if !c.Active([]int{0, 1}) || c.Active([]int{2, 3}) {
		t.Fatal("auto runs where partition 0 is")
	}
	c.Enabled = "on"
	if !c.Active([]int{3}) {
		t.Fatal("on")
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
