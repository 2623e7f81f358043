package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// serveTest serves h on a loopback listener with short timeouts until the test ends.
func serveTest(t *testing.T, h http.Handler, timeouts Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeWith(ctx, ln, h, nil, ServeOptions{Timeouts: timeouts}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

// readAnswer reads what the server sends until it closes the connection, or fails the
// test after limit.
func readAnswer(t *testing.T, conn net.Conn, limit time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s: %q", limit, b)
	}
	return string(b), time.Since(start)
}

// A client that sends its headers, or its body, too slowly is cut off: it holds no
// connection longer than the read timeouts.
func TestSlowClientsAreCutOff(t *testing.T) {
	h, _ := newTestHandler(t, testConfig(), &fakePublisher{})
	addr := serveTest(t, h, Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond})

	t.Run("headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "POST /v1/events HTTP/1.1\r\nHost: cxlink\r\n") // and nothing more
		got, took := readAnswer(t, conn, 5*time.Second)
		t.Logf("closed after %s: %q", took.Round(time.Millisecond), got)
		if strings.Contains(got, "202") {
			t.Fatalf("answered %q", got)
		}
	})
	t.Run("body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: cxlink\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n%s\n", survey)
		got, took := readAnswer(t, conn, 5*time.Second)
		t.Logf("answered after %s: %q", took.Round(time.Millisecond), got)
		if !strings.HasPrefix(got, "HTTP/1.1 408") || !strings.Contains(got, "did not arrive within") {
			t.Fatalf("answered %q, want a 408 that says why", got)
		}
	})
}

// Headers beyond MaxHeaderBytes get 431.
func TestHugeHeadersAreRefused(t *testing.T) {
	h, _ := newTestHandler(t, testConfig(), &fakePublisher{})
	addr := serveTest(t, h, Timeouts{})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", strings.NewReader(survey))
	req.Header.Set("X-Padding", strings.Repeat("x", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// blockingPublisher holds every Publish until release is closed.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingPublisher) Publish(_ context.Context, events []event.Event) []stream.Result {
	b.entered <- struct{}{}
	<-b.release
	return make([]stream.Result, len(events))
}

// More event requests at once than CXLINK_MAX_CONCURRENT_REQUESTS: the extra ones get
// 429 with Retry-After, and nothing of theirs is published; the others complete.
func TestTooManyConcurrentRequests(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConcurrentRequests = 2
	pub := &blockingPublisher{entered: make(chan struct{}, 2), release: make(chan struct{})}
	h, reg := newTestHandler(t, cfg, pub)
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- post(h, "application/json", survey).code
		}()
	}
	<-pub.entered
	<-pub.entered
	a := post(h, "application/json", survey)
	if a.code != http.StatusTooManyRequests || a.header.Get("Retry-After") != RetryAfterBusy {
		t.Fatalf("third request: %d %v %s", a.code, a.header, a.body)
	}
	if msg := a.errorMsg(t); !strings.Contains(msg, "CXLINK_MAX_CONCURRENT_REQUESTS") {
		t.Errorf("429 does not say why: %s", msg)
	}
	close(pub.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Errorf("a request within the limit got %d", c)
		}
	}
	if a := post(h, "application/json", survey); a.code != http.StatusAccepted {
		t.Fatalf("after the others finished: %d", a.code)
	}
	checkMetric(t, reg, "cxlink_ingest_requests_total", map[string]string{"code": "429"}, 1)
}

// A sender that makes up new categories cannot grow the label values past the limit:
// the known ones keep being accepted, a new one is rejected naming its field.
func TestDistinctLabelValuesAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLabelValues = 3
	h, _ := newTestHandler(t, cfg, &fakePublisher{})
	ticketIn := func(id, category string) string {
		return fmt.Sprintf(`{"id":%q,"type":"ticket","occurred_at":"2026-11-23T10:00:00Z","ticket_id":"t","status":"solved","category":%q}`, id, category)
	}
	var body strings.Builder
	for i := range 5 {
		body.WriteString(ticketIn(fmt.Sprint("t", i), fmt.Sprint("made-up-", i)) + "\n")
	}
	r := post(h, "application/x-ndjson", body.String()).resp(t)
	if r.Accepted != 3 || r.Rejected != 2 || r.Results[0].Errors[0].Field != "category" ||
		!strings.Contains(r.Results[0].Errors[0].Message, "CXLINK_MAX_DIMENSION_VALUES") {
		t.Fatalf("%+v", r)
	}
	if a := post(h, "application/json", ticketIn("again", "made-up-1")); a.code != http.StatusAccepted {
		t.Fatalf("a known value: %d %s", a.code, a.body)
	}
	if a := post(h, "application/json", ticketIn("new", "made-up-9")); a.code != http.StatusBadRequest {
		t.Fatalf("a new value over the limit: %d %s", a.code, a.body)
	}
}
