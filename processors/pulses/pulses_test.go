package pulses

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

var monday = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday

func pulse(n int, team, question, employee string, at time.Time) records.Pulse {
	return records.Pulse{ID: fmt.Sprintf("p%d", n), EmployeeID: employee, Team: team, Question: question, OccurredAt: at}
}

func TestGroupsAreReleasedAtTheThreshold(t *testing.T) {
	s := NewState(7*24*time.Hour, 5, 8*24*time.Hour)
	at := monday.Add(30 * time.Hour)
	recv := at.Add(time.Minute)
	// Four distinct employees (one answers twice): nothing leaves.
	for i, e := range []string{"a", "b", "c", "c", "d"} {
		rows, oc := s.Apply(pulse(i, "red", "engagement", e, at), recv)
		if len(rows) != 0 || oc != Held {
			t.Fatalf("answer %d released %v (%v) below the threshold", i, rows, oc)
		}
	}
	// Another question of the same team is its own group.
	if rows, _ := s.Apply(pulse(10, "red", "enps", "e", at), recv); len(rows) != 0 {
		t.Fatal("enps released")
	}
	// The fifth employee releases the five held rows and its own.
	rows, oc := s.Apply(pulse(5, "red", "engagement", "e", at), recv)
	if oc != Released || len(rows) != 6 || rows[0].ID != "p0" || rows[5].ID != "p5" {
		t.Fatalf("release: %v %v", oc, rows)
	}
	// Then every answer goes through at once.
	if rows, oc := s.Apply(pulse(6, "red", "engagement", "a", at), recv); oc != Released || len(rows) != 1 {
		t.Fatalf("after release: %v %v", oc, rows)
	}
	// The next week is a new group.
	if rows, _ := s.Apply(pulse(7, "red", "engagement", "a", monday.Add(7*24*time.Hour)), recv.Add(7*24*time.Hour)); len(rows) != 0 {
		t.Fatal("next week released")
	}
}

func TestPulsesAfterTheHorizonAreRefusedAndGroupsForgotten(t *testing.T) {
	week := 7 * 24 * time.Hour
	s := NewState(week, 3, week+time.Hour)
	at := monday.Add(time.Hour)
	for i, e := range []string{"a", "b"} {
		s.Apply(pulse(i, "red", "engagement", e, at), at)
	}
	// A message of another team moves the stream clock past the horizon.
	if _, oc := s.Apply(pulse(2, "blue", "engagement", "x", monday.Add(week)), monday.Add(week+time.Hour)); oc != Held {
		t.Fatal(oc)
	}
	if s.Len() != 1 {
		t.Fatalf("%d groups: red's week should be forgotten", s.Len())
	}
	// A third red answer would have released the group: now it is too late, even if
	// JetStream's timestamp of it were earlier than the clock.
	if rows, oc := s.Apply(pulse(3, "red", "engagement", "c", at), monday.Add(week)); oc != TooLate || len(rows) != 0 {
		t.Fatalf("got %v %v", oc, rows)
	}
}

func TestPeriodStartMatchesSQLOffset(t *testing.T) {
	for _, p := range []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, 10 * time.Minute, 90 * time.Minute} {
		for _, t0 := range []time.Time{monday.Add(3*24*time.Hour + 5*time.Hour + 7*time.Second), time.Unix(1, 0), monday.Add(-time.Second)} {
			sec := int64(p / time.Second)
			off := EpochOffset(p)
			sql := ((t0.Unix()+off)/sec)*sec - off
			if got := PeriodStart(t0, p).Unix(); got != sql {
				t.Errorf("period %s at %s: Truncate %d, SQL %d", p, t0, got, sql)
			}
		}
	}
	if got := PeriodStart(monday.Add(50*time.Hour), 7*24*time.Hour); !got.Equal(monday) {
		t.Errorf("weeks start on %s, want Monday %s", got, monday)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{Period: MustParsePeriod("7d"), MinRespondents: 5}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := (Config{MinRespondents: 2}).Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CXLINK_PULSE_PERIOD", "CXLINK_ANONYMITY_MIN_RESPONDENTS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %s", err, want)
		}
	}
	var p Period
	for _, bad := range []string{"30s", "7x", "1h,7d", ""} {
		if err := p.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("period %q accepted", bad)
		}
	}
	if err := p.UnmarshalText([]byte("10m")); err != nil || p.Name != "10m" || p.Length != 10*time.Minute {
		t.Errorf("10m read as %+v, %v", p, err)
	}
	if b, _ := DefaultConfig().Period.MarshalText(); string(b) != "7d" {
		t.Errorf("default period %s", b)
	}
}
