package simulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
)

// clock is a fake clock that moves on by step every time it is read, so that a run
// goes as fast as the machine allows.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func (c *clock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// fakeAPI answers POST /v1/events as cxlink's ingest does: it decodes NDJSON with the
// contract's validator, stores each id once and counts accepted, duplicates and
// rejected.
type fakeAPI struct {
	mu       sync.Mutex
	v        event.Validator
	stored   map[string]bool
	order    []string // ids in the order they were first stored
	requests int
	// refuse answers request n without storing it; lose stores it and then answers
	// with an error, as when the response is lost.
	refuse, lose map[int]func(w http.ResponseWriter)
	// onRequest, if set, runs at every request.
	onRequest func(n int)
}

func newFakeAPI(now func() time.Time) *fakeAPI {
	return &fakeAPI{
		v:      event.Validator{Now: now, MaxFuture: 5 * time.Minute},
		stored: map[string]bool{},
		refuse: map[int]func(http.ResponseWriter){},
		lose:   map[int]func(http.ResponseWriter){},
	}
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	if a.onRequest != nil {
		a.onRequest(a.requests)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
		http.NotFound(w, r)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		http.Error(w, "unsupported content type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f := a.refuse[a.requests]; f != nil {
		f(w)
		return
	}
	var accepted, duplicates, rejected int
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		e, errs := a.v.Decode(line)
		switch {
		case len(errs) > 0:
			rejected++
		case a.stored[e.ID]:
			duplicates++
		default:
			a.stored[e.ID] = true
			a.order = append(a.order, e.ID)
			accepted++
		}
	}
	if f := a.lose[a.requests]; f != nil {
		f(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]any{"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "errors": []any{}})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func TestRunDeliversEveryEventOnce(t *testing.T) {
	clk := &clock{t: live, step: 300 * time.Millisecond}
	api := newFakeAPI(clk.peek)
	api.refuse[2] = func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "stream unavailable", http.StatusServiceUnavailable)
	}
	api.lose[5] = func(w http.ResponseWriter) { http.Error(w, "publish timed out", http.StatusInternalServerError) }
	srv := httptest.NewServer(api)
	defer srv.Close()

	var waits []time.Duration
	cfg := Config{Target: srv.URL, Seed: 9, Rate: 10, History: 30 * time.Minute, Duration: 10 * time.Minute,
		PulseEvery: 5 * time.Minute, BatchSize: 50, Now: clk.now, Client: srv.Client()}
	cfg.sleep = func(ctx context.Context, d time.Duration) error {
		if d != tick {
			waits = append(waits, d)
		}
		return ctx.Err()
	}
	stats, err := Run(t.Context(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}

	// The API holds exactly the events of the run, in the run's order.
	want := newGenerator(t, cfg).Next(live.Add(cfg.Duration), 0)
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.order) != len(want) {
		t.Fatalf("the API stored %d events; want %d", len(api.order), len(want))
	}
	for i, e := range want {
		if api.order[i] != e.ID {
			t.Fatalf("event %d stored is %s; want %s", i, api.order[i], e.ID)
		}
	}
	// The batch refused with 503 is sent again after Retry-After; the one whose answer
	// was lost is sent again after a back-off, and its events come back as duplicates.
	n, lost := int64(len(want)), int64(cfg.BatchSize)
	if stats.Events != n || stats.Accepted != n-lost || stats.Duplicates != lost || stats.Rejected != 0 ||
		stats.Retries != 2 || stats.Tickets+stats.Surveys+stats.Pulses != n || stats.Pulses == 0 {
		t.Errorf("stats %+v; want %d events, %d accepted, %d duplicates, 2 retries", stats, n, n-lost, lost)
	}
	if len(waits) != 2 || waits[0] != time.Second || waits[1] != minBackoff {
		t.Errorf("waits before retries %v; want [1s %s]", waits, minBackoff)
	}
}

func TestRunStopsOnWrongTarget(t *testing.T) {
	clk := &clock{t: live, step: time.Second}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	cfg := Config{Target: srv.URL, Seed: 1, History: time.Hour, Now: clk.now, Client: srv.Client()}
	cfg.sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	_, err := Run(t.Context(), cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Run against a server without the API: %v; want a 404 error", err)
	}
}

func TestRunCountsRejected(t *testing.T) {
	clk := &clock{t: live, step: time.Second}
	api := newFakeAPI(clk.peek)
	// A validator whose clock is a day behind rejects every event as from the future.
	api.v.Now = func() time.Time { return clk.peek().Add(-24 * time.Hour) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		// cxlink answers 400 when no event of the batch was valid.
		w.WriteHeader(http.StatusBadRequest)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	cfg := Config{Target: srv.URL, Seed: 1, History: 10 * time.Minute, Duration: time.Minute, Now: clk.now, Client: srv.Client()}
	cfg.sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	stats, err := Run(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Events == 0 || stats.Rejected != stats.Events || stats.Accepted != 0 {
		t.Errorf("stats %+v; want every event rejected", stats)
	}
}

func TestRunEndsWithContext(t *testing.T) {
	clk := &clock{t: live, step: time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	api := newFakeAPI(clk.peek)
	api.onRequest = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	cfg := Config{Target: srv.URL, Seed: 1, BatchSize: 10, Now: clk.now, Client: srv.Client()}
	cfg.sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	stats, err := Run(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Run ended by its context: %v; want no error", err)
	}
	if stats.Batches < 2 {
		t.Errorf("stats %+v; want the batches before the cancel", stats)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 4, 15, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"1", time.Second}, {" 30 ", 30 * time.Second}, {"-5", 0}, {"soon", 0},
		{"99999", maxRetryAfter}, {now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
	} {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v; want %v", tc.h, got, tc.want)
		}
	}
}
