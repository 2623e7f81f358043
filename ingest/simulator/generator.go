package simulator

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// source is the source field of every simulated event.
const source = "simulator"

// Generator is the simulated contact centre, free of any I/O: it turns simulated time
// into events. It is a discrete-event simulation: contacts arrive as a Poisson process,
// each arrival schedules its ticket lifecycle and survey response, and each pulse period
// schedules the teams' pulse answers. The events come out in the order they are to be
// sent, which is their occurred_at order except for the surveys sent ahead of their
// tickets.
//
// The output depends only on the Config and the live time given to NewGenerator, not on
// how Next is called: calling it once or a thousand times yields the same events.
// A Generator is not safe for concurrent use.
type Generator struct {
	cfg   Config
	start time.Time // first simulated instant: live − History
	rng   *rand.Rand
	// prefix starts every ticket and event id: it holds the seed, so runs with
	// different seeds never share ids.
	prefix string

	contactRate float64 // contacts per second
	catCDF      []float64
	chanCDF     []float64
	teams       []*team

	driftFrom, driftUntil time.Time

	// Drivers: the next arrival and the next pulse period to open.
	nextArrival time.Time
	nextPeriod  int
	tickets     int64
	responses   int64 // pulse responses scheduled: their ids

	// Periods are counted from base, the start of the period before the one holding
	// start: engagement of period k−1 must exist for every period k ≥ 1.
	base time.Time

	pending queue
	seq     uint64
}

type team struct {
	name   string
	agents []agent
	// walk steps the engagement random walk; its own stream, so that periods can be
	// drawn on demand in any order of requests.
	walk       *rand.Rand
	mean       float64
	engagement []float64 // by period index
}

type agent struct {
	id, employeeID string
	skill          float64 // added to the latent CES mean
	mood           float64 // added to the agent's pulse answers
}

// NewGenerator returns the contact centre of cfg (zero fields take DefaultConfig) whose
// live part starts at live: it simulates from live − cfg.History on, and a drift's After
// counts from live.
func NewGenerator(cfg Config, live time.Time) (*Generator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateModel(); err != nil {
		return nil, err
	}
	live = live.Round(0).UTC() // no monotonic reading: the output must not depend on it
	seed := uint64(cfg.Seed)
	g := &Generator{
		cfg:         cfg,
		start:       live.Add(-cfg.History),
		rng:         rand.New(rand.NewPCG(seed, 0x5eed_c0ffee)),
		prefix:      "s" + strconv.FormatUint(seed, 36),
		contactRate: cfg.Rate / eventsPerContact(),
	}
	g.base = g.start.Truncate(cfg.PulseEvery).Add(-cfg.PulseEvery)
	g.nextPeriod = g.period(g.start)
	if d := cfg.Drift; d != nil {
		g.driftFrom, g.driftUntil = d.window(live)
	}
	for _, c := range categories {
		g.catCDF = appendCDF(g.catCDF, c.share)
	}
	for _, c := range channels {
		g.chanCDF = appendCDF(g.chanCDF, c.share)
	}
	setup := rand.New(rand.NewPCG(seed, 0x7ea5))
	for i, name := range TeamNames(cfg.Teams) {
		t := &team{
			name: name,
			walk: rand.New(rand.NewPCG(seed, 0xe0_0000+uint64(i))),
			mean: clamp(engagementMean+engagementTeamSD*setup.NormFloat64(), 2.5, 4.7),
		}
		for j := range cfg.AgentsPerTeam {
			n := fmt.Sprintf("%s-%02d", name, j+1)
			t.agents = append(t.agents, agent{
				id:         "agent-" + n,
				employeeID: "emp-" + n,
				skill:      agentSkillSD * setup.NormFloat64(),
				mood:       0.35 * setup.NormFloat64(),
			})
		}
		g.teams = append(g.teams, t)
	}
	g.nextArrival = g.start.Add(g.interarrival())
	return g, nil
}

func appendCDF(cdf []float64, share float64) []float64 {
	prev := 0.0
	if len(cdf) > 0 {
		prev = cdf[len(cdf)-1]
	}
	return append(cdf, prev+share)
}

// pick returns an index drawn from a cumulative distribution.
func (g *Generator) pick(cdf []float64) int {
	u := g.rng.Float64() * cdf[len(cdf)-1]
	for i, c := range cdf {
		if u < c {
			return i
		}
	}
	return len(cdf) - 1
}

// Start is the first simulated instant: the live time minus History.
func (g *Generator) Start() time.Time { return g.start }

// ContactsPerSecond is the arrival rate of customer contacts that makes Config.Rate
// events per second.
func (g *Generator) ContactsPerSecond() float64 { return g.contactRate }

// Next returns the events due to be sent at or before until, in sending order, at most
// limit of them (limit ≤ 0: all). Events not returned stay for the next call.
func (g *Generator) Next(until time.Time, limit int) []event.Event {
	var out []event.Event
	for limit <= 0 || len(out) < limit {
		// A driver (arrival or pulse period) goes first when it is not later than the
		// earliest pending event: the events it schedules are never earlier than itself,
		// so everything due before the earliest pending event is then known.
		drv, isArrival := g.nextArrival, true
		if p := g.periodStart(g.nextPeriod); p.Before(drv) {
			drv, isArrival = p, false
		}
		if drv.Before(g.start) {
			drv = g.start
		}
		if !drv.After(until) && (len(g.pending) == 0 || !drv.After(g.pending[0].at)) {
			if isArrival {
				g.contact(drv)
				g.nextArrival = drv.Add(g.interarrival())
			} else {
				g.pulses(g.nextPeriod)
				g.nextPeriod++
			}
			continue
		}
		if len(g.pending) == 0 || g.pending[0].at.After(until) {
			break
		}
		out = append(out, heap.Pop(&g.pending).(*scheduled).ev)
	}
	return out
}

func (g *Generator) interarrival() time.Duration {
	return time.Duration(g.rng.ExpFloat64() / g.contactRate * float64(time.Second))
}

// period returns the index of the pulse period holding t. Periods are aligned with
// t.Truncate(PulseEvery): weekly periods start on Mondays 00:00 UTC.
func (g *Generator) period(t time.Time) int { return int(t.Sub(g.base) / g.cfg.PulseEvery) }

func (g *Generator) periodStart(k int) time.Time {
	return g.base.Add(time.Duration(k) * g.cfg.PulseEvery)
}

// engagementAt returns the true engagement level (1–5) of a team in period k.
func (t *team) engagementAt(k int) float64 {
	for len(t.engagement) <= k {
		var e float64
		if n := len(t.engagement); n == 0 {
			sd := engagementStepSD / math.Sqrt(1-engagementPhi*engagementPhi)
			e = t.mean + sd*t.walk.NormFloat64()
		} else {
			e = t.mean + engagementPhi*(t.engagement[n-1]-t.mean) + engagementStepSD*t.walk.NormFloat64()
		}
		t.engagement = append(t.engagement, clamp(e, 1, 5))
	}
	return t.engagement[k]
}

// pulses schedules the pulse answers of period k. Answers are spread over the first half
// of the period, as people answer a survey over the days after it opens; a run that
// starts late in a period gives the rest of the period.
func (g *Generator) pulses(k int) {
	ps := g.periodStart(k)
	lo, hi := ps, ps.Add(g.cfg.PulseEvery/2)
	if lo.Before(g.start) {
		lo = g.start
	}
	if hi.Sub(lo) < g.cfg.PulseEvery/10 {
		hi = ps.Add(g.cfg.PulseEvery)
	}
	span := float64(hi.Sub(lo))
	for _, t := range g.teams {
		level := g.engagement(t, k)
		for _, a := range t.agents {
			if g.rng.Float64() >= pulseAnswer {
				continue
			}
			at := lo.Add(time.Duration(g.rng.Float64() * span))
			eng := clamp(math.Round(level+a.mood+0.5*g.rng.NormFloat64()), 1, 5)
			enps := clamp(math.Round(2.5*(level-1)+2*a.mood+1.3*g.rng.NormFloat64()), 0, 10)
			// Response ids are opaque, as survey tools make them: an employee id in an id
			// would be published and stored as it is.
			g.responses++
			id := fmt.Sprintf("%s-w%d-r%d-", g.prefix, k, g.responses)
			for _, q := range []struct {
				question string
				score    float64
			}{{"engagement", eng}, {"enps", enps}} {
				g.push(at, event.Event{
					ID: id + q.question, Type: event.TypeEmployeePulse, OccurredAt: stamp(at), Source: source,
					EmployeeID: a.employeeID, Team: t.name, Question: q.question, Score: ptr(q.score),
				})
			}
		}
	}
}

// contact simulates one customer contact arriving at t0: its ticket lifecycle and,
// maybe, the customer's survey response.
func (g *Generator) contact(t0 time.Time) {
	g.tickets++
	cat := &categories[g.pick(g.catCDF)]
	ch := &channels[g.pick(g.chanCDF)]
	tm := g.teams[g.rng.IntN(len(g.teams))]
	ag := &tm.agents[g.rng.IntN(len(tm.agents))]
	ticketID := g.prefix + "-t" + strconv.FormatInt(g.tickets, 10)

	var evs []timed
	ticket := func(at time.Time, status event.TicketStatus, suffix string, contacts int64, handle time.Duration) {
		e := event.Event{
			ID: ticketID + "-" + suffix, Type: event.TypeTicket, OccurredAt: stamp(at), Source: source,
			TicketID: ticketID, Status: status, Channel: ch.name, Category: cat.name, Team: tm.name,
			AgentID: ag.id, Contacts: ptr(contacts),
		}
		if status != event.TicketCreated {
			e.HandleSeconds = ptr(math.Round(handle.Seconds()))
		}
		evs = append(evs, timed{at, e})
	}
	// work runs n contacts from t and returns when the last one ends and their handle time.
	work := func(t time.Time, n int) (time.Time, time.Duration) {
		var handle time.Duration
		t = t.Add(g.exp(ch.firstWait))
		for i := range n {
			if i > 0 {
				t = t.Add(g.exp(ch.gap))
			}
			h := time.Duration(float64(cat.handle) * ch.handleFactor * math.Exp(0.45*g.rng.NormFloat64()))
			handle += h
			t = t.Add(h)
		}
		return t, handle
	}

	ticket(t0, event.TicketCreated, "created", 1, 0)
	contacts := 1 + g.poisson(cat.extraContacts)
	solved, handle := work(t0, contacts)
	ticket(solved, event.TicketSolved, "solved-1", int64(contacts), handle)
	reopened := g.rng.Float64() < cat.reopen
	if reopened {
		back := solved.Add(g.exp(reopenGap))
		ticket(back, event.TicketReopened, "reopened-1", int64(contacts+1), handle)
		more := 1 + g.poisson(cat.extraContacts/2)
		var h time.Duration
		solved, h = work(back, more)
		contacts += more
		handle += h
		ticket(solved, event.TicketSolved, "solved-2", int64(contacts), handle)
	}

	if g.rng.Float64() < surveyRespond {
		at := solved.Add(surveyMinDelay + g.exp(surveyDelay))
		q := cat.ces + ch.ces + ag.skill + cesPerExtraContact*float64(contacts-1)
		if reopened {
			q += cesPerReopen
		}
		// The team's engagement acts one period later.
		q += engagementEffect * (g.engagement(tm, g.period(at)-1) - engagementMean)
		q += g.drift(at, cat.name, tm.name)
		surveys := g.response(at, q, ticketID, cat, ch, tm, ag)
		if len(surveys) > 0 && at.Sub(t0) <= outOfOrderSpan && g.rng.Float64() < outOfOrder {
			// The helpdesk's export lags: the ticket events follow the survey.
			delay := time.Duration((2 + 58*g.rng.Float64()) * float64(time.Second))
			for i := range evs {
				evs[i].at = at.Add(delay + time.Duration(i)*time.Millisecond)
			}
		}
		evs = append(evs, surveys...)
	}
	for _, e := range evs {
		g.push(e.at, e.ev)
	}
}

// response draws the customer's answers at time at from the latent CES mean q: the
// customer's experience x is shared by the questions, each answer adds its own noise.
func (g *Generator) response(at time.Time, q float64, ticketID string, cat *category, ch *channel, tm *team, ag *agent) []timed {
	x := q + 0.6*g.rng.NormFloat64()
	ask := [3]bool{g.rng.Float64() < surveyCES, g.rng.Float64() < surveyCSAT, g.rng.Float64() < surveyNPS}
	ticketOnly := g.rng.Float64() < surveyTicketOnly
	customer := fmt.Sprintf("cust-%06d", 1+g.rng.IntN(customers))
	var out []timed
	for i, kind := range event.Surveys {
		if !ask[i] {
			continue
		}
		var score float64
		switch kind {
		case event.SurveyCES:
			score = clamp(math.Round(x+0.7*g.rng.NormFloat64()), 1, 7)
		case event.SurveyCSAT:
			score = clamp(math.Round(1+(x-1)*4/6+0.6*g.rng.NormFloat64()), 1, 5)
		case event.SurveyNPS:
			score = clamp(math.Round((x-1)*10/6+0.8+1.5*g.rng.NormFloat64()), 0, 10)
		}
		e := event.Event{
			ID: ticketID + "-" + string(kind), Type: event.TypeSurveyResponse, OccurredAt: stamp(at), Source: source,
			Survey: kind, Score: ptr(score), TicketID: ticketID,
		}
		if !ticketOnly {
			e.CustomerID, e.Channel, e.Category, e.Team, e.AgentID = customer, ch.name, cat.name, tm.name, ag.id
		}
		// One draw whatever the score, so that a drift changes scores and comments but
		// not the random sequence: the rest of the run stays the same.
		if u := g.rng.Float64(); kind == event.SurveyCES && !ticketOnly && u < commentShare {
			switch {
			case score <= 3:
				e.Comment = hardComments[int(u/commentShare*float64(len(hardComments)))]
			case score >= 6:
				e.Comment = easyComments[int(u/commentShare*float64(len(easyComments)))]
			}
		}
		out = append(out, timed{at, e})
	}
	return out
}

// engagement returns a team's engagement level in period k, with the drift's shift when
// the period starts inside the drift's window.
func (g *Generator) engagement(tm *team, k int) float64 {
	level := tm.engagementAt(k)
	d := g.cfg.Drift
	ps := g.periodStart(k)
	if d == nil || d.EngagementDelta == 0 || d.Team != tm.name || ps.Before(g.driftFrom) ||
		!g.driftUntil.IsZero() && !ps.Before(g.driftUntil) {
		return level
	}
	return clamp(level+d.EngagementDelta, 1, 5)
}

// drift returns the CES shift of a survey answered at t.
func (g *Generator) drift(t time.Time, category, team string) float64 {
	d := g.cfg.Drift
	switch {
	case d == nil,
		d.Category != "" && d.Category != category,
		d.Team != "" && d.Team != team,
		t.Before(g.driftFrom),
		!g.driftUntil.IsZero() && !t.Before(g.driftUntil):
		return 0
	}
	return d.CESDelta
}

// exp draws an exponential duration with the given mean.
func (g *Generator) exp(mean time.Duration) time.Duration {
	return time.Duration(g.rng.ExpFloat64() * float64(mean))
}

// poisson draws a Poisson count (Knuth; the means here are small).
func (g *Generator) poisson(mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= g.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (g *Generator) push(at time.Time, e event.Event) {
	g.seq++
	heap.Push(&g.pending, &scheduled{at: at, seq: g.seq, ev: e})
}

// stamp is the occurred_at of an event at t: UTC, whole seconds, as helpdesks report.
func stamp(t time.Time) time.Time { return t.Truncate(time.Second) }

func ptr[T any](v T) *T { return &v }

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

type timed struct {
	at time.Time
	ev event.Event
}

// scheduled is an event waiting for its sending time; seq keeps ties in the order they
// were scheduled.
type scheduled struct {
	at  time.Time
	seq uint64
	ev  event.Event
}

type queue []*scheduled

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*scheduled)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}
