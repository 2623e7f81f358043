package followup

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// CaseID is the id of the case an answer opens: derived from the answer's event id, so
// that the answer names the same case however often it is sent, replayed or decided
// again by another replica. It is a valid NATS subject token and URL path segment.
func CaseID(surveyID string) string {
	h := sha256.Sum256([]byte(surveyID))
	return "fu-" + hex.EncodeToString(h[:12])
}

// Verdict is what a survey did to the follow-ups, for metrics.
type Verdict uint8

// Verdicts.
const (
	NoCase Verdict = iota // no rule matched
	Opened                // a case opened
	// SameTicket: a rule matched, but the ticket had a case within the window.
	SameTicket
	// Late: a rule matched, but the answer is late (history, an import): nobody waits
	// for a call back about it.
	Late
)

// Decider decides, inside a partition's state machine, which answers open a case. Its
// decisions depend only on the messages it is given, in stream order (times are
// received_at, the stream's), so a replay or another replica decides the same. Not safe
// for concurrent use.
type Decider struct {
	s *Settings
	// tickets: for each ticket with a case in the window, when its last case opened.
	tickets map[string]time.Time
}

// NewDecider returns a decider with nothing remembered; s must be On.
func NewDecider(s *Settings) *Decider {
	return &Decider{s: s, tickets: map[string]time.Time{}}
}

// Survey returns the case a survey row (its dimensions attributed as far as its ticket
// is known) opens. The case opens at once even when the ticket is not known yet: nobody
// is kept waiting for a ticket event that may be late. Its owner comes from the answer's
// category, then its channel, then its team.
func (d *Decider) Survey(r *records.Survey) (records.FollowUp, Verdict) {
	rule, ok := d.s.Rules.Match(r.Survey, r.StandardScore, r.Comment)
	if !ok {
		return records.FollowUp{}, NoCase
	}
	if r.Late {
		return records.FollowUp{}, Late
	}
	at := r.ReceivedAt
	if r.TicketID != "" {
		if last, ok := d.tickets[r.TicketID]; ok && at.Sub(last) < d.s.Window {
			return records.FollowUp{}, SameTicket
		}
		d.tickets[r.TicketID] = at
	}
	owner := d.s.Owners.OwnerOf([2]string{"category", r.Category}, [2]string{"channel", r.Channel}, [2]string{"team", r.Team})
	return records.FollowUp{
		ID: CaseID(r.ID), State: records.FollowUpOpen, Owner: owner, Rule: rule,
		OpenedAt: at.UTC(), DueAt: at.Add(d.s.Due.For(owner)).UTC(),
		SurveyID: r.ID, Survey: r.Survey, Score: r.Score, ScaleMin: r.ScaleMin, ScaleMax: r.ScaleMax,
		StandardScore: r.StandardScore, OccurredAt: r.OccurredAt.UTC(), TicketID: r.TicketID, CustomerID: r.CustomerID,
		Channel: r.Channel, Category: r.Category, Team: r.Team, AgentID: r.AgentID, Comment: r.Comment,
		Partition: r.Partition, Seq: r.Seq,
	}, Opened
}

// Forget drops the tickets whose last case opened before t: no later answer can be
// within their window. Decisions do not depend on when it runs.
func (d *Decider) Forget(t time.Time) {
	cut := t.Add(-d.s.Window)
	for id, at := range d.tickets {
		if at.Before(cut) {
			delete(d.tickets, id)
		}
	}
}

// Len is the number of tickets remembered.
func (d *Decider) Len() int { return len(d.tickets) }

// DeciderSnapshot is what a Decider holds, for the partition's snapshots.
type DeciderSnapshot struct {
	Tickets map[string]time.Time
}

// Snapshot returns what the decider holds.
func (d *Decider) Snapshot() DeciderSnapshot {
	return DeciderSnapshot{Tickets: maps.Clone(d.tickets)}
}

// Restore replaces what the decider holds.
func (d *Decider) Restore(s DeciderSnapshot) {
	d.tickets = maps.Clone(s.Tickets)
	if d.tickets == nil {
		d.tickets = map[string]time.Time{}
	}
}
