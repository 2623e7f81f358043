package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// Reads of the disclosure step of the analytics stage (processors/pulses): the groups of
// individual answers in the private database, and what team_periods published of them.

// ServerNow is ClickHouse's clock, the clock of the private table's stored_at.
func (c *Client) ServerNow(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := c.conn.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read clickhouse's clock: %w", err)
	}
	return now.UTC(), nil
}

// stdScore is the SQL of an answer on its question's standard scale: engagement 1–5,
// every other question 0–10.
const stdScore = `multiIf(question = 'engagement' AND scale_min = 1 AND scale_max = 5, score,
                       question = 'engagement', 1 + (score - scale_min) * 4 / (scale_max - scale_min),
                       scale_min = 0 AND scale_max = 10, score,
                       (score - scale_min) * 10 / (scale_max - scale_min))`

// PulseGroups reads, from the private database, the engagement and eNPS groups (team,
// question, period of length p; offset from pulses.EpochOffset) of the periods in
// [from, to) that may have changed: a row stored at or after since (ClickHouse's clock),
// or a period starting at or after closedFrom (newly closed). Each employee's latest
// answer in the period counts once; groups below minRespondents are left out. A zero
// since and closedFrom (times before 1970 count as 1970, which DateTime cannot hold)
// read every group of [from, to). LastStored is the group's latest stored_at.
func (c *Client) PulseGroups(ctx context.Context, p time.Duration, offset int64, from, to, since, closedFrom time.Time, minRespondents int) ([]records.EmployeeAggregate, error) {
	priv := c.cfg.Private() + ".employee_pulses"
	start := periodExpr("occurred_at", p, offset)
	// Which periods changed, read without FINAL (a duplicate only repeats a key): the
	// aggregate below then reads from the earliest of them only, not the whole lookback.
	changed := `SELECT DISTINCT team, question, ` + start + ` AS start FROM ` + priv + `
WHERE question IN ('engagement', 'enps') AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
  AND (stored_at >= toDateTime(?) OR occurred_at >= toDateTime(?))`
	var (
		earliest int64 = -1
		n        uint64
	)
	if err := c.conn.QueryRow(ctx, "SELECT min(start), count() FROM ("+changed+")",
		from.Unix(), to.Unix(), max(since.Unix(), 0), max(closedFrom.Unix(), 0)).Scan(&earliest, &n); err != nil {
		return nil, fmt.Errorf("read changed pulse groups: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	q := `SELECT team, question, toDateTime(start) AS period_start, count() AS respondents, sum(s) AS total, sum(s * s) AS total_sq,
       countIf(question = 'enps' AND s >= 9) AS promoters, countIf(question = 'enps' AND s <= 6) AS detractors,
       max(st) AS last_stored
FROM
(
    SELECT team, question, employee_id, start, argMax(std, (occurred_at, seq)) AS s, max(stored_at) AS st
    FROM
    (
        SELECT team, question, employee_id, occurred_at, seq, stored_at, ` + start + ` AS start, ` + stdScore + ` AS std
        FROM ` + priv + ` FINAL
        WHERE question IN ('engagement', 'enps') AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
    )
    WHERE (team, question, start) GLOBAL IN (` + changed + `)
    GROUP BY team, question, employee_id, start
)
GROUP BY team, question, start
HAVING respondents >= ?
ORDER BY team, question, start`
	rows, err := c.conn.Query(ctx, q, max(earliest, from.Unix()), to.Unix(),
		from.Unix(), to.Unix(), max(since.Unix(), 0), max(closedFrom.Unix(), 0), minRespondents)
	if err != nil {
		return nil, fmt.Errorf("read pulse groups: %w", err)
	}
	defer rows.Close()
	var out []records.EmployeeAggregate
	for rows.Next() {
		var a records.EmployeeAggregate
		if err := rows.Scan(&a.Team, &a.Question, &a.PeriodStart, &a.Respondents, &a.Sum, &a.SquareSum, &a.Promoters, &a.Detractors, &a.LastStored); err != nil {
			return nil, fmt.Errorf("read pulse groups: %w", err)
		}
		a.PeriodStart, a.LastStored = a.PeriodStart.UTC(), a.LastStored.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pulse groups: %w", err)
	}
	return out, nil
}

// TeamPeriods reads the team_periods rows of the pulse period named period (as
// configured, "7d") with period_start in [from, to): what is published.
func (c *Client) TeamPeriods(ctx context.Context, period string, from, to time.Time) ([]records.TeamPeriod, error) {
	q := "SELECT period, period_start, team, engagement_respondents, engagement, engagement_sd, enps_respondents, enps, " +
		"enps_promoters, enps_detractors, ces_responses, ces, pct_difficult, csat_responses, csat FROM " +
		c.cfg.Database + "." + TableTeamPeriods + " FINAL WHERE period = ? AND period_start >= toDateTime(?) AND period_start < toDateTime(?) " +
		"ORDER BY period_start, team"
	rows, err := c.conn.Query(ctx, q, period, from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("read team periods: %w", err)
	}
	defer rows.Close()
	var out []records.TeamPeriod
	for rows.Next() {
		var r records.TeamPeriod
		if err := rows.Scan(&r.Period, &r.PeriodStart, &r.Team, &r.EngagementRespondents, &r.Engagement, &r.EngagementSD,
			&r.ENPSRespondents, &r.ENPS, &r.ENPSPromoters, &r.ENPSDetractors, &r.CESResponses, &r.CES, &r.PctDifficult,
			&r.CSATResponses, &r.CSAT); err != nil {
			return nil, fmt.Errorf("read team periods: %w", err)
		}
		r.PeriodStart = r.PeriodStart.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read team periods: %w", err)
	}
	return out, nil
}

// DropPulsesBefore drops the month partitions of the private employee_pulses whose
// months end at or before t: answers no period published from t on can use. It returns
// the partitions dropped (YYYYMM). Dropping is idempotent.
func (c *Client) DropPulsesBefore(ctx context.Context, t time.Time) ([]string, error) {
	db := c.cfg.Private()
	limit := t.UTC().Year()*100 + int(t.UTC().Month()) // partitions below hold months ended by t's month
	rows, err := c.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = 'employee_pulses' AND active ORDER BY partition", db)
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s.employee_pulses: %w", db, err)
	}
	var old []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read partitions of %s.employee_pulses: %w", db, err)
		}
		var month int
		if _, err := fmt.Sscan(p, &month); err == nil && month < limit {
			old = append(old, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partitions of %s.employee_pulses: %w", db, err)
	}
	for i, p := range old {
		if err := c.conn.Exec(ctx, "ALTER TABLE "+db+".employee_pulses DROP PARTITION "+p); err != nil {
			return old[:i], fmt.Errorf("drop partition %s of %s.employee_pulses: %w", p, db, err)
		}
	}
	return old, nil
}
