package clickhouse_test

import (
	"context"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The late answers' windows: only late rows, by occurred_at, per dimension as
// attributed, the latest version of each, classified and squared as the processors do.
func TestLateWindowTotals(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	end := at("2024-06-01T12:00:00Z")
	survey := func(id string, score float64, occurred time.Time, late bool, category string, version uint64) records.Survey {
		return records.Survey{ID: id, Survey: "ces", Score: score, ScaleMin: 1, ScaleMax: 7, StandardScore: score,
			OccurredAt: occurred, Category: category, Origin: records.Origin{ReceivedAt: end, Late: late, Version: version}}
	}
	if err := c.WriteBatch(ctx, &records.Batch{Surveys: []records.Survey{
		survey("a", 2, end.Add(-30*time.Minute), true, "", 1),
		survey("a", 2, end.Add(-30*time.Minute), true, "billing", 2),  // attributed later: replaces the row above
		survey("b", 6, end.Add(-time.Hour), true, "billing", 1),       // the window's first second
		survey("c", 4, end.Add(-10*time.Minute), false, "billing", 1), // on time: in the buckets, not here
		survey("d", 1, end, true, "billing", 1),                       // after the window
	}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.LateWindowTotals(ctx, effort.Window{Name: "1h", Length: time.Hour}, []time.Time{end})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Dimension < got[j].Dimension })
	want := []records.WindowTotal{
		{Survey: "ces", Dimension: "category", Key: "billing", WindowEnd: end, Responses: 2, ScoreSum: 8, SquareSum: 40, Positive: 1, Negative: 1},
		{Survey: "ces", Dimension: "overall", Key: "", WindowEnd: end, Responses: 2, ScoreSum: 8, SquareSum: 40, Positive: 1, Negative: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LateWindowTotals = %+v\nwant %+v", got, want)
	}
}
