// Package linkage correlates employee pulse results with the customer scores of the
// same teams, the employee period t paired with the customer period t + lag: across the
// teams of each period, and over a rolling span of periods both between teams (the
// teams' means) and within teams (each team's moves over time). It is pure computation
// over per-team period aggregates (processors/analytics reads them and writes the
// results); stats.go and repeated.go hold the statistics.
package linkage

import (
	"math"
	"sort"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// The metrics linked, in report order.
var (
	EmployeeMetrics = []string{"engagement", "enps"}
	CustomerMetrics = []string{"ces", "pct_difficult", "csat"}
)

// Statuses of a linkage row.
const (
	StatusOK          = "ok"
	StatusTooFewTeams = "too_few_teams" // fewer teams than Params.MinTeams: no coefficient
	StatusNoVariance  = "no_variance"   // every team had the same value: no coefficient
	StatusTooFewPairs = "too_few_pairs" // within_teams: too few teams seen in two periods or more, or under 2 degrees of freedom
)

// Scopes of a linkage row. Rows of scope "pooled" (team-periods pooled as if each
// were another team) were written before between_teams and within_teams replaced them;
// readers ignore them.
const (
	// ScopePeriod: the teams of one employee period t, one pair per team.
	ScopePeriod = "period"
	// ScopeBetweenTeams: over the span, one pair per team, its means (BetweenTeams).
	ScopeBetweenTeams = "between_teams"
	// ScopeWithinTeams: over the span, every team-period, as moves away from the
	// team's own level and the period's common level (WithinTeams).
	ScopeWithinTeams = "within_teams"
)

// Params of one computation.
type Params struct {
	Period     time.Duration
	PeriodName string // as configured, e.g. "7d"; written with every row
	// Last is the start of the last ended period: the latest customer period linked.
	Last time.Time
	// Span is the number of employee periods of the between-team and within-team
	// results; MaxLag the largest lag.
	Span, MaxLag int
	// MinTeams is the fewest teams a correlation is reported for.
	MinTeams int
	// MinResponses is the fewest customer responses (of the survey a customer metric
	// comes from) a team-period needs to take part.
	MinResponses int
}

// From is the start of the first period Compute reads: aggregates are needed from here
// to Last + Period.
func (p Params) From() time.Time { return p.Last.Add(-time.Duration(p.Span+p.MaxLag-1) * p.Period) }

type teamPeriod struct {
	team  string
	start int64 // Unix seconds
}

type figures struct {
	emp  map[string]float64 // employee metric → value
	cust map[string]float64 // customer metric → value (only with enough responses)
	row  records.TeamPeriod
}

// Compute returns the team_periods rows of the teams with employee aggregates in
// [From, Last] and the linkage rows: per lag and metric pair, one row per employee
// period with pairs in [Last − lag − Span + 1, Last − lag], and a between-team and a
// within-team row over those periods (period_start Last − lag).
func Compute(p Params, emp []records.EmployeeAggregate, cust []records.CustomerAggregate) ([]records.TeamPeriod, []records.Linkage) {
	byKey := map[teamPeriod]*figures{}
	get := func(team string, start time.Time) *figures {
		k := teamPeriod{team, start.Unix()}
		f := byKey[k]
		if f == nil {
			f = &figures{emp: map[string]float64{}, cust: map[string]float64{},
				row: records.TeamPeriod{Period: p.PeriodName, PeriodStart: start.UTC(), Team: team}}
			byKey[k] = f
		}
		return f
	}
	for _, a := range emp {
		if a.Respondents == 0 {
			continue
		}
		f := get(a.Team, a.PeriodStart)
		n := float64(a.Respondents)
		switch a.Question {
		case "engagement":
			v := a.Sum / n
			f.emp["engagement"], f.row.Engagement, f.row.EngagementRespondents = v, &v, uint32(a.Respondents)
		case "enps":
			v := 100 * (float64(a.Promoters) - float64(a.Detractors)) / n
			f.emp["enps"], f.row.ENPS, f.row.ENPSRespondents = v, &v, uint32(a.Respondents)
		}
	}
	for _, a := range cust {
		f := byKey[teamPeriod{a.Team, a.PeriodStart.Unix()}]
		if f == nil {
			// Customer figures of a team-period without anonymous employee figures go
			// nowhere: neither team_periods nor a pair.
			f = &figures{emp: map[string]float64{}, cust: map[string]float64{}}
			byKey[teamPeriod{a.Team, a.PeriodStart.Unix()}] = f
		}
		if a.Responses == 0 {
			continue
		}
		n := float64(a.Responses)
		enough := a.Responses >= uint64(p.MinResponses)
		switch a.Survey {
		case "ces":
			mean, difficult := a.Sum/n, 100*float64(a.Negative)/n
			f.row.CES, f.row.PctDifficult, f.row.CESResponses = &mean, &difficult, uint32(a.Responses)
			if enough {
				f.cust["ces"], f.cust["pct_difficult"] = mean, difficult
			}
		case "csat":
			satisfied := 100 * float64(a.Positive) / n
			f.row.CSAT, f.row.CSATResponses = &satisfied, uint32(a.Responses)
			if enough {
				f.cust["csat"] = satisfied
			}
		}
	}

	var teams []records.TeamPeriod
	from, last := p.From().Unix(), p.Last.Unix()
	for k, f := range byKey {
		if len(f.emp) > 0 && k.start >= from && k.start <= last {
			teams = append(teams, f.row)
		}
	}
	sort.Slice(teams, func(i, j int) bool {
		if !teams[i].PeriodStart.Equal(teams[j].PeriodStart) {
			return teams[i].PeriodStart.Before(teams[j].PeriodStart)
		}
		return teams[i].Team < teams[j].Team
	})

	var names []string // all teams, sorted, so that pairs come in a fixed order
	seen := map[string]bool{}
	for k := range byKey {
		if !seen[k.team] {
			seen[k.team] = true
			names = append(names, k.team)
		}
	}
	sort.Strings(names)

	var links []records.Linkage
	step := int64(p.Period / time.Second)
	for lag := 0; lag <= p.MaxLag; lag++ {
		for _, em := range EmployeeMetrics {
			for _, cm := range CustomerMetrics {
				var obs []Observation
				for i := p.Span - 1; i >= 0; i-- {
					t := last - int64(lag+i)*step
					var x, y []float64
					for _, team := range names {
						e, eok := byKey[teamPeriod{team, t}]
						c, cok := byKey[teamPeriod{team, t + int64(lag)*step}]
						if !eok || !cok {
							continue
						}
						ev, eok := e.emp[em]
						cv, cok := c.cust[cm]
						if eok && cok {
							x, y = append(x, ev), append(y, cv)
							obs = append(obs, Observation{Team: team, Period: t, X: ev, Y: cv})
						}
					}
					if len(x) == 0 {
						continue
					}
					row := newRow(p, time.Unix(t, 0), ScopePeriod, 1, lag, em, cm, len(x), len(x), 1)
					if len(x) >= p.MinTeams {
						c, ok := Correlate(x, y)
						row.set(c, ok)
					}
					links = append(links, row.Linkage)
				}
				links = append(links, spanRows(p, time.Unix(last-int64(lag)*step, 0), lag, em, cm, obs)...)
			}
		}
	}
	return teams, links
}

// spanRows are the between-team and the within-team rows of the observations of one
// lag and metric pair over the span, as of the employee period end.
func spanRows(p Params, end time.Time, lag int, em, cm string, obs []Observation) []records.Linkage {
	teams, periods := map[string]bool{}, map[int64]bool{}
	for _, o := range obs {
		teams[o.Team], periods[o.Period] = true, true
	}
	between := newRow(p, end, ScopeBetweenTeams, p.Span, lag, em, cm, len(teams), len(obs), len(periods))
	within := between
	within.Scope = ScopeWithinTeams
	if len(teams) >= p.MinTeams {
		c, _, ok := BetweenTeams(obs)
		between.set(c, ok)

		c, used, usedPeriods, ok := WithinTeams(obs)
		within.Teams, within.Periods = uint32(used), uint16(usedPeriods)
		within.Pairs = uint32(c.N)
		if used < p.MinTeams {
			// Enough teams, but too few of them seen in two periods or more: a team
			// seen once cannot show how it changes.
			within.Status = StatusTooFewPairs
		} else {
			within.set(c, ok)
		}
	}
	return []records.Linkage{between.Linkage, within.Linkage}
}

type row struct{ records.Linkage }

func newRow(p Params, start time.Time, scope string, span, lag int, em, cm string, teams, pairs, periods int) row {
	return row{records.Linkage{
		Period: p.PeriodName, PeriodStart: start.UTC(), Scope: scope, SpanPeriods: uint16(span), Lag: uint8(lag),
		EmployeeMetric: em, CustomerMetric: cm, Teams: uint32(teams), Pairs: uint32(pairs), Periods: uint16(periods),
		Status: StatusTooFewTeams, Reading: ReadingNoResult,
	}}
}

// set records a correlation computed over enough teams, and how to read it.
func (r *row) set(c Correlation, ok bool) {
	defer func() { r.Reading = Read(r.Linkage) }()
	if !ok {
		r.Status = StatusNoVariance
		if c.N < 4 || c.DF < 2 {
			r.Status = StatusTooFewPairs
		}
		return
	}
	r.Status = StatusOK
	df := uint32(c.DF)
	r.Pearson, r.CILow, r.CIHigh, r.P, r.DF, r.MinDetectable = &c.Pearson, &c.CILow, &c.CIHigh, &c.P, &df, &c.MinDetectable
	if !math.IsNaN(c.Spearman) {
		r.Spearman = &c.Spearman
	}
}

// Readings of a linkage row: whether it is solid enough to act on.
const (
	ReadingNoResult = "no_result" // status is not ok: no coefficient
	// ReadingTooUncertain: the 95% interval includes 0, so the data cannot tell a link
	// from none; the row's min_detectable_r says how strong a link would have had to be
	// to be found reliably.
	ReadingTooUncertain = "too_uncertain"
	// ReadingUnderpowered: the interval excludes 0, but |r| is below the smallest
	// correlation this n detects with 80% power: a link this weak is missed more often
	// than found at this n, so the one found has likely been overstated. Its direction
	// is a lead to confirm with more teams or periods, its size is not.
	ReadingUnderpowered = "underpowered"
	// ReadingSupported: the interval excludes 0 and this n detects a link of this size
	// reliably. The size to act on is the interval, not r.
	ReadingSupported = "supported"
)

// Read returns the reading of a linkage row from its status, r, interval and smallest
// detectable correlation.
func Read(l records.Linkage) string {
	switch {
	case l.Status != StatusOK || l.Pearson == nil || l.CILow == nil || l.CIHigh == nil:
		return ReadingNoResult
	case *l.CILow <= 0 && *l.CIHigh >= 0:
		return ReadingTooUncertain
	case l.MinDetectable != nil && math.Abs(*l.Pearson) < *l.MinDetectable:
		return ReadingUnderpowered
	}
	return ReadingSupported
}
