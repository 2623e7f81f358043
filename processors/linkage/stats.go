package linkage

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Confidence is the level of every interval linkage reports.
const Confidence = 0.95

// Correlation is the association of two paired samples: Pearson's r with its Fisher-z
// confidence interval and two-sided p-value, and Spearman's rank correlation.
type Correlation struct {
	// N is the number of pairs.
	N int
	// DF is the degrees of freedom of the test, N−2 unless the pairs are residuals of
	// team and period means (see WithinTeams).
	DF      int
	Pearson float64
	// T is Pearson's t statistic, r·√DF/√(1−r²).
	T float64
	// P is the two-sided p-value of r ≠ 0 under Student's t with DF degrees of freedom.
	P float64
	// CILow and CIHigh bound r at the Confidence level: tanh(atanh(r) ± z/√(DF−1)),
	// which for plain pairs is the usual z/√(N−3).
	CILow, CIHigh float64
	// Spearman is Pearson's r of the ranks, ties given their average rank; NaN where
	// ranks mean nothing (WithinTeams' residuals).
	Spearman float64
	// MinDetectable is the smallest |ρ| the test detects with probability Power at
	// this DF (see MinDetectable).
	MinDetectable float64
}

// Correlate computes the correlation of the pairs (x[i], y[i]). ok is false when the
// pairs cannot give one: fewer than 4 pairs, or a sample without variance.
func Correlate(x, y []float64) (Correlation, bool) {
	return correlate(x, y, len(x)-2)
}

// correlate is Correlate with df degrees of freedom for the test and the interval.
func correlate(x, y []float64, df int) (Correlation, bool) {
	n := len(x)
	if n != len(y) || n < 4 || df < 2 || constant(x) || constant(y) {
		return Correlation{N: n, DF: df}, false
	}
	r := clamp(stat.Correlation(x, y, nil))
	c := Correlation{N: n, DF: df, Pearson: r, Spearman: clamp(stat.Correlation(Ranks(x), Ranks(y), nil))}
	c.T, c.P = PearsonTest(r, df)
	c.CILow, c.CIHigh = FisherInterval(r, df+2, Confidence)
	c.MinDetectable = MinDetectable(df)
	return c, true
}

// PearsonTest returns Pearson's t statistic and the two-sided p-value of r with df
// degrees of freedom (n−2 for n plain pairs).
func PearsonTest(r float64, df int) (t, p float64) {
	if math.Abs(r) >= 1 {
		return math.Copysign(math.Inf(1), r), 0
	}
	t = r * math.Sqrt(float64(df)) / math.Sqrt(1-r*r)
	dist := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}
	return t, 2 * dist.Survival(math.Abs(t))
}

// FisherInterval is the confidence interval of a correlation r from n pairs through
// Fisher's z transformation: tanh(atanh(r) ± q/√(n−3)), q the normal quantile of
// (1+level)/2. This is what R's cor.test reports.
func FisherInterval(r float64, n int, level float64) (lo, hi float64) {
	if math.Abs(r) >= 1 {
		return r, r
	}
	q := distuv.UnitNormal.Quantile((1 + level) / 2)
	z, se := math.Atanh(r), 1/math.Sqrt(float64(n-3))
	return math.Tanh(z - q*se), math.Tanh(z + q*se)
}

// Ranks returns the rank of each value from 1, ties sharing the average of their ranks.
func Ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	ranks := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			ranks[idx[k]] = avg
		}
		i = j + 1
	}
	return ranks
}

func constant(v []float64) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

// clamp keeps rounding from pushing a correlation outside [−1, 1].
func clamp(r float64) float64 { return math.Max(-1, math.Min(1, r)) }
