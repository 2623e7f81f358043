package linkage

import (
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/stat"
)

// readObservations reads rows of team,period,x,y (period may be empty: one period).
func readObservations(t *testing.T, path string, cols [4]int) []Observation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []Observation
	for _, rec := range recs[1:] {
		o := Observation{Team: rec[cols[0]]}
		var err error
		if cols[1] >= 0 {
			o.Period, err = strconv.ParseInt(rec[cols[1]], 10, 64)
		}
		x, err1 := strconv.ParseFloat(rec[cols[2]], 64)
		y, err2 := strconv.ParseFloat(rec[cols[3]], 64)
		if err != nil || err1 != nil || err2 != nil {
			t.Fatalf("%s: bad row %v", path, rec)
		}
		o.X, o.Y = x, y
		out = append(out, o)
	}
	return out
}

func readOppositeSigns(t *testing.T) []Observation {
	return readObservations(t, "testdata/opposite_signs.csv", [4]int{0, 1, 2, 3})
}

// Bland & Altman (1995): pH and PaCO2 of 8 subjects measured 3 to 10 times. With all
// observations in one period, WithinTeams is rmcorr, and reproduces the published
// figures of R's rmcorr and pingouin (Bakdash & Marusich 2017) to their printed
// precision. Plain Pearson over the 47 points, as if they came from 47 subjects, finds
// almost nothing: what pooling repeated observations as independent pairs does.
func TestWithinTeamsReproducesRmcorr(t *testing.T) {
	obs := readObservations(t, "testdata/bland_altman_1995.csv", [4]int{0, -1, 1, 2})
	if len(obs) != 47 {
		t.Fatalf("%d observations, want 47", len(obs))
	}
	c, teams, periods, ok := WithinTeams(obs)
	if !ok || teams != 8 || periods != 1 {
		t.Fatalf("ok %v, %d subjects, %d periods", ok, teams, periods)
	}
	for _, check := range []struct{ name, got, want string }{
		{"n", fmt.Sprint(c.N), "47"},
		{"df", fmt.Sprint(c.DF), "38"},
		{"r_rm", round(c.Pearson, 7), "-0.5067697"},
		{"t", round(c.T, 4), "-3.6237"},
		{"p", round(c.P, 7), "0.0008471"},
		{"CI low", round(c.CILow, 7), "-0.7067146"},
		{"CI high", round(c.CIHigh, 7), "-0.2318631"},
	} {
		if check.got != check.want {
			t.Errorf("%s = %s, published %s", check.name, check.got, check.want)
		}
	}
	if !math.IsNaN(c.Spearman) {
		t.Errorf("Spearman of residuals %v, want none", c.Spearman)
	}
	var x, y []float64
	for _, o := range obs {
		x, y = append(x, o.X), append(y, o.Y)
	}
	plain, _ := Correlate(x, y)
	if got := round(plain.Pearson, 7); got != "-0.0652177" {
		t.Errorf("Pearson over the 47 points = %s, published -0.0652177", got)
	}
	between, subjects, _ := BetweenTeams(obs)
	t.Logf("rmcorr r = %.7f (df %d, p %.7f); Pearson of the 47 points %.7f (df %d, p %.3f); between the 8 subjects' means r = %.3f (df %d, p %.3f)",
		c.Pearson, c.DF, c.P, plain.Pearson, plain.DF, plain.P, between.Pearson, between.DF, between.P)
	if subjects != 8 || between.DF != 6 {
		t.Errorf("between subjects: %d subjects, df %d", subjects, between.DF)
	}
}

// With every team in every period, the least-squares residuals have the closed form
// x − team mean − period mean + grand mean.
func TestWithinTeamsBalancedIsDoubleCentring(t *testing.T) {
	obs := readOppositeSigns(t)
	c, teams, periods, ok := WithinTeams(obs)
	if !ok || teams != 6 || periods != 4 || c.DF != 24-6-3-1 {
		t.Fatalf("ok %v, %d teams, %d periods, df %d", ok, teams, periods, c.DF)
	}
	centre := func(v func(Observation) float64) []float64 {
		tm, pm, tn, pn, all := map[string]float64{}, map[int64]float64{}, map[string]float64{}, map[int64]float64{}, 0.0
		for _, o := range obs {
			tm[o.Team] += v(o)
			pm[o.Period] += v(o)
			tn[o.Team]++
			pn[o.Period]++
			all += v(o)
		}
		out := make([]float64, len(obs))
		for k, o := range obs {
			out[k] = v(o) - tm[o.Team]/tn[o.Team] - pm[o.Period]/pn[o.Period] + all/float64(len(obs))
		}
		return out
	}
	want := stat.Correlation(centre(func(o Observation) float64 { return o.X }), centre(func(o Observation) float64 { return o.Y }), nil)
	if math.Abs(c.Pearson-want) > 1e-12 {
		t.Errorf("r = %.15f, double centring gives %.15f", c.Pearson, want)
	}
}

// On an unbalanced panel the residuals are what least squares makes them: orthogonal to
// every team and every period (they sum to zero in each), with the degrees of freedom
// of the periods linked through shared teams.
func TestWithinTeamsUnbalancedMeetsTheNormalEquations(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var team, period []int
	var x []float64
	for i := range 7 {
		for p := range 6 {
			if rng.Float64() < 0.3 { // a third of the team-periods missing
				continue
			}
			team, period, x = append(team, i), append(period, p), append(x, float64(i)+2*float64(p)+rng.NormFloat64())
		}
	}
	res, rank := twoWayResiduals(team, period, 7, 6, x)
	if rank != 5 {
		t.Fatalf("rank %d of 6 linked periods, want 5", rank)
	}
	byTeam, byPeriod := make([]float64, 7), make([]float64, 6)
	for k, e := range res[0] {
		byTeam[team[k]] += e
		byPeriod[period[k]] += e
	}
	for _, s := range append(byTeam, byPeriod...) {
		if math.Abs(s) > 1e-9 {
			t.Fatalf("residual sums per team %v, per period %v: not orthogonal", byTeam, byPeriod)
		}
	}
	// Two groups of teams that never share a period: two separate sets of period
	// effects, one more constant, one degree of freedom more.
	res, rank = twoWayResiduals([]int{0, 0, 1, 1, 2, 2, 3, 3}, []int{0, 1, 0, 1, 2, 3, 2, 3}, 4, 4, []float64{1, 2, 3, 5, 1, 4, 2, 3})
	if rank != 2 {
		t.Fatalf("rank %d of two unlinked pairs of periods, want 2", rank)
	}
	t.Logf("unlinked residuals %v", res[0])
}

// Observations of a team seen once, or of a period with a single team, carry nothing
// about change: they change neither r nor df, only the counts.
func TestWithinTeamsLeavesOutWhatCannotShowChange(t *testing.T) {
	obs := readOppositeSigns(t)
	c, _, _, _ := WithinTeams(obs)
	more := append(append([]Observation{}, obs...),
		Observation{Team: "once", Period: 2, X: 5, Y: 1},      // a team seen once
		Observation{Team: "alpha", Period: 9, X: 1, Y: 7},     // alone in period 9 …
		Observation{Team: "lonely", Period: 9, X: 3, Y: 3},    // … no: two teams in period 9,
		Observation{Team: "lonely", Period: 10, X: 2, Y: 6.5}, // but lonely's other period is its own
	)
	c2, teams, periods, ok := WithinTeams(more)
	if !ok || teams != 6 || periods != 4 || c2.N != 24 || c2.DF != c.DF || math.Abs(c2.Pearson-c.Pearson) > 1e-12 {
		t.Fatalf("with uninformative pairs: %+v, %d teams, %d periods; without: %+v", c2, teams, periods, c)
	}
}

func TestBetweenTeamsCorrelatesTeamMeans(t *testing.T) {
	obs := readOppositeSigns(t)
	// One more period of alpha alone shifts its means.
	obs = append(obs, Observation{Team: "alpha", Period: 4, X: 4.5, Y: 6.5})
	c, teams, ok := BetweenTeams(obs)
	mean := map[string][2]float64{}
	count := map[string]float64{}
	for _, o := range obs {
		m := mean[o.Team]
		mean[o.Team] = [2]float64{m[0] + o.X, m[1] + o.Y}
		count[o.Team]++
	}
	var x, y []float64
	for _, name := range []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"} {
		x, y = append(x, mean[name][0]/count[name]), append(y, mean[name][1]/count[name])
	}
	want, _ := Correlate(x, y)
	if !ok || teams != 6 || c.N != 6 || c.DF != 4 || math.Abs(c.Pearson-want.Pearson) > 1e-12 || c.Spearman != want.Spearman {
		t.Fatalf("between: %+v, want %+v", c, want)
	}
}

// Cohen's (1992, "A power primer", Table 2) sample sizes for a correlation at
// α = .05 two-sided and power .80 are 783, 85 and 28 for r = .10, .30 and .50. They
// come from approximations; the exact smallest n is within one of each.
func TestMinDetectableNearCohensTable(t *testing.T) {
	for _, c := range []struct {
		r     float64
		cohen int
	}{{0.10, 783}, {0.30, 85}, {0.50, 28}} {
		lo, n := 4, 2000 // MinDetectable(lo − 2) > r ≥ MinDetectable(n − 2)
		for n-lo > 1 {
			if mid := (lo + n) / 2; MinDetectable(mid-2) > c.r {
				lo = mid
			} else {
				n = mid
			}
		}
		t.Logf("r = %.2f: n = %d (Cohen %d)", c.r, n, c.cohen)
		if n < c.cohen-1 || n > c.cohen+1 {
			t.Errorf("r = %.2f needs n = %d, Cohen's table %d", c.r, n, c.cohen)
		}
	}
	if !math.IsNaN(MinDetectable(1)) {
		t.Error("a detectable correlation at 1 degree of freedom")
	}
}

// Without a correlation the test rejects at its level, whatever the degrees of freedom:
// r's exact distribution and Student's t agree.
func TestPowerOfNoCorrelationIsTheLevel(t *testing.T) {
	for _, df := range []int{2, 4, 10, 38, 400} {
		if p := PowerOf(0, df); math.Abs(p-0.05) > 1e-6 {
			t.Errorf("df %d: power at ρ = 0 is %.7f, not 0.05", df, p)
		}
	}
	if p := PowerOf(0.99, 40); p < 0.999999 {
		t.Errorf("power at ρ = 0.99 with 42 pairs: %v", p)
	}
}

// The definition, by simulation: pairs drawn from a bivariate normal whose correlation
// is MinDetectable(n − 2) are found significant (p < 0.05) in 80% of samples.
func TestMinDetectableHasEightyPercentPower(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const reps = 20000
	for _, n := range []int{6, 12, 30} {
		rho := MinDetectable(n - 2)
		x, y := make([]float64, n), make([]float64, n)
		found := 0
		for range reps {
			for i := range x {
				a, b := rng.NormFloat64(), rng.NormFloat64()
				x[i], y[i] = a, rho*a+math.Sqrt(1-rho*rho)*b
			}
			if c, ok := Correlate(x, y); ok && c.P < 0.05 {
				found++
			}
		}
		power := float64(found) / reps
		t.Logf("n = %d: detectable %.3f, simulated power %.3f", n, rho, power)
		if math.Abs(power-Power) > 0.012 { // 4 standard errors
			t.Errorf("n = %d: power at %.3f is %.3f, not about 0.80", n, rho, power)
		}
	}
}

// The within-team interval covers the true within-team correlation 95% of the time
// when teams differ in level (even in the opposite direction) and every period moves
// all teams: six teams in twelve periods, as in the demo.
func TestWithinTeamsIntervalCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const (
		reps, teams, periods = 4000, 6, 12
		rho                  = 0.5
	)
	covered := 0
	obs := make([]Observation, 0, teams*periods)
	for range reps {
		obs = obs[:0]
		levels := make([]float64, teams)
		for i := range levels {
			levels[i] = rng.NormFloat64()
		}
		for p := range periods {
			shiftX, shiftY := 2*rng.NormFloat64(), 2*rng.NormFloat64()
			for i := range teams {
				a, b := rng.NormFloat64(), rng.NormFloat64()
				obs = append(obs, Observation{Team: strconv.Itoa(i), Period: int64(p),
					X: 3*levels[i] + shiftX + a, Y: -3*levels[i] + shiftY + rho*a + math.Sqrt(1-rho*rho)*b})
			}
		}
		c, _, _, ok := WithinTeams(obs)
		if !ok || c.DF != teams*periods-teams-periods {
			t.Fatalf("ok %v, df %d", ok, c.DF)
		}
		if c.CILow <= rho && rho <= c.CIHigh {
			covered++
		}
	}
	coverage := float64(covered) / reps
	t.Logf("95%% interval covered the true within-team r = %.1f in %.3f of %d samples", rho, coverage, reps)
	if coverage < 0.935 || coverage > 0.965 {
		t.Errorf("coverage %.3f, want about 0.95", coverage)
	}
}
