package drift

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// maxZ caps standardized statistics: two windows without any spread but with different
// means are as different as it gets, and an infinite z helps no one.
const maxZ = 99

// sample summarizes one window: responses, sum and sum of squares of the standard scores,
// and the count of negative answers.
type sample struct {
	n        float64
	sum, sq  float64
	negative float64
}

func (s sample) mean() float64 { return s.sum / s.n }

// variance is the sample variance (n−1 in the denominator); ok is false when it cannot
// be known: fewer than two responses, or sums of squares that do not fit the sums (rows
// written before squares were kept).
func (s sample) variance() (v float64, ok bool) {
	if s.n < 2 {
		return 0, false
	}
	ss := s.sq - s.sum*s.sum/s.n
	// Rounding leaves a tiny negative instead of 0 when all scores are equal.
	if ss < -1e-9*math.Max(1, s.sq) {
		return 0, false
	}
	return math.Max(ss, 0) / (s.n - 1), true
}

// welchZ is the standardized difference of the means of a (recent) and b (baseline),
// (mean_a − mean_b) / √(var_a/n_a + var_b/n_b): Welch's statistic, read as a z score
// because the windows drift is judged on hold dozens of responses at least.
func welchZ(a, b sample) (z float64, ok bool) {
	va, okA := a.variance()
	vb, okB := b.variance()
	if !okA || !okB {
		return 0, false
	}
	return standardize(a.mean()-b.mean(), math.Sqrt(va/a.n+vb/b.n)), true
}

// pooledTailZ is Student's two-sample t of a (recent) against b (baseline) with the
// pooled variance, read through Student's t with n_a + n_b − 2 degrees of freedom and
// returned as the normal z with the same tail probability: the z a difference would need
// to be as unlikely. It is the test for a team's pulse, a handful of answers per period:
// t itself would overstate a difference (t = 3 with 10 degrees of freedom is as likely as
// z = 2.5), and the null hypothesis — this period's answers come from the same
// distribution as before — has one variance, best estimated from both sides. Welch's
// separate variances would let a period whose five answers happen to be equal (no
// spread) look like a certain drop.
func pooledTailZ(a, b sample) (z float64, ok bool) {
	va, okA := a.variance()
	vb, okB := b.variance()
	if !okA || !okB {
		return 0, false
	}
	df := a.n + b.n - 2
	pooled := ((a.n-1)*va + (b.n-1)*vb) / df
	diff, se := a.mean()-b.mean(), math.Sqrt(pooled*(1/a.n+1/b.n))
	if se == 0 {
		return standardize(diff, 0), true
	}
	tail := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.CDF(-math.Abs(diff / se))
	return math.Copysign(math.Min(maxZ, -distuv.UnitNormal.Quantile(tail)), diff), true
}

// twoProportionZ is the pooled two-proportion z of the shares of negative answers,
// (p_a − p_b) / √(p(1−p)(1/n_a + 1/n_b)) with p the pooled share.
func twoProportionZ(a, b sample) (z float64, ok bool) {
	if a.n < 1 || b.n < 1 {
		return 0, false
	}
	p := (a.negative + b.negative) / (a.n + b.n)
	return standardize(a.negative/a.n-b.negative/b.n, math.Sqrt(p*(1-p)*(1/a.n+1/b.n))), true
}

func standardize(diff, se float64) float64 {
	if se == 0 {
		switch {
		case diff > 0:
			return maxZ
		case diff < 0:
			return -maxZ
		}
		return 0
	}
	return math.Max(-maxZ, math.Min(maxZ, diff/se))
}

// ewmaBlockCap bounds each block's z before it enters the EWMA. A sudden drop (the mean
// detector's news) then weighs no more than a block 1.5 standard errors low, so that an
// hour of bad scores does not hold the slow-drift average down for hours after; any
// drift must last 5 blocks to reach z = 3. Under no drift, capped z scores have a
// variance of 0.78 instead of 1, which makes the standardized average a little
// conservative (|z| ≥ 3 is as rare as |z| ≥ 3.4 would be).
const ewmaBlockCap = 1.5

// ewma is an exponentially weighted moving average of a series of z scores (one per
// block of the recent window's length), standardized by its own standard deviation under
// no drift so that it reads as a z score too: with weight λ, after k blocks
// Var = λ/(2−λ) · (1 − (1−λ)^(2k)) (Montgomery, Introduction to Statistical Quality
// Control, the EWMA control chart). A shift too small for one block's z to notice adds
// up over blocks.
type ewma struct {
	lambda float64
	value  float64
	blocks int
}

func (e *ewma) add(z float64) {
	e.value = e.lambda*z + (1-e.lambda)*e.value
	e.blocks++
}

// z is the standardized average; ok is false before the first block.
func (e *ewma) z() (float64, bool) {
	if e.blocks == 0 {
		return 0, false
	}
	v := e.lambda / (2 - e.lambda) * (1 - math.Pow(1-e.lambda, 2*float64(e.blocks)))
	return standardize(e.value, math.Sqrt(v)), true
}

// cohenD is the difference of the means in standard deviations of b (the baseline):
// the size of a drift whatever the number of responses. 0.2 is "small" in Cohen's terms.
func cohenD(a, b sample) float64 {
	vb, ok := b.variance()
	if !ok || a.n < 1 {
		return math.NaN()
	}
	if vb == 0 {
		return standardize(a.mean()-b.mean(), 0)
	}
	return (a.mean() - b.mean()) / math.Sqrt(vb)
}

// cohenH is the difference of two shares on the arcsine scale, 2·asin√p_a − 2·asin√p_b:
// the size of a change of the share of negative answers; 50% against 40% is 0.2
// ("small"), and a change of a rare share weighs more than the same change of a common one.
func cohenH(a, b sample) float64 {
	if a.n < 1 || b.n < 1 {
		return math.NaN()
	}
	return 2*math.Asin(math.Sqrt(a.negative/a.n)) - 2*math.Asin(math.Sqrt(b.negative/b.n))
}
