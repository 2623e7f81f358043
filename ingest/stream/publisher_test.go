package stream_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

func testEvents(first, n int) []event.Event {
	now := time.Now().UTC().Truncate(time.Second)
	score := 5.0
	out := make([]event.Event, n)
	for i := range out {
		id := first + i
		out[i] = event.Event{ID: fmt.Sprintf("ev-%d", id), Type: event.TypeSurveyResponse, OccurredAt: now,
			Survey: event.SurveyCES, Score: &score, TicketID: fmt.Sprintf("T%d", id)}
	}
	return out
}

type outcome struct{ stored, duplicate, failed int }

func count(results []stream.Result) outcome {
	var o outcome
	for _, r := range results {
		switch {
		case r.Err != nil:
			o.failed++
		case r.Duplicate:
			o.duplicate++
		default:
			o.stored++
		}
	}
	return o
}

// storedIDs returns the ids of the stream's messages in stream order.
func storedIDs(t *testing.T, js jetstream.JetStream, s jetstream.Stream) []string {
	t.Helper()
	n := storedCount(t, s)
	ids := make([]string, 0, n)
	for seq := uint64(1); seq <= n; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

func batches(t *testing.T, reg *prometheus.Registry, outcome string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cxlink_publish_batches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == outcome {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

func TestPublisherAtomicBatches(t *testing.T) {
	ctx := t.Context()

	t.Run("a request is stored in batches of at most 1000, in its order", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		reg := prometheus.NewRegistry()
		pub := stream.NewPublisher(js, 4, reg)
		events := testEvents(0, 2500)
		if got := count(pub.Publish(ctx, events)); got != (outcome{stored: 2500}) {
			t.Fatalf("outcomes %+v, want 2500 stored", got)
		}
		if c, f := batches(t, reg, "committed"), batches(t, reg, "per_event"); c != 3 || f != 0 {
			t.Fatalf("%d batches committed, %d published per event; want 3 and 0", c, f)
		}
		ids := storedIDs(t, js, s)
		if len(ids) != len(events) {
			t.Fatalf("%d stored, want %d", len(ids), len(events))
		}
		for i := range ids {
			if ids[i] != events[i].ID {
				t.Fatalf("message %d is %s, want %s: the request's order is lost", i+1, ids[i], events[i].ID)
			}
		}
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Fatal(problems, err)
		}
	})

	t.Run("a batch with an id stored before answers each event on its own", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		reg := prometheus.NewRegistry()
		pub := stream.NewPublisher(js, 4, reg)
		if got := count(pub.Publish(ctx, testEvents(5, 1))); got != (outcome{stored: 1}) {
			t.Fatalf("first publish: %+v", got)
		}
		results := pub.Publish(ctx, testEvents(0, 10))
		for i, r := range results {
			if r.Err != nil || r.Duplicate != (i == 5) {
				t.Fatalf("event %d: %+v, want stored (duplicate for ev-5 only)", i, r)
			}
		}
		if f := batches(t, reg, "per_event"); f != 1 {
			t.Fatalf("%d batches published per event, want 1", f)
		}
		if n := storedCount(t, s); n != 10 {
			t.Fatalf("%d stored, want 10", n)
		}
		// A resent request: every event a duplicate, none stored again.
		if got := count(pub.Publish(ctx, testEvents(0, 10))); got != (outcome{duplicate: 10}) {
			t.Fatalf("resend: %+v, want 10 duplicates", got)
		}
		if n := storedCount(t, s); n != 10 {
			t.Fatalf("%d stored after the resend, want 10", n)
		}
	})

	t.Run("an id twice in one request is stored once", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		pub := stream.NewPublisher(js, 4, prometheus.NewRegistry())
		events := append(testEvents(0, 3), testEvents(1, 1)...)
		results := pub.Publish(ctx, events)
		if got := count(results); got != (outcome{stored: 3, duplicate: 1}) || !results[3].Duplicate {
			t.Fatalf("results %+v, want the second ev-1 a duplicate", results)
		}
		if n := storedCount(t, s); n != 3 {
			t.Fatalf("%d stored, want 3", n)
		}
	})

	t.Run("a full stream refuses the events, stores none of the refused", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxBytes = 2000
		js, s := startStream(t, cfg)
		pub := stream.NewPublisher(js, 4, prometheus.NewRegistry())
		results := pub.Publish(ctx, testEvents(0, 50))
		got := count(results)
		if got.failed == 0 || got.stored+got.failed != 50 {
			t.Fatalf("outcomes %+v, want failures for what did not fit", got)
		}
		for _, r := range results {
			if r.Err != nil && !errors.Is(r.Err, stream.ErrFull) {
				t.Fatalf("error %v, want ErrFull", r.Err)
			}
		}
		if n := storedCount(t, s); n != uint64(got.stored) {
			t.Fatalf("%d stored, but %d answered stored", n, got.stored)
		}
	})

	t.Run("without atomic publish on the stream every event is still stored", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		cfg := s.CachedInfo().Config
		cfg.AllowAtomicPublish = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		pub := stream.NewPublisher(js, 4, reg)
		if got := count(pub.Publish(ctx, testEvents(0, 20))); got != (outcome{stored: 20}) {
			t.Fatalf("outcomes %+v, want 20 stored", got)
		}
		if f := batches(t, reg, "per_event"); f != 1 {
			t.Fatalf("%d batches published per event, want 1", f)
		}
	})

	t.Run("AtomicBatches(1) publishes every event on its own", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		reg := prometheus.NewRegistry()
		pub := stream.NewPublisher(js, 4, reg, stream.AtomicBatches(1))
		if got := count(pub.Publish(ctx, testEvents(0, 20))); got != (outcome{stored: 20}) {
			t.Fatalf("outcomes %+v, want 20 stored", got)
		}
		if c, f := batches(t, reg, "committed"), batches(t, reg, "per_event"); c+f != 0 {
			t.Fatalf("%d batches committed and %d refused, want none", c, f)
		}
		if n := storedCount(t, s); n != 20 {
			t.Fatalf("%d stored, want 20", n)
		}
	})
}
