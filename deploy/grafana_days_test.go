package deploy

// The panels that answer from raw events read, over ranges longer than 3 days, the daily
// totals the compaction adds up (docs/storage.md, "Daily totals of the raw tables"). Here
// they run on raw rows written by the sink and added up by the compactor, on a real
// ClickHouse, and must give what the same panel's raw read gives over the whole days the
// range touches.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/deploy/grafana/dashboards"
	"github.com/cxlink/cxlink/processors/compact"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// dayPanels are the panels with a daily-totals branch, and the column naming their rows.
var dayPanels = []struct{ file, title string }{
	{"effort-impact.json", "Categories ranked by effort (raw events in the time range)"},
	{"effort-impact.json", "Volume and effort by category"},
	{"ces-overview.json", "CES by category from raw events (includes imported history and late events)"},
}

// longRange is the range above which the panels read daily totals (3 days, in seconds,
// as the panels write it).
const longRange = "259200"

func TestRawPanelsReadDailyTotalsOverLongRanges(t *testing.T) {
	srv := chtest.Start(t)
	db := migratedDB(t, srv)
	// Seven days of answers and solves in three categories (and none), some late, some
	// written again in another category, some solves without a handle time.
	first := time.Date(2025, 6, 28, 0, 0, 0, 0, time.UTC) // across a month boundary
	var b records.Batch
	categories := []string{"billing", "shipping", "returns", ""}
	seq := uint64(0)
	for at := first.Add(17 * time.Minute); at.Before(first.Add(7 * 24 * time.Hour)); at = at.Add(53 * time.Minute) {
		seq++
		cat := categories[seq%4]
		kind, score, max := "ces", float64(1+seq%7), 7.0
		if seq%5 == 0 {
			kind, score, max = "csat", float64(1+seq%5), 5
		}
		s := records.Survey{Origin: records.Origin{ReceivedAt: at, Seq: seq, Version: records.Version(seq, 0), Late: seq%6 == 0},
			ID: fmt.Sprint("s", seq), Survey: kind, OccurredAt: at, Source: "test", Score: score, ScaleMin: 1, ScaleMax: max,
			StandardScore: score, Category: cat}
		b.Surveys = append(b.Surveys, s)
		if seq%9 == 0 { // attributed later, to another category
			s.Category, s.Version = categories[(seq+1)%3], records.Version(seq, 1)
			b.Surveys = append(b.Surveys, s)
		}
		if cat != "" {
			tk := records.Ticket{Origin: records.Origin{ReceivedAt: at, Seq: seq, Version: records.Version(seq, 0)},
				ID: fmt.Sprint("e", seq), TicketID: fmt.Sprint("t", seq/2), Status: "solved", OccurredAt: at, Source: "test", Category: cat}
			if seq%4 != 1 {
				h := float64(60 + seq%900)
				tk.HandleSeconds = &h
			}
			if seq%7 == 0 {
				tk.Status = "created"
			}
			b.Tickets = append(b.Tickets, tk)
		}
	}
	if err := db.WriteBatch(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	c := compact.New(compact.Options{Store: db, Horizon: time.Hour,
		Watermarks: func(context.Context) ([]time.Time, error) { return nil, nil }})
	if _, err := c.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}

	p := panelRunner{t: t, conn: srv.Conn(t, db.Database()), dashboards: loadDashboards(t)}
	// rawRead is the panel with its daily-totals branch off, whatever the range.
	rawRead := func(file, title string, from, to time.Time) []resultRow {
		for _, panel := range p.dashboards[file].Panels {
			if panel.Title == title {
				sql := strings.ReplaceAll(panel.Targets[0].RawSQL, longRange, "1000000000")
				return p.query(dashboards.ExpandClickHouseMacros(sql, from, to, time.Minute))
			}
		}
		t.Fatalf("%s: no panel %q", file, title)
		return nil
	}
	// A range of 5 days and some hours: the daily totals of the 6 days it touches, which
	// is what the raw rows of those whole days give.
	from, to := first.Add(30*time.Hour), first.Add(6*24*time.Hour+3*time.Hour)
	wholeFrom, wholeTo := first.Add(24*time.Hour), first.Add(7*24*time.Hour-time.Second)
	for _, panel := range dayPanels {
		got := p.run(panel.file, panel.title, nil, from, to, time.Hour)
		want := rawRead(panel.file, panel.title, wholeFrom, wholeTo)
		if len(want) < 3 {
			t.Fatalf("%s: the raw read has %d rows, want at least 3", panel.title, len(want))
		}
		sameRows(t, panel.title, got, want)
		// The same range of 3 days or less reads the raw rows of exactly that range.
		short := p.run(panel.file, panel.title, nil, from, from.Add(72*time.Hour), time.Minute)
		sameRows(t, panel.title+", 3 days", short, rawRead(panel.file, panel.title, from, from.Add(72*time.Hour)))
	}
	// Without the raw rows, the long range still reads the daily totals.
	for _, table := range []string{"survey_responses", "tickets"} {
		if err := db.Conn().Exec(t.Context(), "TRUNCATE TABLE "+db.Database()+"."+table); err != nil {
			t.Fatal(err)
		}
	}
	for _, panel := range dayPanels {
		if got := p.run(panel.file, panel.title, nil, from, to, time.Hour); len(got) < 3 {
			t.Errorf("%s over %s: %d rows once the raw rows are gone; it must read the daily totals", panel.title, to.Sub(from), len(got))
		}
	}
}

// sameRows fails unless got and want hold the same rows in the same order, numbers
// equal to 1e-9 (relative).
func sameRows(t *testing.T, name string, got, want []resultRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d:\n got %v\nwant %v", name, len(got), len(want), got, want)
		return
	}
	for i := range want {
		for col, w := range want[i] {
			g := got[i][col]
			wf, wok := w.(float64)
			gf, gok := g.(float64)
			if wok && gok {
				if math.Abs(gf-wf) > 1e-9*math.Max(1, math.Abs(wf)) && !(math.IsNaN(gf) && math.IsNaN(wf)) {
					t.Errorf("%s row %d %s = %v, want %v", name, i, col, g, w)
				}
				continue
			}
			if fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("%s row %d %s = %v, want %v", name, i, col, g, w)
			}
		}
	}
}
