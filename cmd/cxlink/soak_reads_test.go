package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// readScenario is a history and the time range a dashboard shows over it.
type readScenario struct {
	name     string
	db       *clickhouse.Client
	conn     ch.Conn // the datasource's: its default database is db's, as the panels name none
	from     time.Time
	interval time.Duration // Grafana's $__interval for the range (about range / 1,000 points)
}

// soakQuery is one panel's query, or one of the reads docs/storage.md documents.
type soakQuery struct {
	name string
	sql  string // with Grafana's macros and the database cxlink
}

// soakPanels reads the ClickHouse panel queries of deploy/grafana/dashboards with each
// dashboard's default variables, as Grafana runs them when the dashboard opens.
func soakPanels(b *testing.B) []soakQuery {
	files, err := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	if err != nil || len(files) == 0 {
		b.Fatalf("dashboards: %v %v", files, err)
	}
	var out []soakQuery
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		var d struct {
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Current struct {
						Value string `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				ID      int    `json:"id"`
				Title   string `json:"title"`
				Targets []struct {
					Datasource struct {
						UID string `json:"uid"`
					} `json:"datasource"`
					RawSQL string `json:"rawSql"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			b.Fatalf("%s: %v", f, err)
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Current.Value
		}
		for _, p := range d.Panels {
			for _, t := range p.Targets {
				if t.Datasource.UID == "clickhouse" && t.RawSQL != "" {
					out = append(out, soakQuery{name: fmt.Sprintf("%s #%d %s", strings.TrimSuffix(filepath.Base(f), ".json"), p.ID, p.Title),
						sql: dashboards.ExpandVars(t.RawSQL, vars)})
				}
			}
		}
	}
	return out
}

// soakDocumentedReads are the reads docs/storage.md gives for windows over time: the
// CES 1 h window per category at Grafana's interval ({r}), and the 7 d window per team
// hourly (its cost grows with the points per window, W / r), through the range shown.
func soakDocumentedReads() []soakQuery {
	over := func(dimension string, window time.Duration, r string) string {
		w := strconv.Itoa(int(window.Seconds()))
		q := `SELECT b + (i + 1) * {r} AS time, key, sum(n) AS responses, sum(s) / sum(n) AS mean
FROM
(
    SELECT key, toDateTime(intDiv(toUInt32(bucket_start), {r}) * {r}, 'UTC') AS b,
           sum(responses) AS n, sum(score_sum) AS s
    FROM cxlink.rollup_buckets FINAL
    WHERE survey = 'ces' AND dimension = '` + dimension + `'
      AND bucket_start >= $__fromTime - ` + w + ` AND bucket_start < $__toTime
    GROUP BY key, b
)
ARRAY JOIN range(intDiv(` + w + `, {r})) AS i
WHERE time >= $__fromTime AND time <= $__toTime
GROUP BY time, key
ORDER BY time`
		return strings.ReplaceAll(q, "{r}", r)
	}
	return []soakQuery{
		{name: "docs/storage.md: 1 h CES by category over time", sql: over("category", time.Hour, "{r}")},
		{name: "docs/storage.md: 7 d CES by team over time", sql: over("team", 7*24*time.Hour, "3600")},
		{name: "docs/storage.md: current windows (rollups view), CES by category", sql: "SELECT `window`, key, responses, mean FROM cxlink.rollups WHERE survey = 'ces' AND dimension = 'category'"},
		{name: "current 1 h, 24 h, 7 d CES by category from rollup_buckets, filtered (no view)", sql: `WITH toDateTime(intDiv(toUInt32(now()), 60) * 60, 'UTC') AS e
SELECT key,
       sumIf(responses, bucket_start >= e - 3600) AS n_1h, sumIf(score_sum, bucket_start >= e - 3600) / n_1h AS ces_1h,
       sumIf(responses, bucket_start >= e - 86400) AS n_24h, sumIf(score_sum, bucket_start >= e - 86400) / n_24h AS ces_24h,
       sum(responses) AS n_7d, sum(score_sum) / n_7d AS ces_7d
FROM cxlink.rollup_buckets FINAL
WHERE survey = 'ces' AND dimension = 'category'
  AND bucket_start >= e - 604800 AND bucket_start < e
GROUP BY key`},
	}
}

// soakExpandMacros expands the grafana-clickhouse-datasource macros, and the database
// name; {r} is the documented reads' resolution: the interval, at least the step, and a
// divisor of an hour.
func soakExpandMacros(sql, database string, from, to time.Time, interval time.Duration) string {
	r := strconv.Itoa(int(min(max(interval, time.Minute), time.Hour).Seconds()))
	sql = strings.NewReplacer("{r}", r, "cxlink.", database+".").Replace(sql)
	return dashboards.ExpandClickHouseMacros(sql, from, to, interval)
}

// timeReads runs every query of every scenario until it ran PanelRuns times or for
// PanelTime (at least 5 times), and prints p50 and p99 (nearest rank) of each, and the
// rows ClickHouse read for it (its progress reports): a figure the machine's load does
// not change.
func timeReads(b *testing.B, out io.Writer, scenarios []readScenario, end time.Time, set soakSettings) {
	ctx := b.Context()
	queries := append(soakPanels(b), soakDocumentedReads()...)
	fmt.Fprintf(out, "Each query run until %d runs or %s (at least 5), end to end through clickhouse-go: p50 / p99 (nearest rank); "+
		"the ClickHouse server's CPU time per run (mean; its background merges included), which the machine's load changes little; "+
		"the rows it read; the rows returned. %s\n", set.PanelRuns, set.PanelTime, loadAverage())
	header := "| query |"
	for _, s := range scenarios {
		header += " " + s.name + " |"
	}
	fmt.Fprintf(out, "%s\n|---|%s\n", header, strings.Repeat("---|", len(scenarios)))
	worst := make([]time.Duration, len(scenarios))
	for _, q := range queries {
		cells := make([]string, len(scenarios))
		for i, s := range scenarios {
			// The range ends a minute after the history, as a dashboard opened now shows it.
			sql := soakExpandMacros(q.sql, s.db.Database(), s.from, end.Add(time.Minute), s.interval)
			if strings.Contains(sql, "$") {
				b.Fatalf("%s: unexpanded macro or variable in\n%s", q.name, sql)
			}
			var took []time.Duration
			rowsOut := 0
			var read uint64
			cpu0 := serverCPU()
			qctx := ch.Context(ctx, ch.WithProgress(func(p *ch.Progress) { read += p.Rows }))
			started := time.Now()
			for len(took) < set.PanelRuns && (len(took) < 5 || time.Since(started) < set.PanelTime) {
				read = 0
				t0 := time.Now()
				rows, err := s.conn.Query(qctx, sql)
				if err != nil {
					b.Errorf("%s (%s): %v\n%s", q.name, s.name, err, sql)
					break
				}
				n := 0
				for rows.Next() {
					n++
				}
				err = rows.Err()
				rows.Close()
				if err != nil {
					b.Errorf("%s (%s): %v", q.name, s.name, err)
					break
				}
				took = append(took, time.Since(t0))
				rowsOut = n
			}
			if len(took) == 0 {
				cells[i] = "error"
				continue
			}
			cpu := (serverCPU() - cpu0) / time.Duration(len(took))
			p99 := quantile(took, 0.99)
			worst[i] = max(worst[i], p99)
			cells[i] = fmt.Sprintf("%s / %s, CPU %s, read %s, %d rows", ms(quantile(took, 0.5)), ms(p99), ms(cpu), count(read), rowsOut)
		}
		fmt.Fprintf(out, "| %s | %s |\n", q.name, strings.Join(cells, " | "))
	}
	cells := make([]string, len(scenarios))
	for i, w := range worst {
		cells[i] = ms(w)
	}
	fmt.Fprintf(out, "| slowest p99 | %s |\n", strings.Join(cells, " | "))
}

// count prints a number of rows briefly.
func count(n uint64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return strconv.FormatUint(n, 10)
}

// loadAverage is the machine's load, which the timings depend on.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return fmt.Sprintf("(load average %s %s %s on %d cores)", f[0], f[1], f[2], runtime.NumCPU())
}

// serverCPU is the CPU time (user and system) of the private ClickHouse server this test
// started (a child of this process), 0 when there is none (an external server).
func serverCPU() time.Duration {
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total time.Duration
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime at fields 14 and 15; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "clickhouse") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	return total
}
