package admit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// route is a test route: "Authorization: token <source>" authenticates at once,
// "X-Sign: <source>" signs the body (the signature matches when the body starts with
// "signed"), and the body is one ticket category per line.
type route struct{}

type pending struct{ source string }

func (p pending) Claimed() string { return p.source }
func (p pending) Verify(body []byte) (admit.Identity, error) {
	if !strings.HasPrefix(string(body), "signed") {
		return admit.Identity{}, admit.Refuse(http.StatusUnauthorized, "bad signature")
	}
	return admit.Identity{Source: p.source}, nil
}

func (route) Authenticate(r *http.Request) (admit.Identity, admit.Pending, error) {
	if s, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token "); ok {
		return admit.Identity{Source: s}, nil, nil
	}
	if s := r.Header.Get("X-Sign"); s != "" {
		return admit.Identity{}, pending{s}, nil
	}
	return admit.Identity{}, nil, errors.New("credentials required")
}

func (route) Decode(_ *http.Request, body io.Reader, d admit.Decoding) ([]admit.Item, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, admit.ReadError(err)
	}
	var items []admit.Item
	for i, line := range strings.Fields(strings.TrimPrefix(string(b), "signed")) {
		items = append(items, admit.Item{Index: i, Event: &event.Event{ID: fmt.Sprint("t", i, line), Type: event.TypeTicket,
			OccurredAt: now, TicketID: "T1", Status: event.TicketSolved, Category: line}})
	}
	return items, nil
}

func (route) Answer(_ *http.Request, a *admit.Answer) any {
	return map[string]int{"accepted": a.Accepted, "rejected": a.Rejected, "failed": a.Failed}
}

func (route) Refused(*http.Request, *admit.Refusal, time.Time) {}

// publisher stores everything, fails events of category "unlucky", and can be held.
type publisher struct {
	hold    chan struct{} // when set, Publish waits for it to close
	entered chan struct{}
}

func (p *publisher) Publish(_ context.Context, events []event.Event) []stream.Result {
	if p.hold != nil {
		p.entered <- struct{}{}
		<-p.hold
	}
	out := make([]stream.Result, len(events))
	for i, e := range events {
		if e.Category == "unlucky" {
			out[i].Err = errors.New("jetstream unavailable")
		}
	}
	return out
}

func newServer(t *testing.T, cfg admit.Config, pub admit.Publisher) string {
	t.Helper()
	a, err := admit.New(cfg, admit.Options{Publisher: pub, Now: func() time.Time { return now }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler(route{}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func config() admit.Config {
	return admit.Config{MaxBodyBytes: 1 << 20, MaxEvents: 100, MaxFuture: time.Minute, PublishTimeout: time.Second,
		MaxRequests: 2, MaxUnverified: 4, UnverifiedReadTimeout: 300 * time.Millisecond, MaxLabelValues: 3}
}

func post(t *testing.T, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// slowBody opens a connection that sends a signed request's headers and then nothing
// of its body; it returns what the server answered and when.
func slowBody(t *testing.T, url, source string) (string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nX-Sign: %s\r\nContent-Length: 1000\r\n\r\nsigned", source)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(conn)
	return string(b), time.Since(start)
}

// Requests without credentials hold nothing; signed requests whose bodies trickle in
// hold a slot of their own budget only, for at most the unverified read timeout; a
// claimed source holds at most half of that budget; authenticated senders keep theirs.
func TestBudgets(t *testing.T) {
	pub := &publisher{}
	url := newServer(t, config(), pub)

	var wg sync.WaitGroup
	answers := make(chan string, 4)
	for range 4 { // two of them over the source's half of the unverified budget
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, took := slowBody(t, url, "surveys")
			if len(got) < 12 {
				t.Errorf("slow body: answered %q after %s", got, took)
				got = "HTTP/1.1 ???"
			}
			answers <- fmt.Sprintf("%.3s after %s", got[9:], took.Round(100*time.Millisecond))
		}()
	}
	time.Sleep(100 * time.Millisecond) // the slow bodies are being read
	for i := range 20 {
		if code, _ := post(t, url, nil, "refund"); code != http.StatusUnauthorized {
			t.Fatalf("unauthenticated %d: %d", i, code)
		}
	}
	if code, body := post(t, url, map[string]string{"Authorization": "token crm"}, "refund"); code != http.StatusAccepted {
		t.Fatalf("an authenticated sender during the flood: %d %s", code, body)
	}
	if code, body := post(t, url, map[string]string{"X-Sign": "zendesk"}, "signed refund"); code != http.StatusAccepted {
		t.Fatalf("another signed source during the flood: %d %s", code, body)
	}
	wg.Wait()
	close(answers)
	got := map[string]int{}
	for a := range answers {
		got[a[:3]]++
		t.Logf("slow signed body: %s", a)
	}
	if got["408"] != 2 || got["429"] != 2 {
		t.Fatalf("slow bodies answered %v, want two 408 (after the read timeout) and two 429 (over the source's half)", got)
	}
	if code, _ := post(t, url, map[string]string{"X-Sign": "surveys"}, "forged refund"); code != http.StatusUnauthorized {
		t.Fatalf("a body that does not match its signature: %d", code)
	}
}

// Requests over the authenticated budget are answered 429 with Retry-After, and
// nothing of theirs is published.
func TestVerifiedBudget(t *testing.T) {
	pub := &publisher{hold: make(chan struct{}), entered: make(chan struct{}, 2)}
	url := newServer(t, config(), pub)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, url, map[string]string{"Authorization": "token crm"}, "refund")
		}()
	}
	<-pub.entered
	<-pub.entered
	code, body := post(t, url, map[string]string{"Authorization": "token crm"}, "refund")
	if code != http.StatusTooManyRequests || !strings.Contains(body, "CXLINK_MAX_CONCURRENT_REQUESTS") {
		t.Fatalf("third request: %d %s", code, body)
	}
	close(pub.hold)
	wg.Wait()
}

// A label value counts once an event carrying it is stored: the value of an event that
// failed to publish does not take the place of another, and an event rejected for one
// field holds no value.
func TestLabelValuesOfStoredEventsOnly(t *testing.T) {
	url := newServer(t, config(), &publisher{}) // 3 categories
	answer := func(body string) map[string]int {
		_, b := post(t, url, map[string]string{"Authorization": "token crm"}, body)
		var m map[string]int
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return m
	}
	if a := answer("unlucky refund"); a["failed"] != 1 || a["accepted"] != 1 {
		t.Fatalf("%v", a)
	}
	if a := answer("billing login refund"); a["accepted"] != 3 {
		t.Fatalf("the failed event's value was not given back: %v", a)
	}
	if a := answer("made-up"); a["rejected"] != 1 {
		t.Fatalf("a fourth value: %v", a)
	}
}
