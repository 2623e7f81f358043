package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// The reports' subqueries on the same table say GLOBAL IN: on a cluster (CLICKHOUSE_CLUSTER)
// the latest rows are found once over every shard, where ClickHouse refuses a plain IN on a
// Distributed table; on one server GLOBAL IN is IN.

// LatestEffortImpact reads the latest effort_impact rows of every window, ranked first.
func (c *Client) LatestEffortImpact(ctx context.Context) ([]records.EffortImpact, error) {
	db := c.cfg.Database
	q := "SELECT `window`, window_end, category, tickets, volume_share, handle_share, handle_hours, avg_handle_seconds, " +
		"contacts_per_resolution, ces_responses, ces, ces_ci_low, ces_ci_high, pct_difficult, pct_difficult_low, " +
		"pct_difficult_high, impact, impact_rank, status FROM " + db + ".effort_impact FINAL " +
		"WHERE (`window`, window_end) GLOBAL IN (SELECT `window`, max(window_end) FROM " + db + ".effort_impact GROUP BY `window`) " +
		"ORDER BY `window`, isNull(impact_rank), impact_rank, category"
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read effort impact: %w", err)
	}
	defer rows.Close()
	var out []records.EffortImpact
	for rows.Next() {
		var r records.EffortImpact
		if err := rows.Scan(&r.Window, &r.WindowEnd, &r.Category, &r.Tickets, &r.VolumeShare, &r.HandleShare, &r.HandleHours,
			&r.AvgHandleSeconds, &r.ContactsPerResolution, &r.CESResponses, &r.CES, &r.CESLow, &r.CESHigh,
			&r.PctDifficult, &r.DifficultLow, &r.DifficultHigh, &r.Impact, &r.Rank, &r.Status); err != nil {
			return nil, fmt.Errorf("read effort impact: %w", err)
		}
		r.WindowEnd = r.WindowEnd.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read effort impact: %w", err)
	}
	return out, nil
}

// CurrentLinkage reads, for the pulse period named period and each of the scopes, lag
// and metric pair, the linkage row of the latest period; it also returns when it was
// computed. Rows come in the order of scopes, then metrics and lag.
func (c *Client) CurrentLinkage(ctx context.Context, period string, scopes []string) ([]records.Linkage, time.Time, error) {
	db := c.cfg.Database
	q := "SELECT period, period_start, scope, span_periods, lag, employee_metric, customer_metric, teams, pairs, " +
		"periods, df, pearson_r, spearman_r, ci_low, ci_high, p_value, min_detectable_r, status, reading, computed_at " +
		"FROM " + db + ".linkage FINAL " +
		"WHERE period = ? AND has(?, scope) AND (scope, employee_metric, customer_metric, lag, period_start) GLOBAL IN " +
		"(SELECT scope, employee_metric, customer_metric, lag, max(period_start) FROM " + db + ".linkage " +
		"WHERE period = ? AND has(?, scope) GROUP BY scope, employee_metric, customer_metric, lag) " +
		"ORDER BY indexOf(?, scope), employee_metric, customer_metric, lag"
	rows, err := c.conn.Query(ctx, q, period, scopes, period, scopes, scopes)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read linkage: %w", err)
	}
	defer rows.Close()
	var (
		out    []records.Linkage
		latest time.Time
	)
	for rows.Next() {
		var (
			r  records.Linkage
			at time.Time
		)
		if err := rows.Scan(&r.Period, &r.PeriodStart, &r.Scope, &r.SpanPeriods, &r.Lag, &r.EmployeeMetric,
			&r.CustomerMetric, &r.Teams, &r.Pairs, &r.Periods, &r.DF, &r.Pearson, &r.Spearman, &r.CILow, &r.CIHigh, &r.P,
			&r.MinDetectable, &r.Status, &r.Reading, &at); err != nil {
			return nil, time.Time{}, fmt.Errorf("read linkage: %w", err)
		}
		r.PeriodStart = r.PeriodStart.UTC()
		if at.After(latest) {
			latest = at.UTC()
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("read linkage: %w", err)
	}
	return out, latest, nil
}
