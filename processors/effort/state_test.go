package effort

import (
	"math"
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

func TestBucketsMatchDefinition(t *testing.T) {
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
	seq := uint64(0)
	// latest keeps, per bucket, the row with the highest version, as ReplacingMergeTree does.
	latest := map[[4]string]records.Bucket{}
	addRandom := func(n int, from, to time.Time) {
		for range n {
			at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
			score := rng.Int64N(7_000_000)
			p := point{keys[rng.IntN(len(keys))], at, Aggregate{1, score, uint64(rng.IntN(2)), uint64(rng.IntN(2)), score * score / 1_000_000}}
			points = append(points, p)
			seq++
			s.Add(p.k, p.at, p.agg, seq)
			if rng.IntN(50) == 0 { // rows are taken at arbitrary points of the stream
				collect(t, latest, s.TakeChanged())
			}
		}
	}
	addRandom(3000, t0.Add(-8*24*time.Hour), t0)
	collect(t, latest, s.TakeChanged())
	// Late events land in buckets written before: those are written again.
	addRandom(200, t0.Add(-30*time.Minute), t0.Add(5*step))
	collect(t, latest, s.TakeChanged())
	if rows := s.TakeChanged(); rows != nil {
		t.Fatalf("nothing changed, yet %d rows", len(rows))
	}

	for k, row := range latest {
		at, _ := time.Parse(time.RFC3339, k[3])
		sk := SeriesKey{k[0], k[1], k[2]}
		want := brute(points, sk, at.Add(step), step)
		if row.Responses != want.Responses || row.ScoreSum != float64(want.ScoreMicro)/1e6 ||
			row.Positive != want.Positive || row.Negative != want.Negative || row.SquareSum != float64(want.SqMicro)/1e6 {
			t.Errorf("bucket %v: got %+v, want %+v", k, row, want)
		}
	}
	for _, p := range points {
		if _, ok := latest[[4]string{p.k.Survey, p.k.Dimension, p.k.Key, p.at.Truncate(step).Format(time.RFC3339)}]; !ok {
			t.Fatalf("no row for the bucket of %+v", p)
		}
	}
	for tick := t0; !tick.After(t0.Add(6 * step)); tick = tick.Add(step) {
		for _, k := range keys {
			for _, w := range windows {
				want := brute(points, k, tick, w.Length)
				if got := s.Window(k, tick, w.Length); got != want {
					t.Errorf("Window(%v, %s, %s) = %+v, want %+v", k, tick, w.Name, got, want)
				}
				if got := sumRows(latest, k, tick, w.Length); got != want {
					t.Errorf("rows of %v over %s at %s sum to %+v, want %+v", k, w.Name, tick, got, want)
				}
			}
		}
	}
}

// collect keeps the highest version of every bucket row, and checks the rows' stamps.
func collect(t *testing.T, latest map[[4]string]records.Bucket, rows []records.Bucket) {
	t.Helper()
	for _, r := range rows {
		if r.Partition != 3 || r.Version == 0 {
			t.Fatalf("row not stamped: %+v", r)
		}
		k := [4]string{r.Survey, r.Dimension, r.Key, r.Start.Format(time.RFC3339)}
		if old, ok := latest[k]; ok && old.Version >= r.Version {
			t.Fatalf("bucket %v written again with version %d after %d", k, r.Version, old.Version)
		}
		latest[k] = r
	}
}

// sumRows reads a window the way the rollups view does: the sum of its bucket rows.
func sumRows(latest map[[4]string]records.Bucket, k SeriesKey, end time.Time, w time.Duration) Aggregate {
	var a Aggregate
	for key, r := range latest {
		at, _ := time.Parse(time.RFC3339, key[3])
		if key[0] == k.Survey && key[1] == k.Dimension && key[2] == k.Key && !at.Before(end.Add(-w)) && at.Before(end) {
			a.add(Aggregate{r.Responses, int64(math.Round(r.ScoreSum * 1e6)), r.Positive, r.Negative, int64(math.Round(r.SquareSum * 1e6))})
		}
	}
	return a
}

func TestBucketVersionIsTheLastChangingMessage(t *testing.T) {
	s := NewState(0, time.Minute, []Window{{"1h", time.Hour}})
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	k := SeriesKey{"ces", Overall, ""}
	s.Add(k, t0, Aggregate{Responses: 1, ScoreMicro: 1_000_000}, 10)
	s.Add(k, t0.Add(time.Minute), Aggregate{Responses: 1, ScoreMicro: 2_000_000}, 11)
	s.Add(k, t0.Add(30*time.Second), Aggregate{Responses: 1, ScoreMicro: 3_000_000}, 12)
	rows := s.TakeChanged()
	if len(rows) != 2 || rows[0].Version != 12 || rows[0].Responses != 2 || rows[0].ScoreSum != 4 ||
		rows[1].Version != 11 || !rows[1].Start.Equal(t0.Add(time.Minute)) {
		t.Fatalf("rows: %+v", rows)
	}
}

func TestEvictKeepsWhatLaterTicksRead(t *testing.T) {
	s := NewState(0, time.Minute, []Window{{"1h", time.Hour}})
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	k := SeriesKey{"ces", Overall, ""}
	s.Add(k, t0.Add(-90*time.Minute), Aggregate{Responses: 1, ScoreMicro: 1}, 1)
	s.Add(k, t0.Add(-30*time.Minute), Aggregate{Responses: 1, ScoreMicro: 2}, 2)
	s.Evict(t0.Add(-time.Hour))
	if s.Window(k, t0, time.Hour).Responses != 1 || s.Window(k, t0.Add(-time.Hour), time.Hour).Responses != 1 {
		t.Fatal("a bucket not yet taken was evicted")
	}
	s.TakeChanged()
	s.Evict(t0.Add(-time.Hour))
	if got := s.Window(k, t0, time.Hour); got.Responses != 1 || got.ScoreMicro != 2 {
		t.Fatalf("after evict: %+v", got)
	}
	if got := s.Window(k, t0.Add(-time.Hour), time.Hour); got.Responses != 0 {
		t.Fatalf("evicted bucket still read: %+v", got)
	}
	s.Evict(t0)
	if s.Series() != 0 {
		t.Fatalf("empty series kept: %d", s.Series())
	}
}

func TestParseWindows(t *testing.T) {
	for _, bad := range []string{"", "0h", "-1h", "1.5d", "xd", "7x"} {
		if _, err := ParseWindows(bad); err == nil {
			t.Errorf("ParseWindows(%q): no error", bad)
		}
	}
}
