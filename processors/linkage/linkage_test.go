package linkage

import (
	"fmt"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

var week0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const week = 7 * 24 * time.Hour

func params() Params {
	return Params{Period: week, PeriodName: "7d", Last: week0.Add(3 * week), Span: 4, MaxLag: 1, MinTeams: 6, MinResponses: 10}
}

// team adds one team-period with an engagement mean and a CES mean.
func team(emp *[]records.EmployeeAggregate, cust *[]records.CustomerAggregate, name string, empWeek, custWeek int, engagement, ces float64) {
	if empWeek >= 0 {
		*emp = append(*emp, records.EmployeeAggregate{Team: name, Question: "engagement", PeriodStart: week0.Add(time.Duration(empWeek) * week), Respondents: 5, Sum: 5 * engagement})
	}
	if custWeek >= 0 {
		*cust = append(*cust, records.CustomerAggregate{Team: name, Survey: "ces", PeriodStart: week0.Add(time.Duration(custWeek) * week), Responses: 10, Sum: 10 * ces, Negative: 2})
	}
}

func find(links []records.Linkage, scope string, lag uint8, em, cm string, start time.Time) *records.Linkage {
	for i := range links {
		l := &links[i]
		if l.Scope == scope && l.Lag == lag && l.EmployeeMetric == em && l.CustomerMetric == cm && l.PeriodStart.Equal(start) {
			return l
		}
	}
	return nil
}

// The tuna data as nine teams' engagement (x/20) in week 2 and CES (y) in week 3: the
// lag-1 row of week 2 reproduces R's cor.test, and lag 0 has no pairs.
func TestComputeLagOneReproducesReference(t *testing.T) {
	p := readPairs(t, "testdata/hollander_wolfe_tuna.csv", false)[""]
	var emp []records.EmployeeAggregate
	var cust []records.CustomerAggregate
	for i := range p[0] {
		team(&emp, &cust, fmt.Sprintf("t%d", i), 2, 3, p[0][i]/20, p[1][i])
	}
	// Below the customer minimum: ignored. A team with customers only: ignored.
	cust = append(cust, records.CustomerAggregate{Team: "t0", Survey: "csat", PeriodStart: week0.Add(3 * week), Responses: 3, Sum: 12, Positive: 3})
	team(&emp, &cust, "nopulse", -1, 3, 0, 1)
	teams, links := Compute(params(), emp, cust)
	if len(teams) != 9 || teams[0].Team != "t0" || round(*teams[0].Engagement, 12) != "2.220000000000" || teams[0].CES != nil {
		t.Fatalf("team periods: %d, first %+v", len(teams), teams[0])
	}
	l := find(links, ScopePeriod, 1, "engagement", "ces", week0.Add(2*week))
	if l == nil || l.Status != StatusOK || l.Teams != 9 {
		t.Fatalf("lag 1 row: %+v", l)
	}
	for _, c := range [][2]string{
		{round(*l.Pearson, 7), "0.5711816"}, {round(*l.P, 4), "0.1082"}, {round(*l.CILow, 7), "-0.1497426"},
		{round(*l.CIHigh, 7), "0.8955795"}, {round(*l.Spearman, 7), "0.6000000"},
	} {
		if c[0] != c[1] {
			t.Errorf("got %s, published %s", c[0], c[1])
		}
	}
	if *l.DF != 7 || l.Reading != ReadingTooUncertain || round(*l.MinDetectable, 2) != "0.79" {
		t.Errorf("df %d, reading %s, detectable %v", *l.DF, l.Reading, *l.MinDetectable)
	}
	// The span as of week 2 holds this single period: between teams it is the same
	// correlation; within teams there is none, as no team was seen twice.
	between := find(links, ScopeBetweenTeams, 1, "engagement", "ces", week0.Add(2*week))
	if between == nil || between.Status != StatusOK || round(*between.Pearson, 12) != round(*l.Pearson, 12) || between.Periods != 1 || between.Pairs != 9 || *between.DF != 7 {
		t.Fatalf("between teams: %+v", between)
	}
	within := find(links, ScopeWithinTeams, 1, "engagement", "ces", week0.Add(2*week))
	if within == nil || within.Status != StatusTooFewPairs || within.Pearson != nil || within.DF != nil || within.Teams != 0 || within.Reading != ReadingNoResult {
		t.Fatalf("within teams: %+v", within)
	}
	if l := find(links, ScopePeriod, 0, "engagement", "ces", week0.Add(2*week)); l != nil {
		t.Fatalf("lag 0 in week 2 has no customer data but got %+v", l)
	}
	// csat: one team with 3 responses, below the minimum of 10: no pairs at all.
	for _, scope := range []string{ScopeBetweenTeams, ScopeWithinTeams} {
		if l := find(links, scope, 1, "engagement", "csat", week0.Add(2*week)); l == nil || l.Pairs != 0 || l.Status != StatusTooFewTeams || l.Pearson != nil {
			t.Fatalf("csat %s: %+v", scope, l)
		}
	}
}

func TestComputeSaysWhenTeamsAreTooFew(t *testing.T) {
	var emp []records.EmployeeAggregate
	var cust []records.CustomerAggregate
	for i, v := range []float64{3, 3.5, 4, 4.2, 2.9} {
		team(&emp, &cust, fmt.Sprintf("t%d", i), 3, 3, v, v+1)
	}
	_, links := Compute(params(), emp, cust)
	l := find(links, ScopePeriod, 0, "engagement", "ces", week0.Add(3*week))
	if l == nil || l.Status != StatusTooFewTeams || l.Teams != 5 || l.Pearson != nil || l.P != nil || l.CILow != nil || l.DF != nil || l.MinDetectable != nil {
		t.Fatalf("got %+v", l)
	}
	for _, scope := range []string{ScopeBetweenTeams, ScopeWithinTeams} {
		if l := find(links, scope, 0, "engagement", "ces", week0.Add(3*week)); l == nil || l.Status != StatusTooFewTeams || l.Teams != 5 || l.Reading != ReadingNoResult {
			t.Fatalf("%s: %+v", scope, l)
		}
	}
}

// Six teams over four weeks whose CES follows their engagement of the week before,
// plus a shift common to all teams each week: the within-team lag-1 correlation finds
// it and lag 0 does not.
func TestComputeWithinTeamsFindsTheLag(t *testing.T) {
	eng := [][]float64{ // team × week
		{3.0, 3.8, 2.9, 3.5}, {4.1, 3.2, 3.6, 2.8}, {2.5, 2.7, 4.0, 3.9},
		{3.6, 4.4, 3.1, 3.0}, {3.3, 2.6, 2.8, 4.3}, {4.0, 3.1, 3.9, 3.4},
	}
	shift := []float64{0, 1.5, -1, 0.5}
	var emp []records.EmployeeAggregate
	var cust []records.CustomerAggregate
	for i, e := range eng {
		for w := 0; w < 4; w++ {
			ces := 4 + shift[w]
			if w > 0 {
				ces += 0.8 * (e[w-1] - 3.5)
			}
			team(&emp, &cust, fmt.Sprintf("t%d", i), w, w, e[w], ces)
		}
	}
	_, links := Compute(params(), emp, cust)
	l1 := find(links, ScopeWithinTeams, 1, "engagement", "ces", week0.Add(2*week))
	// 18 pairs of 6 teams in 3 periods: 18 − 6 − 2 − 1 = 9 degrees of freedom.
	if l1 == nil || l1.Status != StatusOK || l1.Pairs != 18 || l1.Periods != 3 || l1.Teams != 6 || *l1.DF != 9 || *l1.Pearson < 0.999 || l1.Spearman != nil {
		t.Fatalf("lag 1 within teams: %+v", l1)
	}
	l0 := find(links, ScopeWithinTeams, 0, "engagement", "ces", week0.Add(3*week))
	if l0 == nil || l0.Status != StatusOK || *l0.Pearson > 0.5 {
		t.Fatalf("lag 0 within teams: %+v", l0)
	}
	t.Logf("lag 1 within teams r = %.3f over %d pairs; lag 0 r = %.3f", *l1.Pearson, l1.Pairs, *l0.Pearson)
}

// The constructed data set of testdata/opposite_signs.csv, six teams in four weeks:
// the more engaged teams have the harder customers (between teams: negative), while a
// team's customers find things easier in the weeks its engagement is up (within teams:
// positive). Each result keeps its own n: 6 teams against 24 − 6 − 3 − 1 = 14 degrees
// of freedom.
func TestComputeBetweenAndWithinTeamsDifferInSign(t *testing.T) {
	var emp []records.EmployeeAggregate
	var cust []records.CustomerAggregate
	for _, o := range readOppositeSigns(t) {
		team(&emp, &cust, o.Team, int(o.Period), int(o.Period), o.X, o.Y)
	}
	_, links := Compute(params(), emp, cust)
	end := week0.Add(3 * week)
	between := find(links, ScopeBetweenTeams, 0, "engagement", "ces", end)
	within := find(links, ScopeWithinTeams, 0, "engagement", "ces", end)
	if between == nil || between.Status != StatusOK || between.Teams != 6 || between.Pairs != 24 || *between.DF != 4 || *between.CIHigh >= 0 {
		t.Fatalf("between teams: %+v", between)
	}
	if within == nil || within.Status != StatusOK || within.Teams != 6 || within.Pairs != 24 || within.Periods != 4 || *within.DF != 14 || *within.CILow <= 0 {
		t.Fatalf("within teams: %+v", within)
	}
	t.Logf("between teams r = %+.3f [%+.3f, %+.3f], df %d, detectable %.2f, %s", *between.Pearson, *between.CILow, *between.CIHigh, *between.DF, *between.MinDetectable, between.Reading)
	t.Logf("within teams  r = %+.3f [%+.3f, %+.3f], df %d, detectable %.2f, %s", *within.Pearson, *within.CILow, *within.CIHigh, *within.DF, *within.MinDetectable, within.Reading)
}

func TestReadings(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		l    records.Linkage
		want string
	}{
		{records.Linkage{Status: StatusTooFewTeams}, ReadingNoResult},
		{records.Linkage{Status: StatusOK, Pearson: f(0.5), CILow: f(-0.5), CIHigh: f(0.9), MinDetectable: f(0.92)}, ReadingTooUncertain},
		{records.Linkage{Status: StatusOK, Pearson: f(-0.85), CILow: f(-0.98), CIHigh: f(-0.1), MinDetectable: f(0.92)}, ReadingUnderpowered},
		{records.Linkage{Status: StatusOK, Pearson: f(0.4), CILow: f(0.2), CIHigh: f(0.6), MinDetectable: f(0.3)}, ReadingSupported},
	} {
		if got := Read(c.l); got != c.want {
			t.Errorf("%+v: %s, want %s", c.l, got, c.want)
		}
	}
}
