// Package event is contract v1: the events contact-centre systems send to cxlink, how they
// are decoded and validated, and the scales every survey score is measured on.
package event

import (
	"math"
	"time"
)

// Type is the kind of an event.
type Type string

// The event types of contract v1.
const (
	TypeSurveyResponse Type = "survey_response"
	TypeTicket         Type = "ticket"
	TypeEmployeePulse  Type = "employee_pulse"
)

// Survey is the kind of a customer survey.
type Survey string

// The customer surveys of contract v1.
const (
	SurveyCES  Survey = "ces"
	SurveyCSAT Survey = "csat"
	SurveyNPS  Survey = "nps"
)

// Surveys lists the survey kinds in a fixed order.
var Surveys = []Survey{SurveyCES, SurveyCSAT, SurveyNPS}

// TicketStatus is the state a ticket event reports.
type TicketStatus string

// The ticket statuses of contract v1.
const (
	TicketCreated  TicketStatus = "created"
	TicketSolved   TicketStatus = "solved"
	TicketReopened TicketStatus = "reopened"
)

// Event is one validated event. Fields that do not belong to the event's type are empty.
// After Validate, ScaleMin and ScaleMax of surveys and pulses are always set.
type Event struct {
	ID         string    `json:"id"`
	Type       Type      `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	Source     string    `json:"source,omitempty"`

	// survey_response and employee_pulse
	Score    *float64 `json:"score,omitempty"`
	ScaleMin *float64 `json:"scale_min,omitempty"`
	ScaleMax *float64 `json:"scale_max,omitempty"`

	// survey_response
	Survey     Survey `json:"survey,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Comment    string `json:"comment,omitempty"`

	// survey_response and ticket
	TicketID string `json:"ticket_id,omitempty"`
	Channel  string `json:"channel,omitempty"`
	Category string `json:"category,omitempty"`
	AgentID  string `json:"agent_id,omitempty"`

	// survey_response, ticket and employee_pulse
	Team string `json:"team,omitempty"`

	// ticket
	Status        TicketStatus `json:"status,omitempty"`
	HandleSeconds *float64     `json:"handle_seconds,omitempty"`
	Contacts      *int64       `json:"contacts,omitempty"`

	// employee_pulse
	EmployeeID string `json:"employee_id,omitempty"`
	Question   string `json:"question,omitempty"`
}

// RoutingKey is what decides the event's partition: the ticket, so that a survey meets
// its ticket; else the team; else the event itself.
func (e *Event) RoutingKey() string {
	switch {
	case e.TicketID != "":
		return e.TicketID
	case e.Team != "":
		return e.Team
	default:
		return e.ID
	}
}

// Scale is a closed range of answers. Min may be greater than Max: the scale then runs
// the other way, Min being the worst answer.
type Scale struct{ Min, Max float64 }

// Contains reports whether v is an answer on the scale.
func (s Scale) Contains(v float64) bool {
	lo, hi := math.Min(s.Min, s.Max), math.Max(s.Min, s.Max)
	return v >= lo && v <= hi
}

// Standard scales, thresholds and shares of the customer surveys (the metric definitions
// in docs/metrics.md):
//   - CES 2.0, 1–7 agreement, higher = easier: easy 5–7, difficult 1–3.
//   - CSAT 1–5: satisfied 4–5, dissatisfied 1–2.
//   - NPS 0–10: promoters 9–10, detractors 0–6; NPS = % promoters − % detractors.
var standards = map[Survey]struct {
	scale              Scale
	positive, negative float64 // score ≥ positive is positive; score ≤ negative is negative
}{
	SurveyCES:  {Scale{1, 7}, 5, 3},
	SurveyCSAT: {Scale{1, 5}, 4, 2},
	SurveyNPS:  {Scale{0, 10}, 9, 6},
}

// StandardScale is the scale a survey kind's scores are aggregated on.
func StandardScale(s Survey) Scale { return standards[s].scale }

// pulseScales are the default scales of well-known pulse questions; other questions
// must state their scale.
var pulseScales = map[string]Scale{
	"engagement": {1, 5},
	"enps":       {0, 10},
	"workload":   {1, 5},
}

// ScoreUnit is the resolution of standardised scores: they are rounded to a millionth of
// a point, so that sums are exact in integer micro-points.
const ScoreUnit = 1e-6 // keep in step with the 1e6 factors below

// StandardScore maps a survey's score linearly from its own scale onto its kind's
// standard scale and rounds it to ScoreUnit. Call it on validated surveys only.
func (e *Event) StandardScore() float64 {
	std := standards[e.Survey].scale
	from := Scale{*e.ScaleMin, *e.ScaleMax}
	v := *e.Score
	if from != std {
		v = std.Min + (v-from.Min)*(std.Max-std.Min)/(from.Max-from.Min)
	}
	return math.Round(v*1e6) / 1e6
}

// MicroPoints is a standardised score in integer units of ScoreUnit.
func MicroPoints(standardScore float64) int64 { return int64(math.Round(standardScore * 1e6)) }

// Classify says whether a standardised score of survey kind s is positive (easy,
// satisfied, promoter) or negative (difficult, dissatisfied, detractor).
func Classify(s Survey, standardScore float64) (positive, negative bool) {
	d := standards[s]
	return standardScore >= d.positive, standardScore <= d.negative
}
