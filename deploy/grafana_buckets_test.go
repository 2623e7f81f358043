package deploy

// The rolling-window panels add per-minute buckets up at read time (docs/storage.md).
// Here they run on buckets placed at known minutes, on a real ClickHouse, and must return
// exactly the window sums those buckets make: the trends at chosen points of the chart,
// the drift panel's difference of two windows, and the "now" panels, which must also
// agree with the rollups view.

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// panelRunner runs dashboard panels against one database, as Grafana would.
type panelRunner struct {
	t          *testing.T
	conn       ch.Conn // the datasource's: default database the one under test
	dashboards map[string]dashboard
}

// resultRow is one result row by column name: numbers as float64, NULL as nil.
type resultRow map[string]any

// run expands the variables and macros of the panel titled title and returns its rows.
func (p panelRunner) run(file, title string, vars map[string]string, from, to time.Time, interval time.Duration) []resultRow {
	p.t.Helper()
	d, ok := p.dashboards[file]
	if !ok {
		p.t.Fatalf("no dashboard %s", file)
	}
	for _, panel := range d.Panels {
		if panel.Title != title {
			continue
		}
		sql := dashboards.ExpandClickHouseMacros(dashboards.ExpandVars(panel.Targets[0].RawSQL, vars), from, to, interval)
		return p.query(sql)
	}
	p.t.Fatalf("%s: no panel %q", file, title)
	return nil
}

func (p panelRunner) query(sql string) []resultRow {
	p.t.Helper()
	rows, err := p.conn.Query(p.t.Context(), sql)
	if err != nil {
		p.t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	names, types := rows.Columns(), rows.ColumnTypes()
	var out []resultRow
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			p.t.Fatal(err)
		}
		r := resultRow{}
		for i, v := range vals {
			r[names[i]] = plain(reflect.ValueOf(v).Elem())
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		p.t.Fatal(err)
	}
	return out
}

// plain turns a scanned value into float64, string, time.Time or nil.
func plain(v reflect.Value) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint())
	}
	if tm, ok := v.Interface().(time.Time); ok {
		return tm.UTC()
	}
	return v.Interface()
}

// pointAt returns the row whose time column is at and whose column col (if not "") is key.
func pointAt(rows []resultRow, when time.Time, col, key string) (resultRow, bool) {
	for _, r := range rows {
		if tm, _ := r["time"].(time.Time); tm.Equal(when) && (col == "" || r[col] == key) {
			return r, true
		}
	}
	return nil, false
}

func near(got any, want float64) bool {
	f, ok := got.(float64)
	return ok && math.Abs(f-want) < 1e-9
}

// migratedDB is a new database on srv with cxlink's schema, closed when the test ends.
func migratedDB(tb testing.TB, srv *chtest.Server) *clickhouse.Client {
	tb.Helper()
	db, err := clickhouse.Open(tb.Context(), srv.Config(srv.NewDatabase(tb)), nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Migrate(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return db
}

// writeWindows records the default windows (1 h, 24 h, 7 d) at a one-minute step, as the
// processors do at start: the panels read them from rollup_windows.
func writeWindows(tb testing.TB, db *clickhouse.Client) {
	tb.Helper()
	windows, err := effort.ParseWindows("1h,24h,7d")
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.WriteWindows(tb.Context(), time.Minute, windows); err != nil {
		tb.Fatal(err)
	}
}

func TestWindowedPanelsAddUpTheirBuckets(t *testing.T) {
	srv := chtest.Start(t)
	db := migratedDB(t, srv)
	writeWindows(t, db)

	// Around T, a fixed hour: the same buckets for key "k" of every dimension (overall: "").
	// The 1 h window ending at T holds T−60m, T−30m (its latest version) and T−1m, not
	// T−61m nor T itself: 6 responses, 27 points, CES 4.5. The 24 h and 7 d windows also
	// hold T−61m: 11 responses, 37 points. The window ending at T−30m holds T−61m and
	// T−60m: 7 responses, 24 points.
	T := time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)
	var buckets []records.Bucket
	add := func(dim, key string, start time.Time, partition uint16, n uint64, sum float64, version uint64) {
		buckets = append(buckets, records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: start, Partition: partition,
			Responses: n, ScoreSum: sum, Version: version})
	}
	for _, dim := range []string{"overall", "category", "channel", "team"} {
		key := "k"
		if dim == "overall" {
			key = ""
		}
		add(dim, key, T.Add(-61*time.Minute), 0, 5, 10, 1)
		add(dim, key, T.Add(-60*time.Minute), 0, 2, 14, 2)
		add(dim, key, T.Add(-30*time.Minute), 1, 1, 1, 3) // replaced by the next row
		add(dim, key, T.Add(-30*time.Minute), 1, 3, 6, 4)
		add(dim, key, T.Add(-time.Minute), 0, 1, 7, 5)
		add(dim, key, T, 0, 4, 4, 6)
	}
	// The drift panel: category "plan" has 20 responses (CES 3) in the hour before T and
	// 50 (CES 4.8) in the 7 days: −1.8. Category "k" has too few in the hour to be drawn.
	add("category", "plan", T.Add(-72*time.Hour), 0, 30, 180, 7)
	add("category", "plan", T.Add(-10*time.Minute), 1, 20, 60, 8)

	// The "now" panels read the windows ending at the current minute: 2 responses (2
	// points, both difficult) two hours ago, 5 (31 points, all easy) ten minutes ago.
	now := time.Now().UTC().Truncate(time.Minute)
	for _, dim := range []string{"overall", "category", "channel", "team"} {
		key := "k"
		if dim == "overall" {
			key = ""
		}
		buckets = append(buckets,
			records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: now.Add(-2 * time.Hour), Responses: 2, ScoreSum: 2, Negative: 2, Version: 10},
			records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: now.Add(-10 * time.Minute), Responses: 4, ScoreSum: 24, Positive: 4, Version: 11},
			records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: now.Add(-10 * time.Minute), Partition: 1, Responses: 1, ScoreSum: 7, Positive: 1, Version: 12})
	}
	if err := db.WriteBatch(t.Context(), &records.Batch{Buckets: buckets}); err != nil {
		t.Fatal(err)
	}

	p := panelRunner{t: t, conn: srv.Conn(t, db.Database()), dashboards: loadDashboards(t)}
	check := func(what string, rows []resultRow, when time.Time, col, key, value string, want float64) {
		t.Helper()
		r, ok := pointAt(rows, when, col, key)
		if !ok {
			t.Errorf("%s: no point at %s for %q", what, when.Format(time.TimeOnly), key)
			return
		}
		if !near(r[value], want) {
			t.Errorf("%s at %s: %s = %v, want %v", what, when.Format(time.TimeOnly), value, r[value], want)
		}
	}

	from, to := T.Add(-2*time.Hour), T.Add(time.Hour)
	for _, c := range []struct{ title, col string }{
		{"CES trend (overall)", ""},
		{"CES by category (trend)", "category"},
		{"CES by channel (trend)", "channel"},
		{"CES by team (trend)", "team"},
	} {
		key := ""
		if c.col != "" {
			key = "k"
		}
		w1h := map[string]string{"window": "1h"}
		rows := p.run("ces-overview.json", c.title, w1h, from, to, time.Minute)
		check(c.title+" 1h", rows, T, c.col, key, "ces", 4.5)
		check(c.title+" 1h", rows, T.Add(-30*time.Minute), c.col, key, "ces", 24.0/7)
		check(c.title+" 1h", rows, T.Add(time.Hour), c.col, key, "ces", 1)
		// Half-hour points (r = 30 min): the same windows.
		rows = p.run("ces-overview.json", c.title, w1h, from, to, 30*time.Minute)
		check(c.title+" 1h every 30m", rows, T, c.col, key, "ces", 4.5)
		check(c.title+" 1h every 30m", rows, T.Add(-30*time.Minute), c.col, key, "ces", 24.0/7)
		if _, ok := pointAt(rows, T.Add(-10*time.Minute), c.col, key); ok {
			t.Errorf("%s every 30m: a point between two half hours", c.title)
		}
		for _, w := range []string{"24h", "7d"} {
			rows = p.run("ces-overview.json", c.title, map[string]string{"window": w}, from, to, time.Minute)
			check(c.title+" "+w, rows, T, c.col, key, "ces", 37.0/11)
		}
	}

	drift := p.run("drift-alerts.json", "CES: 1 h window minus 7 d window, by category (ClickHouse)", nil, from, to, time.Minute)
	check("drift", drift, T, "category", "plan", "ces_drift", 3-4.8)
	if r, ok := pointAt(drift, T, "category", "k"); ok {
		t.Errorf("drift: category k drawn with 6 responses in the hour: %v", r)
	}

	for _, c := range []struct {
		window                          string
		responses, ces, easy, difficult float64
	}{
		{"1h", 5, 6.2, 100, 0},
		{"24h", 7, 33.0 / 7, 100 * 5.0 / 7, 100 * 2.0 / 7},
	} {
		vars := map[string]string{"window": c.window}
		overall := p.run("ces-overview.json", "CES now (overall)", vars, now.Add(-time.Hour), now, time.Minute)
		if len(overall) != 1 || !near(overall[0]["responses"], c.responses) || !near(overall[0]["ces"], c.ces) ||
			!near(overall[0]["pct_easy"], c.easy) || !near(overall[0]["pct_difficult"], c.difficult) {
			t.Errorf("CES now (overall) %s: %v, want %v responses, CES %v, %.2f%% easy, %.2f%% difficult",
				c.window, overall, c.responses, c.ces, c.easy, c.difficult)
		}
		view := p.query(fmt.Sprintf("SELECT dimension, key, responses, mean, pct_easy, pct_difficult FROM %s.rollups "+
			"WHERE survey = 'ces' AND `window` = '%s' AND key IN ('', 'k')", db.Database(), c.window))
		if len(view) != 4 {
			t.Fatalf("rollups %s: %v", c.window, view)
		}
		for _, v := range view {
			if !near(v["responses"], c.responses) || !near(v["mean"], c.ces) {
				t.Errorf("rollups %s disagrees with the panels: %v", c.window, v)
			}
		}
		for _, dim := range []string{"category", "channel", "team"} {
			title := fmt.Sprintf("CES by %s (now)", dim)
			rows := p.run("ces-overview.json", title, vars, now.Add(-time.Hour), now, time.Minute)
			if len(rows) != 1 || rows[0][dim] != "k" || !near(rows[0]["responses"], c.responses) ||
				!near(rows[0]["ces"], math.Round(c.ces*100)/100) || !near(rows[0]["% easy"], math.Round(c.easy*10)/10) ||
				!near(rows[0]["% difficult"], math.Round(c.difficult*10)/10) {
				t.Errorf("%s %s: %v", title, c.window, rows)
			}
		}
	}
}

// Over a range longer than 3 days the trend and drift panels draw hourly (or wider)
// points and read the compacted hours before C = max(compacted_until) and the minute
// buckets from C on (docs/storage.md, "Hourly compaction"). On the same buckets they must
// draw the points the minute read draws, also when a point's slot straddles C.
func TestHourlyPanelsMatchTheMinuteRead(t *testing.T) {
	srv := chtest.Start(t)
	db := migratedDB(t, srv)
	writeWindows(t, db)
	// 8 days shown, 7 more read by the 7 d window: a bucket every 7 minutes per series
	// and partition, some written again with a higher version.
	from := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(8 * 24 * time.Hour)
	var b records.Batch
	i := 0
	for start := from.Add(-8 * 24 * time.Hour); start.Before(to); start = start.Add(7 * time.Minute) {
		for _, dim := range []string{"overall", "category", "channel", "team"} {
			for k, key := range []string{"k1", "k2"} {
				if dim == "overall" {
					if k > 0 {
						continue
					}
					key = ""
				}
				i++
				n := uint64(1 + i%9)
				bucket := records.Bucket{Survey: "ces", Dimension: dim, Key: key, Start: start, Partition: uint16(i % 3),
					Responses: n, ScoreSum: float64(n) * float64(1+i%7) * 0.999999, Version: uint64(i)}
				b.Buckets = append(b.Buckets, bucket)
				if i%11 == 0 {
					bucket.Responses, bucket.ScoreSum, bucket.Version = n+2, bucket.ScoreSum+7, uint64(1_000_000+i)
					b.Buckets = append(b.Buckets, bucket)
				}
			}
		}
	}
	if err := db.WriteBatch(t.Context(), &b); err != nil {
		t.Fatal(err)
	}

	p := panelRunner{t: t, conn: srv.Conn(t, db.Database()), dashboards: loadDashboards(t)}
	type panel struct{ file, title, col, value string }
	panels := []panel{
		{"ces-overview.json", "CES trend (overall)", "", "ces"},
		{"ces-overview.json", "CES by category (trend)", "category", "ces"},
		{"ces-overview.json", "CES by channel (trend)", "channel", "ces"},
		{"ces-overview.json", "CES by team (trend)", "team", "ces"},
		{"drift-alerts.json", "CES: 1 h window minus 7 d window, by category (ClickHouse)", "category", "ces_drift"},
	}
	type variant struct {
		window   string
		interval time.Duration
		r        time.Duration // the resolution the panel must pick
	}
	variants := []variant{
		{"1h", 30 * time.Minute, time.Hour}, // at least an hour over 8 days
		{"24h", 30 * time.Minute, time.Hour},
		{"24h", 2 * time.Hour, 2 * time.Hour}, // a slot of two hours straddles C
		{"7d", 2 * time.Hour, 2 * time.Hour},
	}
	points := func(pn panel, v variant) map[string]any {
		t.Helper()
		rows := p.run(pn.file, pn.title, map[string]string{"window": v.window}, from, to, v.interval)
		out := map[string]any{}
		for _, r := range rows {
			tm := r["time"].(time.Time)
			if tm.Unix()%int64(v.r/time.Second) != 0 {
				t.Fatalf("%s %s: a point at %s, not on a multiple of %s", pn.title, v.window, tm, v.r)
			}
			id := tm.Format(time.RFC3339)
			if pn.col != "" {
				id += "/" + r[pn.col].(string)
			}
			out[id] = r[pn.value]
		}
		return out
	}
	// Before any compaction: C is 1970, every point from the minute buckets.
	minute := map[string]map[string]any{}
	for _, pn := range panels {
		for _, v := range variants {
			if pn.file == "drift-alerts.json" && (v.window != "24h" || v.r != time.Hour) {
				continue // no window variable, and its 1 h window allows hourly points only
			}
			got := points(pn, v)
			if len(got) < 90 {
				t.Fatalf("%s %s every %s: only %d points", pn.title, v.window, v.r, len(got))
			}
			minute[pn.title+"/"+v.window+"/"+v.r.String()] = got
		}
	}
	// Compact the hours up to C, an odd hour in the middle of the range.
	c := from.Add(3*24*time.Hour + 5*time.Hour)
	if err := db.CompactHours(t.Context(), from.Add(-8*24*time.Hour), c); err != nil {
		t.Fatal(err)
	}
	// A bucket below C written again after its hour was compacted (which the finality
	// rule prevents): the hourly read below C does not see it, so the points below are
	// read from the hours.
	stale := records.Bucket{Survey: "ces", Dimension: "overall", Start: c.Add(-2 * time.Hour), Responses: 1000, ScoreSum: 1000, Version: 1 << 40}
	if err := db.WriteBatch(t.Context(), &records.Batch{Buckets: []records.Bucket{stale}}); err != nil {
		t.Fatal(err)
	}
	for _, pn := range panels {
		for _, v := range variants {
			want, ok := minute[pn.title+"/"+v.window+"/"+v.r.String()]
			if !ok {
				continue
			}
			got := points(pn, v)
			if len(got) != len(want) {
				t.Errorf("%s %s every %s: %d points from hours and buckets, %d from buckets", pn.title, v.window, v.r, len(got), len(want))
			}
			for id, w := range want {
				g, ok := got[id]
				wf, _ := w.(float64)
				switch {
				case !ok:
					t.Errorf("%s %s every %s: no point %s", pn.title, v.window, v.r, id)
				case (g == nil) != (w == nil) || (w != nil && !near(g, wf)):
					t.Errorf("%s %s every %s at %s: %v from hours and buckets, %v from buckets", pn.title, v.window, v.r, id, g, w)
				}
			}
		}
	}
}
