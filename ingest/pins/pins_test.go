package pins_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/pins"
)

// A ticket created, solved (delivered twice), reopened and solved again within a
// minute: the repeat gets the first delivery's time, every real change a later time of
// its own, and only the first state keeps the adapter's id.
func testSequence(t *testing.T, s pins.Store) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	steps := []struct {
		state  string
		at     time.Time
		want   time.Time
		suffix string
	}{
		{"created", t0, t0, ""},
		{"solved", t0.Add(10 * time.Second), t0.Add(10 * time.Second), ":1795435210"},
		{"solved", t0.Add(40 * time.Second), t0.Add(10 * time.Second), ":1795435210"}, // redelivered
		{"reopened", t0.Add(20 * time.Second), t0.Add(20 * time.Second), ":1795435220"},
		// Solved again in the same second as the reopening: one second later.
		{"solved", t0.Add(20 * time.Second), t0.Add(21 * time.Second), ":1795435221"},
	}
	for i, st := range steps {
		p, err := s.Resolve(t.Context(), "freshdesk ticket 11", st.state, st.at)
		if err != nil {
			t.Fatal(err)
		}
		if !p.At.Equal(st.want) || p.IDSuffix() != st.suffix {
			t.Errorf("step %d %s: at %s suffix %q, want %s %q", i, st.state, p.At, p.IDSuffix(), st.want, st.suffix)
		}
	}
	// Another entity is pinned on its own.
	if p, _ := s.Resolve(t.Context(), "freshdesk ticket 12", "solved", t0); !p.First {
		t.Errorf("another ticket: %+v", p)
	}
}

func TestMemory(t *testing.T) { testSequence(t, pins.NewMemory()) }

func TestKV(t *testing.T) {
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
	kv, err := js.CreateOrUpdateKeyValue(t.Context(), pins.BucketConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	testSequence(t, pins.NewKV(kv))
}
