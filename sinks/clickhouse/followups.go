package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
)

// TableFollowUps holds the follow-up cases, one row per change.
const TableFollowUps = "followups"

const followUpColumns = "id, state, owner, rule, opened_at, due_at, acknowledged_at, acknowledged_by, " +
	"closed_at, closed_by, close_reason, close_note, survey_id, survey, score, scale_min, scale_max, " +
	"standard_score, occurred_at, ticket_id, customer_id, channel, category, team, agent_id, comment, " +
	"partition, seq, version"

// WriteFollowUps inserts follow-up rows (each the whole case after one change).
func (c *Client) WriteFollowUps(ctx context.Context, rows []records.FollowUp) error {
	return c.insert(ctx, TableFollowUps, followUpColumns, len(rows), func(b driver.Batch, i int) error {
		r := &rows[i]
		return b.Append(r.ID, r.State, r.Owner, r.Rule, utc(r.OpenedAt), utc(r.DueAt),
			nullableTime(r.AcknowledgedAt), r.AcknowledgedBy, nullableTime(r.ClosedAt), r.ClosedBy,
			r.CloseReason, r.CloseNote, r.SurveyID, r.Survey, r.Score, r.ScaleMin, r.ScaleMax,
			r.StandardScore, utc(r.OccurredAt), r.TicketID, r.CustomerID, r.Channel, r.Category,
			r.Team, r.AgentID, r.Comment, r.Partition, r.Seq, r.Version)
	})
}

// FollowUpsStoredThrough is the highest version (follow-up stream sequence) stored.
func (c *Client) FollowUpsStoredThrough(ctx context.Context) (uint64, error) {
	var v uint64
	if err := c.conn.QueryRow(ctx, "SELECT max(version) FROM "+c.qualified(TableFollowUps)).Scan(&v); err != nil {
		return 0, fmt.Errorf("read %s: %w", TableFollowUps, err)
	}
	return v, nil
}

func nullableTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// CustomerAnswers returns the customer's survey answers that occurred in [since,
// before), newest first, at most limit, without the answer excluded: the history sent
// with a follow-up case.
func (c *Client) CustomerAnswers(ctx context.Context, customerID, excluded string, since, before time.Time, limit int) ([]followup.Answer, error) {
	rows, err := c.conn.Query(ctx, "SELECT id, survey, standard_score, occurred_at, ticket_id, category FROM "+
		c.qualified(TableSurveys)+" FINAL WHERE customer_id = ? AND id != ? AND occurred_at >= ? AND occurred_at < ?"+
		" ORDER BY occurred_at DESC LIMIT "+strconv.Itoa(limit), customerID, excluded, utc(since), utc(before))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", TableSurveys, err)
	}
	defer rows.Close()
	var out []followup.Answer
	for rows.Next() {
		var a followup.Answer
		if err := rows.Scan(&a.SurveyID, &a.Survey, &a.StandardScore, &a.OccurredAt, &a.TicketID, &a.Category); err != nil {
			return nil, fmt.Errorf("read %s: %w", TableSurveys, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// FollowUpCounts counts each owner's cases that are not closed, and those of them due
// before now.
func (c *Client) FollowUpCounts(ctx context.Context, now time.Time) ([]followup.OwnerCount, error) {
	rows, err := c.conn.Query(ctx, "SELECT owner, countIf(state != 'closed'), countIf(state != 'closed' AND due_at < toDateTime("+
		strconv.FormatInt(now.Unix(), 10)+")) FROM "+c.qualified(TableFollowUps)+" FINAL GROUP BY owner ORDER BY owner")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", TableFollowUps, err)
	}
	defer rows.Close()
	var out []followup.OwnerCount
	for rows.Next() {
		var o followup.OwnerCount
		if err := rows.Scan(&o.Owner, &o.Open, &o.Overdue); err != nil {
			return nil, fmt.Errorf("read %s: %w", TableFollowUps, err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// OpenFollowUps returns the cases that are not closed, of owner (empty: every owner),
// those due first first, at most limit.
func (c *Client) OpenFollowUps(ctx context.Context, owner string, limit int) ([]records.FollowUp, error) {
	q := "SELECT id, state, owner, rule, opened_at, due_at, ticket_id, customer_id, category, team, survey, score, comment FROM " +
		c.qualified(TableFollowUps) + " FINAL WHERE state != 'closed'"
	var args []any
	if owner != "" {
		q += " AND owner = ?"
		args = append(args, owner)
	}
	q += " ORDER BY due_at, id LIMIT " + strconv.Itoa(limit)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", TableFollowUps, err)
	}
	defer rows.Close()
	var out []records.FollowUp
	for rows.Next() {
		var f records.FollowUp
		if err := rows.Scan(&f.ID, &f.State, &f.Owner, &f.Rule, &f.OpenedAt, &f.DueAt, &f.TicketID, &f.CustomerID,
			&f.Category, &f.Team, &f.Survey, &f.Score, &f.Comment); err != nil {
			return nil, fmt.Errorf("read %s: %w", TableFollowUps, err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
