package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// live is the moment test runs go live: a Wednesday afternoon.
var live = time.Date(2026, 3, 4, 15, 30, 0, 0, time.UTC)

func newGenerator(t *testing.T, cfg Config) *Generator {
	t.Helper()
	g, err := NewGenerator(cfg, live)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// run returns every event of g up to until.
func run(g *Generator, until time.Time) []event.Event {
	var all []event.Event
	for {
		evs := g.Next(until, 5000)
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
	}
}

// attributed returns the category and team of every survey, from the survey itself or
// from its ticket's created event, as the pipeline attributes it.
type attributed struct {
	event.Event
	category, team string
}

func attribute(t *testing.T, evs []event.Event) []attributed {
	t.Helper()
	tickets := map[string]*event.Event{}
	for i := range evs {
		if e := &evs[i]; e.Type == event.TypeTicket && e.Status == event.TicketCreated {
			tickets[e.TicketID] = e
		}
	}
	var out []attributed
	for _, e := range evs {
		if e.Type != event.TypeSurveyResponse {
			continue
		}
		a := attributed{Event: e, category: e.Category, team: e.Team}
		if a.team == "" {
			tk, ok := tickets[e.TicketID]
			if !ok {
				continue // its ticket comes after the end of the run
			}
			a.category, a.team = tk.Category, tk.Team
		}
		out = append(out, a)
	}
	return out
}

type mean struct{ sum, n float64 }

func (m *mean) add(v float64)          { m.sum += v; m.n++ }
func (m mean) value() float64          { return m.sum / m.n }
func (m mean) String() string          { return fmt.Sprintf("%.2f (n=%.0f)", m.value(), m.n) }
func between(t, lo, hi time.Time) bool { return !t.Before(lo) && t.Before(hi) }

func TestEventsAreValid(t *testing.T) {
	cfg := Config{Seed: 7, Rate: 8, History: 3 * time.Hour, PulseEvery: 20 * time.Minute,
		Drift: &Drift{Team: "charlie", After: -time.Hour, CESDelta: -3}}
	g := newGenerator(t, cfg)
	end := live.Add(time.Hour)
	seen := map[string]bool{}
	created := map[string]bool{}
	awaited := map[string]time.Time{} // ticket → its survey, sent before it
	employeeTeam := map[string]string{}
	kinds := map[string]int{}
	var surveys, ticketOnly, early int
	var last time.Time
	for until := g.Start(); until.Before(end); {
		until = until.Add(7*time.Minute + 13*time.Second)
		last = until
		v := event.Validator{Now: func() time.Time { return until }, MaxFuture: 5 * time.Minute}
		for _, e := range g.Next(until, 0) {
			if errs := v.Validate(&e); len(errs) > 0 {
				t.Fatalf("event %s is invalid: %v", e.ID, errs)
			}
			if seen[e.ID] {
				t.Fatalf("id %s sent twice", e.ID)
			}
			seen[e.ID] = true
			if at := e.OccurredAt; at.Location() != time.UTC || at.Nanosecond() != 0 || at.Before(g.Start().Truncate(time.Second)) || at.After(until) {
				t.Fatalf("event %s: occurred_at %v is not whole seconds in UTC between the start and the clock %v", e.ID, at, until)
			}
			kinds[string(e.Type)+"/"+string(e.Status)+string(e.Survey)+e.Question]++
			switch e.Type {
			case event.TypeTicket:
				switch e.Status {
				case event.TicketCreated:
					if *e.Contacts != 1 || e.HandleSeconds != nil {
						t.Errorf("created %s: contacts %d, handle %v; want 1 and none", e.ID, *e.Contacts, e.HandleSeconds)
					}
					created[e.TicketID] = true
					if _, ok := awaited[e.TicketID]; ok {
						early++
						delete(awaited, e.TicketID)
					}
				default:
					if !created[e.TicketID] {
						t.Errorf("%s sent before its ticket was created", e.ID)
					}
					if e.HandleSeconds == nil || *e.HandleSeconds <= 0 || *e.Contacts < 1 {
						t.Errorf("%s: handle %v, contacts %d; want a handle time and contacts", e.ID, e.HandleSeconds, *e.Contacts)
					}
				}
				if e.Category == "" || e.Team == "" || e.AgentID == "" || e.Channel == "" {
					t.Errorf("ticket event %s lacks attribution: %+v", e.ID, e)
				}
			case event.TypeSurveyResponse:
				surveys++
				if e.TicketID == "" {
					t.Errorf("survey %s has no ticket_id", e.ID)
				}
				if e.Team == "" {
					ticketOnly++
					if e.Category != "" || e.Channel != "" || e.AgentID != "" || e.CustomerID != "" {
						t.Errorf("survey %s is partly attributed: %+v", e.ID, e)
					}
				}
				if !created[e.TicketID] {
					awaited[e.TicketID] = e.OccurredAt
				}
			case event.TypeEmployeePulse:
				if tm, ok := employeeTeam[e.EmployeeID]; ok && tm != e.Team {
					t.Errorf("employee %s answers for %s and %s", e.EmployeeID, tm, e.Team)
				}
				employeeTeam[e.EmployeeID] = e.Team
			}
		}
	}
	t.Logf("kinds: %v", kinds)
	for _, k := range []string{"ticket/created", "ticket/solved", "ticket/reopened", "survey_response/ces",
		"survey_response/csat", "survey_response/nps", "employee_pulse/engagement", "employee_pulse/enps"} {
		if kinds[k] == 0 {
			t.Errorf("no %s events", k)
		}
	}
	if share := float64(ticketOnly) / float64(surveys); share < 0.4 || share > 0.6 {
		t.Errorf("%.2f of the surveys carry only ticket_id; want about half", share)
	}
	// Surveys sent ahead of their ticket: some, and the ticket follows within a minute.
	for _, e := range run(g, last.Add(2*time.Minute)) {
		if e.Type == event.TypeTicket && e.Status == event.TicketCreated {
			if _, ok := awaited[e.TicketID]; ok {
				early++
				delete(awaited, e.TicketID)
			}
		}
	}
	for id, at := range awaited {
		t.Errorf("ticket %s never came after its survey of %v", id, at)
	}
	if early == 0 || early > surveys/10 {
		t.Errorf("%d of %d surveys are sent before their ticket; want some", early, surveys)
	}
	if len(employeeTeam) != cfg.withDefaults().Teams*cfg.withDefaults().AgentsPerTeam {
		t.Errorf("%d employees answered pulses; want every one of them over 12 periods", len(employeeTeam))
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, Rate: 5, History: time.Hour, PulseEvery: 15 * time.Minute}
	end := live.Add(30 * time.Minute)
	want := newGenerator(t, cfg).Next(end, 0)

	// However the events are taken, in small or large pieces, they are the same.
	g := newGenerator(t, cfg)
	r := rand.New(rand.NewPCG(1, 2))
	var got []event.Event
	for until := g.Start(); ; {
		got = append(got, g.Next(until, 1+r.IntN(300))...)
		if until.Equal(end) && len(got) == len(want) {
			break
		}
		if until = until.Add(time.Duration(r.IntN(600)) * time.Second); until.After(end) {
			until = end
		}
		if len(got) > len(want) {
			t.Fatalf("%d events; want %d", len(got), len(want))
		}
	}
	if len(want) < 1000 {
		t.Fatalf("only %d events", len(want))
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("event %d differs:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
	}

	// Another seed makes other events with other ids.
	cfg.Seed = 43
	other := map[string]bool{}
	for _, e := range newGenerator(t, cfg).Next(end, 0) {
		other[e.ID] = true
		other[e.TicketID] = true
	}
	for _, e := range want {
		if other[e.ID] || (e.TicketID != "" && other[e.TicketID]) {
			t.Fatalf("seeds 42 and 43 share the id of %s (ticket %q)", e.ID, e.TicketID)
		}
	}
}

func TestRareCategoryHurtsMore(t *testing.T) {
	g := newGenerator(t, Config{Seed: 3, Rate: 10, History: 6 * time.Hour})
	evs := run(g, live)
	type stats struct {
		created          int
		ces, easy, hard  mean
		contacts, handle mean // at the ticket's last solve
	}
	by := map[string]*stats{}
	for _, c := range Categories() {
		by[c] = &stats{}
	}
	last := map[string]event.Event{}
	for _, e := range evs {
		if e.Type == event.TypeTicket {
			if e.Status == event.TicketCreated {
				by[e.Category].created++
			}
			if e.Status == event.TicketSolved {
				last[e.TicketID] = e
			}
		}
	}
	for _, e := range last {
		by[e.Category].contacts.add(float64(*e.Contacts))
		by[e.Category].handle.add(*e.HandleSeconds)
	}
	for _, a := range attribute(t, evs) {
		if a.Survey == event.SurveyCES {
			s := by[a.category]
			s.ces.add(*a.Score)
			s.easy.add(b2f(*a.Score >= 6))
			s.hard.add(b2f(*a.Score <= 3))
		}
	}
	for c, s := range by {
		t.Logf("%-17s created %6d, contacts %.2f, handle %5.0f s, CES %s, 6–7 %.2f, 1–3 %.2f",
			c, s.created, s.contacts.value(), s.handle.value(), s.ces, s.easy.value(), s.hard.value())
	}
	rare, common := by["plan_correction"], by["refund_request"]
	if rare.created*5 > common.created {
		t.Errorf("plan_correction has %d contacts, refund_request %d; want it rare", rare.created, common.created)
	}
	if rare.ces.n < 300 {
		t.Fatalf("only %v plan_correction CES answers", rare.ces.n)
	}
	if rare.ces.value() > common.ces.value()-2.5 {
		t.Errorf("CES plan_correction %v, refund_request %v; want the rare one far harder", rare.ces, common.ces)
	}
	if rare.hard.value() < 0.6 || common.easy.value() < 0.6 {
		t.Errorf("plan_correction 1–3: %.2f, refund_request 6–7: %.2f; want most answers there", rare.hard.value(), common.easy.value())
	}
	if rare.contacts.value() < 2 || common.contacts.value() > 1.2 {
		t.Errorf("contacts per resolution: plan_correction %.2f, refund_request %.2f", rare.contacts.value(), common.contacts.value())
	}
	if rare.handle.value() < 5*common.handle.value() {
		t.Errorf("handle time: plan_correction %.0f s, refund_request %.0f s; want it far longer", rare.handle.value(), common.handle.value())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestEngagementLeadsCES measures the link the pipeline is built to find: a team's pulse
// engagement in period t against its customers' CES in period t+1.
func TestEngagementLeadsCES(t *testing.T) {
	const teams, periods = 20, 40
	period := 10 * time.Minute
	g := newGenerator(t, Config{Seed: 11, Rate: 8, Teams: teams, PulseEvery: period, History: periods * period})
	evs := run(g, live)
	type key struct {
		team string
		p    time.Time
	}
	pulse, ces := map[key]*mean{}, map[key]*mean{}
	get := func(m map[key]*mean, k key) *mean {
		if m[k] == nil {
			m[k] = &mean{}
		}
		return m[k]
	}
	for _, e := range evs {
		if e.Type == event.TypeEmployeePulse && e.Question == "engagement" {
			get(pulse, key{e.Team, e.OccurredAt.Truncate(period)}).add(*e.Score)
		}
	}
	for _, a := range attribute(t, evs) {
		if a.Survey == event.SurveyCES {
			get(ces, key{a.team, a.OccurredAt.Truncate(period)}).add(*a.Score)
		}
	}
	var xs, ys []float64
	for k, p := range pulse {
		c, ok := ces[key{k.team, k.p.Add(period)}]
		if !ok || p.n < 5 || c.n < 10 { // the anonymity threshold, and a usable mean
			continue
		}
		xs, ys = append(xs, p.value()), append(ys, c.value())
	}
	r := pearson(xs, ys)
	t.Logf("engagement(t) vs CES(t+1): r = %.3f over %d team-periods", r, len(xs))
	if len(xs) < teams*periods/2 {
		t.Fatalf("only %d team-periods", len(xs))
	}
	if r < 0.3 {
		t.Errorf("r = %.3f; want a clear positive correlation", r)
	}
}

func pearson(xs, ys []float64) float64 {
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var sxy, sxx, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	return sxy / math.Sqrt(sxx*syy)
}

// TestDrift compares a run with a drift to the same run without: the drift changes the
// scores of the matching surveys inside its window, and nothing else.
func TestDrift(t *testing.T) {
	for _, tc := range []struct {
		name    string
		drift   Drift
		matches func(a attributed) bool
	}{{
		name:    "category",
		drift:   Drift{Category: "billing_question", After: 0, For: 2 * time.Hour, CESDelta: -2},
		matches: func(a attributed) bool { return a.category == "billing_question" },
	}, {
		name:    "team",
		drift:   Drift{Team: "bravo", After: -time.Hour, For: 2 * time.Hour, CESDelta: -1.5},
		matches: func(a attributed) bool { return a.team == "bravo" },
	}, {
		name:    "category of a team, without end",
		drift:   Drift{Category: "refund_request", Team: "alpha", After: 30 * time.Minute, CESDelta: -3},
		matches: func(a attributed) bool { return a.category == "refund_request" && a.team == "alpha" },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Seed: 5, Rate: 5, History: 2 * time.Hour}
			end := live.Add(3 * time.Hour)
			base := run(newGenerator(t, cfg), end)
			cfg.Drift = &tc.drift
			drifted := run(newGenerator(t, cfg), end)
			from, until := tc.drift.window(live)
			if until.IsZero() {
				until = end.Add(time.Hour)
			}

			if len(base) != len(drifted) {
				t.Fatalf("%d events with the drift, %d without", len(drifted), len(base))
			}
			inWindow := map[string]bool{}
			for _, a := range attribute(t, drifted) {
				inWindow[a.ID] = tc.matches(a) && between(a.OccurredAt, from, until)
			}
			var without, with mean
			for i := range base {
				b, d := base[i], drifted[i]
				if inWindow[d.ID] {
					if d.Survey == event.SurveyCES {
						without.add(*b.Score)
						with.add(*d.Score)
					}
					b.Score, b.Comment = d.Score, d.Comment
				}
				if !reflect.DeepEqual(b, d) {
					t.Fatalf("event %s changed outside the drift:\n  without %+v\n  with    %+v", d.ID, base[i], d)
				}
			}
			// The CES of the drifting surveys moves by about CESDelta (less where the
			// scale clamps it).
			shift := with.value() - without.value()
			t.Logf("CES of the drifting surveys: %v without the drift, %v with it", without, with)
			if with.n < 200 || shift > 0.6*tc.drift.CESDelta || shift < 1.1*tc.drift.CESDelta {
				t.Errorf("CES moved by %.2f over %v surveys; want about %v", shift, with.n, tc.drift.CESDelta)
			}
		})
	}
}

// TestEngagementDrift: a team's engagement drift lowers its pulse answers in the periods
// that start inside the window, and its customers' CES a period later; nothing else
// changes.
func TestEngagementDrift(t *testing.T) {
	period := 10 * time.Minute
	cfg := Config{Seed: 5, Rate: 5, History: 2 * time.Hour, PulseEvery: period}
	end := live.Add(3 * time.Hour)
	base := run(newGenerator(t, cfg), end)
	d := Drift{Team: "bravo", After: 0, For: 30 * time.Minute, EngagementDelta: -1.5}
	cfg.Drift = &d
	drifted := run(newGenerator(t, cfg), end)
	if len(base) != len(drifted) {
		t.Fatalf("%d events with the drift, %d without", len(drifted), len(base))
	}
	from, until := d.window(live)
	team := map[string]string{}
	for _, a := range attribute(t, drifted) {
		team[a.ID] = a.team
	}
	var engWithout, engWith, enpsWithout, enpsWith, cesWithout, cesWith mean
	for i := range base {
		b, e := base[i], drifted[i]
		ps := e.OccurredAt.Truncate(period)
		switch {
		case e.Type == event.TypeEmployeePulse && e.Team == "bravo" && between(ps, from, until):
			if e.Question == "engagement" {
				engWithout.add(*b.Score)
				engWith.add(*e.Score)
			} else {
				enpsWithout.add(*b.Score)
				enpsWith.add(*e.Score)
			}
			b.Score = e.Score
		case e.Type == event.TypeSurveyResponse && team[e.ID] == "bravo" && between(ps, from.Add(period), until.Add(period)):
			if e.Survey == event.SurveyCES {
				cesWithout.add(*b.Score)
				cesWith.add(*e.Score)
			}
			b.Score, b.Comment = e.Score, e.Comment
		}
		if !reflect.DeepEqual(b, e) {
			t.Fatalf("event %s changed outside the drift:\n  without %+v\n  with    %+v", e.ID, base[i], e)
		}
	}
	t.Logf("bravo engagement %v → %v, eNPS answers %v → %v; its customers' CES a period later %v → %v",
		engWithout, engWith, enpsWithout, enpsWith, cesWithout, cesWith)
	if engWith.n < 10 || engWith.value()-engWithout.value() > -1 || engWith.value()-engWithout.value() < -1.6 {
		t.Errorf("engagement moved by %.2f; want about -1.5", engWith.value()-engWithout.value())
	}
	if enpsWith.value()-enpsWithout.value() > -2 {
		t.Errorf("eNPS answers moved by %.2f; want a clear drop", enpsWith.value()-enpsWithout.value())
	}
	// engagementEffect (0.6) × −1.5 ≈ −0.9, less where the scale clamps it.
	if shift := cesWith.value() - cesWithout.value(); cesWith.n < 30 || shift > -0.5 || shift < -1.1 {
		t.Errorf("CES a period later moved by %.2f over %v surveys; want about -0.9", shift, cesWith.n)
	}
}
