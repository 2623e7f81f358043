package event

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func validator() Validator {
	return Validator{Now: func() time.Time { return now }, MaxFuture: 5 * time.Minute}
}

func TestDecodeValidEvents(t *testing.T) {
	for _, body := range []string{
		`{"id":"s1","type":"survey_response","occurred_at":"2026-11-23T11:00:00Z","survey":"ces","score":6,"ticket_id":"T1"}`,
		`{"id":"s2","type":"survey_response","occurred_at":"2026-11-23T11:00:00+01:00","survey":"nps","score":0,"comment":"line one\nline two"}`,
		`{"id":"t1","type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved","handle_seconds":30.5,"contacts":2}`,
		`{"id":"p1","type":"employee_pulse","occurred_at":"2026-11-23T11:00:00Z","employee_id":"e1","team":"red","question":"engagement","score":4}`,
		`{"id":"p2","type":"employee_pulse","occurred_at":"2026-11-23T11:00:00Z","employee_id":"e1","team":"red","question":"stress","score":2,"scale_min":1,"scale_max":3,"source":null}`,
	} {
		if _, errs := validator().Decode([]byte(body)); errs != nil {
			t.Errorf("%s: %v", body, errs)
		}
	}
}

func TestDecodeNamesTheField(t *testing.T) {
	for _, c := range []struct{ body, field, says string }{
		{`{"type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved"}`, "id", "required"},
		{`{"id":"a b","type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved"}`, "id", "not allowed"},
		{`{"id":"x","type":"complaint","occurred_at":"2026-11-23T11:00:00Z"}`, "type", "unknown type"},
		{`{"id":"x","type":"survey_response","occurred_at":"2026-11-23T11:00:00Z","survey":"ces","score":"5"}`, "score", "must be a number"},
		{`{"id":"x","type":"survey_response","occurred_at":"2026-11-23T11:00:00Z","survey":"ces","score":9}`, "score", "outside the scale 1–7"},
		{`{"id":"x","type":"survey_response","occurred_at":"2026-11-23T11:00:00Z","survey":"effort","score":3}`, "survey", "unknown survey"},
		{`{"id":"x","type":"survey_response","occurred_at":"2027-01-01T00:00:00Z","survey":"ces","score":3}`, "occurred_at", "in the future"},
		{`{"id":"x","type":"survey_response","occurred_at":"yesterday","survey":"ces","score":3}`, "occurred_at", "RFC 3339"},
		{`{"id":"x","type":"survey_response","occurred_at":"2026-11-23T11:00:00Z","survey":"ces","score":3,"scroe":3}`, "scroe", "unknown field"},
		{`{"id":"x","type":"survey_response","occurred_at":"2026-11-23T11:00:00Z","survey":"ces","score":3,"status":"solved"}`, "status", "not a field of survey_response"},
		{`{"id":"x","type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved","contacts":1.5}`, "contacts", "whole number"},
		{`{"id":"x","ID":"y","type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved"}`, "ID", "unknown field"},
		{`{"id":"x","id":"y","type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved"}`, "id", "more than once"},
		{`{"id":"x","type":"employee_pulse","occurred_at":"2026-11-23T11:00:00Z","employee_id":"e","team":"t","question":"stress","score":2}`, "scale_min", "required"},
		{`{"id":"x","type":"ticket","occurred_at":"2026-11-23T11:00:00Z","ticket_id":"T1","status":"solved","team":"` + strings.Repeat("t", 200) + `"}`, "team", "at most 128"},
		{`[1,2]`, "(event)", "JSON object"},
	} {
		_, errs := validator().Decode([]byte(c.body))
		found := false
		for _, e := range errs {
			found = found || e.Field == c.field && strings.Contains(e.Message, c.says)
		}
		if !found {
			t.Errorf("%s: want an error on %s saying %q, got %v", c.body, c.field, c.says, errs)
		}
	}
}

func TestStandardScoreAndClassify(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		survey          Survey
		score, lo, hi   float64
		want            float64
		positive, negat bool
	}{
		{SurveyCES, 5, 1, 7, 5, true, false},
		{SurveyCES, 3, 1, 7, 3, false, true},
		{SurveyCES, 4, 1, 7, 4, false, false},
		{SurveyCES, 4, 1, 5, 5.5, true, false}, // 1–5 agreement onto 1–7
		{SurveyCES, 2, 5, 1, 5.5, true, false}, // reversed 5→1 effort scale: 2 is easy
		{SurveyCSAT, 4, 1, 5, 4, true, false},
		{SurveyCSAT, 2, 1, 5, 2, false, true},
		{SurveyNPS, 9, 0, 10, 9, true, false},
		{SurveyNPS, 6, 0, 10, 6, false, true},
		{SurveyNPS, 7, 0, 10, 7, false, false},
		{SurveyCES, 2, 1, 3, 4, false, false},
		{SurveyCES, 1, 0, 3, 3, false, true}, // 1 + 6/3 = 3, exactly on the threshold
	} {
		e := Event{Survey: c.survey, Score: f(c.score), ScaleMin: f(c.lo), ScaleMax: f(c.hi)}
		got := e.StandardScore()
		pos, neg := Classify(c.survey, got)
		if got != c.want || pos != c.positive || neg != c.negat {
			t.Errorf("%s %v on %v–%v: standard %v (%v, %v), want %v (%v, %v)", c.survey, c.score, c.lo, c.hi, got, pos, neg, c.want, c.positive, c.negat)
		}
	}
}

// Objects far from an event are refused as a whole, with one error, before each of their
// fields is decoded: many fields, or values nested deep.
func TestDecodeRefusesTheShapeOfNoEvent(t *testing.T) {
	many := `{"id":"x"`
	for i := range 40 {
		many += fmt.Sprintf(`,"f%d":1`, i)
	}
	many += "}"
	deep := `{"id":"x","comment":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}"
	for name, body := range map[string]string{"many fields": many, "deep": deep} {
		_, errs := validator().Decode([]byte(body))
		if len(errs) != 1 || errs[0].Field != "(event)" || !strings.Contains(errs[0].Message, "flat object") {
			t.Errorf("%s: %v", name, errs)
		}
	}
	// A nested value in a few fields is still named field by field.
	_, errs := validator().Decode([]byte(`{"id":{"a":[1]},"type":"ticket"}`))
	if len(errs) != 1 || errs[0].Field != "id" {
		t.Errorf("nested id: %v", errs)
	}
	// An empty key is an error of the event, not of a field without a name.
	_, errs = validator().Decode([]byte(`{"":""}`))
	if len(errs) != 1 || errs[0].Field != "(event)" {
		t.Errorf("empty key: %v", errs)
	}
}
