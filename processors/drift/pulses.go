package drift

import (
	"context"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// Employee pulse series: a team's engagement (1–5) and eNPS, judged once per rollup tick
// like the customer series but on pulse periods (CXLINK_PULSE_PERIOD): the team's
// latest published period against the periods before it. Only published figures
// (team_periods, closed periods, processors/pulses) are read: the detector's metrics
// and episodes can tell nothing that team_periods does not.
const (
	Engagement = "engagement"
	ENPS       = "enps"
)

// spans names the windows a series' episodes compare, as drift_events records them:
// for customer scores the recent and baseline windows ("1h", "7d"); for pulses the
// period and the periods before it ("7d", "4x7d").
func (s *Stage) spans(survey string) (recent, baseline string) {
	if survey == Engagement || survey == ENPS {
		return s.opts.Pulses.Period.Name, fmt.Sprintf("%dx%s", s.cfg.PulseBaselinePeriods, s.opts.Pulses.Period.Name)
	}
	return s.recent.Name, s.base.Name
}

// pulseSeries reads the published pulse groups before tick t and returns a reading of
// the mean detector for every team and question that can be judged.
//
// The judged period is the latest closed one (its end plus CXLINK_PULSE_GRACE before t)
// if the team's figures for it are published (at least
// CXLINK_ANONYMITY_MIN_RESPONDENTS employees), else the one before: the latest pulse the
// team has. Its baseline is the CXLINK_DRIFT_PULSE_BASELINE_PERIODS periods before it,
// of which at least CXLINK_DRIFT_PULSE_MIN_BASELINE_PERIODS must be published; their
// figures are pooled. A group is judged as it was published: an answer held back by the
// disclosure policy moves no reading, so none is exported before the policy lets it out.
//
// The z is Student's t with the pooled variance read through Student's t distribution
// (pooledTailZ): a team's period has a handful of answers. The same employees answer
// every period, so the two sides are not independent samples; with stable employee
// moods that makes the test conservative.
func (s *Stage) pulseSeries(ctx context.Context, t time.Time) (map[seriesKey]reading, error) {
	p := s.opts.Pulses.PeriodLength()
	closed := s.opts.Pulses.ClosedBefore(t)
	current := closed.Add(-p)
	k := s.cfg.PulseBaselinePeriods
	from := current.Add(-time.Duration(k+1) * p)
	rows, err := s.opts.Source.TeamPeriods(ctx, s.opts.Pulses.Period.Name, from, closed)
	if err != nil {
		return nil, err
	}
	var groups []records.EmployeeAggregate
	for _, r := range rows {
		groups = append(groups, r.Aggregates()...)
	}
	type teamQuestion struct{ team, question string }
	byPeriod := map[teamQuestion]map[time.Time]records.EmployeeAggregate{}
	for _, g := range groups {
		if g.Question != Engagement && g.Question != ENPS {
			continue
		}
		tq := teamQuestion{g.Team, g.Question}
		if byPeriod[tq] == nil {
			byPeriod[tq] = map[time.Time]records.EmployeeAggregate{}
		}
		byPeriod[tq][g.PeriodStart] = g
	}
	out := map[seriesKey]reading{}
	for tq, periods := range byPeriod {
		latest, ok := periods[current]
		if !ok {
			if latest, ok = periods[current.Add(-p)]; !ok {
				continue
			}
		}
		var base sample
		published := 0
		for i := 1; i <= k; i++ {
			if g, ok := periods[latest.PeriodStart.Add(-time.Duration(i)*p)]; ok {
				base = base.add(pulseSample(g))
				published++
			}
		}
		if published < s.cfg.PulseMinBaselinePeriods {
			continue
		}
		recent := pulseSample(latest)
		z, ok := pooledTailZ(recent, base)
		if !ok {
			continue
		}
		scale := 1.0
		if tq.question == ENPS {
			scale = 100 // eNPS points, −100 to 100
		}
		out[seriesKey{tq.question, "team", tq.team}] = reading{z: z, ok: true, effect: cohenD(recent, base),
			recent: scale * recent.mean(), baseline: scale * base.mean(),
			nRecent: uint64(recent.n), nBaseline: uint64(base.n)}
	}
	return out, nil
}

// pulseSample is the answers of one published group as a sample: engagement answers
// themselves; for eNPS each answer counts +1 (promoter, 9–10), 0 (passive) or −1
// (detractor, 0–6), so that the mean is the eNPS (as a fraction) and the variance is
// that of the answers.
func pulseSample(g records.EmployeeAggregate) sample {
	n := float64(g.Respondents)
	if g.Question == ENPS {
		p, d := float64(g.Promoters), float64(g.Detractors)
		return sample{n: n, sum: p - d, sq: p + d, negative: d}
	}
	return sample{n: n, sum: g.Sum, sq: g.SquareSum}
}

func (a sample) add(b sample) sample {
	return sample{n: a.n + b.n, sum: a.sum + b.sum, sq: a.sq + b.sq, negative: a.negative + b.negative}
}
