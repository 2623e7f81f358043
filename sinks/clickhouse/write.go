package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
)

// The tables WriteBatch writes.
const (
	TableSurveys  = "survey_responses"
	TableTickets  = "tickets"
	TablePulses   = "employee_pulses" // in the private database
	TableBuckets  = "rollup_buckets"
	TableWindows  = "rollup_windows"
	surveyColumns = "id, survey, occurred_at, received_at, source, score, scale_min, scale_max, " +
		"standard_score, ticket_id, customer_id, channel, category, team, agent_id, comment, " +
		"attributed, late, partition, seq, version"
	ticketColumns = "id, ticket_id, status, occurred_at, received_at, source, channel, category, " +
		"team, agent_id, handle_seconds, contacts, late, partition, seq, version"
	pulseColumns = "id, employee_id, team, question, occurred_at, received_at, source, score, " +
		"scale_min, scale_max, late, partition, seq, version"
	bucketColumns = "survey, dimension, key, bucket_start, partition, responses, score_sum, " +
		"positive, negative, score_sq_sum, version"
)

var tables = []string{TableSurveys, TableTickets, TablePulses, TableBuckets}

// RowError is a row ClickHouse cannot store (e.g. a time outside DateTime's 1970–2105).
// Writing the batch again fails the same way.
type RowError struct {
	Table string
	Row   int
	Err   error
}

func (e *RowError) Error() string { return fmt.Sprintf("%s row %d: %v", e.Table, e.Row, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// RejectedRow names the row in the batch given to WriteBatch, so that the caller can set
// it aside and write the others.
func (e *RowError) RejectedRow() records.RowRef {
	kind := map[string]records.Kind{TableSurveys: records.KindSurvey, TableTickets: records.KindTicket,
		TablePulses: records.KindPulse, TableBuckets: records.KindBucket}[e.Table]
	return records.RowRef{Kind: kind, Index: e.Row}
}

// WriteBatch inserts the batch: one insert per table that has rows, each bounded by the
// insert timeout, and after the survey and ticket rows the days they occurred on
// (raw_days_changed), whose daily totals the compaction then adds up again. When it
// fails, some tables may hold their rows and others not; write the whole batch again.
// That is safe because every table is a ReplacingMergeTree whose rows carry their
// version, so a row written twice is read once with FINAL (and markers only make the
// compaction add a day up again). A *RowError means the batch can never be written.
func (c *Client) WriteBatch(ctx context.Context, b *records.Batch) error {
	if len(b.Surveys) > 0 {
		if err := c.insert(ctx, TableSurveys, surveyColumns, len(b.Surveys), func(batch driver.Batch, i int) error {
			r := &b.Surveys[i]
			return batch.Append(r.ID, r.Survey, utc(r.OccurredAt), utc(r.ReceivedAt), r.Source,
				r.Score, r.ScaleMin, r.ScaleMax, r.StandardScore, r.TicketID, r.CustomerID,
				r.Channel, r.Category, r.Team, r.AgentID, r.Comment, flag(r.Attributed),
				flag(r.Late), r.Partition, r.Seq, r.Version)
		}); err != nil {
			return err
		}
	}
	if len(b.Tickets) > 0 {
		if err := c.insert(ctx, TableTickets, ticketColumns, len(b.Tickets), func(batch driver.Batch, i int) error {
			r := &b.Tickets[i]
			contacts, err := nullableUInt32(r.Contacts)
			if err != nil {
				return fmt.Errorf("contacts: %w", err)
			}
			return batch.Append(r.ID, r.TicketID, r.Status, utc(r.OccurredAt), utc(r.ReceivedAt),
				r.Source, r.Channel, r.Category, r.Team, r.AgentID, r.HandleSeconds, contacts,
				flag(r.Late), r.Partition, r.Seq, r.Version)
		}); err != nil {
			return err
		}
	}
	if err := c.markDaysChanged(ctx, b); err != nil {
		return err
	}
	if len(b.Pulses) > 0 {
		if err := c.insert(ctx, TablePulses, pulseColumns, len(b.Pulses), func(batch driver.Batch, i int) error {
			r := &b.Pulses[i]
			return batch.Append(r.ID, r.EmployeeID, r.Team, r.Question, utc(r.OccurredAt),
				utc(r.ReceivedAt), r.Source, r.Score, r.ScaleMin, r.ScaleMax, flag(r.Late),
				r.Partition, r.Seq, r.Version)
		}); err != nil {
			return err
		}
	}
	if len(b.Buckets) > 0 {
		if err := c.insert(ctx, TableBuckets, bucketColumns, len(b.Buckets), func(batch driver.Batch, i int) error {
			r := &b.Buckets[i]
			return batch.Append(r.Survey, r.Dimension, r.Key, utc(r.Start),
				r.Partition, r.Responses, r.ScoreSum, r.Positive, r.Negative, r.SquareSum, r.Version)
		}); err != nil {
			return err
		}
	}
	return nil
}

// insert sends n rows to table in one batch; appendRow appends row i.
func (c *Client) insert(ctx context.Context, table, columns string, n int, appendRow func(driver.Batch, int) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.InsertTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		c.metrics.insertDuration.WithLabelValues(table).Observe(time.Since(start).Seconds())
		if err != nil {
			// Not logged: the caller gets the error and decides whether it is news.
			c.metrics.insertErrors.WithLabelValues(table).Inc()
			return
		}
		c.metrics.rowsWritten.WithLabelValues(table).Add(float64(n))
	}()
	batch, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.qualified(table)+" ("+columns+")")
	if err != nil {
		return fmt.Errorf("insert into %s: prepare: %w", table, err)
	}
	for i := range n {
		if err := appendRow(batch, i); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("insert into %s: %w", table, &RowError{Table: table, Row: i, Err: err})
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert into %s: send %d rows: %w", table, n, err)
	}
	return nil
}

// qualified names table with its database: employee pulses are in the private one.
func (c *Client) qualified(table string) string {
	if table == TablePulses {
		return c.cfg.Private() + "." + table
	}
	return c.cfg.Database + "." + table
}

// utc drops the location, so that the driver, which sends t.Unix(), and a reader of
// the code agree on the instant; DateTime keeps whole seconds.
func utc(t time.Time) time.Time { return t.UTC() }

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

var errUInt32Range = errors.New("out of UInt32 range")

func nullableUInt32(v *int64) (*uint32, error) {
	if v == nil {
		return nil, nil
	}
	if *v < 0 || *v > math.MaxUint32 {
		return nil, fmt.Errorf("%d: %w", *v, errUInt32Range)
	}
	u := uint32(*v)
	return &u, nil
}

// WriteWindows records the rolling windows and the step the processors run with, which
// the rollups view reads; windows no longer configured are removed.
func (c *Client) WriteWindows(ctx context.Context, step time.Duration, windows []effort.Window) error {
	names := make([]string, len(windows))
	for i, w := range windows {
		names[i] = "'" + w.Name + "'"
	}
	if err := c.insert(ctx, TableWindows, "`window`, seconds, step_seconds, version", len(windows), func(b driver.Batch, i int) error {
		return b.Append(windows[i].Name, uint32(windows[i].Length/time.Second), uint32(step/time.Second), uint64(time.Now().UnixNano()))
	}); err != nil {
		return err
	}
	var stale uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM "+c.cfg.Database+"."+TableWindows+
		" WHERE `window` NOT IN ("+strings.Join(names, ", ")+")").Scan(&stale); err != nil {
		return fmt.Errorf("read %s: %w", TableWindows, err)
	}
	if stale == 0 {
		return nil
	}
	if err := c.conn.Exec(ctx, "ALTER TABLE "+c.schema().table(TableWindows)+
		" DELETE WHERE `window` NOT IN ("+strings.Join(names, ", ")+")"); err != nil {
		return fmt.Errorf("remove windows no longer configured from %s: %w", TableWindows, err)
	}
	return nil
}
