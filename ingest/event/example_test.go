package event_test

import (
	"fmt"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// A CES survey as a helpdesk sends it, with only the ticket it rates: accepted, with the
// default 1–7 scale filled in. A second one with two faults: every fault is reported by
// the field it is in.
func ExampleValidator_Decode() {
	v := event.Validator{
		Now:       func() time.Time { return time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC) },
		MaxFuture: 5 * time.Minute,
	}
	e, errs := v.Decode([]byte(`{"id": "zd-rating-8812", "type": "survey_response",
		"occurred_at": "2026-03-02T11:58:00Z", "survey": "ces", "score": 6, "ticket_id": "T-1042"}`))
	fmt.Println(errs == nil, e.Type, e.Survey, *e.Score, "on", *e.ScaleMin, "to", *e.ScaleMax, "for ticket", e.TicketID)
	fmt.Printf("standard score %.0f, routed by %q\n", e.StandardScore(), e.RoutingKey())

	_, errs = v.Decode([]byte(`{"id": "zd-rating-8813", "type": "survey_response",
		"survey": "ces", "score": 9}`))
	for _, fe := range errs {
		fmt.Printf("%s: %s\n", fe.Field, fe.Message)
	}
	// Output:
	// true survey_response ces 6 on 1 to 7 for ticket T-1042
	// standard score 6, routed by "T-1042"
	// occurred_at: is required
	// score: 9 is outside the scale 1–7
}
