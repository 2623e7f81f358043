package effort

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

type point struct {
	k   SeriesKey
	at  time.Time
	agg Aggregate
}

// brute sums the points of series k with end−w ≤ at < end, the window definition.
func brute(points []point, k SeriesKey, end time.Time, w time.Duration) Aggregate {
	var a Aggregate
	for _, p := range points {
		if p.k == k && !p.at.Before(end.Add(-w)) && p.at.Before(end) {
			a.add(p.agg)
		}
	}
	return a
}

func TestTickMatchesDefinition(t *testing.T) {
	step := time.Minute
	windows, err := ParseWindows("7d,1h,24h")
	if err != nil {
		t.Fatal(err)
	}
	if windows[0].Name != "1h" || windows[2].Length != 7*24*time.Hour {
		t.Fatalf("windows not sorted by length: %+v", windows)
	}
	s := NewState(3, step, windows)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	keys := []SeriesKey{{"ces", Overall, ""}, {"ces", Team, "blue"}, {"nps", Category, "refund"}}
	var points []point
	addRandom := func(n int, from, to time.Time) {
		for range n {
			at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
			score := rng.Int64N(7_000_000)
			p := point{keys[rng.IntN(len(keys))], at, Aggregate{1, score, uint64(rng.IntN(2)), uint64(rng.IntN(2)), score * score / 1_000_000}}
			points = append(points, p)
			s.Add(p.k, p.at, p.agg)
		}
	}
	addRandom(3000, t0.Add(-8*24*time.Hour), t0)

	latest := map[[5]string]records.Rollup{}
	collect := func(rows []records.Rollup) {
		for _, r := range rows {
			if r.Partition != 3 || r.Version != 7 {
				t.Fatalf("row not stamped: %+v", r)
			}
			latest[[5]string{r.Survey, r.Window, r.Dimension, r.Key, r.WindowEnd.Format(time.RFC3339)}] = r
		}
	}
	collect(s.Tick(t0, 7))
	collect(s.Tick(t0.Add(5*step), 7)) // ticks t0+1 … t0+5
	// Late events land before the last tick: their ticks must be written again.
	addRandom(200, t0.Add(-30*time.Minute), t0.Add(5*step))
	collect(s.Tick(t0.Add(6*step), 7))

	for tick := t0; !tick.After(t0.Add(6 * step)); tick = tick.Add(step) {
		for _, k := range keys {
			for _, w := range windows {
				want := brute(points, k, tick, w.Length)
				got, ok := latest[[5]string{k.Survey, w.Name, k.Dimension, k.Key, tick.Format(time.RFC3339)}]
				if want.Responses == 0 {
					if ok {
						t.Errorf("%v %s at %s: row for an empty window", k, w.Name, tick)
					}
					continue
				}
				if !ok || got.Responses != want.Responses || got.ScoreSum != float64(want.ScoreMicro)/1e6 ||
					got.Positive != want.Positive || got.Negative != want.Negative ||
					got.SquareSum != float64(want.SqMicro)/1e6 {
					t.Errorf("%v %s at %s: got %+v, want %+v", k, w.Name, tick, got, want)
				}
				if cur := s.Window(k, tick, w.Length); cur != want {
					t.Errorf("Window(%v, %s, %s) = %+v, want %+v", k, tick, w.Name, cur, want)
				}
			}
		}
	}
}

func TestEvictKeepsWhatLaterTicksRead(t *testing.T) {
	s := NewState(0, time.Minute, []Window{{"1h", time.Hour}})
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	k := SeriesKey{"ces", Overall, ""}
	s.Add(k, t0.Add(-90*time.Minute), Aggregate{Responses: 1, ScoreMicro: 1})
	s.Add(k, t0.Add(-30*time.Minute), Aggregate{Responses: 1, ScoreMicro: 2})
	s.Evict(t0.Add(-time.Hour))
	if got := s.Window(k, t0, time.Hour); got.Responses != 1 || got.ScoreMicro != 2 {
		t.Fatalf("after evict: %+v", got)
	}
	s.Evict(t0)
	if s.Series() != 0 {
		t.Fatalf("empty series kept: %d", s.Series())
	}
}

func TestStartAtRewritesRecentTicks(t *testing.T) {
	s := NewState(0, time.Minute, []Window{{"1h", time.Hour}})
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s.Add(SeriesKey{"ces", Overall, ""}, t0.Add(-10*time.Minute), Aggregate{Responses: 1})
	s.StartAt(t0.Add(-5 * time.Minute))
	rows := s.Tick(t0, 1)
	if len(rows) != 6 || !rows[0].WindowEnd.Equal(t0.Add(-5*time.Minute)) || !rows[5].WindowEnd.Equal(t0) {
		t.Fatalf("want ticks t0-5m … t0, got %d rows starting %v", len(rows), rows)
	}
}

func TestParseWindows(t *testing.T) {
	for _, bad := range []string{"", "0h", "-1h", "1.5d", "xd", "7x"} {
		if _, err := ParseWindows(bad); err == nil {
			t.Errorf("ParseWindows(%q): no error", bad)
		}
	}
}
