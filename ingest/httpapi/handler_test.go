package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// now is the clock of the unit tests; the events below happened shortly before.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const (
	survey = `{"id":"s1","type":"survey_response","occurred_at":"2026-11-23T10:15:00Z","survey":"ces","score":6,"ticket_id":"t1"}`
	ticket = `{"id":"t1","type":"ticket","occurred_at":"2026-11-23T10:00:00Z","ticket_id":"t1","status":"solved","category":"refund","team":"blue","handle_seconds":310,"contacts":2}`
	pulse  = `{"id":"p1","type":"employee_pulse","occurred_at":"2026-11-23T09:00:00Z","employee_id":"e1","team":"blue","question":"engagement","score":4}`
)

// fakePublisher records what it is asked to publish and answers with result.
type fakePublisher struct {
	mu     sync.Mutex
	calls  [][]event.Event
	result func(ctx context.Context, i int, e event.Event) stream.Result
}

func (f *fakePublisher) Publish(ctx context.Context, events []event.Event) []stream.Result {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(events))
	f.mu.Unlock()
	out := make([]stream.Result, len(events))
	if f.result != nil {
		for i, e := range events {
			out[i] = f.result(ctx, i, e)
		}
	}
	return out
}

func (f *fakePublisher) published() [][]event.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func testConfig() Config {
	return Config{
		Addr:           ":0",
		MaxBodyBytes:   8 << 20,
		MaxBatchEvents: 10000,
		MaxFuture:      5 * time.Minute,
		PublishTimeout: 10 * time.Second,

		MaxConcurrentRequests: 32,
		MaxUnverifiedRequests: 16,
		UnverifiedReadTimeout: 5 * time.Second,
		MaxLabelValues:        5000,
	}
}

func newTestHandler(t testing.TB, cfg Config, pub Publisher) (*Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := New(cfg, Options{Publisher: pub, Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

type answer struct {
	code   int
	header http.Header
	body   string
}

// resp decodes the answer as a Response, failing the test if it is not one.
func (a answer) resp(t *testing.T) Response {
	t.Helper()
	var r Response
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.Results == nil {
		t.Fatalf("answer %d is not a Response (%v): %s", a.code, err, a.body)
	}
	return r
}

// errorMsg decodes the answer as an ErrorResponse.
func (a answer) errorMsg(t *testing.T) string {
	t.Helper()
	var r ErrorResponse
	if err := json.Unmarshal([]byte(a.body), &r); err != nil || r.Error == "" {
		t.Fatalf("answer %d is not an ErrorResponse (%v): %s", a.code, err, a.body)
	}
	return r.Error
}

func do(h http.Handler, method, path, contentType string, body io.Reader) answer {
	req := httptest.NewRequest(method, path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

func post(h http.Handler, contentType, body string) answer {
	return do(h, http.MethodPost, "/v1/events", contentType, strings.NewReader(body))
}

// decoded is what the validator makes of a valid event.
func decoded(t *testing.T, raw string) event.Event {
	t.Helper()
	e, errs := event.Validator{Now: func() time.Time { return now }, MaxFuture: 5 * time.Minute}.Decode([]byte(raw))
	if errs != nil {
		t.Fatalf("%s: %v", raw, errs)
	}
	return e
}

func ids(events []event.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func checkPublished(t *testing.T, pub *fakePublisher, want ...string) {
	t.Helper()
	calls := pub.published()
	if len(want) == 0 {
		if len(calls) != 0 {
			t.Fatalf("published %d times, want never", len(calls))
		}
		return
	}
	if len(calls) != 1 {
		t.Fatalf("published %d times, want once", len(calls))
	}
	if got := ids(calls[0]); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}

func TestOneObject(t *testing.T) {
	pub := &fakePublisher{}
	h, _ := newTestHandler(t, testConfig(), pub)
	a := post(h, "application/json", survey)
	if a.code != http.StatusAccepted {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	if r := a.resp(t); r.Accepted != 1 || r.Duplicates+r.Rejected+r.Failed != 0 || len(r.Results) != 0 {
		t.Fatalf("response %+v", r)
	}
	checkPublished(t, pub, "s1")
	if got, want := pub.published()[0][0], decoded(t, survey); !reflect.DeepEqual(got, want) {
		t.Fatalf("published %+v, want %+v", got, want)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestArray(t *testing.T) {
	pub := &fakePublisher{}
	h, _ := newTestHandler(t, testConfig(), pub)
	// No Content-Type: the first byte decides.
	a := post(h, "", " \n["+survey+",\n"+ticket+" , "+pulse+"]\n")
	if a.code != http.StatusAccepted || a.resp(t).Accepted != 3 {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	checkPublished(t, pub, "s1", "t1", "p1")
}

func TestNDJSON(t *testing.T) {
	pub := &fakePublisher{}
	h, _ := newTestHandler(t, testConfig(), pub)
	body := survey + "\r\n\n   \n" + ticket + "\n" + `{"id":"bad",` + "\n" + pulse // no final newline
	a := post(h, "application/x-ndjson; charset=utf-8", body)
	if a.code != http.StatusAccepted {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	r := a.resp(t)
	if r.Accepted != 3 || r.Rejected != 1 || len(r.Results) != 1 {
		t.Fatalf("response %+v", r)
	}
	res := r.Results[0]
	if res.Index != 2 || res.Line != 5 || res.Status != statusRejected || res.Errors[0].Field != "(event)" ||
		!strings.HasPrefix(res.Errors[0].Message, "line 5: invalid JSON") {
		t.Fatalf("result %+v", res)
	}
	checkPublished(t, pub, "s1", "t1", "p1")
}

func TestRejections(t *testing.T) {
	for _, tc := range []struct {
		name, event, field, message string
		noID                        bool
	}{
		{name: "score of the wrong type", field: "score", message: "must be a number",
			event: `{"id":"x","type":"survey_response","occurred_at":"2026-11-23T10:15:00Z","survey":"ces","score":"6"}`},
		{name: "score off the scale", field: "score", message: "outside the scale 1–7",
			event: `{"id":"x","type":"survey_response","occurred_at":"2026-11-23T10:15:00Z","survey":"ces","score":9}`},
		{name: "missing id", field: "id", message: "is required", noID: true,
			event: `{"type":"ticket","occurred_at":"2026-11-23T10:15:00Z","ticket_id":"t9","status":"created"}`},
		{name: "unknown type", field: "type", message: "unknown type",
			event: `{"id":"x","type":"refund","occurred_at":"2026-11-23T10:15:00Z"}`},
		{name: "far future", field: "occurred_at", message: "in the future",
			event: `{"id":"x","type":"ticket","occurred_at":"2026-11-24T10:15:00Z","ticket_id":"t9","status":"created"}`},
		{name: "unknown field", field: "mood", message: "unknown field",
			event: `{"id":"x","type":"ticket","occurred_at":"2026-11-23T10:15:00Z","ticket_id":"t9","status":"created","mood":"ok"}`},
		{name: "field of another type", field: "status", message: "not a field of survey_response",
			event: `{"id":"x","type":"survey_response","occurred_at":"2026-11-23T10:15:00Z","survey":"ces","score":6,"status":"solved"}`},
		{name: "not an object", field: "(event)", message: "must be a JSON object", noID: true,
			event: `42`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, res EventResult, index, line int) {
				t.Helper()
				wantID := "x"
				if tc.noID {
					wantID = ""
				}
				if res.Index != index || res.Line != line || res.ID != wantID || res.Status != statusRejected {
					t.Fatalf("result %+v", res)
				}
				if e := res.Errors[0]; e.Field != tc.field || !strings.Contains(e.Message, tc.message) {
					t.Fatalf("first error %+v, want field %q and %q", e, tc.field, tc.message)
				}
			}

			// Among valid neighbours, in an array and in NDJSON.
			pub := &fakePublisher{}
			h, _ := newTestHandler(t, testConfig(), pub)
			a := post(h, "application/json", "["+survey+","+tc.event+","+ticket+"]")
			r := a.resp(t)
			if a.code != http.StatusAccepted || r.Accepted != 2 || r.Rejected != 1 || len(r.Results) != 1 {
				t.Fatalf("array: code %d: %s", a.code, a.body)
			}
			check(t, r.Results[0], 1, 0)
			checkPublished(t, pub, "s1", "t1")

			pub = &fakePublisher{}
			h, _ = newTestHandler(t, testConfig(), pub)
			a = post(h, "application/x-ndjson", survey+"\n\n"+tc.event+"\n"+ticket+"\n")
			r = a.resp(t)
			if a.code != http.StatusAccepted || r.Accepted != 2 || r.Rejected != 1 || len(r.Results) != 1 {
				t.Fatalf("ndjson: code %d: %s", a.code, a.body)
			}
			check(t, r.Results[0], 1, 3)
			checkPublished(t, pub, "s1", "t1")

			// Alone: everything was rejected, so nothing is published.
			pub = &fakePublisher{}
			h, _ = newTestHandler(t, testConfig(), pub)
			if tc.event[0] == '{' {
				a = post(h, "application/json", tc.event)
			} else {
				a = post(h, "application/json", "["+tc.event+"]")
			}
			r = a.resp(t)
			if a.code != http.StatusBadRequest || r.Rejected != 1 || r.Accepted != 0 {
				t.Fatalf("alone: code %d: %s", a.code, a.body)
			}
			check(t, r.Results[0], 0, 0)
			checkPublished(t, pub)
		})
	}
}

func TestUnreadableJSON(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"syntax error in an element", `[{"id":"a"},{"id":"b",}]`, "invalid JSON in the array at byte offset 22: invalid character '}'"},
		{"missing comma", `[{"id":"a"} {"id":"b"}]`, "invalid JSON in the array at byte offset 12: "},
		{"syntax error in an object", "\n\n" + `{"id": x}`, "invalid JSON in the object at byte offset 9: invalid character 'x'"},
		{"truncated array", `[{"id":"a"},{"id":`, "body ends inside the JSON array at byte offset 18"},
		{"unclosed array", `[{"id":"a"}`, "body ends inside the JSON array at byte offset 11"},
		{"truncated object", `{"id":"a"`, "body ends inside the JSON object at byte offset 9"},
		{"wrong closing bracket", `[{"id":"a"}}`, "invalid JSON in the array at byte offset 11: "},
		{"objects one after another", survey + "\n" + ticket, fmt.Sprintf("unexpected data after the JSON object at byte offset %d", len(survey)+1)},
		{"data after the array", `[` + survey + `] x`, fmt.Sprintf("unexpected data after the JSON array at byte offset %d", len(survey)+3)},
		{"neither object nor array", `  "hello"`, `it starts with '"' at byte offset 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			h, _ := newTestHandler(t, testConfig(), pub)
			a := post(h, "application/json", tc.body)
			if a.code != http.StatusBadRequest {
				t.Fatalf("code %d: %s", a.code, a.body)
			}
			if msg := a.errorMsg(t); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q, want it to contain %q", msg, tc.want)
			}
			checkPublished(t, pub)
		})
	}
}

// chunked hides the length of a body, so that only reading it finds it too large.
type chunked struct{ io.Reader }

func TestBodyTooLarge(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 4096
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf(`{"id":"t%d","type":"ticket","occurred_at":"2026-11-23T10:00:00Z","ticket_id":"t%[1]d","status":"created"}`, i))
	}
	bodies := map[string]string{
		"application/json":     "[" + strings.Join(lines, ",") + "]",
		"application/x-ndjson": strings.Join(lines, "\n"),
	}
	for ct, body := range bodies {
		for _, hideLength := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", ct, hideLength), func(t *testing.T) {
				pub := &fakePublisher{}
				h, _ := newTestHandler(t, cfg, pub)
				var r io.Reader = strings.NewReader(body)
				if hideLength {
					r = chunked{r}
				}
				a := do(h, http.MethodPost, "/v1/events", ct, r)
				if a.code != http.StatusRequestEntityTooLarge {
					t.Fatalf("code %d: %s", a.code, a.body)
				}
				if msg := a.errorMsg(t); !strings.Contains(msg, "larger than 4096 bytes") {
					t.Fatalf("error %q", msg)
				}
				checkPublished(t, pub)
			})
		}
	}
	// Trailing white space counts too: the limit is on the body as sent.
	pub := &fakePublisher{}
	h, _ := newTestHandler(t, cfg, pub)
	if a := do(h, http.MethodPost, "/v1/events", "", chunked{strings.NewReader(survey + strings.Repeat(" ", 5000))}); a.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	checkPublished(t, pub)
}

func TestTooManyEvents(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBatchEvents = 3
	bodies := map[string]func(events ...string) string{
		"application/json":     func(events ...string) string { return "[" + strings.Join(events, ",") + "]" },
		"application/x-ndjson": func(events ...string) string { return strings.Join(events, "\n") },
	}
	for ct, body := range bodies {
		pub := &fakePublisher{}
		h, _ := newTestHandler(t, cfg, pub)
		a := post(h, ct, body(survey, ticket, pulse, `{}`))
		if a.code != http.StatusRequestEntityTooLarge || !strings.Contains(a.errorMsg(t), "more than 3 events") {
			t.Fatalf("%s: code %d: %s", ct, a.code, a.body)
		}
		checkPublished(t, pub)
		// Exactly the limit is fine.
		if a := post(h, ct, body(survey, ticket, pulse)); a.code != http.StatusAccepted {
			t.Fatalf("%s at the limit: code %d: %s", ct, a.code, a.body)
		}
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	pub := &fakePublisher{}
	h, _ := newTestHandler(t, testConfig(), pub)
	for _, ct := range []string{"text/plain", "application/xml", "application/json; charset=latin1", "application/json; ="} {
		if a := post(h, ct, survey); a.code != http.StatusUnsupportedMediaType || a.errorMsg(t) == "" {
			t.Errorf("%s: code %d: %s", ct, a.code, a.body)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(survey))
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("gzip: code %d", rec.Code)
	}
	checkPublished(t, pub)
	for _, ct := range []string{"application/json; charset=UTF-8", "Application/JSON"} {
		if a := post(h, ct, survey); a.code != http.StatusAccepted {
			t.Errorf("%s: code %d: %s", ct, a.code, a.body)
		}
	}
}

func TestNoEvents(t *testing.T) {
	for _, tc := range []struct{ ct, body string }{
		{"", ""}, {"application/json", ""}, {"application/json", " \r\n\t"}, {"application/json", "[]"},
		{"application/json", " [ ] "}, {"application/x-ndjson", ""}, {"application/x-ndjson", "\n\n \r\n"},
	} {
		pub := &fakePublisher{}
		h, _ := newTestHandler(t, testConfig(), pub)
		a := post(h, tc.ct, tc.body)
		if a.code != http.StatusBadRequest || !strings.Contains(a.errorMsg(t), "no events") {
			t.Errorf("%q %q: code %d: %s", tc.ct, tc.body, a.code, a.body)
		}
		checkPublished(t, pub)
	}
}

func TestMixedBatch(t *testing.T) {
	pub := &fakePublisher{}
	h, _ := newTestHandler(t, testConfig(), pub)
	var parts []string
	var want []string
	for i := range 20 {
		if i%3 == 1 {
			parts = append(parts, fmt.Sprintf(`{"id":"bad%d","type":"ticket","occurred_at":"2026-11-23T10:00:00Z","status":"created"}`, i))
			continue
		}
		id := fmt.Sprintf("ok%d", i)
		want = append(want, id)
		parts = append(parts, fmt.Sprintf(`{"id":%q,"type":"ticket","occurred_at":"2026-11-23T10:00:00Z","ticket_id":"t","status":"created"}`, id))
	}
	a := post(h, "application/json", "["+strings.Join(parts, ",")+"]")
	r := a.resp(t)
	if a.code != http.StatusAccepted || r.Accepted != len(want) || r.Rejected != 20-len(want) {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	checkPublished(t, pub, want...)
	for k, res := range r.Results {
		if res.Index != 3*k+1 || res.ID != fmt.Sprintf("bad%d", 3*k+1) || res.Errors[0].Field != "ticket_id" {
			t.Fatalf("result %d: %+v", k, res)
		}
	}
}

func TestDuplicates(t *testing.T) {
	pub := &fakePublisher{result: func(_ context.Context, i int, e event.Event) stream.Result {
		return stream.Result{Duplicate: e.ID != "t1"}
	}}
	h, _ := newTestHandler(t, testConfig(), pub)
	a := post(h, "application/x-ndjson", strings.Join([]string{survey, `{"id":"bad"}`, ticket, pulse}, "\n"))
	r := a.resp(t)
	if a.code != http.StatusAccepted || r.Accepted != 1 || r.Duplicates != 2 || r.Rejected != 1 || r.Failed != 0 {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	want := []EventResult{
		{Index: 0, Line: 1, ID: "s1", Status: statusDuplicate},
		{Index: 1, Line: 2, ID: "bad", Status: statusRejected},
		{Index: 3, Line: 4, ID: "p1", Status: statusDuplicate},
	}
	for i := range r.Results {
		r.Results[i].Errors = nil
	}
	if !reflect.DeepEqual(r.Results, want) {
		t.Fatalf("results %+v, want %+v", r.Results, want)
	}
	// Only duplicates: still a success, the events are stored.
	pub.result = func(context.Context, int, event.Event) stream.Result { return stream.Result{Duplicate: true} }
	if a := post(h, "", survey); a.code != http.StatusAccepted || a.resp(t).Duplicates != 1 {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
}

func TestPublishFailure(t *testing.T) {
	pub := &fakePublisher{result: func(_ context.Context, i int, e event.Event) stream.Result {
		if e.ID == "t1" {
			return stream.Result{Err: errors.New("publish: nats: timeout")}
		}
		return stream.Result{}
	}}
	h, reg := newTestHandler(t, testConfig(), pub)
	a := post(h, "application/json", "["+survey+","+ticket+",{},"+pulse+"]")
	if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") != RetryAfter {
		t.Fatalf("code %d, Retry-After %q: %s", a.code, a.header.Get("Retry-After"), a.body)
	}
	r := a.resp(t)
	if r.Accepted != 2 || r.Failed != 1 || r.Rejected != 1 || len(r.Results) != 2 {
		t.Fatalf("response %+v", r)
	}
	if res := r.Results[0]; res.Index != 1 || res.ID != "t1" || res.Status != statusFailed ||
		!strings.Contains(res.Errors[0].Message, "nats: timeout") {
		t.Fatalf("result %+v", res)
	}
	if res := r.Results[1]; res.Index != 2 || res.Status != statusRejected {
		t.Fatalf("result %+v", res)
	}
	checkMetric(t, reg, "cxlink_ingest_requests_total", map[string]string{"code": "503"}, 1)
	checkMetric(t, reg, "cxlink_ingest_events_total", map[string]string{"outcome": "failed"}, 1)
}

func TestPublishTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.PublishTimeout = 50 * time.Millisecond
	var deadline time.Time
	pub := &fakePublisher{result: func(ctx context.Context, i int, e event.Event) stream.Result {
		deadline, _ = ctx.Deadline()
		<-ctx.Done() // JetStream never answers
		return stream.Result{Err: ctx.Err()}
	}}
	h, _ := newTestHandler(t, cfg, pub)
	start := time.Now()
	a := post(h, "", survey)
	if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || a.resp(t).Failed != 1 {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	if d := deadline.Sub(start); d <= 0 || d > time.Second {
		t.Fatalf("publish deadline %s after the request", d)
	}
}

func TestWrongResultCount(t *testing.T) {
	h, _ := newTestHandler(t, testConfig(), publisherFunc(func(context.Context, []event.Event) []stream.Result { return nil }))
	if a := post(h, "", "["+survey+","+ticket+"]"); a.code != http.StatusServiceUnavailable || a.resp(t).Failed != 2 {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
}

type publisherFunc func(context.Context, []event.Event) []stream.Result

func (f publisherFunc) Publish(ctx context.Context, events []event.Event) []stream.Result {
	return f(ctx, events)
}

func TestProbes(t *testing.T) {
	var notReady error
	reg := prometheus.NewRegistry()
	h, err := New(testConfig(), Options{
		Publisher:  &fakePublisher{},
		Registerer: reg,
		Ready: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return notReady
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := do(h, http.MethodGet, "/healthz", "", nil); a.code != http.StatusOK || a.body != "ok\n" {
		t.Fatalf("healthz %d %q", a.code, a.body)
	}
	if a := do(h, http.MethodGet, "/readyz", "", nil); a.code != http.StatusOK || a.body != "ok\n" {
		t.Fatalf("readyz %d %q", a.code, a.body)
	}
	notReady = errors.New("jetstream: not connected")
	if a := do(h, http.MethodGet, "/readyz", "", nil); a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "jetstream: not connected") {
		t.Fatalf("readyz %d %q", a.code, a.body)
	}
	if a := do(h, http.MethodHead, "/healthz", "", nil); a.code != http.StatusOK {
		t.Fatalf("HEAD healthz %d", a.code)
	}
}

func TestRouting(t *testing.T) {
	h, _ := newTestHandler(t, testConfig(), &fakePublisher{})
	// Mounted next to /metrics, as the caller does, and on its own.
	mux := http.NewServeMux()
	h.Routes(mux)
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") }))
	for name, hh := range map[string]http.Handler{"mux": mux, "handler": h} {
		for _, tc := range []struct {
			method, path string
			code         int
			allow        string
		}{
			{http.MethodGet, "/v1/events", http.StatusMethodNotAllowed, "POST"},
			{http.MethodPut, "/v1/events", http.StatusMethodNotAllowed, "POST"},
			{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "GET, HEAD"},
			{http.MethodDelete, "/readyz", http.StatusMethodNotAllowed, "GET, HEAD"},
			{http.MethodPost, "/v1/event", http.StatusNotFound, ""},
			{http.MethodGet, "/", http.StatusNotFound, ""},
			{http.MethodPost, "/v1/events/x", http.StatusNotFound, ""},
		} {
			a := do(hh, tc.method, tc.path, "", nil)
			if a.code != tc.code || a.header.Get("Allow") != tc.allow {
				t.Errorf("%s: %s %s: code %d, Allow %q", name, tc.method, tc.path, a.code, a.header.Get("Allow"))
			}
		}
	}
	if a := do(mux, http.MethodGet, "/metrics", "", nil); a.code != http.StatusOK || a.body != "metrics" {
		t.Errorf("metrics: %d %q", a.code, a.body)
	}
}

func TestNewRequiresPublisherAndValidConfig(t *testing.T) {
	if _, err := New(testConfig(), Options{}); err == nil {
		t.Error("no error without a publisher")
	}
	cfg := testConfig()
	cfg.MaxBatchEvents = 0
	if _, err := New(cfg, Options{Publisher: &fakePublisher{}}); err == nil {
		t.Error("no error with an invalid config")
	}
}

// The first error of an event names the same field every time: it is a metric label.
func TestFirstErrorIsStable(t *testing.T) {
	h, _ := newTestHandler(t, testConfig(), &fakePublisher{})
	for range 20 {
		r := post(h, "", `{"type":2,"ticket_id":4,"status":5,"id":1,"occurred_at":3}`).resp(t)
		if f := r.Results[0].Errors[0].Field; f != "id" {
			t.Fatalf("first error names %q, want id: %+v", f, r.Results[0].Errors)
		}
	}
}
