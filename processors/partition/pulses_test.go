package partition

import (
	"fmt"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/processors/pulses"
)

func pulseEvent(id, employee, team string, occurred time.Time) event.Event {
	return event.Event{ID: id, Type: event.TypeEmployeePulse, OccurredAt: occurred, EmployeeID: employee,
		Team: team, Question: "engagement", Score: ptr(4.0), ScaleMin: ptr(1.0), ScaleMax: ptr(5.0)}
}

// Pulse rows leave the state only once the team's question has enough respondents in
// the period; a replay of the same messages releases the same rows at the same message.
func TestPulsesAreHeldBelowTheThreshold(t *testing.T) {
	c := cfg()
	c.Pulses = pulses.Config{Period: pulses.MustParsePeriod("1d"), MinRespondents: 3}
	if h := c.Horizon(); h != 24*time.Hour+time.Hour+10*time.Minute {
		t.Fatalf("horizon %s: the pulse period is longer than the window", h)
	}
	run := func() []int {
		s := New(0, c)
		var released []int
		for i, emp := range []string{"e1", "e2", "e2", "e3", "e4"} {
			out, oc := s.Apply(Message{Seq: uint64(i + 1), ReceivedAt: t0, Event: pulseEvent(fmt.Sprint("p", i), emp, "red", t0)})
			if oc.PulseTooLate {
				t.Fatal("too late")
			}
			released = append(released, len(out.Pulses))
		}
		return released
	}
	got := run()
	if fmt.Sprint(got) != "[0 0 0 4 1]" {
		t.Fatalf("rows released per message %v, want [0 0 0 4 1]", got)
	}
	if again := run(); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("replay released %v, first run %v", again, got)
	}
	// A pulse for a period whose horizon passed is refused.
	s := New(0, c)
	_, oc := s.Apply(Message{Seq: 1, ReceivedAt: t0.Add(3 * 24 * time.Hour), Event: pulseEvent("old", "e1", "red", t0)})
	if !oc.PulseTooLate {
		t.Fatal("a pulse three days after its one-day period was accepted")
	}
}
