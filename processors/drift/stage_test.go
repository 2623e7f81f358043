package drift

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
)

// fakeRollups holds one-second buckets per series and answers window reads the way the
// rollups do (end − length ≤ t < end), and stores drift rows like drift_events (FINAL).
type fakeRollups struct {
	buckets map[seriesKey]map[int64]records.WindowTotal // unix second → bucket
	events  map[[6]string]records.DriftEvent
	pulses  []pulseAnswer
}

// pulseAnswer is one employee's answer; every answer in the fake is a distinct employee.
type pulseAnswer struct {
	team, question string
	at             time.Time
	score          float64
}

func newFake() *fakeRollups {
	return &fakeRollups{buckets: map[seriesKey]map[int64]records.WindowTotal{},
		events: map[[6]string]records.DriftEvent{}}
}

func (f *fakeRollups) add(k seriesKey, at int64, score float64, negative bool) {
	m := f.buckets[k]
	if m == nil {
		m = map[int64]records.WindowTotal{}
		f.buckets[k] = m
	}
	b := m[at]
	b.Responses++
	b.ScoreSum += score
	b.SquareSum += score * score
	if negative {
		b.Negative++
	}
	m[at] = b
}

func (f *fakeRollups) WindowTotals(_ context.Context, window effort.Window, ends []time.Time) ([]records.WindowTotal, error) {
	var out []records.WindowTotal
	for k, m := range f.buckets {
		for _, end := range ends {
			w := records.WindowTotal{Survey: k.survey, Dimension: k.dimension, Key: k.key, WindowEnd: end}
			for s := end.Unix() - int64(window.Length/time.Second); s < end.Unix(); s++ {
				b := m[s]
				w.Responses += b.Responses
				w.ScoreSum += b.ScoreSum
				w.SquareSum += b.SquareSum
				w.Negative += b.Negative
			}
			if w.Responses > 0 {
				out = append(out, w)
			}
		}
	}
	return out, nil
}

// TeamPeriods publishes the answers like the analytics stage: per team, question and
// period, every group of at least 5 respondents (all its answers are in).
func (f *fakeRollups) TeamPeriods(_ context.Context, period string, from, to time.Time) ([]records.TeamPeriod, error) {
	p, _ := pulses.ParsePeriod(period)
	type key struct {
		team, question string
		start          time.Time
	}
	groups := map[key]*records.EmployeeAggregate{}
	for _, a := range f.pulses {
		k := key{a.team, a.question, a.at.Truncate(p)}
		if k.start.Before(from) || !k.start.Before(to) {
			continue
		}
		g := groups[k]
		if g == nil {
			g = &records.EmployeeAggregate{Team: a.team, Question: a.question, PeriodStart: k.start}
			groups[k] = g
		}
		g.Respondents++
		g.Sum += a.score
		g.SquareSum += a.score * a.score
		if a.question == ENPS && a.score >= 9 {
			g.Promoters++
		}
		if a.question == ENPS && a.score <= 6 {
			g.Detractors++
		}
	}
	rows := map[key]*records.TeamPeriod{}
	for k, g := range groups {
		if g.Respondents < 5 {
			continue
		}
		rk := key{team: k.team, start: k.start}
		r := rows[rk]
		if r == nil {
			r = &records.TeamPeriod{Period: period, PeriodStart: k.start, Team: k.team}
			rows[rk] = r
		}
		n := float64(g.Respondents)
		if k.question == Engagement {
			mean, sd := g.Sum/n, math.Sqrt((g.SquareSum-g.Sum*g.Sum/n)/(n-1))
			r.EngagementRespondents, r.Engagement, r.EngagementSD = uint32(g.Respondents), &mean, &sd
		} else {
			pro, det := 100*float64(g.Promoters)/n, 100*float64(g.Detractors)/n
			enps := pro - det
			r.ENPSRespondents, r.ENPS, r.ENPSPromoters, r.ENPSDetractors = uint32(g.Respondents), &enps, &pro, &det
		}
	}
	var out []records.TeamPeriod
	for _, r := range rows {
		out = append(out, *r)
	}
	return out, nil
}

func (f *fakeRollups) OpenDriftEvents(context.Context) ([]records.DriftEvent, error) {
	var out []records.DriftEvent
	for _, e := range f.sorted() {
		if e.EndedAt.IsZero() {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeRollups) WriteDriftEvents(_ context.Context, events []records.DriftEvent) error {
	for _, e := range events {
		k := [6]string{e.Survey, e.Dimension, e.Key, e.Detector, e.Direction, e.StartedAt.String()}
		if old, ok := f.events[k]; !ok || e.Version >= old.Version {
			f.events[k] = e
		}
	}
	return nil
}

func (f *fakeRollups) sorted() []records.DriftEvent {
	var out []records.DriftEvent
	for _, e := range f.events {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Key+out[i].Detector+out[i].StartedAt.String() < out[j].Key+out[j].Detector+out[j].StartedAt.String()
	})
	return out
}

var (
	t0        = time.Unix(1_800_000_000, 0).UTC()
	drifting  = seriesKey{"ces", "category", "plan_correction"}
	healthy   = seriesKey{"ces", "category", "refund_request"}
	fewAnswer = seriesKey{"ces", "category", "cancellation"}
)

// simulate fills buckets from t0−100 s to t0+200 s: CES answers around 5 (sd ≈ 1.2); the
// drifting category loses 1.5 points from t0+50 s to t0+80 s, the one with few answers
// (0.5 a second: 5 in a recent window) loses 3 points from t0+50 s on.
func simulate(f *fakeRollups) {
	rng := rand.New(rand.NewPCG(7, 7))
	answer := func(k seriesKey, at int64, mean float64) {
		s := math.Round(min(7, max(1, mean+1.2*rng.NormFloat64())))
		f.add(k, at, s, s <= 3)
	}
	for s := t0.Unix() - 100; s < t0.Unix()+200; s++ {
		rel := s - t0.Unix()
		for range 10 {
			mean := 5.0
			if rel >= 50 && rel < 80 {
				mean = 3.5
			}
			answer(drifting, s, mean)
			answer(healthy, s, 5)
		}
		if s%2 == 0 {
			mean := 5.0
			if rel >= 50 {
				mean = 2
			}
			answer(fewAnswer, s, mean)
		}
	}
}

func testConfig() Config {
	return Config{Recent: "10s", Baseline: "60s", MinRecent: 30, MinBaseline: 100, Z: 3, ClearZ: 2, MinEffect: 0.2, EWMALambda: 0.2,
		PulseBaselinePeriods: 4, PulseMinBaselinePeriods: 2, Owners: MustParseOwners("category:plan_correction=product,*=support")}
}

func newTestStage(t *testing.T, f *fakeRollups, reg prometheus.Registerer) *Stage {
	t.Helper()
	s, err := New(testConfig(), Options{Source: f, Sink: f, Windows: effort.MustParseWindows("10s,60s"), Step: time.Second, Registerer: reg, MaxKeys: 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStageRecordsEpisodes(t *testing.T) {
	f := newFake()
	simulate(f)
	reg := prometheus.NewRegistry()
	s := newTestStage(t, f, reg)
	ctx := context.Background()
	for sec := int64(0); sec <= 60; sec++ {
		if err := s.Evaluate(ctx, t0.Add(time.Duration(sec)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// Mid-drift: the gauges carry the owner, and the episode is open in drift_events.
	want := `
# HELP cxlink_drift_episode_active 1 while a drift episode of the series is open (recorded in ClickHouse drift_events), by detector and direction (worse, better).
# TYPE cxlink_drift_episode_active gauge
cxlink_drift_episode_active{detector="mean",dimension="category",direction="worse",key="plan_correction",owner="product",survey="ces"} 1
cxlink_drift_episode_active{detector="negative_share",dimension="category",direction="worse",key="plan_correction",owner="product",survey="ces"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cxlink_drift_episode_active"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(s.metrics, "cxlink_drift_responses"); n != 6 {
		t.Errorf("%d cxlink_drift_responses series, want 6 (3 series × 2 sides)", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}

	// A restart in the middle of the episode goes on with it.
	s = newTestStage(t, f, nil)
	for sec := int64(61); sec <= 200; sec++ {
		if err := s.Evaluate(ctx, t0.Add(time.Duration(sec)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var means []records.DriftEvent
	detectors := map[string]bool{}
	for _, e := range f.sorted() {
		if e.Key != drifting.key {
			t.Errorf("episode of a series that did not drift (or has too few answers): %+v", e)
			continue
		}
		if e.Owner != "product" || e.EndedAt.IsZero() {
			t.Errorf("episode %+v: want owner product, ended", e)
		}
		// Once the drift is over, the baseline holds it and the clean recent window
		// looks better than the baseline for a while (with a 7 d baseline against 1 h,
		// a 30-minute drift moves the baseline by 1/336 of its size; here by half).
		if e.Direction == Better {
			if e.StartedAt.Before(t0.Add(80 * time.Second)) {
				t.Errorf("better episode during the drift: %+v", e)
			}
			continue
		}
		detectors[e.Detector] = true
		if e.Detector == Mean {
			means = append(means, e)
		}
	}
	// A sudden drop is the mean's and the negative share's news; the slow-drift average
	// must not hold it (its blocks are capped).
	if len(detectors) != 2 || !detectors[Mean] || !detectors[NegativeShare] {
		t.Errorf("worse episodes by detectors %v, want mean and negative_share", detectors)
	}
	if len(means) != 1 {
		t.Fatalf("want one mean episode, got %+v", means)
	}
	e := means[0]
	start, end := e.StartedAt.Sub(t0), e.EndedAt.Sub(t0)
	t.Logf("mean episode: %s to %s, peak z %.1f at %s (CES %.2f vs %.2f, n %d vs %d)", start, end,
		e.PeakStatistic, e.PeakAt.Sub(t0), e.PeakRecent, e.PeakBaseline, e.PeakRecentResponses, e.PeakBaselineResponses)
	// The drift starts at 50 s; the recent window (10 s) sees enough of it within seconds
	// and is clear of it 10 s after it ends (80 s); the baseline then holds the drift and
	// makes the clean window look better for a while: that is a separate, better episode.
	if start < 50*time.Second || start > 56*time.Second || end < 80*time.Second || end > 92*time.Second {
		t.Errorf("episode from %s to %s; want a start within 6 s of 50 s and an end soon after 80 s", start, end)
	}
	if e.PeakStatistic > -6 || e.PeakRecent > 4 || math.Abs(e.PeakBaseline-5) > 0.3 {
		t.Errorf("peak %+v: want a clear drop from about 5", e)
	}
}

func TestStageHysteresis(t *testing.T) {
	f := newFake()
	s := newTestStage(t, f, nil)
	ek := episodeKey{drifting, Mean}
	r := func(z float64) reading { return reading{z: z, ok: true, effect: z / 10, nRecent: 50, nBaseline: 500} }
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	s.step(ek, "product", at(0), r(-2.9), true) // below the threshold: nothing
	s.step(ek, "product", at(1), r(-5), false)  // too few answers: nothing
	tiny := r(-8)
	tiny.effect = -0.15
	s.step(ek, "product", at(1), tiny, true) // significant but too small to matter: nothing
	if len(s.open) != 0 {
		t.Fatal("episode opened below the threshold or with too few answers")
	}
	s.step(ek, "product", at(2), r(-3.2), true)
	s.step(ek, "product", at(3), r(-2.1), false) // between the thresholds: goes on
	s.step(ek, "product", at(4), r(-4), false)   // a new peak, whatever n
	s.step(ek, "product", at(5), r(-1.9), true)  // inside the clearing threshold: ends
	if err := s.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows := f.sorted()
	if len(rows) != 1 {
		t.Fatalf("rows %+v", rows)
	}
	e := rows[0]
	if !e.StartedAt.Equal(at(2)) || !e.EndedAt.Equal(at(5)) || !e.PeakAt.Equal(at(4)) || e.PeakStatistic != -4 || e.Version != lease.Version(at(5), 0) {
		t.Errorf("episode %+v", e)
	}
}

// A small shift that lasts: each 10 s block alone is about 2 standard errors low (z ≈ −2,
// no mean drift), but block after block the EWMA adds it up.
func TestStageSlowDrift(t *testing.T) {
	f := newFake()
	rng := rand.New(rand.NewPCG(3, 9))
	slow := seriesKey{"ces", "team", "bravo"}
	for s := t0.Unix() - 400; s < t0.Unix()+150; s++ {
		mean := 5.0
		if s >= t0.Unix() {
			mean = 4.75
		}
		for range 10 {
			score := mean + 1.2*rng.NormFloat64()
			f.add(slow, s, score, score <= 3)
		}
	}
	cfg := testConfig()
	cfg.Baseline = "300s"
	s, err := New(cfg, Options{Source: f, Sink: f, Windows: effort.MustParseWindows("10s,60s,300s"), Step: time.Second, MaxKeys: 10})
	if err != nil {
		t.Fatal(err)
	}
	for sec := int64(-100); sec <= 150; sec++ {
		if err := s.Evaluate(context.Background(), t0.Add(time.Duration(sec)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var found bool
	for _, e := range f.sorted() {
		if e.Detector == EWMA && e.Direction == Worse {
			found = true
			t.Logf("ewma episode from %s, peak z %.1f", e.StartedAt.Sub(t0), e.PeakStatistic)
			// Capped at 1.5 a block, it takes 5 blocks (50 s) at least.
			if e.StartedAt.Before(t0.Add(50 * time.Second)) {
				t.Errorf("slow drift found after %s: sooner than 5 capped blocks allow", e.StartedAt.Sub(t0))
			}
		}
		if e.StartedAt.Before(t0) {
			t.Errorf("episode before the shift: %+v", e)
		}
	}
	if !found {
		t.Errorf("no ewma episode for a lasting shift; episodes: %+v", f.sorted())
	}
}

// Pulses per one-minute period: team red's engagement and eNPS fall in periods 6–7 and
// come back; blue stays as it was; tiny has 3 respondents (below the anonymity threshold
// of 5) and falls hard; late has answered only from period 5 on (one baseline period at
// its drop, fewer than the 2 needed). A period is judged once closed (no grace here):
// during period k, period k−1.
func TestStagePulseDrift(t *testing.T) {
	f := newFake()
	period := time.Minute
	p0 := t0.Truncate(period)
	healthyEng := []float64{4, 4, 5, 3, 4, 4, 5, 4}
	lowEng := []float64{2, 2, 3, 1, 2, 3, 2, 2}
	healthyENPS := []float64{9, 10, 8, 9, 7, 10, 9, 8}
	lowENPS := []float64{3, 5, 7, 2, 6, 8, 4, 5}
	answer := func(team string, k int, eng, enps []float64) {
		for i := range eng {
			at := p0.Add(time.Duration(k)*period + time.Duration(i)*time.Second)
			f.pulses = append(f.pulses, pulseAnswer{team, Engagement, at, eng[i]}, pulseAnswer{team, ENPS, at, enps[i]})
		}
	}
	for k := range 12 {
		if k == 6 || k == 7 {
			answer("red", k, lowEng, lowENPS)
			answer("tiny", k, lowEng[:3], lowENPS[:3])
		} else {
			answer("red", k, healthyEng, healthyENPS)
			answer("tiny", k, healthyEng[:3], healthyENPS[:3])
		}
		answer("blue", k, healthyEng, healthyENPS)
		if k == 5 {
			answer("late", k, healthyEng, healthyENPS)
		} else if k == 6 {
			answer("late", k, lowEng, lowENPS)
		}
	}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Owners = MustParseOwners("team:red=red-lead,*=support")
	s, err := New(cfg, Options{Source: f, Sink: f, Windows: effort.MustParseWindows("10s,60s"), Step: time.Second, Registerer: reg, MaxKeys: 10,
		Pulses: pulses.Config{Period: pulses.MustParsePeriod("1m"), MinRespondents: 5, Lookback: pulses.MustParsePeriod("1d")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for k := range 12 {
		// Twice in each period: both judge the period before, the one closed.
		for _, sec := range []int{3, 30} {
			if err := s.Evaluate(ctx, p0.Add(time.Duration(k)*period+time.Duration(sec)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if k == 7 {
			want := `
# HELP cxlink_drift_episode_active 1 while a drift episode of the series is open (recorded in ClickHouse drift_events), by detector and direction (worse, better).
# TYPE cxlink_drift_episode_active gauge
cxlink_drift_episode_active{detector="mean",dimension="team",direction="worse",key="red",owner="red-lead",survey="engagement"} 1
cxlink_drift_episode_active{detector="mean",dimension="team",direction="worse",key="red",owner="red-lead",survey="enps"} 1
`
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cxlink_drift_episode_active"); err != nil {
				t.Error(err)
			}
			// Released teams with a baseline are exported; tiny and late are not.
			gathered, _ := reg.Gather()
			for _, mf := range gathered {
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "key" && (l.GetValue() == "tiny" || l.GetValue() == "late") {
							t.Errorf("%s exported for team %s", mf.GetName(), l.GetValue())
						}
					}
				}
			}
			if got := gaugeValue(t, reg, "cxlink_drift_score", map[string]string{"survey": "enps", "key": "red"}); got != -75 {
				t.Errorf("red's eNPS in period 6: %v, want -75 (no promoter, 6 detractors of 8)", got)
			}
		}
	}
	var worse []records.DriftEvent
	for _, e := range f.sorted() {
		if e.Key != "red" {
			t.Errorf("episode of a team that did not drift, or may not be judged: %+v", e)
			continue
		}
		if e.Direction == Worse {
			worse = append(worse, e)
		}
	}
	if len(worse) != 2 {
		t.Fatalf("want red's engagement and eNPS episodes, got %+v", worse)
	}
	for _, e := range worse {
		t.Logf("%s episode: periods %s to %s, peak z %.1f (%.2f vs %.2f, n %d vs %d)", e.Survey, e.StartedAt.Sub(p0), e.EndedAt.Sub(p0),
			e.PeakStatistic, e.PeakRecent, e.PeakBaseline, e.PeakRecentResponses, e.PeakBaselineResponses)
		// Judged from the moment period 6 closed; over once period 8 did.
		if e.StartedAt != p0.Add(7*period+3*time.Second) || e.EndedAt != p0.Add(9*period+3*time.Second) {
			t.Errorf("%s episode from %s to %s", e.Survey, e.StartedAt.Sub(p0), e.EndedAt.Sub(p0))
		}
		if e.Owner != "red-lead" || e.Dimension != "team" || e.Detector != Mean || e.RecentWindow != "1m" || e.BaselineWindow != "4x1m" ||
			e.PeakRecentResponses != 8 || e.PeakBaselineResponses != 32 || e.PeakStatistic > -3 {
			t.Errorf("episode %+v", e)
		}
	}
}

// gaugeValue is the value of the one series of a metric family whose labels include
// all of match.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, match map[string]string) float64 {
	t.Helper()
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var values []float64
	for _, mf := range gathered {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue series
				}
			}
			values = append(values, m.GetGauge().GetValue())
		}
	}
	if len(values) != 1 {
		t.Fatalf("%s%v: %d series", name, match, len(values))
	}
	return values[0]
}
