package labels_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/labels"
)

// clock is a settable time.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func ticketWith(category, agent string) *event.Event {
	return &event.Event{ID: "t-" + category + agent, Type: event.TypeTicket, Category: category, AgentID: agent}
}

// reserve reserves and confirms e as stored (or not), and returns its errors.
func admit(t *testing.T, g *labels.Guard, stored bool, es ...*event.Event) []event.Errors {
	t.Helper()
	errs, res, err := g.Reserve(t.Context(), es)
	if err != nil {
		t.Fatal(err)
	}
	ok := make([]bool, len(es))
	for i := range es {
		ok[i] = stored && len(errs[i]) == 0
	}
	if err := res.Confirm(t.Context(), ok); err != nil {
		t.Fatal(err)
	}
	return errs
}

// Two ingest replicas share one store: together they admit no more than the limit, a
// value one admitted is known to the other, and a restarted replica remembers them.
func TestLimitHoldsAcrossReplicas(t *testing.T) {
	store, c := labels.NewMemory(), newClock()
	a := labels.New(store, 3, "CXLINK_MAX_DIMENSION_VALUES", c.now)
	b := labels.New(store, 3, "CXLINK_MAX_DIMENSION_VALUES", c.now)
	if errs := admit(t, a, true, ticketWith("refund", ""), ticketWith("billing", "")); errs[0] != nil || errs[1] != nil {
		t.Fatalf("%v", errs)
	}
	if errs := admit(t, b, true, ticketWith("login", ""), ticketWith("billing", "")); errs[0] != nil || errs[1] != nil {
		t.Fatalf("%v", errs)
	}
	errs := admit(t, a, true, ticketWith("made-up", ""))
	if len(errs[0]) != 1 || errs[0][0].Field != "category" || !strings.Contains(errs[0][0].Message, "CXLINK_MAX_DIMENSION_VALUES") {
		t.Fatalf("a fourth category: %v", errs)
	}
	restarted := labels.New(store, 3, "CXLINK_MAX_DIMENSION_VALUES", c.now)
	if errs := admit(t, restarted, true, ticketWith("login", ""), ticketWith("other", "")); errs[0] != nil || errs[1] == nil {
		t.Fatalf("after a restart: %v", errs)
	}
}

// agent_id is bounded like every label; an event rejected for one field holds none of
// its other new values; values of events that were not stored do not count.
func TestOnlyAcceptedEventsCount(t *testing.T) {
	store, c := labels.NewMemory(), newClock()
	g := labels.New(store, 2, "X", c.now)
	admit(t, g, true, ticketWith("a", "agent-1"), ticketWith("b", "agent-2"))
	// A third agent with a known category is refused on agent_id only.
	errs := admit(t, g, true, ticketWith("a", "agent-3"))
	if len(errs[0]) != 1 || errs[0][0].Field != "agent_id" {
		t.Fatalf("agent_id: %v", errs)
	}
	// A new category with a new agent: both fields are full, both named, nothing held.
	errs = admit(t, g, true, ticketWith("c", "agent-4"))
	if len(errs[0]) != 2 {
		t.Fatalf("%v", errs)
	}

	g2 := labels.New(labels.NewMemory(), 2, "X", c.now)
	// The value of an event JetStream did not store is given back at once.
	admit(t, g2, false, ticketWith("lost", ""))
	admit(t, g2, true, ticketWith("kept", ""))
	if errs := admit(t, g2, true, ticketWith("second", "")); errs[0] != nil {
		t.Fatalf("the value of an event that was not stored still counts: %v", errs)
	}

	// A reservation never confirmed (ingest stopped while publishing) counts while it
	// may still be, then lapses.
	g3 := labels.New(labels.NewMemory(), 2, "X", c.now)
	if _, _, err := g3.Reserve(t.Context(), []*event.Event{ticketWith("in-flight", "")}); err != nil {
		t.Fatal(err)
	}
	admit(t, g3, true, ticketWith("kept", ""))
	if errs := admit(t, g3, true, ticketWith("third", "")); errs[0] == nil {
		t.Fatal("a reservation in flight did not count")
	}
	c.add(labels.ReserveFor + time.Second)
	if errs := admit(t, g3, true, ticketWith("third", "")); errs[0] != nil {
		t.Fatalf("the lapsed reservation still counts: %v", errs)
	}
	if errs := admit(t, g3, true, ticketWith("in-flight", "")); errs[0] == nil {
		t.Fatal("over the limit after the lapse")
	}
}

// On the NATS bucket, replicas admitting new values at the same moment never exceed the
// limit together: every write is a compare-and-set.
func TestConcurrentReplicasOnNATS(t *testing.T) {
	srv, err := broker.Start(broker.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateOrUpdateKeyValue(t.Context(), labels.BucketConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	const limit, replicas, offered = 50, 4, 40
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for r := range replicas {
		g := labels.New(labels.NewKV(kv), limit, "X", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range offered {
				errs, res, err := g.Reserve(t.Context(), []*event.Event{ticketWith(fmt.Sprintf("r%d-%d", r, i), "")})
				if err != nil {
					t.Error(err)
					return
				}
				if errs[0] == nil {
					admitted.Add(1)
				}
				if err := res.Confirm(t.Context(), []bool{errs[0] == nil}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d replicas offered %d new categories each: %d admitted (limit %d)", replicas, offered, admitted.Load(), limit)
	if admitted.Load() != limit {
		t.Fatalf("admitted %d, want exactly %d", admitted.Load(), limit)
	}
	fresh := labels.New(labels.NewKV(kv), limit, "X", nil)
	errs, _, err := fresh.Reserve(t.Context(), []*event.Event{ticketWith("brand-new", "")})
	if err != nil || errs[0] == nil {
		t.Fatalf("a new replica admitted a value over the limit: %v %v", errs, err)
	}
	if n := fresh.Counts()["category"]; n != limit {
		t.Fatalf("the bucket holds %d categories, want %d", n, limit)
	}
}
