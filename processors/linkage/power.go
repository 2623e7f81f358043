package linkage

import (
	"math"
	"sync"

	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// Power is the chance of finding a correlation that MinDetectable is computed for.
const Power = 0.8

var minDetectable sync.Map // df → float64

// MinDetectable is the smallest true correlation |ρ| that the two-sided test at level
// 1 − Confidence with df degrees of freedom (n − 2 for n plain pairs) finds with
// probability Power: "this many teams could only have seen a link at least this
// strong". It solves PowerOf(ρ, df) = Power; NaN below 2 degrees of freedom.
func MinDetectable(df int) float64 {
	if df < 2 {
		return math.NaN()
	}
	if v, ok := minDetectable.Load(df); ok {
		return v.(float64)
	}
	lo, hi := 0.0, 1.0
	for hi-lo > 1e-9 {
		mid := (lo + hi) / 2
		if PowerOf(mid, df) < Power {
			lo = mid
		} else {
			hi = mid
		}
	}
	minDetectable.Store(df, hi)
	return hi
}

// PowerOf is the probability that the two-sided test of r at level 1 − Confidence with
// df degrees of freedom rejects ρ = 0 when the true correlation is rho: the chance that
// |r| exceeds the test's critical value, under the exact distribution of r from df + 2
// pairs of a bivariate normal (Fisher 1915). A partial correlation with df degrees of
// freedom (WithinTeams) has the same distribution. It is what G*Power computes as the
// "exact" bivariate normal model; Fisher's z approximation overstates the correlation
// needed by up to 0.03 for six teams.
func PowerOf(rho float64, df int) float64 {
	if df < 1 {
		return math.NaN()
	}
	rho = math.Abs(rho)
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}.Quantile(1 - (1-Confidence)/2)
	zc := math.Atanh(t / math.Sqrt(t*t+float64(df)))
	if rho >= 1 {
		return 1
	}
	// r's density in z = atanh(r) is close to normal around atanh(ρ) with standard
	// deviation 1/√(n − 3): 16 of them hold all of it that counts.
	n := float64(df + 2)
	centre, width := math.Atanh(rho), 16/math.Sqrt(math.Max(n-3, 1))
	density := densityOfZ(rho, n)
	var p float64
	if hi := centre + width; hi > zc {
		p += quad.Fixed(density, math.Max(zc, centre-width), hi, 400, nil, 0)
	}
	if lo := centre - width; lo < -zc {
		p += quad.Fixed(density, lo, math.Min(-zc, centre+width), 400, nil, 0)
	}
	return math.Min(p, 1)
}

// densityOfZ returns the density of z = atanh(r) for the correlation r of n pairs from a
// bivariate normal with correlation rho, from Hotelling's (1953) form of r's density:
// f(r) = (n−2) Γ(n−1) (1−ρ²)^((n−1)/2) (1−r²)^((n−4)/2) / (√(2π) Γ(n−½) (1−ρr)^(n−3/2))
// · ₂F₁(½, ½; n−½; (1+ρr)/2), times dr/dz = 1 − r².
func densityOfZ(rho, n float64) func(z float64) float64 {
	lg1, _ := math.Lgamma(n - 1)
	lg2, _ := math.Lgamma(n - 0.5)
	c := math.Log(n-2) + lg1 - lg2 - 0.5*math.Log(2*math.Pi) + (n-1)/2*math.Log1p(-rho*rho)
	return func(z float64) float64 {
		r := math.Tanh(z)
		// log(1 − r²) = −2 log cosh z, without cancelling near |r| = 1.
		az := math.Abs(z)
		log1mr2 := -2 * (az + math.Log1p(math.Exp(-2*az)) - math.Ln2)
		h := mathext.Hypergeo(0.5, 0.5, n-0.5, (1+rho*r)/2)
		return math.Exp(c + (n-2)/2*log1mr2 - (n-1.5)*math.Log1p(-rho*r) + math.Log(h))
	}
}
