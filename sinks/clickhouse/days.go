package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cxlink/cxlink/processors/records"
)

// The daily totals of the raw tables (processors/compact, docs/storage.md).
const (
	// TableSurveyDays adds up survey_responses per survey, category and UTC day.
	TableSurveyDays = "survey_days"
	// TableTicketDays adds up the solved ticket events per category and UTC day.
	TableTicketDays = "ticket_days"
	// TableDaysChanged names the days whose raw rows were written, with when.
	TableDaysChanged = "raw_days_changed"
	// TableDaysDone says how far the compaction has read TableDaysChanged.
	TableDaysDone = "raw_days_done"
)

const day = 24 * time.Hour

// changedDays are the UTC days the batch's survey and ticket rows occurred on, sorted.
func changedDays(b *records.Batch) []time.Time {
	var days []time.Time
	for i := range b.Surveys {
		days = append(days, b.Surveys[i].OccurredAt.UTC().Truncate(day))
	}
	for i := range b.Tickets {
		days = append(days, b.Tickets[i].OccurredAt.UTC().Truncate(day))
	}
	slices.SortFunc(days, time.Time.Compare)
	return slices.Compact(days)
}

// markDaysChanged records the days of the batch's raw rows, once they are stored: the
// compaction adds those days up again.
func (c *Client) markDaysChanged(ctx context.Context, b *records.Batch) error {
	days := changedDays(b)
	if len(days) == 0 {
		return nil
	}
	return c.insert(ctx, TableDaysChanged, "day_start", len(days), func(batch driver.Batch, i int) error {
		return batch.Append(days[i])
	})
}

// ServerTime is the server's clock: the markers' changed_at is taken from it.
func (c *Client) ServerTime(ctx context.Context) (time.Time, error) {
	var sec uint32
	if err := c.conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&sec); err != nil {
		return time.Time{}, fmt.Errorf("read the server's clock: %w", err)
	}
	return time.Unix(int64(sec), 0).UTC(), nil
}

// DaysDone is the server time up to which the compaction has read the markers; the zero
// time (1970) before its first run.
func (c *Client) DaysDone(ctx context.Context) (time.Time, error) {
	var sec uint32
	if err := c.conn.QueryRow(ctx, "SELECT toUInt32(max(done_until)) FROM "+c.cfg.Database+"."+TableDaysDone).Scan(&sec); err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", TableDaysDone, err)
	}
	return time.Unix(int64(sec), 0).UTC(), nil
}

// ChangedDays lists, sorted, the days of the markers written at or after since (from the
// start of its minute); with a zero since, every day the raw tables hold rows of.
func (c *Client) ChangedDays(ctx context.Context, since time.Time) ([]time.Time, error) {
	db := c.cfg.Database
	// Whole minutes: the rows of one day and minute merge into one, which keeps one of
	// their instants.
	q := "SELECT DISTINCT toUInt32(day_start) AS d FROM " + db + "." + TableDaysChanged +
		" WHERE changed_at >= toStartOfMinute(toDateTime(" + unix(since) + ", 'UTC')) ORDER BY d"
	if since.Unix() <= 0 {
		q = "SELECT DISTINCT toUInt32(d) AS d FROM (SELECT intDiv(toUInt32(occurred_at), 86400) * 86400 AS d FROM " + db + "." + TableSurveys +
			" UNION ALL SELECT intDiv(toUInt32(occurred_at), 86400) * 86400 AS d FROM " + db + "." + TableTickets + ") ORDER BY d"
	}
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read the changed days: %w", err)
	}
	defer rows.Close()
	var days []time.Time
	for rows.Next() {
		var sec uint32
		if err := rows.Scan(&sec); err != nil {
			return nil, fmt.Errorf("read the changed days: %w", err)
		}
		days = append(days, time.Unix(int64(sec), 0).UTC())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the changed days: %w", err)
	}
	return days, nil
}

// CompactDays adds up the raw rows of the days [from, to) (whole UTC days) into
// survey_days and ticket_days, with version. Every (day, category) the totals held in
// the range gets a row too, zero if the raw tables no longer have it, so that rows that
// moved to another day or category do not leave their old sums behind. Score sums are
// added up as integers of 1e-6 points, as the processors store them, so a day added up
// again gives the same totals.
func (c *Client) CompactDays(ctx context.Context, from, to time.Time, version uint64) error {
	db, v := c.cfg.Database, strconv.FormatUint(version, 10)
	rangeOf := func(col string) string {
		return col + " >= toDateTime(" + unix(from) + ", 'UTC') AND " + col + " < toDateTime(" + unix(to) + ", 'UTC')"
	}
	const dayOf = "toDateTime(intDiv(toUInt32(occurred_at), 86400) * 86400, 'UTC')"
	surveys := "INSERT INTO " + db + "." + TableSurveyDays +
		" (survey, category, day_start, responses, score_sum, score_sq_sum, positive, negative, late, version)" +
		" SELECT survey, category, day, sum(n), sum(s) / 1000000, sum(sq) / 1000000, sum(p), sum(ng), sum(l), " + v +
		" FROM (" +
		" SELECT survey, category, " + dayOf + " AS day, count() AS n," +
		" sum(toInt64(round(standard_score * 1000000))) AS s, sum(toInt64(round(standard_score * standard_score * 1000000))) AS sq," +
		" sum(multiIf(survey = 'ces', standard_score >= 5, survey = 'csat', standard_score >= 4, standard_score >= 9)) AS p," +
		" sum(multiIf(survey = 'ces', standard_score <= 3, survey = 'csat', standard_score <= 2, standard_score <= 6)) AS ng," +
		" sum(late) AS l" +
		" FROM " + db + "." + TableSurveys + " FINAL WHERE " + rangeOf("occurred_at") + " GROUP BY survey, category, day" +
		" UNION ALL" +
		" SELECT survey, category, day_start, toUInt64(0), toInt64(0), toInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)" +
		" FROM " + db + "." + TableSurveyDays + " FINAL WHERE " + rangeOf("day_start") +
		") GROUP BY survey, category, day"
	tickets := "INSERT INTO " + db + "." + TableTicketDays +
		" (category, day_start, solved, handle_count, handle_seconds_sum, version)" +
		" SELECT category, day, sum(n), sum(hc), sum(hs), " + v +
		" FROM (" +
		" SELECT category, " + dayOf + " AS day, count() AS n, count(handle_seconds) AS hc, toFloat64(ifNull(sum(handle_seconds), 0)) AS hs" +
		" FROM " + db + "." + TableTickets + " FINAL WHERE status = 'solved' AND " + rangeOf("occurred_at") + " GROUP BY category, day" +
		" UNION ALL" +
		" SELECT category, day_start, toUInt64(0), toUInt64(0), toFloat64(0)" +
		" FROM " + db + "." + TableTicketDays + " FINAL WHERE " + rangeOf("day_start") +
		") GROUP BY category, day"
	for _, q := range []string{surveys, tickets} {
		if err := c.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("add up the raw rows of %s to %s: %w", from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly), err)
		}
	}
	return nil
}

// SetDaysDone records that the markers written before until are added up.
func (c *Client) SetDaysDone(ctx context.Context, until time.Time) error {
	if err := c.conn.Exec(ctx, "INSERT INTO "+c.cfg.Database+"."+TableDaysDone+" (done_until, version) SELECT toDateTime("+
		unix(until)+", 'UTC'), "+unix(until)); err != nil {
		return fmt.Errorf("record the days added up until %s: %w", until.UTC().Format(time.RFC3339), err)
	}
	return nil
}
