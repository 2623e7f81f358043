package drift

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

func sampleOf(xs []float64) sample {
	var s sample
	for _, x := range xs {
		s.n++
		s.sum += x
		s.sq += x * x
	}
	return s
}

// R's example of ?t.test: t.test(extra ~ group, data = sleep), Welch Two Sample t-test:
// t = -1.8608, df = 17.776, p-value = 0.07939.
func TestWelchZMatchesR(t *testing.T) {
	g1 := []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	g2 := []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
	z, ok := welchZ(sampleOf(g1), sampleOf(g2))
	if !ok || math.Abs(z-(-1.8608)) > 5e-5 {
		t.Fatalf("welchZ = %v, %v; want -1.8608", z, ok)
	}
	if _, ok := welchZ(sampleOf([]float64{3}), sampleOf(g2)); ok {
		t.Error("a z from one response")
	}
	// Sums of squares missing (rows written before they were kept): no z.
	old := sampleOf(g1)
	old.sq = 0
	if _, ok := welchZ(old, sampleOf(g2)); ok {
		t.Error("a z without sums of squares")
	}
	// No spread at all: equal means are no drift, different ones are capped.
	same := sampleOf([]float64{5, 5, 5})
	if z, ok := welchZ(same, same); !ok || z != 0 {
		t.Errorf("equal constant windows: z = %v, %v", z, ok)
	}
	if z, _ := welchZ(sampleOf([]float64{1, 1}), same); z != -maxZ {
		t.Errorf("constant windows apart: z = %v, want %v", z, -maxZ)
	}
}

// The same data with a pooled variance: R's t.test(extra ~ group, data = sleep,
// var.equal = TRUE) gives t = -1.8608, df = 18, p-value = 0.07919 (two-sided), so
// z = qnorm(0.07919 / 2).
func TestPooledTailZMatchesR(t *testing.T) {
	g1 := []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	g2 := []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
	z, ok := pooledTailZ(sampleOf(g1), sampleOf(g2))
	want := distuv.UnitNormal.Quantile(0.07919 / 2)
	if !ok || math.Abs(z-want) > 2e-4 {
		t.Fatalf("pooledTailZ = %v, %v; want %v", z, ok, want)
	}
	if z, _ := pooledTailZ(sampleOf(g2), sampleOf(g1)); math.Abs(z+want) > 2e-4 {
		t.Errorf("swapped: z = %v, want %v", z, -want)
	}
	// Five equal answers against a spread baseline: the baseline's spread stands for
	// both. 5 × eNPS detractor (−1) against 29 answers of eNPS −41% (3 promoters, 15
	// detractors): pooled t = −1.9 on 32 degrees of freedom, z ≈ −1.85, not a drift
	// (five detractors in a row happen once in 27 draws from that baseline); Welch's t,
	// with no spread on the recent side, would be −4.6.
	recent := sample{n: 5, sum: -5, sq: 5}
	base := sample{n: 29, sum: 3 - 15, sq: 3 + 15}
	if z, ok := pooledTailZ(recent, base); !ok || z < -2.1 || z > -1.7 {
		t.Errorf("five detractors: z = %v, %v; want about -1.9", z, ok)
	}
	// Far apart with many answers: the tail underflows nowhere; z is large and finite.
	var lo, hi []float64
	for i := range 40 {
		lo = append(lo, 1+float64(i%3)/10)
		hi = append(hi, 5+float64(i%3)/10)
	}
	if z, _ := pooledTailZ(sampleOf(lo), sampleOf(hi)); !(z < -10) || math.IsInf(z, 0) {
		t.Errorf("far apart: z = %v", z)
	}
	if _, ok := pooledTailZ(sampleOf([]float64{3}), sampleOf(g2)); ok {
		t.Error("a z from one response")
	}
}

// The two-proportion z squared is Pearson's chi-square of the 2×2 table (R's prop.test
// with correct = FALSE reports it as X-squared); computed here the textbook way.
func TestTwoProportionZIsChiSquare(t *testing.T) {
	for _, tc := range []struct{ xa, na, xb, nb float64 }{{30, 120, 140, 1000}, {5, 40, 5, 40}, {1, 31, 40, 500}} {
		z, ok := twoProportionZ(sample{n: tc.na, negative: tc.xa}, sample{n: tc.nb, negative: tc.xb})
		if !ok {
			t.Fatal("no z")
		}
		obs := [2][2]float64{{tc.xa, tc.na - tc.xa}, {tc.xb, tc.nb - tc.xb}}
		n := tc.na + tc.nb
		col := [2]float64{tc.xa + tc.xb, n - tc.xa - tc.xb}
		row := [2]float64{tc.na, tc.nb}
		var chi2 float64
		for i := range 2 {
			for j := range 2 {
				e := row[i] * col[j] / n
				chi2 += (obs[i][j] - e) * (obs[i][j] - e) / e
			}
		}
		if math.Abs(z*z-chi2) > 1e-9*chi2+1e-12 {
			t.Errorf("%+v: z² = %v, chi-square %v", tc, z*z, chi2)
		}
		if (z > 0) != (tc.xa/tc.na > tc.xb/tc.nb) && z != 0 {
			t.Errorf("%+v: z = %v has the wrong sign", tc, z)
		}
	}
	// No negative answers on either side: no drift.
	if z, ok := twoProportionZ(sample{n: 31}, sample{n: 500}); !ok || z != 0 {
		t.Errorf("no negatives: z = %v, %v", z, ok)
	}
}

// Under no drift the block z scores are standard normal; the standardized EWMA must then
// be standard normal too, from the first block on (the variance formula is exact).
func TestEWMAIsStandardized(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	const runs = 40000
	for _, k := range []int{1, 3, 12} {
		var sum, sq float64
		for range runs {
			e := ewma{lambda: 0.2}
			for range k {
				e.add(rng.NormFloat64())
			}
			z, _ := e.z()
			sum += z
			sq += z * z
		}
		mean, v := sum/runs, sq/runs-(sum/runs)*(sum/runs)
		if math.Abs(mean) > 0.03 || math.Abs(v-1) > 0.04 {
			t.Errorf("after %d blocks: mean %.3f, variance %.3f; want 0, 1", k, mean, v)
		}
	}
	// A steady shift of one standard error per block adds up: the EWMA reads about
	// 1/√(λ/(2−λ)) = 3 standard deviations once its memory is full.
	e := ewma{lambda: 0.2}
	for range 30 {
		e.add(-1)
	}
	if z, _ := e.z(); math.Abs(z-(-3)) > 0.01 {
		t.Errorf("steady -1: z = %v, want about -3", z)
	}
	if _, ok := (&ewma{lambda: 0.2}).z(); ok {
		t.Error("a z before any block")
	}
}

// Cohen (1988): h = 2·asin√p1 − 2·asin√p2; 0.5 against 0.4 is 0.20 ("small"), d is the
// difference of means in standard deviations.
func TestEffectSizes(t *testing.T) {
	h := cohenH(sample{n: 100, negative: 50}, sample{n: 100, negative: 40})
	if math.Abs(h-0.2014) > 1e-4 {
		t.Errorf("h(0.5, 0.4) = %v, want 0.2014", h)
	}
	d := cohenD(sampleOf([]float64{5, 6, 7}), sampleOf([]float64{1, 3, 5, 7}))
	// baseline mean 4, sd √(20/3); recent mean 6.
	if math.Abs(d-2/math.Sqrt(20.0/3)) > 1e-12 {
		t.Errorf("d = %v", d)
	}
}
