package impact

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

func round(v float64, d int) string { return strconv.FormatFloat(v, 'f', d, 64) }

// Published values: Newcombe (1998), "Two-sided confidence intervals for the single
// proportion", Statistics in Medicine 17, Table I, method 3 (Wilson score, no continuity
// correction): 81/263 → 0.2553–0.3662, 15/148 → 0.0624–0.1605, 0/20 → 0–0.1611,
// 1/29 → 0.0061–0.1718.
func TestWilsonPublished(t *testing.T) {
	for _, c := range []struct {
		k, n   uint64
		lo, hi string
	}{{81, 263, "0.2553", "0.3662"}, {15, 148, "0.0624", "0.1605"}, {0, 20, "0.0000", "0.1611"}, {1, 29, "0.0061", "0.1718"}} {
		lo, hi := Wilson(c.k, c.n, 0.95)
		if round(lo, 4) != c.lo || round(hi, 4) != c.hi {
			t.Errorf("%d/%d: [%s, %s], published [%s, %s]", c.k, c.n, round(lo, 4), round(hi, 4), c.lo, c.hi)
		}
	}
}

// Student's sleep data (R's datasets::sleep, group 1): mean 0.75, sd 1.78901, n 10;
// R's t.test prints the 95% interval -0.5297804 2.0297804.
func TestMeanIntervalPublished(t *testing.T) {
	x := []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	var sum, ss float64
	for _, v := range x {
		sum += v
	}
	mean := sum / 10
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	lo, hi, ok := MeanInterval(mean, ss/9, 10, 0.95)
	if !ok || round(lo, 7) != "-0.5297804" || round(hi, 7) != "2.0297804" {
		t.Fatalf("[%v, %v]", lo, hi)
	}
	if _, _, ok := MeanInterval(3, math.NaN(), 1, 0.95); ok {
		t.Fatal("an interval from one value")
	}
}

// The simulator's categories (docs of ingest/simulator): plan_correction is rare and
// hard, refund_request common and easy. A category with a handful of dreadful responses
// is not ranked at all.
func TestRareHardCategoryOutranksCommonEasyOne(t *testing.T) {
	tickets := []records.CategoryTickets{
		{Category: "refund_request", Tickets: 3000, HandleSeconds: 3000 * 240, WithHandle: 3000, Contacts: 3240, WithContacts: 3000},
		{Category: "cancellation", Tickets: 1100, HandleSeconds: 1100 * 600, WithHandle: 1100, Contacts: 1500, WithContacts: 1100},
		{Category: "plan_correction", Tickets: 300, HandleSeconds: 300 * 5000, WithHandle: 300, Contacts: 1140, WithContacts: 300},
		{Category: "gift_cards", Tickets: 4},
	}
	ces := []records.CategoryCES{
		{Category: "refund_request", Responses: 1500, Sum: 1500 * 6.3, Variance: 0.8, Difficult: 3},
		{Category: "cancellation", Responses: 550, Sum: 550 * 4.5, Variance: 2, Difficult: 93},
		{Category: "plan_correction", Responses: 150, Sum: 150 * 2.3, Variance: 1.5, Difficult: 85},
		{Category: "gift_cards", Responses: 4, Sum: 4, Variance: 0, Difficult: 4},
	}
	end := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	rows := Compute("7d", end, tickets, ces, 30)
	order := ""
	for _, r := range rows {
		order += r.Category + " "
		if r.Category == "gift_cards" && (r.Status != StatusTooFewResponses || r.Rank != nil || r.Impact != nil || *r.PctDifficult != 100) {
			t.Errorf("gift_cards: %+v", r)
		}
	}
	if order != "plan_correction cancellation refund_request gift_cards " {
		t.Fatalf("order %s", order)
	}
	pc := rows[0]
	if *pc.Rank != 1 || pc.Tickets != 300 || round(pc.VolumeShare, 4) != round(300.0/4404, 4) || *pc.AvgHandleSeconds != 5000 ||
		*pc.ContactsPerResolution != 3.8 || round(*pc.CES, 2) != "2.30" || *pc.CESLow >= 2.3 || round(pc.HandleHours, 2) != round(300*5000/3600.0, 2) {
		t.Fatalf("plan_correction: %+v", pc)
	}
	lo, _ := Wilson(85, 150, 0.95)
	handle := 300.0 * 5000 / (3000*240 + 1100*600 + 300*5000)
	if *pc.HandleShare != handle || *pc.Impact != Score(lo, handle) || round(*pc.DifficultLow, 6) != round(100*lo, 6) {
		t.Fatalf("impact %v", *pc.Impact)
	}
}

// Without handle times the weight is the share of solved tickets, and without tickets
// the share of CES responses.
func TestWeightFallsBackOnVolume(t *testing.T) {
	end := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	ces := []records.CategoryCES{{Category: "a", Responses: 100, Sum: 300, Variance: 1, Difficult: 50}, {Category: "b", Responses: 300, Sum: 1800, Variance: 1, Difficult: 3}}
	rows := Compute("7d", end, nil, ces, 30)
	lo, _ := Wilson(50, 100, 0.95)
	if rows[0].Category != "a" || rows[0].VolumeShare != 0.25 || rows[0].HandleShare != nil || *rows[0].Impact != Score(lo, 0.25) {
		t.Fatalf("responses as volume: %+v", rows[0])
	}
	rows = Compute("7d", end, []records.CategoryTickets{{Category: "a", Tickets: 10}, {Category: "b", Tickets: 30}}, ces, 30)
	if rows[0].VolumeShare != 0.25 || rows[0].HandleShare != nil || *rows[0].Impact != Score(lo, 0.25) {
		t.Fatalf("tickets as volume: %+v", rows[0])
	}
}
