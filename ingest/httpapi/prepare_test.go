package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// Prepare changes valid events before they are published, and its error rejects just
// that event, naming the field.
func TestPrepareRewritesOrRejects(t *testing.T) {
	pub := &fakePublisher{}
	h, err := New(testConfig(), Options{Publisher: pub, Now: func() time.Time { return now },
		Prepare: func(e *event.Event) *event.FieldError {
			switch {
			case e.Type != event.TypeEmployeePulse:
				return nil
			case e.Team == "blue":
				e.EmployeeID = "hashed"
				return nil
			}
			return &event.FieldError{Field: "employee_id", Message: "no key"}
		}})
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Join([]string{pulse, survey, strings.Replace(strings.Replace(pulse, `"blue"`, `"red"`, 1), `"p1"`, `"p2"`, 1)}, "\n")
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"id":"p2","status":"rejected","errors":[{"field":"employee_id","message":"no key"}]`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	calls := pub.published()
	if len(calls) != 1 || len(calls[0]) != 2 || calls[0][0].EmployeeID != "hashed" || calls[0][1].Type != event.TypeSurveyResponse {
		t.Fatalf("published %+v", calls)
	}
}
