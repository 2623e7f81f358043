package records

import "time"

// States of a follow-up case.
const (
	FollowUpOpen         = "open"
	FollowUpAcknowledged = "acknowledged"
	FollowUpClosed       = "closed"
)

// FollowUp is a follow-up case: one customer's answer that its owner must act on, with
// the context needed to act and where the case stands. The processors open it (state
// open); acknowledging and closing it add to it. Each change is one message on the
// follow-up stream holding the whole case, and one row of the followups table.
type FollowUp struct {
	// ID is derived from the survey's event id: the same answer always names the same
	// case, however often it is sent or replayed.
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Owner    string    `json:"owner"`
	Rule     string    `json:"rule"` // the rule that opened it, as configured
	OpenedAt time.Time `json:"opened_at"`
	DueAt    time.Time `json:"due_at"`

	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	AcknowledgedBy string    `json:"acknowledged_by,omitempty"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	ClosedBy       string    `json:"closed_by,omitempty"`
	CloseReason    string    `json:"close_reason,omitempty"`
	CloseNote      string    `json:"close_note,omitempty"`

	// The answer that opened the case, with its ticket's dimensions when known.
	SurveyID      string    `json:"survey_id"`
	Survey        string    `json:"survey"`
	Score         float64   `json:"score"`
	ScaleMin      float64   `json:"scale_min"`
	ScaleMax      float64   `json:"scale_max"`
	StandardScore float64   `json:"standard_score"`
	OccurredAt    time.Time `json:"occurred_at"`
	TicketID      string    `json:"ticket_id,omitempty"`
	CustomerID    string    `json:"customer_id,omitempty"`
	Channel       string    `json:"channel,omitempty"`
	Category      string    `json:"category,omitempty"`
	Team          string    `json:"team,omitempty"`
	AgentID       string    `json:"agent_id,omitempty"`
	Comment       string    `json:"comment,omitempty"`
	// Partition and Seq locate the survey's message in the events stream.
	Partition uint16 `json:"partition"`
	Seq       uint64 `json:"seq"`

	// Version orders a case's rows: the sequence of its message in the follow-up stream,
	// so that whoever writes the row writes the same one.
	Version uint64 `json:"-"`
}

// Overdue reports whether the case is not closed and past its due time at t.
func (f *FollowUp) Overdue(t time.Time) bool {
	return f.State != FollowUpClosed && t.After(f.DueAt)
}
