package linkage

import (
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// Observation is one team's pair in one period: the team's employee value x in period
// t and its customers' value y in period t + lag. Compute gives a team one observation
// per period; WithinTeams also takes several (rmcorr's data has no periods: all of its
// observations share one).
type Observation struct {
	Team   string
	Period int64
	X, Y   float64
}

// The same teams seen again in several periods are not independent observations, so
// pairs pooled over periods answer two different questions, each with its own n
// (Bland & Altman 1995; Bakdash & Marusich 2017): BetweenTeams and WithinTeams.

// BetweenTeams correlates the teams' own means: each team's mean x and mean y over its
// observations make one pair, so n is the number of teams. It answers "are the teams
// with higher x the teams with higher y?". Every team weighs the same, however many
// periods it was seen in. ok is false when the means cannot give a correlation (fewer
// than 4 teams, or no variance).
func BetweenTeams(obs []Observation) (c Correlation, teams int, ok bool) {
	idx := map[string]int{}
	var sx, sy, n []float64
	for _, o := range obs {
		i, seen := idx[o.Team]
		if !seen {
			i = len(n)
			idx[o.Team] = i
			sx, sy, n = append(sx, 0), append(sy, 0), append(n, 0)
		}
		sx[i], sy[i], n[i] = sx[i]+o.X, sy[i]+o.Y, n[i]+1
	}
	for i := range n {
		sx[i], sy[i] = sx[i]/n[i], sy[i]/n[i]
	}
	c, ok = Correlate(sx, sy)
	return c, len(n), ok
}

// WithinTeams is the repeated-measures correlation (rmcorr) with period effects
// removed as well: x and y are each replaced by their residuals from the least-squares
// fit of a team effect plus a period effect, x = a(team) + b(period) + e, and the
// residuals are correlated. What is left is how a team's values move away from its
// own level beyond what moved every team in that period, so it answers "when a team's
// x moves, does its y move with it?", and a company-wide event or trend does not pass
// for a link. With all observations in one period it is rmcorr exactly: each team's
// values centred on the team's own means.
//
// The test and the interval are those of a partial correlation given the effects: with
// N pairs of T teams in P periods (linked through teams seen in several of them),
// DF = N − T − (P − 1) − 1, which is rmcorr's N − T − 1 for one period.
//
// Observations that carry nothing about change are left out first, repeatedly: those
// of a team seen only once, and of a period with a single team. Their effect fits them
// exactly, so leaving them out changes neither r nor DF, only the teams and periods
// counted. teams and periods are those used; ok is false when no correlation can be
// computed (fewer than 4 pairs, under 2 degrees of freedom, or no variance left).
func WithinTeams(obs []Observation) (c Correlation, teams, periods int, ok bool) {
	obs = informative(obs)
	teamIdx, periodIdx := map[string]int{}, map[int64]int{}
	team, period := make([]int, len(obs)), make([]int, len(obs))
	x, y := make([]float64, len(obs)), make([]float64, len(obs))
	for k, o := range obs {
		i, seen := teamIdx[o.Team]
		if !seen {
			i = len(teamIdx)
			teamIdx[o.Team] = i
		}
		p, seen := periodIdx[o.Period]
		if !seen {
			p = len(periodIdx)
			periodIdx[o.Period] = p
		}
		team[k], period[k], x[k], y[k] = i, p, o.X, o.Y
	}
	teams, periods = len(teamIdx), len(periodIdx)
	if len(obs) == 0 {
		return Correlation{}, 0, 0, false
	}
	res, rank := twoWayResiduals(team, period, teams, periods, x, y)
	df := len(obs) - teams - rank - 1
	if noVariance(res[0], x) || noVariance(res[1], y) {
		return Correlation{N: len(obs), DF: df}, teams, periods, false
	}
	c, ok = correlate(res[0], res[1], df)
	c.Spearman = math.NaN()
	return c, teams, periods, ok
}

// informative drops, until none is left, the observations of teams seen once and of
// periods with a single team.
func informative(obs []Observation) []Observation {
	for {
		perTeam, perPeriod := map[string]int{}, map[int64]int{}
		for _, o := range obs {
			perTeam[o.Team]++
			perPeriod[o.Period]++
		}
		var kept []Observation
		for _, o := range obs {
			if perTeam[o.Team] >= 2 && perPeriod[o.Period] >= 2 {
				kept = append(kept, o)
			}
		}
		if len(kept) == len(obs) {
			return kept
		}
		obs = kept
	}
}

// twoWayResiduals returns, for each v, v[k] − a[team[k]] − b[period[k]] with a and b
// fitted by least squares, and the rank of the period effects once the team effects
// are fitted (P − 1 when the periods are linked through shared teams, 0 for one
// period).
//
// The team effects are eliminated in closed form, a = (Σ v − Σ b)/n per team, which
// leaves the P×P system C·b = q for the periods, C = diag(pairs per period) −
// Σ_teams u·uᵀ/n (u a team's 0/1 period incidence, n its pairs). C is singular (a
// constant can move between a and b), so it is solved by the SVD's pseudo-inverse.
func twoWayResiduals(team, period []int, nTeams, nPeriods int, vs ...[]float64) (res [][]float64, rank int) {
	n := make([]float64, nTeams)
	byTeam := make([][]int, nTeams)
	C := mat.NewDense(nPeriods, nPeriods, nil)
	for k := range team {
		n[team[k]]++
		byTeam[team[k]] = append(byTeam[team[k]], k)
		C.Set(period[k], period[k], C.At(period[k], period[k])+1)
	}
	for i, ks := range byTeam {
		for _, a := range ks {
			for _, b := range ks {
				C.Set(period[a], period[b], C.At(period[a], period[b])-1/n[i])
			}
		}
	}
	sums := make([][]float64, len(vs)) // per v, per team
	q := mat.NewDense(nPeriods, len(vs), nil)
	for j, v := range vs {
		sums[j] = make([]float64, nTeams)
		for k := range v {
			sums[j][team[k]] += v[k]
		}
		for k := range v {
			q.Set(period[k], j, q.At(period[k], j)+v[k]-sums[j][team[k]]/n[team[k]])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(C, mat.SVDFull) {
		panic("linkage: SVD of the period system did not converge")
	}
	// Exact zeros come out of the SVD as rounding errors (C's entries are counts and
	// their ratios, its non-zero singular values far above 1e-9).
	for _, v := range svd.Values(nil) {
		if v > 1e-9 {
			rank++
		}
	}
	b := mat.NewDense(nPeriods, len(vs), nil)
	if rank > 0 {
		svd.SolveTo(b, q, rank)
	}
	res = make([][]float64, len(vs))
	for j, v := range vs {
		a := make([]float64, nTeams)
		for k := range v {
			a[team[k]] -= b.At(period[k], j)
		}
		for i := range a {
			a[i] = (a[i] + sums[j][i]) / n[i]
		}
		res[j] = make([]float64, len(v))
		for k := range v {
			res[j][k] = v[k] - a[team[k]] - b.At(period[k], j)
		}
	}
	return res, rank
}

// noVariance says whether the residuals are zero up to rounding: the effects explain
// every value of v.
func noVariance(res, v []float64) bool {
	var ss float64
	for _, e := range res {
		ss += e * e
	}
	total := stat.Variance(v, nil) * float64(len(v)-1)
	return ss <= 1e-20*math.Max(total, 1e-300) || total == 0
}
