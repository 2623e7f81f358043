package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cxlink/cxlink/processors/records"
)

// Reads and writes of the cross-team stage (processors/analytics). The reads aggregate
// the raw tables with FINAL, late events included: linkage and effort impact are not
// real-time windows, and history sent late belongs in them. Employee figures come from
// the private database through the disclosure policy (pulses.go), never from here.

// The tables the stage writes.
const (
	TableTeamPeriods  = "team_periods"
	TableLinkage      = "linkage"
	TableEffortImpact = "effort_impact"
	teamPeriodColumns = "period, period_start, team, engagement_respondents, engagement, engagement_sd, enps_respondents, enps, enps_promoters, enps_detractors, " +
		"ces_responses, ces, pct_difficult, csat_responses, csat, computed_at, version"
	linkageColumns = "period, period_start, scope, span_periods, lag, employee_metric, customer_metric, teams, pairs, " +
		"periods, df, pearson_r, spearman_r, ci_low, ci_high, p_value, min_detectable_r, status, reading, computed_at, version"
	effortImpactColumns = "`window`, window_end, category, tickets, volume_share, handle_share, handle_hours, avg_handle_seconds, " +
		"contacts_per_resolution, ces_responses, ces, ces_ci_low, ces_ci_high, pct_difficult, pct_difficult_low, " +
		"pct_difficult_high, impact, impact_rank, status, computed_at, version"
)

// periodExpr is the SQL of the start (Unix seconds) of the period of length p holding
// column col, aligned like time.Truncate (processors/pulses.EpochOffset).
func periodExpr(col string, p time.Duration, offset int64) string {
	s := int64(p / time.Second)
	return fmt.Sprintf("(intDiv(toUInt32(%s) + %d, %d) * %d - %d)", col, offset, s, s, offset)
}

// CustomerAggregates reads the CES and CSAT responses with a team (their own or their
// ticket's) and occurred_at in [from, to), per team, survey and period.
func (c *Client) CustomerAggregates(ctx context.Context, p time.Duration, offset int64, from, to time.Time) ([]records.CustomerAggregate, error) {
	q := `SELECT team, survey, toDateTime(` + periodExpr("occurred_at", p, offset) + `) AS period_start, count() AS n,
       sum(standard_score) AS total,
       countIf((survey = 'ces' AND standard_score >= 5) OR (survey = 'csat' AND standard_score >= 4)) AS positive,
       countIf((survey = 'ces' AND standard_score <= 3) OR (survey = 'csat' AND standard_score <= 2)) AS negative
FROM ` + c.cfg.Database + `.survey_responses FINAL
WHERE team != '' AND survey IN ('ces', 'csat') AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
GROUP BY team, survey, period_start
ORDER BY team, survey, period_start`
	rows, err := c.conn.Query(ctx, q, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read customer aggregates: %w", err)
	}
	defer rows.Close()
	var out []records.CustomerAggregate
	for rows.Next() {
		var a records.CustomerAggregate
		if err := rows.Scan(&a.Team, &a.Survey, &a.PeriodStart, &a.Responses, &a.Sum, &a.Positive, &a.Negative); err != nil {
			return nil, fmt.Errorf("read customer aggregates: %w", err)
		}
		a.PeriodStart = a.PeriodStart.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read customer aggregates: %w", err)
	}
	return out, nil
}

// CategoryTickets reads the tickets solved in [from, to) per category (the category of
// the ticket's latest event in the window), with each ticket's handle time and contacts
// as of its last solve (they are cumulative).
func (c *Client) CategoryTickets(ctx context.Context, from, to time.Time) ([]records.CategoryTickets, error) {
	// Aggregates never take a column's name as alias: ClickHouse would read the alias
	// inside the aggregate (see the rollups view).
	q := `SELECT cat AS category, count() AS tickets, sum(h) AS handle, count(h) AS with_handle,
       sum(n) AS contacts, count(n) AS with_contacts
FROM
(
    SELECT ticket_id, argMax(category, occurred_at) AS cat, max(handle_seconds) AS h, max(contacts) AS n
    FROM ` + c.cfg.Database + `.tickets FINAL
    WHERE status = 'solved' AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
    GROUP BY ticket_id
)
WHERE cat != ''
GROUP BY cat
ORDER BY cat`
	rows, err := c.conn.Query(ctx, q, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read tickets per category: %w", err)
	}
	defer rows.Close()
	var out []records.CategoryTickets
	for rows.Next() {
		var (
			r        records.CategoryTickets
			handle   *float64
			contacts *uint64
		)
		if err := rows.Scan(&r.Category, &r.Tickets, &handle, &r.WithHandle, &contacts, &r.WithContacts); err != nil {
			return nil, fmt.Errorf("read tickets per category: %w", err)
		}
		if handle != nil {
			r.HandleSeconds = *handle
		}
		if contacts != nil {
			r.Contacts = *contacts
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tickets per category: %w", err)
	}
	return out, nil
}

// CategoryCES reads the CES responses with a category (their own or their ticket's) and
// occurred_at in [from, to).
func (c *Client) CategoryCES(ctx context.Context, from, to time.Time) ([]records.CategoryCES, error) {
	q := `SELECT category, count() AS n, sum(standard_score) AS total, varSamp(standard_score) AS variance,
       countIf(standard_score <= 3) AS difficult
FROM ` + c.cfg.Database + `.survey_responses FINAL
WHERE survey = 'ces' AND category != '' AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
GROUP BY category
ORDER BY category`
	rows, err := c.conn.Query(ctx, q, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read CES per category: %w", err)
	}
	defer rows.Close()
	var out []records.CategoryCES
	for rows.Next() {
		var r records.CategoryCES
		if err := rows.Scan(&r.Category, &r.Responses, &r.Sum, &r.Variance, &r.Difficult); err != nil {
			return nil, fmt.Errorf("read CES per category: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read CES per category: %w", err)
	}
	return out, nil
}

// WriteAnalytics inserts one run's rows; computedAt and version are stamped on each
// (a later run must use a higher version). Like WriteBatch it may be retried whole.
func (c *Client) WriteAnalytics(ctx context.Context, teams []records.TeamPeriod, links []records.Linkage, impact []records.EffortImpact, computedAt time.Time, version uint64) error {
	at := utc(computedAt)
	if len(teams) > 0 {
		if err := c.insert(ctx, TableTeamPeriods, teamPeriodColumns, len(teams), func(b driver.Batch, i int) error {
			r := &teams[i]
			return b.Append(r.Period, utc(r.PeriodStart), r.Team, r.EngagementRespondents, r.Engagement, r.EngagementSD,
				r.ENPSRespondents, r.ENPS, r.ENPSPromoters, r.ENPSDetractors, r.CESResponses, r.CES, r.PctDifficult,
				r.CSATResponses, r.CSAT, at, version)
		}); err != nil {
			return err
		}
	}
	if len(links) > 0 {
		if err := c.insert(ctx, TableLinkage, linkageColumns, len(links), func(b driver.Batch, i int) error {
			r := &links[i]
			return b.Append(r.Period, utc(r.PeriodStart), r.Scope, r.SpanPeriods, r.Lag, r.EmployeeMetric,
				r.CustomerMetric, r.Teams, r.Pairs, r.Periods, r.DF, r.Pearson, r.Spearman, r.CILow, r.CIHigh, r.P,
				r.MinDetectable, r.Status, r.Reading, at, version)
		}); err != nil {
			return err
		}
	}
	if len(impact) > 0 {
		if err := c.insert(ctx, TableEffortImpact, effortImpactColumns, len(impact), func(b driver.Batch, i int) error {
			r := &impact[i]
			return b.Append(r.Window, utc(r.WindowEnd), r.Category, r.Tickets, r.VolumeShare, r.HandleShare, r.HandleHours,
				r.AvgHandleSeconds, r.ContactsPerResolution, r.CESResponses, r.CES, r.CESLow, r.CESHigh,
				r.PctDifficult, r.DifficultLow, r.DifficultHigh, r.Impact, r.Rank, r.Status, at, version)
		}); err != nil {
			return err
		}
	}
	return nil
}
