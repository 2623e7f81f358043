package analytics

import (
	"math"
	"time"

	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
)

// The disclosure step: team figures move from the private database into team_periods
// by the policy of processors/pulses, and everything else the stage computes reads
// them from there.

type teamPeriod struct {
	team  string
	start int64 // Unix seconds
}

// published is team_periods as read, keyed by team and period; publish changes it.
type published map[teamPeriod]*records.TeamPeriod

func newPublished(rows []records.TeamPeriod) published {
	p := published{}
	for i := range rows {
		r := rows[i]
		p[teamPeriod{r.Team, r.PeriodStart.Unix()}] = &r
	}
	return p
}

// publish applies the policy to the groups read from the private database: a group's
// figures replace the published ones only when the policy allows it, and only once the
// group settled (no row stored after settledBefore: an import still under way is not
// published half-way, which would hold its remaining answers back until k more came).
// It returns how many groups it published.
func (p published) publish(policy pulses.Config, groups []records.EmployeeAggregate, settledBefore time.Time) int {
	n := 0
	for _, g := range groups {
		if g.LastStored.After(settledBefore) {
			continue // read again at the next run: since reaches back past it
		}
		k := teamPeriod{g.Team, g.PeriodStart.Unix()}
		row := p[k]
		if row == nil {
			row = &records.TeamPeriod{Period: policy.Period.Name, PeriodStart: g.PeriodStart.UTC(), Team: g.Team}
		}
		resp := float64(g.Respondents)
		switch g.Question {
		case "engagement":
			if !policy.Publish(g.Respondents, uint64(row.EngagementRespondents)) {
				continue
			}
			mean := g.Sum / resp
			row.EngagementRespondents, row.Engagement, row.EngagementSD = uint32(g.Respondents), &mean, nil
			if g.Respondents > 1 {
				sd := math.Sqrt(max(0, (g.SquareSum-g.Sum*g.Sum/resp)/(resp-1)))
				row.EngagementSD = &sd
			}
		case "enps":
			if !policy.Publish(g.Respondents, uint64(row.ENPSRespondents)) {
				continue
			}
			pro, det := 100*float64(g.Promoters)/resp, 100*float64(g.Detractors)/resp
			enps := pro - det
			row.ENPSRespondents, row.ENPS, row.ENPSPromoters, row.ENPSDetractors = uint32(g.Respondents), &enps, &pro, &det
		default:
			continue
		}
		p[k] = row
		n++
	}
	return n
}

// aggregates returns the published figures of the periods in [from, to) as the
// aggregates they stand for, for the linkage: nothing there is fresher than published.
func (p published) aggregates(from, to time.Time) []records.EmployeeAggregate {
	var out []records.EmployeeAggregate
	for k, r := range p {
		if k.start < from.Unix() || k.start >= to.Unix() {
			continue
		}
		out = append(out, r.Aggregates()...)
	}
	return out
}

// withCustomers sets the customer figures of a team-period from its aggregates.
func withCustomers(r records.TeamPeriod, cust []records.CustomerAggregate) records.TeamPeriod {
	r.CESResponses, r.CES, r.PctDifficult, r.CSATResponses, r.CSAT = 0, nil, nil, 0, nil
	for _, a := range cust {
		if a.Responses == 0 {
			continue
		}
		n := float64(a.Responses)
		switch a.Survey {
		case "ces":
			mean, difficult := a.Sum/n, 100*float64(a.Negative)/n
			r.CES, r.PctDifficult, r.CESResponses = &mean, &difficult, uint32(a.Responses)
		case "csat":
			satisfied := 100 * float64(a.Positive) / n
			r.CSAT, r.CSATResponses = &satisfied, uint32(a.Responses)
		}
	}
	return r
}

// sameRow reports whether two team_periods rows hold the same figures.
func sameRow(a, b records.TeamPeriod) bool {
	eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Period == b.Period && a.PeriodStart.Equal(b.PeriodStart) && a.Team == b.Team &&
		a.EngagementRespondents == b.EngagementRespondents && eq(a.Engagement, b.Engagement) && eq(a.EngagementSD, b.EngagementSD) &&
		a.ENPSRespondents == b.ENPSRespondents && eq(a.ENPS, b.ENPS) && eq(a.ENPSPromoters, b.ENPSPromoters) &&
		eq(a.ENPSDetractors, b.ENPSDetractors) && a.CESResponses == b.CESResponses && eq(a.CES, b.CES) &&
		eq(a.PctDifficult, b.PctDifficult) && a.CSATResponses == b.CSATResponses && eq(a.CSAT, b.CSAT)
}
