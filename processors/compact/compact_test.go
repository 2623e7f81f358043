package compact_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/processors/compact"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// horizon is the default change horizon: 1 h allowed lateness, 10 min attribution wait, a
// one-minute step and a minute.
const horizon = 72 * time.Minute

func open(t *testing.T) *clickhouse.Client {
	t.Helper()
	srv := chtest.Start(t)
	c, err := clickhouse.Open(t.Context(), srv.Config(srv.NewDatabase(t)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// marks is a settable set of partition watermarks.
type marks []time.Time

func (m *marks) read(context.Context) ([]time.Time, error) {
	return append([]time.Time(nil), (*m)...), nil
}

func (m *marks) set(ts ...time.Time) { *m = ts }

func newCompactor(t *testing.T, c *clickhouse.Client, m *marks, reg prometheus.Registerer) *compact.Compactor {
	return compact.New(compact.Options{Store: c, Watermarks: m.read, Horizon: horizon,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Registerer: reg})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// hour is one row of rollup_hours.
type hour struct {
	responses, positive, negative, version uint64
	scoreSum, squareSum                    float64
}

func readHours(t *testing.T, c *clickhouse.Client, final string) map[string]hour {
	t.Helper()
	rows, err := c.Conn().Query(t.Context(), "SELECT survey, dimension, key, toUInt32(hour_start), responses, score_sum, score_sq_sum, "+
		"positive, negative, version FROM "+c.Database()+".rollup_hours "+final)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]hour{}
	for rows.Next() {
		var (
			survey, dim, key string
			start            uint32
			h                hour
		)
		if err := rows.Scan(&survey, &dim, &key, &start, &h.responses, &h.scoreSum, &h.squareSum, &h.positive, &h.negative, &h.version); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s/%s/%s/%s", survey, dim, key, time.Unix(int64(start), 0).UTC().Format(time.RFC3339))
		if _, dup := out[id]; dup {
			t.Errorf("%s twice in rollup_hours %s", id, final)
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, c *clickhouse.Client, q string) uint64 {
	t.Helper()
	var n uint64
	if err := c.Conn().QueryRow(t.Context(), strings.ReplaceAll(q, "{db}", c.Database())).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The hours the compactor writes from buckets stored by the sink's writer are the sums of
// their minute buckets (the latest version of each, every partition), with the highest
// version; compacting again, or with no new buckets, changes and writes nothing.
func TestCompactedHoursAddUpTheBuckets(t *testing.T) {
	c := open(t)
	ctx := t.Context()
	first := time.Date(2026, 3, 1, 21, 3, 0, 0, time.UTC)
	type bucketKey struct {
		series, start string
		partition     uint16
	}
	latest := map[bucketKey]records.Bucket{}
	var batches [2]records.Batch
	var last time.Time
	for i := range 900 { // every 5 minutes for 75 hours: across three day boundaries
		start := first.Add(time.Duration(i) * 5 * time.Minute)
		last = start
		n := uint64(1 + i%4)
		b := records.Bucket{Survey: "ces", Dimension: "category", Key: fmt.Sprint("cat-", i%3), Start: start,
			Partition: uint16(i % 4), Responses: n, ScoreSum: float64(n) * 3.141593, SquareSum: float64(n) * 9.869605,
			Positive: n / 2, Negative: n / 3, Version: uint64(1000 + i)}
		if i%2 == 0 {
			b.Dimension, b.Key = "overall", ""
		}
		batches[0].Buckets = append(batches[0].Buckets, b)
		if i%5 == 0 { // a later message changed it: the same bucket again, higher version
			b.Responses, b.ScoreSum, b.Positive, b.Version = n+1, b.ScoreSum+6.000001, b.Positive+1, uint64(5000+i)
			batches[1].Buckets = append(batches[1].Buckets, b)
		}
		latest[bucketKey{b.Survey + "/" + b.Dimension + "/" + b.Key, start.Format(time.RFC3339), b.Partition}] = b
	}
	for i := range batches {
		if err := c.WriteBatch(ctx, &batches[i]); err != nil {
			t.Fatal(err)
		}
	}

	var m marks
	reg := prometheus.NewRegistry()
	cp := newCompactor(t, c, &m, reg)
	// Every partition well past the last bucket: every hour is final.
	end := last.Add(24 * time.Hour)
	m.set(end, end, end.Add(time.Hour), end)
	final := end.Add(-horizon).Truncate(time.Hour)
	until, err := cp.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !until.Equal(final) {
		t.Fatalf("compacted until %s, want %s", until, final)
	}
	if got, err := c.CompactedUntil(ctx); err != nil || !got.Equal(final) {
		t.Fatalf("CompactedUntil = %s, %v; want %s", got, err, final)
	}

	want := map[string]hour{}
	for _, b := range latest {
		id := fmt.Sprintf("%s/%s/%s/%s", b.Survey, b.Dimension, b.Key, b.Start.Truncate(time.Hour).Format(time.RFC3339))
		h := want[id]
		h.responses += b.Responses
		h.scoreSum += b.ScoreSum
		h.squareSum += b.SquareSum
		h.positive += b.Positive
		h.negative += b.Negative
		h.version = max(h.version, b.Version)
		want[id] = h
	}
	got := readHours(t, c, "FINAL")
	if len(got) != len(want) {
		t.Errorf("%d hours, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("no hour %s", id)
			continue
		}
		if g.responses != w.responses || g.positive != w.positive || g.negative != w.negative || g.version != w.version ||
			math.Abs(g.scoreSum-w.scoreSum) > 1e-6 || math.Abs(g.squareSum-w.squareSum) > 1e-6 {
			t.Errorf("hour %s = %+v, want %+v", id, g, w)
		}
	}
	if n := okRuns(t, reg); n != 1 {
		t.Errorf("cxlink_compact_runs_total{outcome=ok} = %v, want 1", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}

	// Nothing new, the watermarks a day further: nothing is written.
	doneRows := count(t, c, "SELECT count() FROM {db}.rollup_hours_done")
	hourRows := count(t, c, "SELECT count() FROM {db}.rollup_hours")
	m.set(end.Add(24*time.Hour), end.Add(24*time.Hour), end.Add(24*time.Hour), end.Add(24*time.Hour))
	if until, err := cp.RunOnce(ctx); err != nil || !until.IsZero() {
		t.Errorf("a run without new buckets compacted until %s, %v", until, err)
	}
	if n := count(t, c, "SELECT count() FROM {db}.rollup_hours_done"); n != doneRows {
		t.Errorf("a run without new buckets wrote %d rows into rollup_hours_done", n-doneRows)
	}
	if n := count(t, c, "SELECT count() FROM {db}.rollup_hours"); n != hourRows {
		t.Errorf("a run without new buckets wrote %d hours", n-hourRows)
	}

	// Compacting every hour again (a crash between the two inserts, a second holder for
	// a moment) writes the same rows: FINAL reads the same, and once merged the table
	// holds each hour once.
	if err := c.CompactHours(ctx, first.Truncate(time.Hour), final); err != nil {
		t.Fatal(err)
	}
	again := readHours(t, c, "FINAL")
	if len(again) != len(got) {
		t.Errorf("after compacting again: %d hours, before %d", len(again), len(got))
	}
	for id, h := range got {
		if again[id] != h {
			t.Errorf("hour %s compacted again = %+v, was %+v", id, again[id], h)
		}
	}
	for _, table := range []string{"rollup_hours", "rollup_hours_done"} {
		if err := c.Conn().Exec(ctx, "OPTIMIZE TABLE "+c.Database()+"."+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	merged := readHours(t, c, "")
	if len(merged) != len(got) || count(t, c, "SELECT count() FROM {db}.rollup_hours") != uint64(len(got)) {
		t.Errorf("after OPTIMIZE: %d rows, want %d", count(t, c, "SELECT count() FROM {db}.rollup_hours"), len(got))
	}
	if n := count(t, c, "SELECT count() FROM {db}.rollup_hours_done"); n != 1 {
		t.Errorf("rollup_hours_done holds %d rows once merged, want 1", n)
	}
	if got, err := c.CompactedUntil(ctx); err != nil || !got.Equal(final) {
		t.Errorf("CompactedUntil after compacting again = %s, %v; want %s", got, err, final)
	}
}

// okRuns is cxlink_compact_runs_total{outcome="ok"}.
func okRuns(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "cxlink_compact_runs_total" && l.GetName() == "outcome" && l.GetValue() == "ok" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no cxlink_compact_runs_total{outcome=\"ok\"}")
	return 0
}

// An hour is compacted only once every partition's watermark is at least its end plus
// the change horizon: before, a message received later could still change its buckets.
func TestHourWaitsForEveryWatermark(t *testing.T) {
	c := open(t)
	ctx := t.Context()
	h := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var b records.Batch
	for i, start := range []time.Time{h.Add(time.Minute), h.Add(59 * time.Minute), h.Add(61 * time.Minute)} {
		b.Buckets = append(b.Buckets, records.Bucket{Survey: "ces", Dimension: "overall", Start: start, Partition: uint16(i % 2),
			Responses: 1, ScoreSum: 5, Version: uint64(i + 1)})
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var m marks
	cp := newCompactor(t, c, &m, nil)
	limit := h.Add(time.Hour + horizon)
	for _, ms := range [][]time.Time{
		{limit, limit.Add(-time.Second)},     // one partition a second short
		{limit.Add(5 * time.Hour), {}},       // one partition without a watermark yet
		{limit.Add(-time.Second), limit},     // the other one short
		{limit.Add(-time.Hour), time.Time{}}, // both
	} {
		m.set(ms...)
		if until, err := cp.RunOnce(ctx); err != nil || !until.IsZero() {
			t.Errorf("watermarks %v: compacted until %s, %v", ms, until, err)
		}
		if n := count(t, c, "SELECT count() FROM {db}.rollup_hours"); n != 0 {
			t.Fatalf("watermarks %v: %d hours written", ms, n)
		}
	}
	m.set(limit, limit.Add(30*time.Minute))
	until, err := cp.RunOnce(ctx)
	if err != nil || !until.Equal(h.Add(time.Hour)) {
		t.Fatalf("compacted until %s, %v; want %s", until, err, h.Add(time.Hour))
	}
	got := readHours(t, c, "FINAL")
	want := map[string]hour{"ces/overall//2026-03-01T10:00:00Z": {responses: 2, scoreSum: 10, version: 2}}
	if len(got) != 1 || got["ces/overall//2026-03-01T10:00:00Z"] != want["ces/overall//2026-03-01T10:00:00Z"] {
		t.Errorf("hours %+v, want %+v (11:00 is not final yet)", got, want)
	}
}

func TestFinal(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		marks []time.Time
		want  time.Time
	}{
		{nil, time.Time{}},
		{[]time.Time{t0, {}}, time.Time{}},
		{[]time.Time{t0}, time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)},                       // 11:18 → 11:00
		{[]time.Time{t0.Add(time.Hour), t0}, time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)},    // the lowest
		{[]time.Time{t0.Add(42 * time.Minute)}, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, // 12:00 exactly
	} {
		if got := compact.Final(c.marks, horizon); !got.Equal(c.want) {
			t.Errorf("Final(%v) = %s, want %s", c.marks, got, c.want)
		}
	}
}
