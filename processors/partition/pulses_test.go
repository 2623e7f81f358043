package partition

import (
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

func pulseEvent(id, employee, team string, occurred time.Time) event.Event {
	return event.Event{ID: id, Type: event.TypeEmployeePulse, OccurredAt: occurred, EmployeeID: employee,
		Team: team, Question: "engagement", Score: ptr(4.0), ScaleMin: ptr(1.0), ScaleMax: ptr(5.0)}
}

// Every pulse leaves the state at once as its row, however few answered and however
// old its period: the state holds no employee answer.
func TestPulsesPassStraightThrough(t *testing.T) {
	s := New(0, cfg())
	for i, at := range []time.Time{t0, t0.Add(-90 * 24 * time.Hour)} {
		out, _ := s.Apply(Message{Seq: uint64(i + 1), ReceivedAt: t0, Event: pulseEvent("p", "e1", "red", at)})
		if len(out.Pulses) != 1 || out.Pulses[0].EmployeeID != "e1" || !out.Pulses[0].OccurredAt.Equal(at) {
			t.Fatalf("pulse %d: %+v", i, out)
		}
	}
	if series, tickets, waiting := s.Size(); series+tickets+waiting != 0 {
		t.Fatalf("the state holds %d series, %d tickets, %d surveys after pulses only", series, tickets, waiting)
	}
}
