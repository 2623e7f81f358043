package app

import (
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// A pulse older than CXLINK_PULSE_LOOKBACK could never be published: ingest rejects it,
// naming occurred_at, instead of accepting it for nothing. A recent one is pseudonymized.
func TestIngestRefusesPulsesThatCanNeverCount(t *testing.T) {
	cfg, err := LoadConfig(map[string]string{"CXLINK_EMPLOYEE_ID_KEY": "a-test-key-of-sixteen+", "CXLINK_PULSE_LOOKBACK": "30d"})
	if err != nil {
		t.Fatal(err)
	}
	prepare := (&roles{cfg: cfg}).preparePulse()
	pulse := func(age time.Duration) *event.Event {
		return &event.Event{Type: event.TypeEmployeePulse, EmployeeID: "e-17", Team: "alpha", OccurredAt: time.Now().Add(-age)}
	}
	old := pulse(31 * 24 * time.Hour)
	if fe := prepare(old); fe == nil || fe.Field != "occurred_at" || !strings.Contains(fe.Message, "CXLINK_PULSE_LOOKBACK (30d)") {
		t.Errorf("a pulse 31 days old with a 30-day lookback: %v", fe)
	}
	recent := pulse(29 * 24 * time.Hour)
	if fe := prepare(recent); fe != nil || !strings.HasPrefix(recent.EmployeeID, "emp-") {
		t.Errorf("a pulse 29 days old: %v, employee %s", fe, recent.EmployeeID)
	}
	survey := &event.Event{Type: event.TypeSurveyResponse, OccurredAt: time.Now().Add(-400 * 24 * time.Hour)}
	if fe := prepare(survey); fe != nil {
		t.Errorf("an old survey is not a pulse: %v", fe)
	}
}
