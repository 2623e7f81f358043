package compact_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/compact"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// dayTotals reads survey_days or ticket_days under FINAL, or the same sums straight from
// the raw tables, as "key: values" lines by (survey,) category and day; all-zero rows
// (categories that moved away) are left out.
func dayTotals(t *testing.T, c *clickhouse.Client, q string) map[string]string {
	t.Helper()
	rows, err := c.Conn().Query(t.Context(), fmt.Sprintf(q, c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var (
			key    string
			counts [4]uint64
			sums   [2]float64
		)
		if err := rows.Scan(&key, &counts[0], &counts[1], &counts[2], &counts[3], &sums[0], &sums[1]); err != nil {
			t.Fatal(err)
		}
		if counts == [4]uint64{} && sums == [2]float64{} {
			continue
		}
		out[key] = fmt.Sprintf("%v %.6f %.6f", counts, math.Round(sums[0]*1e6)/1e6, math.Round(sums[1]*1e6)/1e6)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	surveyDays = `SELECT concat(survey, '/', category, '/', toString(day_start)), responses, positive, negative, late, score_sum, score_sq_sum
		FROM %s.survey_days FINAL`
	surveysRaw = `SELECT concat(survey, '/', category, '/', toString(toDateTime(intDiv(toUInt32(occurred_at), 86400) * 86400, 'UTC'))) AS k,
		count(), sum(multiIf(survey = 'ces', standard_score >= 5, survey = 'csat', standard_score >= 4, standard_score >= 9)),
		sum(multiIf(survey = 'ces', standard_score <= 3, survey = 'csat', standard_score <= 2, standard_score <= 6)), sum(late),
		sum(standard_score), sum(standard_score * standard_score)
		FROM %s.survey_responses FINAL GROUP BY k`
	ticketDays = `SELECT concat(category, '/', toString(day_start)), solved, handle_count, toUInt64(0), toUInt64(0), handle_seconds_sum, toFloat64(0) FROM %s.ticket_days FINAL`
	ticketsRaw = `SELECT concat(category, '/', toString(toDateTime(intDiv(toUInt32(occurred_at), 86400) * 86400, 'UTC'))) AS k,
		count(), count(handle_seconds), toUInt64(0), toUInt64(0), toFloat64(ifNull(sum(handle_seconds), 0)), toFloat64(0)
		FROM %s.tickets FINAL WHERE status = 'solved' GROUP BY k`
)

func checkDays(t *testing.T, c *clickhouse.Client, when string) {
	t.Helper()
	for _, q := range [][2]string{{surveyDays, surveysRaw}, {ticketDays, ticketsRaw}} {
		got, want := dayTotals(t, c, q[0]), dayTotals(t, c, q[1])
		if len(got) != len(want) {
			t.Errorf("%s: %d daily totals, the raw rows give %d:\n got %v\nwant %v", when, len(got), len(want), got, want)
			continue
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s = %q, the raw rows give %q", when, k, got[k], w)
			}
		}
	}
}

func survey(id, kind, category string, at time.Time, score float64, seq uint64, late bool) records.Survey {
	max := 7.0
	if kind == "csat" {
		max = 5
	}
	return records.Survey{Origin: records.Origin{ReceivedAt: at, Seq: seq, Version: records.Version(seq, 0), Late: late},
		ID: id, Survey: kind, OccurredAt: at, Source: "test", Score: score, ScaleMin: 1, ScaleMax: max, StandardScore: score,
		Category: category}
}

func solved(id, category string, at time.Time, handle *float64, seq uint64) records.Ticket {
	return records.Ticket{Origin: records.Origin{ReceivedAt: at, Seq: seq, Version: records.Version(seq, 0)},
		ID: id, TicketID: "t-" + id, Status: "solved", OccurredAt: at, Source: "test", Category: category, HandleSeconds: handle}
}

// The daily totals are the raw tables added up per day, late answers included: after the
// first run (which adds up the history written before), after new rows for old and new
// days, and after a row moved to another category; a run without new rows writes nothing.
func TestDaysAddUpTheRawRows(t *testing.T) {
	c := open(t)
	ctx := t.Context()
	day1 := time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)
	day2, day3 := day1.Add(24*time.Hour), day1.Add(48*time.Hour) // day3 is in April
	h := func(s float64) *float64 { return &s }

	// History written before the first run, straight into the raw tables (no markers):
	// the first run adds up every day they hold.
	history := records.Batch{
		Surveys: []records.Survey{survey("s1", "ces", "billing", day1.Add(time.Hour), 2, 1, false),
			survey("s2", "ces", "billing", day1.Add(23*time.Hour+59*time.Minute), 6.5, 2, true),
			survey("s3", "csat", "billing", day1.Add(3*time.Hour), 4, 3, false)},
		Tickets: []records.Ticket{solved("e1", "billing", day1.Add(2*time.Hour), h(600), 4), solved("e2", "billing", day1.Add(5*time.Hour), nil, 5)},
	}
	if err := c.WriteBatch(ctx, &history); err != nil {
		t.Fatal(err)
	}
	if err := c.Conn().Exec(ctx, "TRUNCATE TABLE "+c.Database()+".raw_days_changed"); err != nil {
		t.Fatal(err)
	}
	var m marks
	reg := prometheus.NewRegistry()
	cp := newCompactor(t, c, &m, reg)
	if _, err := cp.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	checkDays(t, c, "after the first run")
	if n := count(t, c, "SELECT count() FROM {db}.survey_days FINAL WHERE day_start = toDateTime("+fmt.Sprint(day1.Unix())+")"); n != 2 {
		t.Errorf("day 1 has %d survey totals, want 2 (ces and csat of billing)", n)
	}

	// New rows for an old day (a late answer, an import), two new days across a month
	// boundary, and a ticket event that is not a solve.
	batch := records.Batch{
		Surveys: []records.Survey{survey("s4", "ces", "billing", day1.Add(12*time.Hour), 7, 10, true),
			survey("s5", "ces", "shipping", day2.Add(time.Minute), 3, 11, false),
			survey("s6", "ces", "shipping", day3.Add(time.Minute), 1, 12, false)},
		Tickets: []records.Ticket{solved("e3", "shipping", day3.Add(time.Hour), h(120.5), 13)},
	}
	created := solved("e4", "shipping", day3, nil, 14)
	created.Status = "created"
	batch.Tickets = append(batch.Tickets, created)
	if err := c.WriteBatch(ctx, &batch); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	checkDays(t, c, "after new rows")

	// s5 written again with a higher version in another category (an attribution): its
	// old category's total for day 2 drops to zero.
	moved := survey("s5", "ces", "billing", day2.Add(time.Minute), 3, 11, false)
	moved.Version = records.Version(11, 1)
	if err := c.WriteBatch(ctx, &records.Batch{Surveys: []records.Survey{moved}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	checkDays(t, c, "after a row moved to another category")

	// Nothing new: nothing written, and a run within the marker slack adds up the same
	// days again to the same totals.
	rows := count(t, c, "SELECT count() FROM {db}.survey_days") + count(t, c, "SELECT count() FROM {db}.ticket_days")
	done := count(t, c, "SELECT count() FROM {db}.raw_days_done")
	if err := c.SetDaysDone(ctx, time.Now().Add(compact.MarkerSlack+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "SELECT count() FROM {db}.survey_days") + count(t, c, "SELECT count() FROM {db}.ticket_days"); n != rows {
		t.Errorf("a run without new rows wrote %d daily totals", n-rows)
	}
	if n := count(t, c, "SELECT count() FROM {db}.raw_days_done"); n != done+1 {
		t.Errorf("a run without new rows wrote %d rows into raw_days_done, want none", n-done-1)
	}
	checkDays(t, c, "after an idle run")
	if n := okRuns(t, reg); n != 4 {
		t.Errorf("cxlink_compact_runs_total{outcome=ok} = %v, want 4", n)
	}
}

// A marker stamped before the last run's start but stored after that run read the
// markers is still read: the next run reads MarkerSlack before the last start.
func TestDaysMarkerSlack(t *testing.T) {
	c := open(t)
	ctx := t.Context()
	var m marks
	cp := newCompactor(t, c, &m, nil)
	if _, err := cp.RunOnce(ctx); err != nil { // nothing yet
		t.Fatal(err)
	}
	now, err := c.ServerTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := now.Add(-time.Hour)
	if err := c.WriteBatch(ctx, &records.Batch{Surveys: []records.Survey{survey("s1", "ces", "billing", at, 5, 1, false)}}); err != nil {
		t.Fatal(err)
	}
	// The run that read the markers just before this one was stored, a minute later.
	if err := c.SetDaysDone(ctx, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	checkDays(t, c, "after a late marker")
	if n := count(t, c, "SELECT count() FROM {db}.survey_days FINAL"); n != 1 {
		t.Errorf("%d survey totals, want 1", n)
	}

	// Many batches of one day within a minute leave one marker once merged.
	for i := range 5 {
		s := survey(fmt.Sprint("m", i), "ces", "billing", at, 4, uint64(10+i), false)
		if err := c.WriteBatch(ctx, &records.Batch{Surveys: []records.Survey{s}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Conn().Exec(ctx, "OPTIMIZE TABLE "+c.Database()+".raw_days_changed FINAL"); err != nil {
		t.Fatal(err)
	}
	if n, minutes := count(t, c, "SELECT count() FROM {db}.raw_days_changed"),
		count(t, c, "SELECT uniqExact(toStartOfMinute(changed_at)) FROM {db}.raw_days_changed"); n != minutes {
		t.Errorf("raw_days_changed holds %d markers of one day over %d minutes, want one a minute", n, minutes)
	}
}
