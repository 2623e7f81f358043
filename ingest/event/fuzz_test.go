package event

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzDecode: no input crashes the decoder; its fast path answers as the strict decoder;
// every error names a field; and an accepted
// event survives what happens to it next: ingest publishes it as JSON and the processors
// decode and validate it again, against a later clock, and must accept it unchanged.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 1m ./ingest/event
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"s1","type":"survey_response","occurred_at":"2026-11-23T10:15:00Z","survey":"ces","score":6,"ticket_id":"t1"}`,
		`{"id":"t1","type":"ticket","occurred_at":"2026-11-23T10:00:00Z","ticket_id":"t1","status":"solved","category":"refund","team":"blue","handle_seconds":310,"contacts":2}`,
		`{"id":"p1","type":"employee_pulse","occurred_at":"2026-11-23T09:00:00Z","employee_id":"e1","team":"blue","question":"engagement","score":4}`,
		`{"id":"s2","type":"survey_response","occurred_at":"2026-11-23T10:15:00+02:00","survey":"ces","score":2,"scale_min":5,"scale_max":1,"comment":"long\nwait"}`,
		`{"id":"p2","type":"employee_pulse","occurred_at":"2026-11-23T09:00:00Z","employee_id":"e1","team":"blue","question":"q","score":0.5,"scale_min":0,"scale_max":1}`,
		`{"id":"x","id":"y"}`, `{"ID":"x"}`, `[]`, `null`, `"x"`, `{"id":{"a":[1,2,{"b":null}]}}`,
		`{"id":"s3","type":"survey_response","occurred_at":"2026-11-23T10:15:00Z","survey":"nps","score":1e400}`,
		`{"id":"\u0000","type":"ticket"}`, "{\"id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	v := Validator{Now: func() time.Time { return now }, MaxFuture: 5 * time.Minute}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, errs := v.Decode(data)
		// The fast path must give the strict decoder's verdict, event and answers.
		if se, serrs := v.decodeStrict(data); !reflect.DeepEqual(se, e) || !reflect.DeepEqual(serrs, errs) {
			t.Fatalf("Decode gave %+v %q, the strict decoder %+v %q", e, errs, se, serrs)
		}
		if len(errs) > 0 {
			if !reflect.DeepEqual(e, Event{}) {
				t.Fatalf("rejected, yet the event is not empty: %+v", e)
			}
			for _, fe := range errs {
				if fe.Field == "" || fe.Message == "" {
					t.Fatalf("an error without field or message: %q", errs)
				}
			}
			return
		}
		if e.ID == "" || e.Type == "" || e.OccurredAt.IsZero() {
			t.Fatalf("accepted an event without id, type or time: %+v", e)
		}
		published, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		var again Event
		if err := json.Unmarshal(published, &again); err != nil {
			t.Fatalf("published event does not decode: %v\n%s", err, published)
		}
		later := Validator{Now: func() time.Time { return now.Add(time.Second) }, MaxFuture: v.MaxFuture}
		if errs := later.Validate(&again); len(errs) > 0 {
			t.Fatalf("the processors would reject what ingest accepted: %v\n%s", errs, published)
		}
		if !reflect.DeepEqual(e.OccurredAt.UnixNano(), again.OccurredAt.UnixNano()) || e.ID != again.ID || e.Type != again.Type {
			t.Fatalf("the event changed on its way:\n%+v\n%+v", e, again)
		}
		if e.Type == TypeSurveyResponse {
			if s := e.StandardScore(); s != again.StandardScore() || !StandardScale(e.Survey).Contains(s) {
				t.Fatalf("standard score %v (again %v) is off its scale", s, again.StandardScore())
			}
		}
	})
}
