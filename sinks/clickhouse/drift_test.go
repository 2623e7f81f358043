package clickhouse_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/analytics"
	"github.com/cxlink/cxlink/processors/drift"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

func TestWindowTotalsAddsPartitions(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	end := at("2024-06-01T12:00:00Z")
	bucket := func(dim, key string, start time.Time, partition uint16, n uint64, sum, sq float64, neg, version uint64) records.Bucket {
		return records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: start,
			Partition: partition, Responses: n, ScoreSum: sum, SquareSum: sq, Negative: neg, Version: version}
	}
	if err := c.WriteBatch(ctx, &records.Batch{Buckets: []records.Bucket{
		bucket("category", "plan", end.Add(-time.Minute), 0, 2, 5, 13, 1, 1),
		bucket("category", "plan", end.Add(-time.Minute), 0, 3, 9, 29, 1, 2),   // written again: replaces the row above
		bucket("category", "plan", end.Add(-time.Hour), 1, 1, 6, 36, 0, 1),     // first bucket of the window
		bucket("category", "plan", end, 1, 7, 7, 7, 7, 1),                      // after the window
		bucket("category", "plan", end.Add(-61*time.Minute), 1, 9, 9, 9, 9, 1), // before it
		bucket("agent", "a-1", end.Add(-time.Minute), 1, 9, 9, 9, 9, 1),        // agents are not judged
		bucket("team", "blue", end.Add(-time.Minute), 2, 0, 0, 0, 0, 1),        // no responses
	}}); err != nil {
		t.Fatal(err)
	}
	hour := effort.Window{Name: "1h", Length: time.Hour}
	got, err := c.WindowTotals(ctx, hour, []time.Time{end})
	if err != nil {
		t.Fatal(err)
	}
	want := []records.WindowTotal{{Survey: "ces", Dimension: "category", Key: "plan", WindowEnd: end,
		Responses: 4, ScoreSum: 15, SquareSum: 65, Negative: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WindowTotals = %+v\nwant %+v", got, want)
	}
	got, err = c.WindowTotals(ctx, hour, []time.Time{end, end.Add(time.Minute)})
	sort.Slice(got, func(i, j int) bool { return got[i].WindowEnd.Before(got[j].WindowEnd) })
	// At end + 1m the first bucket has left the window and the one at end entered it.
	if err != nil || len(got) != 2 || got[0].Responses != 4 || got[1].Responses != 10 {
		t.Errorf("two ticks: %+v, %v", got, err)
	}
}

func TestDriftEventsRewrite(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	start := at("2024-06-01T12:00:00Z")
	e := records.DriftEvent{Survey: "ces", Dimension: "category", Key: "plan", Owner: "product", Detector: "mean",
		Direction: "worse", StartedAt: start, PeakAt: start, PeakStatistic: -3.5, PeakRecent: 3.9, PeakBaseline: 5.1,
		PeakRecentResponses: 40, PeakBaselineResponses: 900, RecentWindow: "1h", BaselineWindow: "7d", Version: 1}
	other := e
	other.Key, other.Owner = "login", "web"
	if err := c.WriteDriftEvents(ctx, []records.DriftEvent{e, other}); err != nil {
		t.Fatal(err)
	}
	open, err := c.OpenDriftEvents(ctx)
	if err != nil || len(open) != 2 {
		t.Fatalf("open episodes: %+v, %v", open, err)
	}
	// The episode peaks, then ends: each rewrite has a higher version; writing the last
	// one twice changes nothing.
	e.PeakAt, e.PeakStatistic, e.Version = start.Add(time.Minute), -6, 2
	ended := e
	ended.EndedAt, ended.Version = start.Add(5*time.Minute), 3
	for _, rows := range [][]records.DriftEvent{{e}, {ended}, {ended}} {
		if err := c.WriteDriftEvents(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	open, err = c.OpenDriftEvents(ctx)
	if err != nil || len(open) != 1 || open[0].Key != "login" {
		t.Fatalf("open episodes after the end: %+v, %v", open, err)
	}
	all, err := c.DriftEvents(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !reflect.DeepEqual(all[1], ended) {
		t.Errorf("episodes %+v\nwant the second to be %+v", all, ended)
	}
}

// Migrations whose ADD COLUMNs ran but that were not recorded (the process died in
// between) are applied again without error.
func TestMigrateAddColumnTwice(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	if err := c.Conn().Exec(ctx, "ALTER TABLE "+c.Database()+".schema_migrations DELETE WHERE version IN (5, 6)"); err != nil {
		t.Fatal(err)
	}
	// ALTER … DELETE is asynchronous: wait until the record is gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n uint64
		if err := c.Conn().QueryRow(ctx, "SELECT count() FROM "+c.Database()+".schema_migrations WHERE version IN (5, 6)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("migration record not deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrate again after an unrecorded ADD COLUMN: %v", err)
	}
	ms, err := c.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if (m.Version == 5 || m.Version == 6) && m.AppliedAt.IsZero() {
			t.Errorf("migration %d not recorded: %+v", m.Version, m)
		}
	}
}

// The drift stage judges teams' engagement from the pulses as stored and published by
// the analytics stage: each employee's latest answer per period, groups below the
// anonymity threshold nowhere. red's 6 employees answer 4-5 for four weekly periods,
// then 1-2 (one of them first answers 5 and corrects it to 1: counted once, as 1);
// tiny's 3 employees fall as hard.
func TestDriftJudgesStoredPulses(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	ctx := context.Background()
	week := 7 * 24 * time.Hour
	monday := at("2026-03-02T00:00:00Z")
	var b records.Batch
	var seq uint64
	pulse := func(team, emp string, k int, score float64, after time.Duration) {
		seq++
		at := monday.Add(time.Duration(k)*week + after)
		b.Pulses = append(b.Pulses, records.Pulse{Origin: records.Origin{ReceivedAt: at, Seq: seq, Version: records.Version(seq, 0)},
			ID: fmt.Sprintf("p%d", seq), EmployeeID: emp, Team: team, Question: "engagement", OccurredAt: at,
			Score: score, ScaleMin: 1, ScaleMax: 5})
	}
	for k := range 5 {
		for i := range 6 {
			score := float64(4 + i%2)
			if k == 4 {
				score = float64(1 + i%2)
			}
			if k == 4 && i == 0 {
				pulse("red", "e0", k, 5, time.Hour)
			}
			pulse("red", fmt.Sprintf("e%d", i), k, score, 2*time.Hour)
			if i < 3 {
				pulse("tiny", fmt.Sprintf("t%d", i), k, score, 2*time.Hour)
			}
		}
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	policy := pulses.DefaultConfig()
	tick := monday.Add(5*week + 3*time.Hour) // week 4 closed two hours ago
	publish, err := analytics.New(analytics.Config{Enabled: "on", Every: time.Second, Span: 4, MaxLag: 0, MinTeams: 4,
		MinResponses: 1, ImpactWindows: effort.MustParseWindows("7d"), ImpactMinResponses: 30}, analytics.Options{Store: c, Pulses: policy, Now: func() time.Time { return tick }})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // groups are published once settled for a run interval
	if err := publish.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	stage, err := drift.New(drift.Config{MinRecent: 30, MinBaseline: 100, Z: 3, ClearZ: 2, MinEffect: 0.3, EWMALambda: 0.2,
		PulseBaselinePeriods: 4, PulseMinBaselinePeriods: 2, Owners: drift.MustParseOwners("*=people")},
		drift.Options{Source: c, Sink: c, Windows: effort.MustParseWindows("1h,7d"), Step: time.Minute, MaxKeys: 50, Pulses: policy})
	if err != nil {
		t.Fatal(err)
	}
	if err := stage.Evaluate(ctx, tick); err != nil {
		t.Fatal(err)
	}
	events, err := c.DriftEvents(ctx, monday)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("episodes %+v; want red's engagement only", events)
	}
	e := events[0]
	// Latest answers: 1, 2, 1, 2, 1, 2 (mean 1.5) against 4, 5 × 12 (mean 4.5).
	if e.Survey != "engagement" || e.Dimension != "team" || e.Key != "red" || e.Owner != "people" || e.Direction != "worse" ||
		!e.StartedAt.Equal(tick) || e.PeakRecent != 1.5 || e.PeakBaseline != 4.5 || e.PeakRecentResponses != 6 ||
		e.PeakBaselineResponses != 24 || e.RecentWindow != "7d" || e.BaselineWindow != "4x7d" || e.PeakStatistic > -3 {
		t.Errorf("episode %+v", e)
	}
}

// With hourly ends, WindowTotals reads the compacted hours before max(compacted_until)
// and the buckets after it, and gives the windows the buckets alone give, also where a
// slot straddles the compacted hours' end; with minute ends it reads the buckets.
func TestWindowTotalsReadsCompactedHours(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	ctx := context.Background()
	end := at("2026-03-10T12:00:00Z")
	var b records.Batch
	for i := range 2000 { // every 11 minutes for 15 days
		n := uint64(1 + i%5)
		b.Buckets = append(b.Buckets, records.Bucket{Survey: "ces", Dimension: []string{"overall", "category", "team"}[i%3],
			Key: []string{"", "plan", "blue"}[i%3], Start: end.Add(-time.Duration(i) * 11 * time.Minute), Partition: uint16(i % 4),
			Responses: n, ScoreSum: float64(n) * 4.5, SquareSum: float64(n) * 20.25, Positive: n / 2, Negative: n / 3, Version: uint64(i + 1)})
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	read := func(w effort.Window, ends []time.Time) map[string]records.WindowTotal {
		t.Helper()
		rows, err := c.WindowTotals(ctx, w, ends)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]records.WindowTotal{}
		for _, r := range rows {
			out[r.Dimension+"/"+r.Key+"/"+r.WindowEnd.Format(time.RFC3339)] = r
		}
		return out
	}
	type read1 struct {
		w    effort.Window
		ends []time.Time
	}
	var reads []read1
	for _, w := range []effort.Window{{Name: "1h", Length: time.Hour}, {Name: "7d", Length: 7 * 24 * time.Hour}} {
		var hourly, twoHourly, minutes []time.Time
		for h := 0; h < 72; h++ {
			hourly = append(hourly, end.Add(-time.Duration(h)*time.Hour))
			twoHourly = append(twoHourly, end.Add(-time.Duration(2*h)*time.Hour))
			minutes = append(minutes, end.Add(-time.Duration(h)*37*time.Minute))
		}
		reads = append(reads, read1{w, hourly}, read1{w, minutes})
		if w.Length > time.Hour {
			reads = append(reads, read1{w, twoHourly})
		}
	}
	var before []map[string]records.WindowTotal
	for _, r := range reads {
		before = append(before, read(r.w, r.ends))
	}
	// Many ends are read as running totals, one end by copying slots into its window:
	// both give the same windows.
	for i, r := range reads {
		for _, e := range []time.Time{r.ends[0], r.ends[len(r.ends)/2], r.ends[len(r.ends)-1]} {
			for k, one := range read(r.w, []time.Time{e}) {
				many := before[i][k]
				if many.Responses != one.Responses || many.Positive != one.Positive || many.Negative != one.Negative ||
					math.Abs(many.ScoreSum-one.ScoreSum) > 1e-6 || math.Abs(many.SquareSum-one.SquareSum) > 1e-6 {
					t.Errorf("%s, %s: %+v among %d ends, %+v alone", r.w.Name, k, many, len(r.ends), one)
				}
			}
		}
	}
	// Compact up to an odd hour a day and a half back, then write a bucket below it again
	// (which the finality rule prevents): the hourly reads do not see it, so below the
	// compacted end they read the hours.
	cu := end.Add(-37 * time.Hour)
	if err := c.CompactHours(ctx, end.Add(-20*24*time.Hour), cu); err != nil {
		t.Fatal(err)
	}
	stale := records.Bucket{Survey: "ces", Dimension: "overall", Start: cu.Add(-3 * time.Hour), Responses: 1000, ScoreSum: 1000, Version: 1 << 40}
	if err := c.WriteBatch(ctx, &records.Batch{Buckets: []records.Bucket{stale}}); err != nil {
		t.Fatal(err)
	}
	for i, r := range reads {
		got, want := read(r.w, r.ends), before[i]
		minutes := r.ends[1].Sub(r.ends[0])%time.Hour != 0
		changed := 0
		for k, w := range want {
			g := got[k]
			same := g.Responses == w.Responses && g.Positive == w.Positive && g.Negative == w.Negative &&
				math.Abs(g.ScoreSum-w.ScoreSum) < 1e-6 && math.Abs(g.SquareSum-w.SquareSum) < 1e-6
			if !same {
				changed++
				if !minutes {
					t.Errorf("%s ends %s apart, %s: %+v after compaction, %+v before", r.w.Name, r.ends[0].Sub(r.ends[1]), k, g, w)
				}
			}
		}
		if len(got) != len(want) && !minutes {
			t.Errorf("%s: %d windows after compaction, %d before", r.w.Name, len(got), len(want))
		}
		if minutes && changed == 0 {
			t.Errorf("%s at minute ends: the bucket written again below the compacted end is not read", r.w.Name)
		}
	}
}
