package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
)

// TableDriftEvents holds the drift episodes (processors/drift).
const TableDriftEvents = "drift_events"

const driftColumns = "survey, dimension, key, owner, detector, direction, started_at, ended_at, peak_at, " +
	"peak_statistic, peak_recent, peak_baseline, peak_recent_responses, peak_baseline_responses, " +
	"recent_span, baseline_span, version"

// WindowTotals reads the rolling window w ending at each of the ticks ends, the
// partitions added up, for the overall, category, channel and team series (agents are
// not compared with a baseline): the buckets with end − w ≤ bucket_start < end. It reads
// only the buckets the windows cover, and first adds them up into slots as wide as the
// ends and the window allow (an hour for the drift detector's hourly blocks), so that
// many ends cost slots × ends, not buckets × ends. When the slots are whole hours, those
// before the compacted hours' end (max(compacted_until), docs/storage.md) are read from
// rollup_hours, 60 times fewer rows than their minute buckets. Series without responses
// are left out.
func (c *Client) WindowTotals(ctx context.Context, w effort.Window, ends []time.Time) ([]records.WindowTotal, error) {
	if len(ends) == 0 {
		return nil, nil
	}
	// Instants as integers: the driver's client-side binding of times differs between
	// versions, and integers cannot inject anything.
	length := int64(w.Length / time.Second)
	slot := length
	in := make([]string, len(ends))
	lo, hi := ends[0], ends[0]
	for i, t := range ends {
		in[i] = strconv.FormatInt(t.Unix(), 10)
		lo, hi = minTime(lo, t), maxTime(hi, t)
		slot = gcd(slot, t.Unix())
	}
	// A slot divides the window and every end: each window is whole slots. Buckets start
	// on multiples of the step, which divides both, so a slot holds whole buckets.
	slot = max(slot, 1)
	sl, ln := strconv.FormatInt(slot, 10), strconv.FormatInt(length, 10)
	from, to := lo.Unix()-length, hi.Unix()
	slots := c.slots(TableBuckets, "bucket_start", sl, from, to)
	if slot%3600 == 0 {
		done, err := c.CompactedUntil(ctx)
		if err != nil {
			return nil, err
		}
		if cu := done.Unix(); cu > from {
			// Each branch adds up its rows into the same slots; one that straddles the
			// compacted hours' end gets a row from each, and the level above adds them.
			slots = c.slots(TableHours, "hour_start", sl, from, min(to, cu)) + " UNION ALL " +
				c.slots(TableBuckets, "bucket_start", sl, max(from, cu), to)
		}
	}
	q := "SELECT survey, dimension, key, toDateTime(e, 'UTC') AS window_end, sum(n), sum(s), sum(sq), sum(pos), sum(neg) FROM (" +
		"SELECT survey, dimension, key, b, n, s, sq, pos, neg, arrayJoin([" + strings.Join(in, ", ") + "]) AS e FROM (" +
		slots + ")) WHERE b >= e - " + ln + " AND b < e " +
		"GROUP BY survey, dimension, key, window_end HAVING sum(n) > 0"
	if n := (to - from) / slot; len(ends) > 1 && n <= maxRunningSlots {
		q = runningWindows(slots, ends, from, slot, length, n)
	}
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %s windows: %w", w.Name, err)
	}
	defer rows.Close()
	var out []records.WindowTotal
	for rows.Next() {
		var w records.WindowTotal
		if err := rows.Scan(&w.Survey, &w.Dimension, &w.Key, &w.WindowEnd, &w.Responses, &w.ScoreSum,
			&w.SquareSum, &w.Positive, &w.Negative); err != nil {
			return nil, fmt.Errorf("read windows: %w", err)
		}
		w.WindowEnd = w.WindowEnd.UTC()
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s windows: %w", w.Name, err)
	}
	return out, nil
}

// maxRunningSlots bounds the slots per series that runningWindows lays out in arrays (two
// weeks of hours, the drift detector's fold, is 336); beyond it, copying each slot into
// its windows costs less.
const maxRunningSlots = 2000

// runningWindows reads the windows ending at ends from the slots as running totals: per
// series, the slots in [from, from + n·slot) are laid out in arrays and added up
// cumulatively, and each window is the running total at its end less the one at its
// start. So many ends (the drift detector's first evaluation folds a week of hourly
// blocks, each against the week before it) cost slots + ends per series, where copying
// each slot into every window holding it costs slots × ends. The running totals are
// unnested before they are picked (a slot's total counts for the window ending there,
// and against the one starting there), since ClickHouse would copy whole arrays into
// every row of an ARRAY JOIN over the ends.
func runningWindows(slots string, ends []time.Time, from, slot, length, n int64) string {
	f, sl, size := strconv.FormatInt(from, 10), strconv.FormatInt(slot, 10), strconv.FormatInt(n, 10)
	his, los, at := make([]string, len(ends)), make([]string, len(ends)), make([]string, len(ends))
	for i, e := range ends {
		hi := (e.Unix() - from) / slot // slots before e
		his[i], los[i], at[i] = strconv.FormatInt(hi, 10), strconv.FormatInt(hi-length/slot, 10), strconv.FormatInt(e.Unix(), 10)
	}
	end := func(idx []string) string {
		return "transform(toUInt64(k), [" + strings.Join(idx, ", ") + "], [" + strings.Join(at, ", ") + "], 0)"
	}
	running := func(col, zero string) string {
		return "arrayCumSum(groupArrayInsertAt(" + zero + ", " + size + ")(" + col + ", i)) AS " + col + "_run"
	}
	return "SELECT survey, dimension, key, toDateTime(e, 'UTC') AS window_end, toUInt64(sum(sg * rn)) AS wn, sum(sg * rs), sum(sg * rsq), " +
		"toUInt64(sum(sg * rpos)), toUInt64(sum(sg * rneg)) FROM (" +
		"SELECT survey, dimension, key, rn, rs, rsq, rpos, rneg, tupleElement(p, 1) AS e, tupleElement(p, 2) AS sg FROM (" +
		"SELECT survey, dimension, key, rn, rs, rsq, rpos, rneg, k FROM (" +
		"SELECT survey, dimension, key, " + running("n", "0") + ", " + running("s", "0.") + ", " + running("sq", "0.") + ", " +
		running("pos", "0") + ", " + running("neg", "0") + " FROM (" +
		"SELECT survey, dimension, key, toUInt32(intDiv(b - " + f + ", " + sl + ")) AS i, sum(n) AS n, sum(s) AS s, sum(sq) AS sq, " +
		"sum(pos) AS pos, sum(neg) AS neg FROM (" + slots + ") GROUP BY survey, dimension, key, i" +
		") GROUP BY survey, dimension, key" +
		") ARRAY JOIN n_run AS rn, s_run AS rs, sq_run AS rsq, pos_run AS rpos, neg_run AS rneg, arrayEnumerate(n_run) AS k" +
		") ARRAY JOIN [(" + end(his) + ", 1), (" + end(los) + ", -1)] AS p" +
		") WHERE e != 0 GROUP BY survey, dimension, key, window_end HAVING wn > 0"
}

// slots adds up the rows of table (rollup_buckets, or rollup_hours) with from ≤ col < to
// (Unix seconds) into slots sl seconds wide, per series of the dimensions the drift
// detector judges.
func (c *Client) slots(table, col, sl string, from, to int64) string {
	return "SELECT survey, dimension, key, intDiv(toUInt32(" + col + "), " + sl + ") * " + sl + " AS b, sum(responses) AS n, " +
		"sum(score_sum) AS s, sum(score_sq_sum) AS sq, sum(positive) AS pos, sum(negative) AS neg FROM " +
		c.cfg.Database + "." + table + " FINAL " +
		"WHERE " + col + " >= toDateTime(" + strconv.FormatInt(from, 10) + ", 'UTC') " +
		"AND " + col + " < toDateTime(" + strconv.FormatInt(to, 10) + ", 'UTC') " +
		"AND dimension IN ('overall', 'category', 'channel', 'team') GROUP BY survey, dimension, key, b"
}

// LateWindowTotals is WindowTotals of the answers that arrived late (late = 1 in
// survey_responses, left out of the rollup buckets), by occurred_at, their dimensions as
// attributed: with WindowTotals' it covers every answer, for baselines that count
// imported history. Squares are rounded to 1e-6 and answers classified as the
// processors do (docs/metrics.md).
func (c *Client) LateWindowTotals(ctx context.Context, w effort.Window, ends []time.Time) ([]records.WindowTotal, error) {
	if len(ends) == 0 {
		return nil, nil
	}
	// As WindowTotals: the answers are first added up into slots that divide the window
	// and every end, so that many ends cost slots × ends, not answers × ends.
	length := int64(w.Length / time.Second)
	slot := length
	in := make([]string, len(ends))
	lo, hi := ends[0], ends[0]
	for i, t := range ends {
		in[i] = strconv.FormatInt(t.Unix(), 10)
		lo, hi = minTime(lo, t), maxTime(hi, t)
		slot = gcd(slot, t.Unix())
	}
	sl, ln := strconv.FormatInt(max(slot, 1), 10), strconv.FormatInt(length, 10)
	q := "SELECT survey, dimension, key, toDateTime(e, 'UTC') AS window_end, sum(n), sum(s), sum(sq), sum(pos), sum(neg) FROM (" +
		"SELECT survey, dimension, key, b, n, s, sq, pos, neg, arrayJoin([" + strings.Join(in, ", ") + "]) AS e FROM (" +
		"SELECT survey, dimension, key, intDiv(toUInt32(occurred_at), " + sl + ") * " + sl + " AS b, count() AS n, " +
		"sum(standard_score) AS s, sum(round(standard_score * standard_score, 6)) AS sq, " +
		"sum(toUInt64(multiIf(survey = 'ces', standard_score >= 5, survey = 'csat', standard_score >= 4, standard_score >= 9))) AS pos, " +
		"sum(toUInt64(multiIf(survey = 'ces', standard_score <= 3, survey = 'csat', standard_score <= 2, standard_score <= 6))) AS neg FROM (" +
		"SELECT survey, occurred_at, standard_score, late, channel, category, team FROM " + c.cfg.Database + "." + TableSurveys + " FINAL " +
		"WHERE occurred_at >= toDateTime(" + strconv.FormatInt(lo.Unix(), 10) + " - " + ln + ", 'UTC') " +
		"AND occurred_at < toDateTime(" + strconv.FormatInt(hi.Unix(), 10) + ", 'UTC')" +
		") ARRAY JOIN ['overall', 'category', 'channel', 'team'] AS dimension, ['', category, channel, team] AS key " +
		"WHERE late = 1 AND (dimension = 'overall' OR key != '') GROUP BY survey, dimension, key, b" +
		")) WHERE b >= e - " + ln + " AND b < e " +
		"GROUP BY survey, dimension, key, window_end"
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read late answers' %s windows: %w", w.Name, err)
	}
	defer rows.Close()
	var out []records.WindowTotal
	for rows.Next() {
		var w records.WindowTotal
		if err := rows.Scan(&w.Survey, &w.Dimension, &w.Key, &w.WindowEnd, &w.Responses, &w.ScoreSum,
			&w.SquareSum, &w.Positive, &w.Negative); err != nil {
			return nil, fmt.Errorf("read late answers' windows: %w", err)
		}
		w.WindowEnd = w.WindowEnd.UTC()
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read late answers' %s windows: %w", w.Name, err)
	}
	return out, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// WriteDriftEvents inserts episode rows. Writing a row again is harmless: drift_events is
// a ReplacingMergeTree keyed by the episode, and FINAL shows its highest version.
func (c *Client) WriteDriftEvents(ctx context.Context, events []records.DriftEvent) error {
	if len(events) == 0 {
		return nil
	}
	return c.insert(ctx, TableDriftEvents, driftColumns, len(events), func(b driver.Batch, i int) error {
		e := &events[i]
		var ended *time.Time
		if !e.EndedAt.IsZero() {
			t := e.EndedAt.UTC()
			ended = &t
		}
		return b.Append(e.Survey, e.Dimension, e.Key, e.Owner, e.Detector, e.Direction, utc(e.StartedAt), ended,
			utc(e.PeakAt), e.PeakStatistic, e.PeakRecent, e.PeakBaseline, e.PeakRecentResponses,
			e.PeakBaselineResponses, e.RecentWindow, e.BaselineWindow, e.Version)
	})
}

// DriftEvents reads the episodes (latest version of each) that started at or after
// since, ordered by start.
func (c *Client) DriftEvents(ctx context.Context, since time.Time) ([]records.DriftEvent, error) {
	return c.driftEvents(ctx, "started_at >= toDateTime("+strconv.FormatInt(since.Unix(), 10)+", 'UTC')")
}

// OpenDriftEvents reads the episodes that have not ended.
func (c *Client) OpenDriftEvents(ctx context.Context) ([]records.DriftEvent, error) {
	return c.driftEvents(ctx, "isNull(ended_at)")
}

func (c *Client) driftEvents(ctx context.Context, where string) ([]records.DriftEvent, error) {
	// The filter runs outside FINAL: a condition on a column that changes between an
	// episode's versions (ended_at) must see only the latest version.
	rows, err := c.conn.Query(ctx, "SELECT "+driftColumns+" FROM (SELECT "+driftColumns+" FROM "+
		c.cfg.Database+"."+TableDriftEvents+" FINAL) WHERE "+where+
		" ORDER BY started_at, survey, dimension, key, detector, direction")
	if err != nil {
		return nil, fmt.Errorf("read drift events: %w", err)
	}
	defer rows.Close()
	var out []records.DriftEvent
	for rows.Next() {
		var (
			e     records.DriftEvent
			ended *time.Time
		)
		if err := rows.Scan(&e.Survey, &e.Dimension, &e.Key, &e.Owner, &e.Detector, &e.Direction, &e.StartedAt,
			&ended, &e.PeakAt, &e.PeakStatistic, &e.PeakRecent, &e.PeakBaseline, &e.PeakRecentResponses,
			&e.PeakBaselineResponses, &e.RecentWindow, &e.BaselineWindow, &e.Version); err != nil {
			return nil, fmt.Errorf("read drift events: %w", err)
		}
		e.StartedAt, e.PeakAt = e.StartedAt.UTC(), e.PeakAt.UTC()
		if ended != nil {
			e.EndedAt = ended.UTC()
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read drift events: %w", err)
	}
	return out, nil
}
