// Package records defines the rows the processors hand to the sinks: one type per
// ClickHouse table, free of any driver type so that processors and sinks stay apart.
package records

import (
	"math"
	"time"
)

// Origin says which stored message a raw row came from.
type Origin struct {
	// ReceivedAt is the JetStream timestamp of the message: when cxlink accepted it.
	ReceivedAt time.Time
	// Partition and Seq locate the message in the stream.
	Partition uint16
	Seq       uint64
	// Version orders the rows written for one event id; ClickHouse keeps the highest.
	Version uint64
	// Late is set when the event arrived after the allowed lateness and is therefore
	// not part of any rolling window.
	Late bool
}

// Version of a raw row: the first stored copy of an id (lowest stream sequence) wins
// over a resend, and within one copy a later revision (e.g. an attribution found after
// the survey was first written) wins over an earlier one.
func Version(seq uint64, revision uint8) uint64 {
	return (math.MaxInt64-seq)<<1 | uint64(revision&1)
}

// Survey is one row of survey_responses.
type Survey struct {
	Origin
	ID            string
	Survey        string
	OccurredAt    time.Time
	Source        string
	Score         float64 // as sent
	ScaleMin      float64
	ScaleMax      float64
	StandardScore float64 // on the survey's standard scale; what rollups aggregate
	TicketID      string
	CustomerID    string
	Channel       string
	Category      string
	Team          string
	AgentID       string
	Comment       string
	// Attributed is set when some of channel, category, team, agent came from the ticket.
	Attributed bool
}

// Ticket is one row of tickets: one ticket event.
type Ticket struct {
	Origin
	ID            string
	TicketID      string
	Status        string
	OccurredAt    time.Time
	Source        string
	Channel       string
	Category      string
	Team          string
	AgentID       string
	HandleSeconds *float64
	Contacts      *int64
}

// Pulse is one row of employee_pulses.
type Pulse struct {
	Origin
	ID         string
	EmployeeID string
	Team       string
	Question   string
	OccurredAt time.Time
	Source     string
	Score      float64
	ScaleMin   float64
	ScaleMax   float64
}

// Bucket is one partition's sums of one series over one rollup step: a row of
// rollup_buckets. A rolling window is the sum of the buckets it covers, the partitions
// added up. The row is cumulative: it holds every response of the bucket the partition
// has seen, and is written again, with a higher version, when the bucket changes.
type Bucket struct {
	Survey    string
	Dimension string // "overall", "category", "channel", "team", "agent"
	Key       string // "" for overall
	Start     time.Time
	Partition uint16
	Responses uint64
	ScoreSum  float64 // sum of standard scores
	Positive  uint64  // easy, satisfied, promoters
	Negative  uint64  // difficult, dissatisfied, detractors
	SquareSum float64 // sum of squared standard scores (each rounded to 1e-6), for the variance
	// Version is the stream sequence of the last message that changed the bucket: it
	// depends on the stream alone, so whoever writes the row writes the same one.
	Version uint64
}

// Batch is what a sink writes at once.
type Batch struct {
	Surveys []Survey
	Tickets []Ticket
	Pulses  []Pulse
	Buckets []Bucket
	// FollowUps are the cases the batch's messages opened: they go onto the follow-up
	// stream, not into a table (the follow-up stage writes the followups table).
	FollowUps []FollowUp
}

// Len is the number of rows in the batch.
func (b *Batch) Len() int {
	return len(b.Surveys) + len(b.Tickets) + len(b.Pulses) + len(b.Buckets) + len(b.FollowUps)
}

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.Surveys, b.Tickets, b.Pulses, b.Buckets = b.Surveys[:0], b.Tickets[:0], b.Pulses[:0], b.Buckets[:0]
	b.FollowUps = b.FollowUps[:0]
}

// Kind names one of a Batch's row slices.
type Kind uint8

// The kinds of rows in a Batch.
const (
	KindSurvey Kind = iota
	KindTicket
	KindPulse
	KindBucket
)

func (k Kind) String() string {
	switch k {
	case KindSurvey:
		return "survey"
	case KindTicket:
		return "ticket"
	case KindPulse:
		return "pulse"
	case KindBucket:
		return "bucket"
	}
	return "unknown"
}

// RowRef names one row of a Batch: Index into the slice of Kind.
type RowRef struct {
	Kind  Kind
	Index int
}

// Origin is the stored message a row came from; false for buckets and for a reference
// outside the batch.
func (b *Batch) Origin(r RowRef) (Origin, bool) {
	switch {
	case r.Index < 0:
	case r.Kind == KindSurvey && r.Index < len(b.Surveys):
		return b.Surveys[r.Index].Origin, true
	case r.Kind == KindTicket && r.Index < len(b.Tickets):
		return b.Tickets[r.Index].Origin, true
	case r.Kind == KindPulse && r.Index < len(b.Pulses):
		return b.Pulses[r.Index].Origin, true
	}
	return Origin{}, false
}

// Remove deletes the row r names, keeping the order of the others; it reports whether
// there was such a row.
func (b *Batch) Remove(r RowRef) bool {
	if r.Index < 0 {
		return false
	}
	switch {
	case r.Kind == KindSurvey && r.Index < len(b.Surveys):
		b.Surveys = append(b.Surveys[:r.Index], b.Surveys[r.Index+1:]...)
	case r.Kind == KindTicket && r.Index < len(b.Tickets):
		b.Tickets = append(b.Tickets[:r.Index], b.Tickets[r.Index+1:]...)
	case r.Kind == KindPulse && r.Index < len(b.Pulses):
		b.Pulses = append(b.Pulses[:r.Index], b.Pulses[r.Index+1:]...)
	case r.Kind == KindBucket && r.Index < len(b.Buckets):
		b.Buckets = append(b.Buckets[:r.Index], b.Buckets[r.Index+1:]...)
	default:
		return false
	}
	return true
}
