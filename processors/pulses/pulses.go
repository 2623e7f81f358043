// Package pulses holds employee pulse answers back until they are anonymous. The
// answers to one question of one team in one period form a group; the group's raw rows
// are released (to employee_pulses, and so to everything downstream) only once at least
// the threshold of distinct employees answered. Until then they stay in the partition's
// state, which is rebuilt from the stream, so nothing below the threshold ever leaves the
// processor. A group that never reaches the threshold is dropped with the state.
//
// All pulses of a team share a partition (their routing key is the team), so one
// partition's state sees every answer of its groups. Decisions depend only on the
// messages and their order, never on the wall clock: a replay rebuilds the same groups.
package pulses

import (
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

type groupKey struct {
	team, question string
	start          int64 // period start, Unix seconds
}

type group struct {
	start       time.Time
	respondents map[string]struct{}
	held        []records.Pulse // rows not yet released
	released    bool
}

// State holds one partition's pulse groups. Not safe for concurrent use.
type State struct {
	period  time.Duration
	min     int
	horizon time.Duration
	groups  map[groupKey]*group
	// clock is the latest received_at applied: stream time, the same on every replay.
	clock     time.Time
	nextEvict time.Time
}

// NewState returns an empty state for periods of length period and a threshold of min
// distinct respondents. A pulse counts only while received less than horizon after its
// period started: the processors replay at least that far back (plus the clock skew
// ingest allows), so the groups that can still change are always complete in the state.
func NewState(period time.Duration, min int, horizon time.Duration) *State {
	return &State{period: period, min: min, horizon: horizon, groups: map[groupKey]*group{}}
}

// Outcome of applying one pulse.
type Outcome int

// The outcomes of Apply.
const (
	Held     Outcome = iota // the group is below the threshold: nothing is released
	Released                // rows are released (this one, and those held before it)
	TooLate                 // received after the period's horizon: not counted, not stored
)

// Apply takes the raw row of one pulse (employee id already pseudonymized) received at
// receivedAt, and returns the rows that may now be stored: none while its group is below
// the threshold, all the group's held rows when this answer brings it to the threshold,
// and the row itself once the group is above.
func (s *State) Apply(row records.Pulse, receivedAt time.Time) ([]records.Pulse, Outcome) {
	if receivedAt.After(s.clock) {
		s.clock = receivedAt
		s.evict()
	}
	start := PeriodStart(row.OccurredAt, s.period)
	// Against the stream clock, not receivedAt: an evicted group must never restart.
	if s.clock.Sub(start) >= s.horizon {
		return nil, TooLate
	}
	k := groupKey{row.Team, row.Question, start.Unix()}
	g := s.groups[k]
	if g == nil {
		g = &group{start: start, respondents: map[string]struct{}{}}
		s.groups[k] = g
	}
	g.respondents[row.EmployeeID] = struct{}{}
	if g.released {
		return []records.Pulse{row}, Released
	}
	g.held = append(g.held, row)
	if len(g.respondents) < s.min {
		return nil, Held
	}
	out := g.held
	g.held, g.released = nil, true
	return out, Released
}

// evict forgets the groups no pulse can join any more.
func (s *State) evict() {
	if s.clock.Before(s.nextEvict) {
		return
	}
	for k, g := range s.groups {
		if !s.clock.Before(g.start.Add(s.horizon)) {
			delete(s.groups, k)
		}
	}
	s.nextEvict = s.clock.Add(s.period)
}

// Len is the number of groups held.
func (s *State) Len() int { return len(s.groups) }

// Snapshot is the content of a State, for saving it.
type Snapshot struct {
	Groups    []GroupSnapshot
	Clock     time.Time
	NextEvict time.Time
}

// GroupSnapshot is one group of answers.
type GroupSnapshot struct {
	Team, Question string
	Start          time.Time
	Respondents    []string
	Held           []records.Pulse
	Released       bool
}

// Snapshot returns the state's content.
func (s *State) Snapshot() Snapshot {
	out := Snapshot{Clock: s.clock, NextEvict: s.nextEvict}
	for k, g := range s.groups {
		gs := GroupSnapshot{Team: k.team, Question: k.question, Start: g.start, Held: g.held, Released: g.released}
		for id := range g.respondents {
			gs.Respondents = append(gs.Respondents, id)
		}
		out.Groups = append(out.Groups, gs)
	}
	return out
}

// Restore replaces the state's content with a snapshot's.
func (s *State) Restore(snap Snapshot) {
	s.clock, s.nextEvict = snap.Clock, snap.NextEvict
	s.groups = make(map[groupKey]*group, len(snap.Groups))
	for _, gs := range snap.Groups {
		g := &group{start: gs.Start, respondents: make(map[string]struct{}, len(gs.Respondents)), held: gs.Held, released: gs.Released}
		for _, id := range gs.Respondents {
			g.respondents[id] = struct{}{}
		}
		s.groups[groupKey{gs.Team, gs.Question, gs.Start.Unix()}] = g
	}
}
