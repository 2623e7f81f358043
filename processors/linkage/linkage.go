// Package linkage correlates employee pulse results with the customer scores of the
// same teams, across teams: per period and pooled over a rolling span of periods, with
// the employee period t paired with the customer period t + lag. It is pure computation
// over per-team period aggregates (processors/analytics reads them and writes the
// results); stats.go holds the statistics.
package linkage

import (
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
	StatusTooFewPairs = "too_few_pairs" // pooled: too few pairs within periods for the test
)

// Scopes of a linkage row.
const (
	ScopePeriod = "period"
	ScopePooled = "pooled"
)

// Params of one computation.
type Params struct {
	Period     time.Duration
	PeriodName string // as configured, e.g. "7d"; written with every row
	// Last is the start of the last ended period: the latest customer period linked.
	Last time.Time
	// Span is the number of employee periods pooled; MaxLag the largest lag.
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
// period with pairs in [Last − lag − Span + 1, Last − lag], and one pooled row over those
// periods (period_start Last − lag).
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
				var groups [][2][]float64
				pooledTeams := map[string]bool{}
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
							pooledTeams[team] = true
						}
					}
					if len(x) == 0 {
						continue
					}
					groups = append(groups, [2][]float64{x, y})
					row := newRow(p, time.Unix(t, 0), ScopePeriod, 1, lag, em, cm, len(x), len(x), 1)
					if len(x) >= p.MinTeams {
						c, ok := Correlate(x, y)
						row.set(c, ok)
					}
					links = append(links, row.Linkage)
				}
				pairs := 0
				for _, g := range groups {
					pairs += len(g[0])
				}
				row := newRow(p, time.Unix(last-int64(lag)*step, 0), ScopePooled, p.Span, lag, em, cm, len(pooledTeams), pairs, 0)
				if len(pooledTeams) >= p.MinTeams {
					c, used, ok := Pooled(groups)
					row.Periods = uint16(used)
					row.set(c, ok)
				}
				links = append(links, row.Linkage)
			}
		}
	}
	return teams, links
}

type row struct{ records.Linkage }

func newRow(p Params, start time.Time, scope string, span, lag int, em, cm string, teams, pairs, periods int) row {
	return row{records.Linkage{
		Period: p.PeriodName, PeriodStart: start.UTC(), Scope: scope, SpanPeriods: uint16(span), Lag: uint8(lag),
		EmployeeMetric: em, CustomerMetric: cm, Teams: uint32(teams), Pairs: uint32(pairs), Periods: uint16(periods),
		Status: StatusTooFewTeams,
	}}
}

// set records a correlation computed over enough teams.
func (r *row) set(c Correlation, ok bool) {
	if !ok {
		r.Status = StatusNoVariance
		if c.N < 4 || c.DF < 2 {
			r.Status = StatusTooFewPairs
		}
		return
	}
	r.Status = StatusOK
	r.Pearson, r.Spearman, r.CILow, r.CIHigh, r.P = &c.Pearson, &c.Spearman, &c.CILow, &c.CIHigh, &c.P
}
