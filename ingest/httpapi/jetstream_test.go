package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

const testPartitions = 4

// realStream is an in-process JetStream with the events stream and a publisher on it.
type realStream struct {
	server    *broker.Server
	nc        *nats.Conn
	stream    jetstream.Stream
	publisher *stream.Publisher
}

func startJetStream(tb testing.TB) *realStream {
	tb.Helper()
	srv, err := broker.Start(broker.Config{DataDir: tb.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Shutdown) // a test may have shut it down already: that is fine
	nc, err := srv.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, _, err := stream.Define(ctx, js, stream.Config{Partitions: testPartitions, Replicas: 1, MaxAge: 24 * time.Hour, MaxBytes: -1}, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return &realStream{server: srv, nc: nc, stream: s, publisher: stream.NewPublisher(js, testPartitions, prometheus.NewRegistry())}
}

// ready is the readiness check a caller would inject: the connection to JetStream is up.
func (rs *realStream) ready(context.Context) error {
	if s := rs.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats connection %s", s)
	}
	return nil
}

func (rs *realStream) messages(t testing.TB) uint64 {
	t.Helper()
	info, err := rs.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestJetStream(t *testing.T) {
	rs := startJetStream(t)
	cfg := testConfig()
	cfg.PublishTimeout = time.Second
	h, err := New(cfg, Options{Publisher: rs.publisher, Ready: rs.ready, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	postBody := func(body string) (answer, Response) {
		t.Helper()
		resp, err := client.Post(srv.URL+"/v1/events", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		a := answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
		return a, a.resp(t)
	}

	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	var lines, valid []string
	for i := range 12 {
		var line string
		switch i % 4 {
		case 0:
			line = fmt.Sprintf(`{"id":"t%d","type":"ticket","occurred_at":%q,"ticket_id":"T%d","status":"solved","category":"refund","team":"blue"}`, i, at, i)
		case 1:
			line = fmt.Sprintf(`{"id":"s%d","type":"survey_response","occurred_at":%q,"survey":"ces","score":%d,"ticket_id":"T%d"}`, i, at, 1+i%7, i-1)
		case 2:
			line = fmt.Sprintf(`{"id":"p%d","type":"employee_pulse","occurred_at":%q,"employee_id":"e%d","team":"team%d","question":"enps","score":7}`, i, at, i, i)
		case 3: // invalid: ces 9
			line = fmt.Sprintf(`{"id":"bad%d","type":"survey_response","occurred_at":%q,"survey":"ces","score":9}`, i, at)
		}
		lines = append(lines, line)
		if i%4 != 3 {
			valid = append(valid, line)
		}
	}
	body := strings.Join(lines, "\n") + "\n"

	a, r := postBody(body)
	if a.code != http.StatusAccepted || r.Accepted != len(valid) || r.Rejected != 3 || r.Duplicates+r.Failed != 0 {
		t.Fatalf("code %d: %s", a.code, a.body)
	}
	if n := rs.messages(t); n != uint64(len(valid)) {
		t.Fatalf("stream holds %d messages, want %d", n, len(valid))
	}
	// Stored in body order, each on its partition, with its id as the message id.
	ctx := context.Background()
	for i, line := range valid {
		want, errs := event.Validator{Now: time.Now, MaxFuture: time.Minute}.Decode([]byte(line))
		if errs != nil {
			t.Fatal(errs)
		}
		msg, err := rs.stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if s := stream.Subject(stream.Partition(want.RoutingKey(), testPartitions)); msg.Subject != s {
			t.Errorf("message %d on %s, want %s", i+1, msg.Subject, s)
		}
		if id := msg.Header.Get(jetstream.MsgIDHeader); id != want.ID {
			t.Errorf("message %d has id %q, want %q", i+1, id, want.ID)
		}
		var got event.Event
		if err := json.Unmarshal(msg.Data, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message %d is %+v, want %+v", i+1, got, want)
		}
	}

	// Resending the whole body is safe: every valid event is a duplicate.
	a, r = postBody(body)
	if a.code != http.StatusAccepted || r.Duplicates != len(valid) || r.Accepted != 0 || r.Rejected != 3 {
		t.Fatalf("resend: code %d: %s", a.code, a.body)
	}
	if n := rs.messages(t); n != uint64(len(valid)) {
		t.Fatalf("after the resend the stream holds %d messages, want %d", n, len(valid))
	}

	// Without JetStream: 503 within the publish timeout, nothing claimed as accepted.
	rs.server.Shutdown()
	start := time.Now()
	a, r = postBody(strings.ReplaceAll(body, `"id":"`, `"id":"x`))
	if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") != RetryAfter {
		t.Fatalf("without JetStream: code %d: %s", a.code, a.body)
	}
	if r.Accepted != 0 || r.Failed != len(valid) || r.Rejected != 3 {
		t.Fatalf("without JetStream: %s", a.body)
	}
	if d := time.Since(start); d > cfg.PublishTimeout+2*time.Second {
		t.Fatalf("without JetStream the answer took %s", d)
	}
	resp, err := client.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz without JetStream: %d", resp.StatusCode)
	}
}

// BenchmarkIngestNDJSON posts 1000-event NDJSON bodies through the handler to an
// in-process JetStream, each event new (no duplicates).
func BenchmarkIngestNDJSON(b *testing.B) {
	const perBody = 1000
	rs := startJetStream(b)
	h, err := New(testConfig(), Options{Publisher: rs.publisher, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	var body []byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		body = body[:0]
		for j := range perBody {
			if j%2 == 0 {
				body = fmt.Appendf(body, `{"id":"b%d-%d","type":"ticket","occurred_at":%q,"ticket_id":"T%d","status":"solved","channel":"phone","category":"refund","team":"team%d","agent_id":"a%d","handle_seconds":312,"contacts":1}`+"\n",
					i, j, at, j%997, j%20, j%150)
			} else {
				body = fmt.Appendf(body, `{"id":"b%d-%d","type":"survey_response","occurred_at":%q,"survey":"ces","score":%d,"ticket_id":"T%d","source":"zendesk"}`+"\n",
					i, j, at, 1+j%7, j%997)
			}
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/x-ndjson")
		rec := httptest.NewRecorder()
		b.StartTimer()

		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("code %d: %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*perBody)/b.Elapsed().Seconds(), "events/s")
	if n := rs.messages(b); n != uint64(b.N*perBody) {
		b.Fatalf("stream holds %d messages, want %d", n, b.N*perBody)
	}
}
