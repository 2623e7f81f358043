package clickhouse_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The stage's reads on raw rows written as the processors write them, with figures
// worked out by hand; then its writes, read back once each with FINAL.
func TestAnalyticsReadsAndWrites(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	ctx := context.Background()
	week := 7 * 24 * time.Hour
	monday := at("2026-03-02T00:00:00Z")
	in := monday.Add(50 * time.Hour)
	var seq uint64
	origin := func(late bool) records.Origin {
		seq++
		return records.Origin{ReceivedAt: in, Seq: seq, Version: records.Version(seq, 0), Late: late}
	}
	var b records.Batch
	// red's engagement: e1 answers 2 then, later, 4 (counts once, as 4); e2 5 on a 0-10
	// scale (= 3 on 1-5); e3 a resend of the same id (one row under FINAL).
	pulse := func(id, emp, q string, score, lo, hi float64, at time.Time) {
		b.Pulses = append(b.Pulses, records.Pulse{Origin: origin(false), ID: id, EmployeeID: emp, Team: "red",
			Question: q, OccurredAt: at, Score: score, ScaleMin: lo, ScaleMax: hi})
	}
	pulse("p1", "e1", "engagement", 2, 1, 5, in)
	pulse("p2", "e1", "engagement", 4, 1, 5, in.Add(time.Hour))
	pulse("p3", "e2", "engagement", 5, 0, 10, in)
	pulse("p4", "e3", "engagement", 1, 1, 5, in)
	pulse("p4", "e3", "engagement", 1, 1, 5, in)
	pulse("p5", "e1", "enps", 10, 0, 10, in)
	pulse("p6", "e2", "enps", 3, 0, 10, in)
	pulse("p7", "e3", "enps", 8, 0, 10, in)
	pulse("p8", "e1", "engagement", 5, 1, 5, monday.Add(-time.Hour)) // the week before
	survey := func(id, kind, team, category string, std float64, at time.Time, late bool) {
		b.Surveys = append(b.Surveys, records.Survey{Origin: origin(late), ID: id, Survey: kind, OccurredAt: at,
			Score: std, ScaleMin: 1, ScaleMax: 7, StandardScore: std, Team: team, Category: category})
	}
	survey("s1", "ces", "red", "billing", 2, in, false)
	survey("s2", "ces", "red", "billing", 6, in, true) // late: counted all the same
	survey("s3", "csat", "red", "billing", 4, in, false)
	survey("s4", "ces", "", "refund", 7, in, false) // no team: not in team figures
	survey("s5", "nps", "red", "refund", 9, in, false)
	ticket := func(id, tid, status, category string, handle float64, contacts int64, at time.Time) {
		b.Tickets = append(b.Tickets, records.Ticket{Origin: origin(false), ID: id, TicketID: tid, Status: status,
			OccurredAt: at, Category: category, HandleSeconds: &handle, Contacts: &contacts})
	}
	ticket("t1-c", "T1", "created", "billing", 0, 1, in)
	ticket("t1-s1", "T1", "solved", "billing", 600, 2, in.Add(time.Hour))
	ticket("t1-s2", "T1", "solved", "billing", 900, 3, in.Add(3*time.Hour)) // reopened, solved again
	ticket("t2-s1", "T2", "solved", "refund", 120, 1, in)
	b.Tickets = append(b.Tickets, records.Ticket{Origin: origin(false), ID: "t3-s1", TicketID: "T3", Status: "solved",
		OccurredAt: in, Category: "refund"}) // handle time and contacts unknown
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}

	off := pulses.EpochOffset(week)
	var never time.Time
	emp, err := c.PulseGroups(ctx, week, off, monday.Add(-week), monday.Add(week), never, never, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range emp {
		if time.Since(emp[i].LastStored).Abs() > time.Minute {
			t.Errorf("last stored %s, not just now", emp[i].LastStored)
		}
		emp[i].LastStored = time.Time{}
	}
	if got := fmt.Sprint(emp); got != fmt.Sprintf("[{red engagement %s 3 8 26 0 0 %s} {red enps %s 3 21 173 1 1 %s}]", monday, time.Time{}, monday, time.Time{}) {
		t.Errorf("pulse groups: %s", got)
	}
	// The threshold: red's previous week has one answer.
	if emp, _ := c.PulseGroups(ctx, week, off, monday.Add(-week), monday.Add(week), never, never, 1); len(emp) != 3 {
		t.Errorf("with threshold 1: %v", emp)
	}
	// Only the groups that changed: none stored since a minute from now, and periods
	// closed from this week on are this week's.
	now, err := c.ServerNow(ctx)
	if err != nil || time.Since(now).Abs() > time.Minute {
		t.Fatalf("server clock %s: %v", now, err)
	}
	later := now.Add(time.Minute)
	if emp, _ := c.PulseGroups(ctx, week, off, monday.Add(-week), monday.Add(week), later, later, 1); len(emp) != 0 {
		t.Errorf("nothing stored since %s, yet %v", later, emp)
	}
	if emp, _ := c.PulseGroups(ctx, week, off, monday.Add(-week), monday.Add(week), later, monday, 1); len(emp) != 2 {
		t.Errorf("this week's groups: %v", emp)
	}
	if emp, _ := c.PulseGroups(ctx, week, off, monday.Add(-week), monday.Add(week), now.Add(-time.Minute), later, 1); len(emp) != 3 {
		t.Errorf("stored in the last minute: %v", emp)
	}
	cust, err := c.CustomerAggregates(ctx, week, off, monday, monday.Add(week))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cust); got != fmt.Sprintf("[{red ces %s 2 8 1 1} {red csat %s 1 4 1 0}]", monday, monday) {
		t.Errorf("customer aggregates: %s", got)
	}
	tk, err := c.CategoryTickets(ctx, monday, monday.Add(week))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(tk); got != "[{billing 1 900 1 3 1} {refund 2 120 1 1 1}]" {
		t.Errorf("tickets: %s", got)
	}
	ces, err := c.CategoryCES(ctx, monday, monday.Add(week))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ces); got != "[{billing 2 8 8 1} {refund 1 7 NaN 0}]" && got != "[{billing 2 8 8 1} {refund 1 7 Inf 0}]" {
		t.Errorf("ces: %s", got)
	}

	r, p, md, df := 0.5, 0.1, 0.79, uint32(7)
	links := []records.Linkage{{Period: "7d", PeriodStart: monday, Scope: "period", SpanPeriods: 1, Lag: 1,
		EmployeeMetric: "engagement", CustomerMetric: "ces", Teams: 9, Pairs: 9, Periods: 1, DF: &df, Pearson: &r, Spearman: &r,
		CILow: &r, CIHigh: &r, P: &p, MinDetectable: &md, Status: "ok", Reading: "underpowered"},
		// A row of the scope written before between_teams and within_teams: never read.
		{Period: "7d", PeriodStart: monday, Scope: "pooled", SpanPeriods: 4, EmployeeMetric: "engagement", CustomerMetric: "ces",
			Teams: 6, Pairs: 24, Periods: 4, Pearson: &r, CILow: &r, CIHigh: &r, P: &p, Status: "ok"},
		{Period: "7d", PeriodStart: monday.Add(-week), Scope: "within_teams", SpanPeriods: 4, EmployeeMetric: "engagement", CustomerMetric: "ces",
			Teams: 6, Pairs: 24, Periods: 4, Status: "too_few_pairs", Reading: "no_result"}}
	rank := uint16(1)
	impact := []records.EffortImpact{{Window: "7d", WindowEnd: monday, Category: "billing", Tickets: 1, Impact: &r, Rank: &rank, Status: "ok"}}
	teams := []records.TeamPeriod{{Period: "7d", PeriodStart: monday, Team: "red", EngagementRespondents: 3, Engagement: &r, EngagementSD: &p,
		ENPSRespondents: 3, ENPS: &r, ENPSPromoters: &r, ENPSDetractors: &p}}
	for v := uint64(1); v <= 2; v++ { // a rerun rewrites: one row each under FINAL
		if err := c.WriteAnalytics(ctx, teams, links, impact, monday, v); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := c.TeamPeriods(ctx, "7d", monday, monday.Add(week)); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], teams[0]) {
		t.Errorf("team periods read back: %+v %v", got, err)
	}
	db := c.Database()
	for table, want := range map[string]uint64{"linkage": 3, "team_periods": 1, "effort_impact": 1} {
		var n uint64
		if err := c.Conn().QueryRow(ctx, "SELECT count() FROM "+db+"."+table+" FINAL").Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d rows (%v)", table, n, err)
		}
	}
	got, at, err := c.CurrentLinkage(ctx, "7d", []string{"within_teams", "between_teams", "period"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Scope != "within_teams" || got[0].DF != nil || got[0].Reading != "no_result" ||
		got[1].Scope != "period" || *got[1].DF != 7 || *got[1].MinDetectable != md || got[1].Reading != "underpowered" || !at.Equal(monday) {
		t.Errorf("current linkage: %+v at %v", got, at)
	}
}

// Retention of the private table: the months ended before the given time go, whole.
func TestDropPulsesBefore(t *testing.T) {
	c, _ := open(t, chtest.Start(t))
	ctx := t.Context()
	var b records.Batch
	for i, at := range []time.Time{at("2026-01-20T10:00:00Z"), at("2026-02-27T10:00:00Z"), at("2026-03-02T10:00:00Z")} {
		seq := uint64(i + 1)
		b.Pulses = append(b.Pulses, records.Pulse{Origin: records.Origin{ReceivedAt: at, Seq: seq, Version: records.Version(seq, 0)},
			ID: fmt.Sprint("p", i), EmployeeID: "emp-1", Team: "red", Question: "engagement", OccurredAt: at, Score: 3, ScaleMin: 1, ScaleMax: 5})
	}
	if err := c.WriteBatch(ctx, &b); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		dropped, err := c.DropPulsesBefore(ctx, at("2026-03-01T00:00:00Z"))
		if err != nil || (run == 0 && fmt.Sprint(dropped) != "[202601 202602]") || (run == 1 && len(dropped) != 0) {
			t.Fatalf("run %d: dropped %v, %v", run, dropped, err)
		}
	}
	var n uint64
	if err := c.Conn().QueryRow(ctx, "SELECT count() FROM "+c.PrivateDatabase()+".employee_pulses").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d answers left, want March's one: %v", n, err)
	}
}
