// Package impact ranks issue categories by the effort they cost customers over a rolling
// window: volume, handle time, contacts per resolution, CES with its t interval and the
// share of difficult contacts with its Wilson interval. The ranking score (docs/metrics.md)
// is the conservative bound of the difficult share weighted by the square root of the
// category's share of the workload (handle hours): rare categories that hurt come up, and
// a handful of responses cannot carry a category to the top. Pure computation;
// processors/analytics runs it.
package impact

import (
	"math"
	"sort"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/cxlink/cxlink/processors/records"
)

// Statuses of a category's row.
const (
	StatusOK              = "ok"
	StatusTooFewResponses = "too_few_responses" // fewer CES responses than the minimum: not ranked
)

// Level of the intervals.
const Level = 0.95

// Compute returns the effort_impact rows of one window ending at end from the window's
// solved tickets and CES responses per category. Categories with at least minResponses
// CES responses are ranked by impact (1 = most harmful).
func Compute(window string, end time.Time, tickets []records.CategoryTickets, ces []records.CategoryCES, minResponses int) []records.EffortImpact {
	rows := map[string]*records.EffortImpact{}
	get := func(cat string) *records.EffortImpact {
		r := rows[cat]
		if r == nil {
			r = &records.EffortImpact{Window: window, WindowEnd: end.UTC(), Category: cat, Status: StatusTooFewResponses}
			rows[cat] = r
		}
		return r
	}
	var totalTickets, totalResponses uint64
	var totalHandle float64
	for _, t := range tickets {
		r := get(t.Category)
		r.Tickets = t.Tickets
		r.HandleHours = t.HandleSeconds / 3600
		if t.WithHandle > 0 {
			r.AvgHandleSeconds = ptr(t.HandleSeconds / float64(t.WithHandle))
		}
		if t.WithContacts > 0 {
			r.ContactsPerResolution = ptr(float64(t.Contacts) / float64(t.WithContacts))
		}
		totalTickets += t.Tickets
		totalHandle += t.HandleSeconds
	}
	byCat := map[string]records.CategoryCES{}
	for _, c := range ces {
		byCat[c.Category] = c
		get(c.Category).CESResponses = c.Responses
		totalResponses += c.Responses
	}
	for cat, r := range rows {
		// Volume is solved tickets; a window without any ticket events (surveys sent on
		// their own) falls back on CES responses.
		switch {
		case totalTickets > 0:
			r.VolumeShare = float64(r.Tickets) / float64(totalTickets)
		case totalResponses > 0:
			r.VolumeShare = float64(r.CESResponses) / float64(totalResponses)
		}
		// The weight of the score is the workload: handle hours where they are known,
		// else volume.
		weight := r.VolumeShare
		if totalHandle > 0 {
			r.HandleShare = ptr(r.HandleHours * 3600 / totalHandle)
			weight = *r.HandleShare
		}
		c, ok := byCat[cat]
		if !ok || c.Responses == 0 {
			continue
		}
		n := float64(c.Responses)
		mean := c.Sum / n
		r.CES = ptr(mean)
		if lo, hi, ok := MeanInterval(mean, c.Variance, c.Responses, Level); ok {
			r.CESLow, r.CESHigh = ptr(lo), ptr(hi)
		}
		r.PctDifficult = ptr(100 * float64(c.Difficult) / n)
		lo, hi := Wilson(c.Difficult, c.Responses, Level)
		r.DifficultLow, r.DifficultHigh = ptr(100*lo), ptr(100*hi)
		if c.Responses >= uint64(minResponses) {
			r.Status = StatusOK
			r.Impact = ptr(Score(lo, weight))
		}
	}
	out := make([]records.EffortImpact, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case (a.Impact == nil) != (b.Impact == nil):
			return a.Impact != nil
		case a.Impact != nil && *a.Impact != *b.Impact:
			return *a.Impact > *b.Impact
		}
		return a.Category < b.Category
	})
	for i := range out {
		if out[i].Impact != nil {
			out[i].Rank = ptr(uint16(i + 1))
		}
	}
	return out
}

// Score is the ranking score of a category: 100 × difficultLow × √share, where
// difficultLow is the lower Wilson bound of its difficult share (0–1) and share its
// share of the workload (handle hours, else solved tickets; 0–1). It is the geometric
// mean of how often the category's customers struggle (at the least, given the
// responses) and how much of all the work goes into its struggling customers: the first
// lets a rare painful category rank, the second keeps a tiny one from ranking on pain
// alone. Long contacts count as the effort they are for the contact centre, which is why
// handle hours, not tickets, weigh.
func Score(difficultLow, share float64) float64 {
	return 100 * difficultLow * math.Sqrt(share)
}

// MeanInterval is the t confidence interval of a mean of n values with sample variance
// variance; false below two values.
func MeanInterval(mean, variance float64, n uint64, level float64) (lo, hi float64, ok bool) {
	if n < 2 || math.IsNaN(variance) || math.IsInf(variance, 0) {
		return 0, 0, false
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile((1 + level) / 2)
	half := t * math.Sqrt(max(variance, 0)/float64(n))
	return mean - half, mean + half, true
}

// Wilson is the Wilson score interval of a proportion of k in n (0–1); [0, 1] for n = 0.
func Wilson(k, n uint64, level float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	z := distuv.UnitNormal.Quantile((1 + level) / 2)
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	center := (p + z*z/(2*nf)) / d
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	return max(0, center-half), min(1, center+half)
}

func ptr[T any](v T) *T { return &v }
