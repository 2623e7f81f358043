package deploy

// BenchmarkPanelQueries measures every ClickHouse panel of the dashboards on a realistic
// contact centre: 30 days of 20,000 surveys and 40,000 ticket events a day over 30
// categories, 4 channels, 50 teams and 1,000 agents, weekly pulses, the per-minute
// rollup buckets of 16 partitions, the hours compacted from them, the daily totals of the
// raw tables, and the analytics
// stages' tables as they grow in a month. It prints p50 and p99 of each query's wall time
// and of the server's CPU time for it (from system.query_log, which load on the machine
// distorts less), over a 1-day and a 30-day dashboard range, and for a 1-day range on a
// database holding only that day. Not part of the test run (filling takes minutes):
//
//	go test -run '^$' -bench PanelQueries -benchtime 20x ./deploy/

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/processors/compact"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The centre: centreDays of history before today (UTC), and today so far.
const (
	centreDays    = 30
	surveysPerDay = 20_000
	ticketsPerDay = 20_000 // each created and solved: 40,000 ticket events
)

// centreFill generates the raw and analytics tables in the server ({db}, {private} (the
// database of employee answers), {start} (the first day, Unix seconds), {days},
// {perday}, {total}, {runs} replaced), over 16 stream partitions. Deterministic: hashes of the row number.
var centreFill = []string{
	`INSERT INTO {db}.survey_responses
SELECT
    concat('s-', toString(number)) AS id,
    multiIf(k < 60, 'ces', k < 85, 'csat', 'nps') AS survey,
    toDateTime({start} + intDiv(number, {perday}) * 86400 + sec, 'UTC') AS occurred_at,
    occurred_at + 2 + h % 30 AS received_at,
    'zendesk' AS source,
    toFloat64(multiIf(survey = 'ces', greatest(1, 7 - toInt64(cat % 5) - toInt64(h % 4)), survey = 'csat', 5 - toInt64(h % 3), 10 - toInt64(h % 8))) AS score,
    if(survey = 'nps', 0, 1) AS scale_min,
    multiIf(survey = 'ces', 7, survey = 'csat', 5, 10) AS scale_max,
    score AS standard_score,
    concat('t-', toString(intDiv(number, 2))) AS ticket_id,
    concat('c-', toString(h % 200000)) AS customer_id,
    multiIf(h % 10 < 4, 'phone', h % 10 < 7, 'email', h % 10 < 9, 'chat', 'web') AS channel,
    concat('category-', toString(cat)) AS category,
    concat('team-', toString(intDiv(agent, 20))) AS team,
    concat('agent-', toString(agent)) AS agent_id,
    '' AS comment,
    1 AS attributed,
    0 AS late,
    toUInt16(cityHash64(ticket_id) % 16) AS partition,
    number + 1 AS seq,
    number + 1 AS version
FROM
(
    SELECT number,
        cityHash64(number, 1) AS h,
        h % 100 AS k,
        toUInt32(floor(30 * pow((cityHash64(number, 2) % 1000000) / 1000000, 2))) AS cat,
        cityHash64(intDiv(number, 2), 3) % 1000 AS agent,
        (cityHash64(number, 4) % 1000000) / 1000000 AS u,
        toUInt32(if(u < 0.8, 8 * 3600 + u / 0.8 * 12 * 3600, (20 * 3600 + (u - 0.8) / 0.2 * 12 * 3600) % 86400)) AS sec
    FROM system.numbers LIMIT {total}
)
WHERE occurred_at < now()`,
	`INSERT INTO {db}.tickets
SELECT
    concat('e-', toString(number), '-', status) AS id,
    concat('t-', toString(number)) AS ticket_id,
    arrayJoin(['created', 'solved']) AS status,
    toDateTime({start} + intDiv(number, {perday}) * 86400 + sec + if(status = 'solved', handle, 0), 'UTC') AS occurred_at,
    occurred_at + 2 AS received_at,
    'zendesk' AS source,
    multiIf(h % 10 < 4, 'phone', h % 10 < 7, 'email', h % 10 < 9, 'chat', 'web') AS channel,
    concat('category-', toString(cat)) AS category,
    concat('team-', toString(intDiv(agent, 20))) AS team,
    concat('agent-', toString(agent)) AS agent_id,
    if(status = 'solved', toNullable(toFloat64(handle)), NULL) AS handle_seconds,
    if(status = 'solved', toNullable(toUInt32(1 + h % 3)), NULL) AS contacts,
    0 AS late,
    toUInt16(cityHash64(ticket_id) % 16) AS partition,
    number * 2 + 1 AS seq,
    seq AS version
FROM
(
    SELECT number,
        cityHash64(number, 5) AS h,
        toUInt32(floor(30 * pow((cityHash64(number, 6) % 1000000) / 1000000, 2))) AS cat,
        cityHash64(number, 3) % 1000 AS agent,
        120 + (h % 1800) + cat * 30 AS handle,
        (cityHash64(number, 7) % 1000000) / 1000000 AS u,
        toUInt32(if(u < 0.8, 8 * 3600 + u / 0.8 * 12 * 3600, (20 * 3600 + (u - 0.8) / 0.2 * 12 * 3600) % 86400)) AS sec
    FROM system.numbers LIMIT {total}
)
WHERE occurred_at < now()`,
	`INSERT INTO {private}.employee_pulses
SELECT
    concat('p-', toString(week), '-', toString(employee), '-', question) AS id,
    concat('employee-', toString(employee)) AS employee_id,
    concat('team-', toString(intDiv(employee, 20))) AS team,
    arrayJoin(['engagement', 'enps']) AS question,
    toDateTime({start} + week * 7 * 86400 + 9 * 3600 + cityHash64(number, 8) % 28800, 'UTC') AS occurred_at,
    occurred_at + 2 AS received_at,
    'hr' AS source,
    toFloat64(if(question = 'engagement', 1 + cityHash64(number, 9) % 5, cityHash64(number, 9) % 11)) AS score,
    if(question = 'engagement', 1, 0) AS scale_min,
    if(question = 'engagement', 5, 10) AS scale_max,
    0 AS late,
    toUInt16(cityHash64(employee_id) % 16) AS partition,
    number + 1 AS seq,
    seq AS version,
    received_at AS stored_at
FROM
(
    SELECT number, intDiv(number, 1000) AS week, number % 1000 AS employee
    FROM system.numbers LIMIT 5000
)
WHERE cityHash64(number, 10) % 10 < 7 AND occurred_at < now()`,
	`INSERT INTO {db}.effort_impact
SELECT w, toDateTime({start} + run * 300, 'UTC') AS window_end,
    concat('category-', toString(c)) AS category, 5000 - c * 150 AS tickets, tickets / 80000 AS volume_share,
    toNullable(volume_share * 1.1) AS handle_share, tickets * 0.2 AS handle_hours, toNullable(600 + c * 30.0) AS avg_handle_seconds,
    toNullable(1.2 + c / 100) AS contacts_per_resolution, toUInt64(tickets / 3) AS ces_responses, toNullable(6 - c / 10) AS ces,
    toNullable(ces - 0.1) AS ces_ci_low, toNullable(ces + 0.1) AS ces_ci_high, toNullable(c / 60) AS pct_difficult,
    toNullable(pct_difficult - 0.02) AS pct_difficult_low, toNullable(pct_difficult + 0.02) AS pct_difficult_high,
    toNullable(pct_difficult_low * handle_share) AS impact, toNullable(toUInt16(30 - c)) AS impact_rank, 'ok' AS status,
    window_end AS computed_at, 1 AS version
FROM
(
    SELECT run, arrayJoin(range(30)) AS c, arrayJoin(['7d', '30d']) AS w
    FROM (SELECT number AS run FROM system.numbers LIMIT {runs})
)
WHERE window_end < now()`,
	`INSERT INTO {db}.team_periods (period, period_start, team, engagement_respondents, engagement, enps_respondents, enps,
    ces_responses, ces, pct_difficult, csat_responses, csat, computed_at, version)
SELECT 'week', toDateTime(toUInt32(toMonday(now())) - week * 7 * 86400, 'UTC') AS period_start,
    concat('team-', toString(tm)) AS team, 14, toNullable(3 + (tm % 10) / 5), 14, toNullable(toFloat64(tm % 40) - 10),
    300, toNullable(4 + (tm % 10) / 4), toNullable(10 + toFloat64(tm % 7)), 120, toNullable(70 + toFloat64(tm % 20)),
    now(), version
FROM (SELECT intDiv(number, 500) AS week, intDiv(number % 500, 10) AS tm, number % 10 AS version FROM system.numbers LIMIT 2500)`,
	`INSERT INTO {db}.linkage (period, period_start, scope, span_periods, lag, employee_metric, customer_metric, teams, pairs,
    periods, pearson_r, spearman_r, ci_low, ci_high, p_value, status, computed_at, version)
SELECT 'week', toDateTime(toUInt32(toMonday(now())) - week * 7 * 86400, 'UTC') AS period_start, scope, if(scope = 'pooled', 4, 1),
    lag, em, cm, 50, if(scope = 'pooled', 200, 50), if(scope = 'pooled', 4, 1), toNullable(0.4 + lag / 20), toNullable(0.38),
    toNullable(0.15), toNullable(0.6), toNullable(0.01), 'ok', now(), version
FROM
(
    SELECT intDiv(number, 10) AS week, number % 10 AS version, arrayJoin(['period', 'pooled']) AS scope, arrayJoin([0, 1, 2, 3, 4]) AS lag,
        arrayJoin(['engagement', 'enps']) AS em, arrayJoin(['ces', 'pct_difficult', 'csat']) AS cm
    FROM (SELECT number FROM system.numbers LIMIT 50)
)`,
	`INSERT INTO {db}.drift_events
SELECT 'ces', 'category', concat('category-', toString(number % 30)), 'support', 'mean', 'worse', started_at,
    if(number % 50 = 0, NULL, toNullable(started_at + 3600)), started_at + 1800, -4.2, 3.1, 4.4, 40, 1500, '1h', '7d', 1
FROM (SELECT number, toDateTime(toUInt32(now()) - {days} * 86400 + number * 8640, 'UTC') AS started_at FROM system.numbers LIMIT 300)`,
}

// centreBuckets writes the buckets of the on-time surveys with occurred_at in [{from},
// {to}), one row per survey, dimension, key, minute and partition, as the processors do.
const centreBuckets = `INSERT INTO {db}.rollup_buckets
SELECT survey, tupleElement(d, 1) AS dimension, tupleElement(d, 2) AS key,
    toDateTime(intDiv(toUInt32(occurred_at), 60) * 60, 'UTC') AS bucket_start, partition,
    count() AS responses, sum(standard_score) AS score_sum, sum(standard_score * standard_score) AS score_sq_sum,
    sum(multiIf(survey = 'ces', standard_score >= 5, survey = 'csat', standard_score >= 4, standard_score >= 9)) AS positive,
    sum(multiIf(survey = 'ces', standard_score <= 3, survey = 'csat', standard_score <= 2, standard_score <= 6)) AS negative,
    max(seq) AS version
FROM
(
    SELECT survey, occurred_at, partition, standard_score, seq,
        arrayJoin([('overall', ''), ('category', category), ('channel', channel), ('team', team), ('agent', agent_id)]) AS d
    FROM {db}.survey_responses FINAL
    WHERE late = 0 AND occurred_at >= toDateTime({from}) AND occurred_at < toDateTime({to})
)
GROUP BY survey, dimension, key, bucket_start, partition`

// centreTables are copied, for the last day, into the database of one day of history.
var centreTables = map[string]string{
	"survey_responses": "occurred_at", "tickets": "occurred_at", "employee_pulses": "occurred_at",
	"rollup_buckets": "bucket_start", "effort_impact": "window_end", "team_periods": "period_start",
	"linkage": "period_start", "drift_events": "started_at",
}

func openCentre(b *testing.B, srv *chtest.Server) *clickhouse.Client {
	b.Helper()
	db := migratedDB(b, srv)
	writeWindows(b, db)
	return db
}

func execFill(b *testing.B, db *clickhouse.Client, q string, r *strings.Replacer) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := db.Conn().Exec(ctx, r.Replace(q)); err != nil {
		b.Fatalf("%v\n%s", err, r.Replace(q))
	}
}

// fillCentre writes centreDays of history (and today so far) into a new database. The
// buckets of past days go in one insert per day, today's in one per hour, so that the
// current day has the many unmerged parts that a running deployment's has.
func fillCentre(b *testing.B, srv *chtest.Server) *clickhouse.Client {
	b.Helper()
	db := openCentre(b, srv)
	start := time.Now()
	today := start.UTC().Truncate(24 * time.Hour)
	days := centreDays + 1 // and today so far
	for _, q := range centreFill {
		perDay := surveysPerDay
		if strings.Contains(q, ".tickets") {
			perDay = ticketsPerDay
		}
		execFill(b, db, q, strings.NewReplacer("{db}", db.Database(), "{private}", db.PrivateDatabase(), "{start}", fmt.Sprint(today.AddDate(0, 0, -centreDays).Unix()),
			"{days}", fmt.Sprint(centreDays), "{perday}", fmt.Sprint(perDay), "{total}", fmt.Sprint(days*perDay),
			"{runs}", fmt.Sprint(days*288)))
	}
	now := time.Now().UTC()
	for d := today.AddDate(0, 0, -centreDays); d.Before(today); d = d.AddDate(0, 0, 1) {
		execFill(b, db, centreBuckets, strings.NewReplacer("{db}", db.Database(), "{from}", fmt.Sprint(d.Unix()),
			"{to}", fmt.Sprint(d.AddDate(0, 0, 1).Unix())))
	}
	for h := today; h.Before(now); h = h.Add(time.Hour) {
		execFill(b, db, centreBuckets, strings.NewReplacer("{db}", db.Database(), "{from}", fmt.Sprint(h.Unix()),
			"{to}", fmt.Sprint(h.Add(time.Hour).Unix())))
	}
	compactHours(b, db)
	fmt.Printf("filled %d days and today in %s: %s\n", centreDays, time.Since(start).Round(time.Second), tableSizes(b, db))
	return db
}

// compactHours runs the compaction as the analytics stage's holder does, every
// partition caught up now: the hours up to an hour and 12 minutes ago (the default
// allowed lateness and attribution wait, a step and a minute) go into rollup_hours, and
// every day of the raw tables into survey_days and ticket_days (a first run).
func compactHours(b *testing.B, db *clickhouse.Client) {
	b.Helper()
	now := time.Now()
	c := compact.New(compact.Options{Store: db, Horizon: 72 * time.Minute,
		Watermarks: func(context.Context) ([]time.Time, error) { return slices.Repeat([]time.Time{now}, 16), nil }})
	until, err := c.RunOnce(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("compacted the hours until %s and added up the days in %s\n", until.Format(time.RFC3339), time.Since(now).Round(time.Millisecond))
}

// lastDay copies the last 24 hours of every table of month into a new database.
func lastDay(b *testing.B, srv *chtest.Server, month *clickhouse.Client) *clickhouse.Client {
	b.Helper()
	db := openCentre(b, srv)
	for table, col := range centreTables {
		to, from := db.Database(), month.Database()
		if table == "employee_pulses" {
			to, from = db.PrivateDatabase(), month.PrivateDatabase()
		}
		execFill(b, db, fmt.Sprintf("INSERT INTO %s.%s SELECT * FROM %s.%s WHERE %s >= now() - 86400",
			to, table, from, table, col), strings.NewReplacer())
	}
	compactHours(b, db)
	fmt.Printf("the last day alone: %s\n", tableSizes(b, db))
	return db
}

func tableSizes(b *testing.B, db *clickhouse.Client) string {
	b.Helper()
	rows, err := db.Conn().Query(context.Background(), "SELECT table, sum(rows), count() FROM system.parts "+
		"WHERE active AND database IN ('"+db.Database()+"', '"+db.PrivateDatabase()+"') GROUP BY table ORDER BY table")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			table       string
			n, partsNum uint64
		)
		if err := rows.Scan(&table, &n, &partsNum); err != nil {
			b.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d rows in %d parts", table, n, partsNum))
	}
	return strings.Join(out, ", ")
}

// panelQuery is one ClickHouse panel with its variables set.
type panelQuery struct {
	name string // dashboard/panel[/variables]
	sql  string // with variables expanded, macros not
}

// panelQueries lists every ClickHouse panel with the dashboard's default variables, and
// for each value of a window variable (the windows cost differently), plus the README's
// query of the rollups view, for comparison.
func panelQueries(b *testing.B) []panelQuery {
	boards := loadDashboards(b)
	var out []panelQuery
	for _, file := range slices.Sorted(func(yield func(string) bool) {
		for k := range boards {
			if !yield(k) {
				return
			}
		}
	}) {
		d := boards[file]
		variants := []map[string]string{defaults(d)}
		for _, v := range d.Templating.List {
			if v.Name != "window" {
				continue
			}
			variants = variants[:0]
			for _, o := range v.Options {
				vars := defaults(d)
				vars["window"] = o.Value
				variants = append(variants, vars)
			}
		}
		for _, p := range d.Panels {
			q := p.Targets[0]
			if q.Datasource.UID != "clickhouse" {
				continue
			}
			seen := map[string]bool{}
			for _, vars := range variants {
				sql := dashboards.ExpandVars(q.RawSQL, vars)
				if seen[sql] {
					continue
				}
				seen[sql] = true
				name := strings.TrimSuffix(file, ".json") + "/" + p.Title
				if w, ok := vars["window"]; ok && strings.Contains(q.RawSQL, "window") {
					name += "/" + w
				}
				out = append(out, panelQuery{name: name, sql: sql})
			}
		}
	}
	return append(out, panelQuery{name: "README/rollups view, 1h by category",
		sql: "SELECT key AS category, responses, round(mean, 2) AS ces, round(pct_difficult, 1) AS pct_difficult " +
			"FROM rollups WHERE survey = 'ces' AND `window` = '1h' AND dimension = 'category' ORDER BY ces"})
}

// timing is what one run of a query cost.
type timing struct {
	wall, cpu time.Duration
	readRows  uint64
}

// runQuery runs sql and drains its rows; id names it in system.query_log.
func runQuery(ctx context.Context, conn ch.Conn, id, sql string) (time.Duration, error) {
	ctx = ch.Context(ctx, ch.WithQueryID(id), ch.WithSettings(ch.Settings{"log_queries": 1}))
	start := time.Now()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
	}
	err = rows.Err()
	rows.Close()
	return time.Since(start), err
}

// serverCosts reads the CPU time and rows read of the queries ids from system.query_log.
func serverCosts(b *testing.B, db *clickhouse.Client, ids []string) map[string]timing {
	b.Helper()
	ctx := context.Background()
	if err := db.Conn().Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		b.Fatal(err)
	}
	cpu := "ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']"
	if v, err := db.Conn().ServerVersion(); err == nil && v.Version.Major < 21 {
		// Before 21.x the events are two arrays.
		cpu = "ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')] + " +
			"ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')]"
	}
	rows, err := db.Conn().Query(ctx, "SELECT query_id, toUInt64("+cpu+"), toUInt64(read_rows) FROM system.query_log "+
		"WHERE toUInt8(type) = 2 AND query_id IN ('"+strings.Join(ids, "', '")+"')")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := map[string]timing{}
	for rows.Next() {
		var (
			id        string
			cpu, read uint64
		)
		if err := rows.Scan(&id, &cpu, &read); err != nil {
			b.Fatal(err)
		}
		out[id] = timing{cpu: time.Duration(cpu) * time.Microsecond, readRows: read}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

func serverVersion(db *clickhouse.Client) string {
	v, err := db.Conn().ServerVersion()
	if err != nil {
		return "(version unknown)"
	}
	return v.Version.String()
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i, 1)-1]
}

func BenchmarkPanelQueries(b *testing.B) {
	srv := chtest.Start(b)
	month := fillCentre(b, srv)
	day := lastDay(b, srv, month)
	cases := []struct {
		history        string
		db             *clickhouse.Client
		span, interval time.Duration
	}{
		// Grafana's interval for a panel about 1,000 pixels wide: 1 min for a day, 30 min
		// for 30 days.
		{"1d", day, 24 * time.Hour, time.Minute},
		{"30d", month, 24 * time.Hour, time.Minute},
		{"30d", month, 30 * 24 * time.Hour, 30 * time.Minute},
	}
	// The panels' queries name no database: they run in the datasource's default one.
	conns := map[*clickhouse.Client]ch.Conn{}
	for _, c := range cases {
		conns[c.db] = srv.Conn(b, c.db.Database())
	}
	type result struct {
		name, history, span          string
		wall50, wall99, cpu50, cpu99 time.Duration
		readRows                     uint64
		runs                         int
	}
	var results []result
	queries := panelQueries(b)
	for _, c := range cases {
		span := fmt.Sprintf("%dd", int(c.span.Hours()/24))
		for _, q := range queries {
			b.Run("history="+c.history+"/range="+span+"/"+q.name, func(b *testing.B) {
				var (
					ids  []string
					wall []time.Duration
				)
				for i := 0; b.Loop(); i++ {
					to := time.Now()
					sql := dashboards.ExpandClickHouseMacros(q.sql, to.Add(-c.span), to, c.interval)
					id := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
					d, err := runQuery(context.Background(), conns[c.db], id, sql)
					if err != nil {
						b.Fatalf("%v\n%s", err, sql)
					}
					ids, wall = append(ids, id), append(wall, d)
				}
				costs := serverCosts(b, c.db, ids)
				var cpu []time.Duration
				var read uint64
				for _, id := range ids {
					cpu = append(cpu, costs[id].cpu)
					read = max(read, costs[id].readRows)
				}
				slices.Sort(wall)
				slices.Sort(cpu)
				r := result{name: q.name, history: c.history, span: span, wall50: percentile(wall, 50), wall99: percentile(wall, 99),
					cpu50: percentile(cpu, 50), cpu99: percentile(cpu, 99), readRows: read, runs: len(wall)}
				b.ReportMetric(float64(r.wall50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.wall99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(r.cpu50.Microseconds())/1000, "cpu-p50-ms")
				b.ReportMetric(float64(r.cpu99.Microseconds())/1000, "cpu-p99-ms")
				b.ReportMetric(float64(read), "rows-read")
				if len(results) > 0 && results[len(results)-1].name == r.name && results[len(results)-1].history == r.history &&
					results[len(results)-1].span == r.span {
					results[len(results)-1] = r // the last, longest run of this sub-benchmark
				} else {
					results = append(results, r)
				}
			})
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\npanel queries on ClickHouse %s (p99 of fewer than 100 runs is the slowest); load average %s", serverVersion(month), load)
	fmt.Println("| panel | history | range | runs | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | rows read |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %d | %d | %d | %d | %d | %d |\n", r.name, r.history, r.span, r.runs, r.wall50.Milliseconds(),
			r.wall99.Milliseconds(), r.cpu50.Milliseconds(), r.cpu99.Milliseconds(), r.readRows)
	}
}
