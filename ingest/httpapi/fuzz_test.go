package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzHandler posts arbitrary bodies, as JSON, NDJSON or another content type, to a
// handler whose publisher stores everything. Whatever the body, the answer is a 4xx or a
// 202 whose body is a well-formed Response or ErrorResponse, the counts add up, and
// exactly the accepted events were published.
//
//	go test -run '^$' -fuzz FuzzHandler -fuzztime 1m ./ingest/httpapi
func FuzzHandler(f *testing.F) {
	for _, s := range []string{
		survey, ticket, pulse, "[" + survey + "," + ticket + "]", survey + "\n" + pulse + "\n{bad\n",
		"[" + survey + ",{\"id\":1}]", "", "   ", "[]", "{}", "[1,2", `{"id":"x"} {"id":"y"}`, "\xef\xbb\xbf" + ticket,
		strings.Repeat("[", 100), "[" + strings.Repeat(survey+",", 60) + survey + "]",
	} {
		for kind := range uint8(4) {
			f.Add([]byte(s), kind)
		}
	}
	cfg := testConfig()
	cfg.MaxBodyBytes = 16 << 10
	cfg.MaxBatchEvents = 50
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		pub := &fakePublisher{}
		h, _ := newTestHandler(t, cfg, pub)
		contentType := []string{"application/json", "application/x-ndjson", "", "text/plain"}[kind%4]
		a := do(h, http.MethodPost, "/v1/events", contentType, bytes.NewReader(body))
		switch a.code {
		case http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("status %d: %s", a.code, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		published := 0
		for _, call := range pub.published() {
			published += len(call)
		}
		var r Response
		dec := json.NewDecoder(strings.NewReader(a.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil || r.Results == nil {
			var e ErrorResponse
			if json.Unmarshal([]byte(a.body), &e) != nil || e.Error == "" {
				t.Fatalf("status %d with neither a Response nor an ErrorResponse: %s", a.code, a.body)
			}
			if a.code == http.StatusAccepted || published > 0 {
				t.Fatalf("status %d, %d events published, with an error answer: %s", a.code, published, a.body)
			}
			return
		}
		if r.Accepted != published || r.Duplicates != 0 || r.Failed != 0 || len(r.Results) != r.Rejected {
			t.Fatalf("published %d, answer %+v", published, r)
		}
		if (a.code == http.StatusAccepted) != (r.Accepted > 0) {
			t.Fatalf("status %d with %d accepted", a.code, r.Accepted)
		}
		if r.Accepted+r.Rejected > cfg.MaxBatchEvents {
			t.Fatalf("%d events in one request, limit %d", r.Accepted+r.Rejected, cfg.MaxBatchEvents)
		}
		for _, res := range r.Results {
			if res.Status != statusRejected || len(res.Errors) == 0 || res.Errors[0].Field == "" {
				t.Fatalf("result without a reason naming a field: %+v", res)
			}
		}
	})
}
