package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// The metric definitions, written out again here rather than imported, so that the
// test checks the processors against the documented contract (docs/metrics.md).
func classify(survey string, s float64) (positive, negative bool) {
	switch survey {
	case "ces":
		return s >= 5, s <= 3
	case "csat":
		return s >= 4, s <= 2
	case "nps":
		return s >= 9, s <= 6
	}
	panic(survey)
}

type rawSurvey struct {
	survey string
	score  float64
	at     time.Time
	dims   map[string]string // dimension → key
}

type seriesID struct{ survey, dimension, key string }

// rawSeries holds one series' responses sorted by time, with prefix sums.
type rawSeries struct {
	at          []time.Time
	n, pos, neg []int
	sum         []float64
}

func (s *rawSeries) window(from, to time.Time) (n, pos, neg int, sum float64) {
	i := sort.Search(len(s.at), func(i int) bool { return !s.at[i].Before(from) })
	j := sort.Search(len(s.at), func(i int) bool { return !s.at[i].Before(to) })
	return s.n[j] - s.n[i], s.pos[j] - s.pos[i], s.neg[j] - s.neg[i], s.sum[j] - s.sum[i]
}

// checkRollups compares the rollup buckets, the partitions added up, with the same sums
// computed from survey_responses (FINAL, not late), bucket by bucket, and every row of
// the rollups view (the current windows) with the raw tables' windows. It returns a
// description of the first mismatch and the number of buckets.
func (c *cluster) checkRollups() (string, int) {
	db := c.env["CLICKHOUSE_DATABASE"]
	step, err := time.ParseDuration(c.env["CXLINK_ROLLUP_STEP"])
	if err != nil {
		c.t.Fatal(err)
	}
	type agg struct {
		n, pos, neg int
		sum         float64
	}
	type bucketID struct {
		seriesID
		start int64
	}
	var raws []rawSurvey
	want := map[bucketID]agg{}
	for _, r := range c.query("SELECT survey, standard_score, occurred_at, channel, category, team, agent_id FROM " + db + ".survey_responses FINAL WHERE late = 0") {
		dims := map[string]string{"overall": ""}
		for i, d := range []string{"channel", "category", "team", "agent"} {
			if k := *r[3+i].(*string); k != "" {
				dims[d] = k
			}
		}
		raw := rawSurvey{*r[0].(*string), *r[1].(*float64), *r[2].(*time.Time), dims}
		raws = append(raws, raw)
		pos, neg := classify(raw.survey, raw.score)
		for d, k := range dims {
			id := bucketID{seriesID{raw.survey, d, k}, raw.at.Truncate(step).Unix()}
			a := want[id]
			a.n++
			a.pos += b2i(pos)
			a.neg += b2i(neg)
			a.sum += raw.score
			want[id] = a
		}
	}
	got := map[bucketID]agg{}
	for _, r := range c.query("SELECT survey, dimension, key, bucket_start, sum(responses), sum(positive), sum(negative), sum(score_sum) FROM " +
		db + ".rollup_buckets FINAL GROUP BY survey, dimension, key, bucket_start") {
		id := bucketID{seriesID{*r[0].(*string), *r[1].(*string), *r[2].(*string)}, (*r[3].(*time.Time)).Unix()}
		got[id] = agg{int(*r[4].(*uint64)), int(*r[5].(*uint64)), int(*r[6].(*uint64)), *r[7].(*float64)}
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			return fmt.Sprintf("%v at %s: no bucket, raw tables have %d responses", id.seriesID, time.Unix(id.start, 0).UTC(), w.n), len(got)
		}
		if g.n != w.n || g.pos != w.pos || g.neg != w.neg || math.Abs(g.sum-w.sum) > 1e-9 {
			return fmt.Sprintf("%v at %s: bucket %+v, raw tables say %+v", id.seriesID, time.Unix(id.start, 0).UTC(), g, w), len(got)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok && g.n > 0 {
			return fmt.Sprintf("%v at %s: bucket of %d responses the raw tables do not have", id.seriesID, time.Unix(id.start, 0).UTC(), g.n), len(got)
		}
	}
	if len(got) == 0 {
		return "no rollups yet", 0
	}
	if problem := checkCurrentWindows(c, raws); problem != "" {
		return problem, len(got)
	}
	return "", len(got)
}

// checkCurrentWindows compares every row of the rollups view with the window of the raw
// surveys ending at its window_end, and checks that every series with responses in a
// window has its row.
func checkCurrentWindows(c *cluster, raws []rawSurvey) string {
	sort.Slice(raws, func(i, j int) bool { return raws[i].at.Before(raws[j].at) })
	series := map[seriesID]*rawSeries{}
	for _, r := range raws {
		pos, neg := classify(r.survey, r.score)
		for d, k := range r.dims {
			id := seriesID{r.survey, d, k}
			s := series[id]
			if s == nil {
				s = &rawSeries{n: []int{0}, pos: []int{0}, neg: []int{0}, sum: []float64{0}}
				series[id] = s
			}
			last := len(s.n) - 1
			s.at = append(s.at, r.at)
			s.n = append(s.n, s.n[last]+1)
			s.pos = append(s.pos, s.pos[last]+b2i(pos))
			s.neg = append(s.neg, s.neg[last]+b2i(neg))
			s.sum = append(s.sum, s.sum[last]+r.score)
		}
	}
	rows := c.query("SELECT survey, `window`, dimension, key, window_end, responses, mean, pct_positive, pct_negative, " +
		"pct_easy, pct_difficult, pct_satisfied, nps FROM " + c.env["CLICKHOUSE_DATABASE"] + ".rollups")
	var end time.Time
	seen := map[seriesID]map[string]bool{}
	for _, r := range rows {
		survey, window, dim, key := *r[0].(*string), *r[1].(*string), *r[2].(*string), *r[3].(*string)
		end = *r[4].(*time.Time)
		id := seriesID{survey, dim, key}
		if seen[id] == nil {
			seen[id] = map[string]bool{}
		}
		seen[id][window] = true
		s := series[id]
		var n, pos, neg int
		var sum float64
		if s != nil {
			n, pos, neg, sum = s.window(end.Add(-windows[window]), end)
		}
		got := *r[5].(*uint64)
		if int(got) != n {
			return fmt.Sprintf("rollups %v %s at %s: %d responses, raw tables say %d", id, window, end, got, n)
		}
		pctPos, pctNeg := 100*float64(pos)/float64(n), 100*float64(neg)/float64(n)
		checks := map[string][2]float64{
			"mean":         {f64(r[6]), sum / float64(n)},
			"pct_positive": {f64(r[7]), pctPos},
			"pct_negative": {f64(r[8]), pctNeg},
		}
		// The survey-specific columns are set for their survey only.
		specific := map[int]*float64{9: nil, 10: nil, 11: nil, 12: nil}
		switch survey {
		case "ces":
			specific[9], specific[10] = &pctPos, &pctNeg
		case "csat":
			specific[11] = &pctPos
		case "nps":
			nps := pctPos - pctNeg
			specific[12] = &nps
		}
		for col, want := range specific {
			v := *r[col].(**float64)
			if (want == nil) != (v == nil) {
				return fmt.Sprintf("rollups %v %s at %s: column %d is null=%v", id, window, end, col, v == nil)
			}
			if v != nil {
				checks[fmt.Sprintf("column %d", col)] = [2]float64{*v, *want}
			}
		}
		for name, ch := range checks {
			if math.Abs(ch[0]-ch[1]) > 1e-9 {
				return fmt.Sprintf("rollups %v %s at %s: %s %.12f, raw tables say %.12f", id, window, end, name, ch[0], ch[1])
			}
		}
	}
	if end.IsZero() {
		return ""
	}
	for id, s := range series {
		for name, w := range windows {
			if n, _, _, _ := s.window(end.Add(-w), end); n > 0 && !seen[id][name] {
				return fmt.Sprintf("rollups %v %s at %s: no row, raw tables have %d responses", id, name, end, n)
			}
		}
	}
	return ""
}

// f64 reads a scanned Float64 or a non-null Nullable(Float64).
func f64(v any) float64 {
	switch p := v.(type) {
	case *float64:
		return *p
	case **float64:
		if *p != nil {
			return **p
		}
	}
	return math.NaN()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitRollups polls until the rollups match the raw tables. The deadline is generous: on
// a loaded machine inserts time out and are retried with back-off.
func (c *cluster) waitRollups() int {
	c.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		problem, n := c.checkRollups()
		if problem == "" {
			return n
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("rollups do not match the raw tables: %s", problem)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
