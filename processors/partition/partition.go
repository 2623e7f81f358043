// Package partition is the state machine of one stream partition: it applies events in
// stream order to the survey attribution index and the rolling windows, and returns the
// rows each event produces. Its output depends only on the messages and their order, so
// replaying a partition rebuilds exactly the same state.
package partition

import (
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/processors/attribution"
	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/records"
)

// Config of the state machine.
type Config struct {
	Step    time.Duration
	Windows []effort.Window // sorted by length
	// AllowedLateness: an event received later than this after it occurred is late: stored
	// raw, never part of a window.
	AllowedLateness time.Duration
	// AttributionWait: how long a survey waits for its ticket's first event.
	AttributionWait time.Duration
	// FollowUps decide which answers open a follow-up case; nil or without rules: none.
	FollowUps *followup.Settings
}

// LongestWindow is the length of the longest window.
func (c Config) LongestWindow() time.Duration { return c.Windows[len(c.Windows)-1].Length }

// Horizon is how long after it occurred a message can still change the state's output:
// processors replay at least this far back. The follow-up window is part of it: a
// ticket's earlier case, within the window, keeps a later answer from opening another.
func (c Config) Horizon() time.Duration {
	remember := c.LongestWindow()
	if c.FollowUps.On() {
		remember = max(remember, c.FollowUps.Window)
	}
	return remember + c.AllowedLateness + c.AttributionWait
}

// ChangeHorizon is how far before the latest received_at a message can still change a
// bucket: an on-time survey occurred at most AllowedLateness before it was received, and
// it is attributed at most AttributionWait after that. One step rounds down to the bucket,
// and a minute covers JetStream timestamps that step back a little when a stream's leader
// changes.
func (c Config) ChangeHorizon() time.Duration {
	return c.AllowedLateness + c.AttributionWait + c.Step + time.Minute
}

// Message is one stored event with its place in the stream.
type Message struct {
	Seq        uint64
	ReceivedAt time.Time // JetStream timestamp
	Event      event.Event
}

// Outcome tells the caller what applying a message did, for metrics.
type Outcome struct {
	Late           bool
	Attributed     bool // the survey was attributed from an already known ticket
	Waiting        bool // the survey waits for its ticket
	LateAttributed int  // surveys attributed by this ticket event
	Unattributed   int  // surveys that stopped waiting without their ticket
	// FollowUp says whether the survey opened a follow-up case, or why not.
	FollowUp followup.Verdict
}

// State of one partition. Not safe for concurrent use.
type State struct {
	id      uint16
	cfg     Config
	windows *effort.State
	index   *attribution.Index[WaitingSurvey]
	// followups is nil when no answer opens a case.
	followups *followup.Decider
	// lastReceived is the latest received_at applied: no later message changes a bucket
	// older than lastReceived − changeHorizon.
	lastReceived time.Time
}

// New returns the empty state of partition id.
func New(id uint16, cfg Config) *State {
	s := &State{
		id:      id,
		cfg:     cfg,
		windows: effort.NewState(id, cfg.Step, cfg.Windows),
		index:   attribution.NewIndex[WaitingSurvey](cfg.AttributionWait, cfg.LongestWindow()),
	}
	if cfg.FollowUps.On() {
		s.followups = followup.NewDecider(cfg.FollowUps)
	}
	return s
}

// Apply applies one message and returns the rows it produced.
func (s *State) Apply(m Message) (records.Batch, Outcome) {
	var out records.Batch
	var oc Outcome
	oc.Unattributed = s.index.Expire(m.ReceivedAt)
	if m.ReceivedAt.After(s.lastReceived) {
		s.lastReceived = m.ReceivedAt
	}
	e := &m.Event
	origin := records.Origin{
		ReceivedAt: m.ReceivedAt,
		Partition:  s.id,
		Seq:        m.Seq,
		Version:    records.Version(m.Seq, 0),
		Late:       m.ReceivedAt.Sub(e.OccurredAt) > s.cfg.AllowedLateness,
	}
	oc.Late = origin.Late
	switch e.Type {
	case event.TypeSurveyResponse:
		row := s.applySurvey(e, origin, &oc)
		out.Surveys = append(out.Surveys, row)
		if s.followups != nil {
			var c records.FollowUp
			if c, oc.FollowUp = s.followups.Survey(&row); oc.FollowUp == followup.Opened {
				out.FollowUps = append(out.FollowUps, c)
			}
		}
	case event.TypeTicket:
		out.Tickets = append(out.Tickets, ticketRow(e, origin))
		out.Surveys = s.applyTicket(e, m, &oc)
	case event.TypeEmployeePulse:
		// Written at once to the private database, whatever its period: the analytics
		// stage publishes team figures from there (processors/pulses, docs/privacy.md).
		// The state keeps nothing of it, so neither do its snapshots.
		out.Pulses = append(out.Pulses, pulseRow(e, origin))
	}
	return out, oc
}

func (s *State) applySurvey(e *event.Event, origin records.Origin, oc *Outcome) records.Survey {
	std := e.StandardScore()
	pos, neg := event.Classify(e.Survey, std)
	agg := effort.Aggregate{Responses: 1, ScoreMicro: event.MicroPoints(std), Positive: b2u(pos), Negative: b2u(neg),
		SqMicro: event.MicroPoints(std * std)}
	row := records.Survey{
		Origin:        origin,
		ID:            e.ID,
		Survey:        string(e.Survey),
		OccurredAt:    e.OccurredAt,
		Source:        e.Source,
		Score:         *e.Score,
		ScaleMin:      *e.ScaleMin,
		ScaleMax:      *e.ScaleMax,
		StandardScore: std,
		TicketID:      e.TicketID,
		CustomerID:    e.CustomerID,
		Comment:       e.Comment,
	}
	dims := attribution.Dims{Channel: e.Channel, Category: e.Category, Team: e.Team, AgentID: e.AgentID}
	waits := false
	if e.TicketID != "" && !dims.Complete() {
		td, known := s.index.Lookup(e.TicketID)
		row.Attributed = known && dims.Merge(td)
		waits = !known
	}
	setDims(&row, dims)
	oc.Attributed = row.Attributed
	if waits {
		s.index.Wait(e.TicketID, origin.ReceivedAt, WaitingSurvey{Row: row, Agg: agg})
		oc.Waiting = true
	}
	if !origin.Late {
		s.add(row.Survey, row.OccurredAt, agg, attribution.Dims{}, dims, true, origin.Seq)
	}
	return row
}

// applyTicket records the ticket and attributes the surveys that waited for it: their
// rows are written again (revision 1) and they join the windows of their new dimensions.
func (s *State) applyTicket(e *event.Event, m Message, oc *Outcome) []records.Survey {
	td, released := s.index.Ticket(e.TicketID, attribution.Dims{Channel: e.Channel, Category: e.Category, Team: e.Team, AgentID: e.AgentID}, m.ReceivedAt)
	var rows []records.Survey
	for _, w := range released {
		row := w.Row
		before := dimsOf(row)
		after := before
		if !after.Merge(td) {
			continue
		}
		setDims(&row, after)
		row.Attributed = true
		row.Version = records.Version(row.Seq, 1)
		if !row.Late {
			s.add(row.Survey, row.OccurredAt, w.Agg, before, after, false, m.Seq)
		}
		rows = append(rows, row)
		oc.LateAttributed++
	}
	return rows
}

// add puts a response into the series of every dimension set in after but not in
// before (and into overall when asked); seq is the message that does it.
func (s *State) add(survey string, at time.Time, a effort.Aggregate, before, after attribution.Dims, overall bool, seq uint64) {
	if overall {
		s.windows.Add(effort.SeriesKey{Survey: survey, Dimension: effort.Overall}, at, a, seq)
	}
	for _, d := range []struct{ dim, before, after string }{
		{effort.Category, before.Category, after.Category},
		{effort.Channel, before.Channel, after.Channel},
		{effort.Team, before.Team, after.Team},
		{effort.Agent, before.AgentID, after.AgentID},
	} {
		if d.before == "" && d.after != "" {
			s.windows.Add(effort.SeriesKey{Survey: survey, Dimension: d.dim, Key: d.after}, at, a, seq)
		}
	}
}

// TakeBuckets returns the rows of the rollup buckets changed since the last call.
func (s *State) TakeBuckets() []records.Bucket { return s.windows.TakeChanged() }

// Tick sets the instant the windows are read at for metrics (Current), and forgets the
// buckets that neither a later tick reads nor a later message can change.
func (s *State) Tick(t time.Time) {
	s.windows.Tick(t)
	evict := t.Add(-s.cfg.LongestWindow() - s.cfg.Step)
	if !s.lastReceived.IsZero() {
		evict = minTime(evict, s.lastReceived.Add(-s.cfg.ChangeHorizon()))
	}
	s.windows.Evict(evict)
	if s.followups != nil {
		s.followups.Forget(s.lastReceived)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Current reads the windows at the last tick.
func (s *State) Current(fn func(k effort.SeriesKey, w effort.Window, a effort.Aggregate)) {
	s.windows.Current(fn)
}

// Size reports the series, known tickets and waiting surveys held, for metrics.
func (s *State) Size() (series, tickets, waiting int) {
	tickets, waiting = s.index.Len()
	return s.windows.Series(), tickets, waiting
}

// FollowUpTickets is the number of tickets remembered for their follow-up case.
func (s *State) FollowUpTickets() int {
	if s.followups == nil {
		return 0
	}
	return s.followups.Len()
}

func dimsOf(r records.Survey) attribution.Dims {
	return attribution.Dims{Channel: r.Channel, Category: r.Category, Team: r.Team, AgentID: r.AgentID}
}

func setDims(r *records.Survey, d attribution.Dims) {
	r.Channel, r.Category, r.Team, r.AgentID = d.Channel, d.Category, d.Team, d.AgentID
}

func ticketRow(e *event.Event, o records.Origin) records.Ticket {
	return records.Ticket{
		Origin: o, ID: e.ID, TicketID: e.TicketID, Status: string(e.Status), OccurredAt: e.OccurredAt,
		Source: e.Source, Channel: e.Channel, Category: e.Category, Team: e.Team, AgentID: e.AgentID,
		HandleSeconds: e.HandleSeconds, Contacts: e.Contacts,
	}
}

func pulseRow(e *event.Event, o records.Origin) records.Pulse {
	return records.Pulse{
		Origin: o, ID: e.ID, EmployeeID: e.EmployeeID, Team: e.Team, Question: e.Question,
		OccurredAt: e.OccurredAt, Source: e.Source, Score: *e.Score, ScaleMin: *e.ScaleMin, ScaleMax: *e.ScaleMax,
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
