package clickhouse_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/processors/retention"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// partitionRows counts the rows of each partition of a table, FINAL aside.
func partitionRows(t *testing.T, c *clickhouse.Client) map[string]uint64 {
	t.Helper()
	rows, err := c.Conn().Query(context.Background(), "SELECT table, partition_id, sum(rows) FROM system.parts "+
		"WHERE database = ? AND active GROUP BY table, partition_id", c.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var table, id string
		var n uint64
		if err := rows.Scan(&table, &id, &n); err != nil {
			t.Fatal(err)
		}
		out[table+"/"+id] = n
	}
	return out
}

// Every retained table, each with partitions on both sides of its cutoff, and the
// partitions a retention of 100 days (raw), 10 days (rollups) and 60 days (results) drops
// at 2026-06-15 12:00: those whose whole range ended by the cutoff, and no other.
func TestRetentionDropsOnlyWhatIsOlder(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	ctx := context.Background()
	now := at("2026-06-15T12:00:00Z")
	// Cutoffs: raw 2026-03-07 12:00, rollups 2026-06-05 12:00, results 2026-04-16 12:00.
	cfg := retention.Config{Raw: model.Duration(100 * 24 * time.Hour), Rollups: model.Duration(10 * 24 * time.Hour),
		Results: model.Duration(60 * 24 * time.Hour)}

	var b records.Batch
	var seq uint64
	origin := func() records.Origin { seq++; return records.Origin{ReceivedAt: now, Seq: seq, Version: seq} }
	for _, day := range []string{"2026-01-31T23:59:59Z", "2026-02-20T10:00:00Z", "2026-03-05T10:00:00Z", "2026-06-01T10:00:00Z"} {
		ts := at(day)
		b.Surveys = append(b.Surveys, records.Survey{Origin: origin(), ID: "s" + day, Survey: "ces", OccurredAt: ts,
			Score: 5, ScaleMin: 1, ScaleMax: 7, StandardScore: 5})
		b.Tickets = append(b.Tickets, records.Ticket{Origin: origin(), ID: "t" + day, TicketID: "T" + day, Status: "created", OccurredAt: ts})
		b.Pulses = append(b.Pulses, records.Pulse{Origin: origin(), ID: "p" + day, EmployeeID: "e", Team: "red",
			Question: "engagement", OccurredAt: ts, Score: 4, ScaleMin: 1, ScaleMax: 5})
	}
	for _, day := range []string{"2026-06-03T23:59:00Z", "2026-06-04T23:59:00Z", "2026-06-05T00:00:00Z", "2026-06-05T11:00:00Z", "2026-06-14T10:00:00Z"} {
		b.Buckets = append(b.Buckets, records.Bucket{Survey: "ces", Dimension: "overall", Start: at(day), Responses: 1, ScoreSum: 5, Version: 1})
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var teams []records.TeamPeriod
	var links []records.Linkage
	var impact []records.EffortImpact
	for _, day := range []string{"2026-03-30T00:00:00Z", "2026-04-13T00:00:00Z", "2026-05-04T00:00:00Z"} {
		teams = append(teams, records.TeamPeriod{Period: "7d", PeriodStart: at(day), Team: "red"})
		links = append(links, records.Linkage{Period: "7d", PeriodStart: at(day), Scope: "period", Status: "too_few_teams"})
		impact = append(impact, records.EffortImpact{Window: "7d", WindowEnd: at(day), Category: "billing", Status: "ok"})
	}
	if err := c.WriteAnalytics(ctx, teams, links, impact, now, 1); err != nil {
		t.Fatal(err)
	}
	episode := func(started, ended string, version uint64) records.DriftEvent {
		e := records.DriftEvent{Survey: "ces", Dimension: "category", Key: started, Detector: "mean", Direction: "worse",
			StartedAt: at(started), PeakAt: at(started), Version: version}
		if ended != "" {
			e.EndedAt = at(ended)
		}
		return e
	}
	if err := c.WriteDriftEvents(ctx, []records.DriftEvent{
		episode("2026-01-05T00:00:00Z", "", 1),
		episode("2026-01-05T00:00:00Z", "2026-04-20T00:00:00Z", 2), // ended after the cutoff: its partition stays
		episode("2026-02-10T00:00:00Z", "", 1),                     // still open: its partition stays
		episode("2026-03-01T00:00:00Z", "", 1),
		episode("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", 2), // ended long ago: dropped
		episode("2026-05-01T00:00:00Z", "", 1),
	}); err != nil {
		t.Fatal(err)
	}
	// The per-tick table of earlier versions, which the rollups' retention empties.
	if err := c.Conn().Exec(ctx, "INSERT INTO "+c.Database()+".rollup_partials (survey, window_end, version) "+
		"SELECT 'ces', toDateTime('2026-06-01 00:00:00', 'UTC'), 1"); err != nil {
		t.Fatal(err)
	}

	// Compacted hours, by month: May has ended before the cutoff, June has not.
	if err := c.Conn().Exec(ctx, "INSERT INTO "+c.Database()+".rollup_hours (survey, dimension, key, hour_start, responses, version) "+
		"SELECT 'ces', 'overall', '', toDateTime(arrayJoin(['2026-05-31 23:00:00', '2026-06-01 00:00:00']), 'UTC'), 1, 1"); err != nil {
		t.Fatal(err)
	}

	// The raw tables' daily totals, by month: kept as long as the raw rows.
	if err := c.CompactDays(ctx, at("2026-01-01T00:00:00Z"), at("2026-07-01T00:00:00Z"), 1); err != nil {
		t.Fatal(err)
	}

	before := partitionRows(t, c)
	reg := prometheus.NewRegistry()
	job := retention.New(cfg, retention.Options{Store: c, Logger: testLogger(t), Registerer: reg, Now: func() time.Time { return now }})
	dropped, err := job.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range dropped {
		got = append(got, p.Table+"/"+p.ID)
	}
	slices.Sort(got)
	want := []string{
		"drift_events/202603",
		"effort_impact/202603",
		"linkage/202603",
		"rollup_buckets/20260603", "rollup_buckets/20260604",
		"rollup_hours/202605",
		"rollup_partials/20260601",
		"survey_days/202601", "survey_days/202602",
		"survey_responses/202601", "survey_responses/202602",
		"team_periods/202603",
		"tickets/202601", "tickets/202602",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dropped %v\nwant    %v", got, want)
	}
	after := partitionRows(t, c)
	for key, n := range before {
		switch {
		case slices.Contains(want, key):
			if after[key] != 0 {
				t.Errorf("%s still has %d rows", key, after[key])
			}
		case after[key] != n:
			t.Errorf("%s: %d rows before, %d after; it is not older than its retention", key, n, after[key])
		}
	}
	for table, n := range map[string]float64{"tickets": 2, "linkage": 1, "rollup_buckets": 2, "rollup_hours": 1, "drift_events": 1} {
		if got := counter(t, reg, "cxlink_retention_dropped_partitions_total", table); got != n {
			t.Errorf("cxlink_retention_dropped_partitions_total{table=%s} = %v, want %v", table, got, n)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}

	// A second run finds nothing more to drop.
	if again, err := job.RunOnce(ctx); err != nil || len(again) != 0 {
		t.Errorf("second run dropped %v, %v", again, err)
	}
	// With every retention 0, nothing ever is.
	keepAll := retention.New(retention.Config{}, retention.Options{Store: c, Now: func() time.Time { return now.AddDate(10, 0, 0) }})
	if none, err := keepAll.RunOnce(ctx); err != nil || len(none) != 0 {
		t.Errorf("retention 0 dropped %v, %v", none, err)
	}
}

// The rollups over the kept range are what they were before retention ran: the current
// windows (the view rollups), and windows over time (WindowTotals) ending anywhere from
// the first kept day plus the longest window on.
func TestRetentionKeepsRollupsOverTheKeptRange(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	ctx := context.Background()
	step := time.Minute
	// The view reads the windows ending this minute: compare it within one minute.
	if s := time.Now().Second(); s > 50 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	now := time.Now().UTC()
	windows, _ := effort.ParseWindows("1h,24h,7d")
	if err := c.WriteWindows(ctx, step, windows); err != nil {
		t.Fatal(err)
	}
	// 20 days of buckets, one every 17 minutes, spread over keys and partitions.
	var b records.Batch
	first := now.Truncate(time.Minute).Add(-20 * 24 * time.Hour)
	for i := 0; ; i++ {
		start := first.Add(time.Duration(i) * 17 * time.Minute)
		if !start.Before(now.Truncate(time.Minute)) {
			break
		}
		n := uint64(1 + i%5)
		b.Buckets = append(b.Buckets, records.Bucket{Survey: "ces", Dimension: "category", Key: fmt.Sprint("cat-", i%3),
			Start: start, Partition: uint16(i % 4), Responses: n, ScoreSum: float64(n * uint64(1+i%7)),
			SquareSum: float64(n * uint64(1+i%7) * uint64(1+i%7)), Positive: n / 2, Negative: n / 3, Version: uint64(i + 1)})
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	keep := 8 * 24 * time.Hour // the longest window and a day, the least allowed
	cfg := retention.Config{Rollups: model.Duration(keep)}
	if err := cfg.Validate(7*24*time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	// The first kept day: the day holding now − keep.
	kept := now.Add(-keep).Truncate(24 * time.Hour)
	var ends []time.Time
	for e := kept.Add(7 * 24 * time.Hour); e.Before(now); e = e.Add(37 * time.Minute) {
		ends = append(ends, e)
	}
	read := func() (map[string][]records.WindowTotal, []string) {
		totals := map[string][]records.WindowTotal{}
		for _, w := range windows {
			got, err := c.WindowTotals(ctx, w, ends)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b records.WindowTotal) int {
				return a.WindowEnd.Compare(b.WindowEnd)*4 + compareStrings(a.Key, b.Key)
			})
			totals[w.Name] = got
		}
		rows, err := c.Conn().Query(ctx, "SELECT `window`, key, responses, mean FROM "+c.Database()+".rollups ORDER BY `window`, key")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var view []string
		for rows.Next() {
			var (
				w, key string
				n      uint64
				mean   *float64
			)
			if err := rows.Scan(&w, &key, &n, &mean); err != nil {
				t.Fatal(err)
			}
			view = append(view, fmt.Sprintf("%s %s %d %v", w, key, n, *mean))
		}
		return totals, view
	}
	totalsBefore, viewBefore := read()
	if len(totalsBefore["7d"]) < 3*len(ends)-3 || len(viewBefore) < 9 {
		t.Fatalf("too little to compare: %d 7d windows, view %v", len(totalsBefore["7d"]), viewBefore)
	}
	job := retention.New(cfg, retention.Options{Store: c, Logger: testLogger(t), Now: func() time.Time { return now }})
	dropped, err := job.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) < 11 {
		t.Errorf("dropped %d daily partitions of 20 days with a retention of 8, want at least 11", len(dropped))
	}
	totalsAfter, viewAfter := read()
	if !reflect.DeepEqual(totalsAfter, totalsBefore) {
		t.Errorf("windows over the kept range changed")
	}
	if !time.Now().Truncate(step).Equal(now.Truncate(step)) {
		t.Fatalf("the minute turned during the test: the view's windows moved")
	}
	if !reflect.DeepEqual(viewAfter, viewBefore) {
		t.Errorf("rollups view changed:\n%v\n%v", viewBefore, viewAfter)
	}
	var oldest time.Time
	if err := c.Conn().QueryRow(ctx, "SELECT min(bucket_start) FROM "+c.Database()+".rollup_buckets").Scan(&oldest); err != nil {
		t.Fatal(err)
	}
	if oldest.Before(kept) || oldest.After(kept.Add(17*time.Minute)) {
		t.Errorf("oldest bucket left %v, want the first of %v", oldest, kept)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Every retained table is partitioned so that the retention can read its partitions'
// time ranges, on the migrated schema.
func TestRetentionReadsEveryPartitionKey(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	if _, err := c.Partitions(context.Background()); err != nil {
		t.Fatal(err)
	}
}
