package records

import (
	"math"
	"time"
)

// Rows of the cross-team stage (processors/analytics): what it reads as aggregates and
// what it writes to team_periods, linkage and effort_impact.

// EmployeeAggregate is one team's answers to one pulse question in one period, counting
// each employee's latest answer once: read from the private database by the analytics
// stage, and, once published, what team_periods holds of it.
type EmployeeAggregate struct {
	Team        string
	Question    string // engagement (1–5), enps (0–10)
	PeriodStart time.Time
	Respondents uint64
	Sum         float64 // of the answers on the question's standard scale
	SquareSum   float64 // of their squares
	Promoters   uint64  // enps: answers 9–10
	Detractors  uint64  // enps: answers 0–6
	// LastStored is when the group's latest row reached the private database (its
	// clock); zero for published figures.
	LastStored time.Time
}

// CustomerAggregate is one team's survey responses of one kind in one period.
type CustomerAggregate struct {
	Team        string
	Survey      string // ces, csat
	PeriodStart time.Time
	Responses   uint64
	Sum         float64 // of standard scores
	Positive    uint64  // ces easy 5–7, csat satisfied 4–5
	Negative    uint64  // ces difficult 1–3, csat dissatisfied 1–2
}

// TeamPeriod is a row of team_periods: a team's published employee figures and its
// customer figures in one period. Pointers are NULL.
type TeamPeriod struct {
	Period                string
	PeriodStart           time.Time
	Team                  string
	EngagementRespondents uint32
	Engagement            *float64
	EngagementSD          *float64 // sample standard deviation of the answers
	ENPSRespondents       uint32
	ENPS                  *float64
	ENPSPromoters         *float64 // % of answers 9–10
	ENPSDetractors        *float64 // % of answers 0–6
	CESResponses          uint32
	CES                   *float64
	PctDifficult          *float64
	CSATResponses         uint32
	CSAT                  *float64
}

// Aggregates turns the row's published employee figures back into the
// aggregates they were computed from (engagement: count, sum and sum of squares;
// eNPS: count, promoters and detractors), for the linkage and the drift detector.
func (r TeamPeriod) Aggregates() []EmployeeAggregate {
	var out []EmployeeAggregate
	if r.Engagement != nil && r.EngagementRespondents > 0 {
		n := float64(r.EngagementRespondents)
		sum := *r.Engagement * n
		sq := sum * sum / n
		if r.EngagementSD != nil {
			sq += *r.EngagementSD * *r.EngagementSD * (n - 1)
		}
		out = append(out, EmployeeAggregate{Team: r.Team, Question: "engagement", PeriodStart: r.PeriodStart,
			Respondents: uint64(r.EngagementRespondents), Sum: sum, SquareSum: sq})
	}
	if r.ENPS != nil && r.ENPSRespondents > 0 {
		n := float64(r.ENPSRespondents)
		a := EmployeeAggregate{Team: r.Team, Question: "enps", PeriodStart: r.PeriodStart, Respondents: uint64(r.ENPSRespondents)}
		if r.ENPSPromoters != nil && r.ENPSDetractors != nil {
			a.Promoters, a.Detractors = uint64(math.Round(*r.ENPSPromoters*n/100)), uint64(math.Round(*r.ENPSDetractors*n/100))
		} else if *r.ENPS >= 0 { // published before the shares were: the net score alone
			a.Promoters = uint64(math.Round(*r.ENPS * n / 100))
		} else {
			a.Detractors = uint64(math.Round(-*r.ENPS * n / 100))
		}
		out = append(out, a)
	}
	return out
}

// Linkage is a row of linkage: one correlation across teams.
type Linkage struct {
	Period         string
	PeriodStart    time.Time
	Scope          string // period, between_teams, within_teams
	SpanPeriods    uint16
	Lag            uint8
	EmployeeMetric string
	CustomerMetric string
	Teams          uint32
	Pairs          uint32
	Periods        uint16
	DF             *uint32 // degrees of freedom of the test
	Pearson        *float64
	Spearman       *float64
	CILow, CIHigh  *float64
	P              *float64
	MinDetectable  *float64 // smallest |r| detectable with 80% power at this DF
	Status         string
	Reading        string // no_result, too_uncertain, underpowered, supported
}

// CategoryTickets is the solved tickets of one category in a window.
type CategoryTickets struct {
	Category      string
	Tickets       uint64
	HandleSeconds float64 // total over the tickets with a handle time
	WithHandle    uint64
	Contacts      uint64 // total over the tickets with a contact count
	WithContacts  uint64
}

// CategoryCES is the CES responses of one category in a window.
type CategoryCES struct {
	Category  string
	Responses uint64
	Sum       float64
	Variance  float64 // sample variance of the standard scores
	Difficult uint64  // 1–3
}

// EffortImpact is a row of effort_impact.
type EffortImpact struct {
	Window                string
	WindowEnd             time.Time
	Category              string
	Tickets               uint64
	VolumeShare           float64  // of the window's solved tickets
	HandleShare           *float64 // of the window's handle hours; NULL when none are known
	HandleHours           float64
	AvgHandleSeconds      *float64
	ContactsPerResolution *float64
	CESResponses          uint64
	CES                   *float64
	CESLow, CESHigh       *float64
	PctDifficult          *float64
	DifficultLow          *float64
	DifficultHigh         *float64
	Impact                *float64
	Rank                  *uint16
	Status                string
}
