package event_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// BenchmarkDecode decodes and validates the two commonest events, a solved ticket and
// its CES survey, as ingest receives them.
func BenchmarkDecode(b *testing.B) {
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	bodies := [][]byte{
		fmt.Appendf(nil, `{"id":"zendesk-ticket-48213","type":"ticket","occurred_at":%q,"ticket_id":"T48213","status":"solved","channel":"phone","category":"refund_request","team":"team-blue","agent_id":"agent-117","handle_seconds":312,"contacts":1,"source":"zendesk"}`, at),
		fmt.Appendf(nil, `{"id":"zendesk-rating-48213","type":"survey_response","occurred_at":%q,"survey":"ces","score":6,"ticket_id":"T48213","customer_id":"c-99120","comment":"quick and friendly","source":"zendesk"}`, at),
	}
	v := event.Validator{Now: time.Now, MaxFuture: 5 * time.Minute}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, errs := v.Decode(bodies[i%2]); errs != nil {
			b.Fatal(errs)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
