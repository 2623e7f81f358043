package stream_test

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// An id is unique within its source only: another source's event with the same id is
// stored too (it cannot pre-empt the first source's), while the same source sending it
// again is a duplicate. The message id says whose it is.
func TestIDsAreNamespacedBySource(t *testing.T) {
	js, s := startStream(t, testConfig())
	pub := stream.NewPublisher(js, 4, prometheus.NewRegistry(), stream.AtomicBatches(1))
	forged := testEvents(1, 1)[0]
	forged.ID, forged.Source = "zendesk:rating:7", "surveys"
	real := forged
	real.Source = "zendesk"
	if o := count(pub.Publish(t.Context(), []event.Event{forged})); o.stored != 1 {
		t.Fatalf("the forged id: %+v", o)
	}
	if o := count(pub.Publish(t.Context(), []event.Event{real, real})); o.stored != 1 || o.duplicate != 1 {
		t.Fatalf("the real event, sent twice: %+v", o)
	}
	want := []string{"surveys zendesk:rating:7", "zendesk zendesk:rating:7"}
	if got := storedIDs(t, js, s); !slices.Equal(got, want) {
		t.Fatalf("message ids %q, want %q", got, want)
	}
	if id := stream.MsgID(&event.Event{ID: "x-1"}); id != "x-1" {
		t.Errorf("an event without a source: %q", id)
	}
}
