package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/deadletter"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/processors/records"
)

// rejectError is what a sink returns for a row it can never store.
type rejectError struct{ ref records.RowRef }

func (e rejectError) Error() string               { return fmt.Sprintf("row %d: value out of range", e.ref.Index) }
func (e rejectError) RejectedRow() records.RowRef { return e.ref }

// pickySink stores raw rows by event id, but can never store a survey whose id starts
// with "poison" while reject is set; it fails the whole batch, as ClickHouse's driver does.
type pickySink struct {
	mu     sync.Mutex
	reject bool
	rows   map[string]int // event id → times written
}

func (s *pickySink) WriteBatch(_ context.Context, b *records.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range b.Surveys {
		if s.reject && strings.HasPrefix(r.ID, "poison") {
			return fmt.Errorf("insert into survey_responses: %w", rejectError{records.RowRef{Kind: records.KindSurvey, Index: i}})
		}
	}
	for _, r := range b.Surveys {
		s.rows[r.ID]++
	}
	for _, r := range b.Tickets {
		s.rows[r.ID]++
	}
	for _, r := range b.Pulses {
		s.rows[r.ID]++
	}
	return nil
}

func (s *pickySink) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows[id] > 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Messages that can never be processed go to the dead-letter stream with their reason,
// are counted, and do not hold up the events behind them; a letter can be replayed.
func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	const partitions = 2
	// A short duplicate window, so that the test can replay after it.
	const dupWindow = 5 * time.Second
	tj := startJetStream(t, partitions, dupWindow)
	js, s, checkpoints := tj.js, tj.stream, tj.checkpoints
	dlq, err := deadletter.Open(ctx, js, deadletter.Config{MaxAge: time.Hour}, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.DefaultConfig()
	cfg.BatchMaxDelay = 20 * time.Millisecond
	sink := &pickySink{reject: true, rows: map[string]int{}}
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(cfg, pipeline.Options{Stream: s, Partitions: partitions, Sink: sink, DeadLetters: dlq,
		Checkpoints: checkpoints, MaxFuture: 5 * time.Minute, Logger: logger, Registerer: reg, Ticks: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() { stop(); <-done }()

	now := time.Now().UTC()
	survey := func(id string) event.Event {
		score, lo, hi := 5.0, 1.0, 7.0
		return event.Event{ID: id, Type: event.TypeSurveyResponse, OccurredAt: now, Survey: event.SurveyCES,
			Score: &score, ScaleMin: &lo, ScaleMax: &hi, Team: "red"}
	}
	pub := stream.NewPublisher(js, partitions, nil)
	publish := func(events ...event.Event) {
		for _, r := range pub.Publish(ctx, events) {
			if r.Err != nil || r.Duplicate {
				t.Fatalf("publish: %+v", r)
			}
		}
	}
	raw := func(subject string, data []byte) {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	publish(survey("before-1"), survey("before-2"))
	raw(stream.Subject(0), []byte("this is not JSON"))
	future := survey("from-the-future")
	future.OccurredAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) // ClickHouse's DateTime ends in 2106
	data, _ := json.Marshal(future)
	raw(stream.Subject(stream.Partition(future.RoutingKey(), partitions)), data)
	publish(survey("poison-1"))
	var after []event.Event
	for i := range 50 {
		after = append(after, survey(fmt.Sprintf("after-%d", i)))
	}
	publish(after...)

	waitFor(t, "the events behind the poison ones", func() bool {
		for _, e := range append(after, survey("before-1"), survey("before-2")) {
			if !sink.has(e.ID) {
				return false
			}
		}
		return true
	})
	waitFor(t, "three dead letters", func() bool { n, _ := dlq.Count(ctx); return n == 3 })
	waitFor(t, "every partition's progress past its last message", func() bool {
		for part := range partitions {
			last, err := s.GetLastMsgForSubject(ctx, stream.Subject(part))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			pr, _, err := checkpoints.Progress(ctx, part)
			if err != nil || pr.Seq < last.Sequence {
				return false
			}
		}
		return true
	})
	if sink.has("poison-1") || sink.has("from-the-future") {
		t.Error("a poison event reached the sink")
	}
	for reason, want := range map[string]float64{"invalid": 2, "sink_rejected": 1} {
		if got := counterValue(t, reg, "cxlink_dead_letters_total", "reason", reason); got != want {
			t.Errorf("cxlink_dead_letters_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}

	letters, err := dlq.List(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]deadletter.Letter{}
	for _, l := range letters {
		reasons[l.Reason] = l
		if l.Subject == "" || l.StreamSeq == 0 || l.ReceivedAt.IsZero() || l.Stream != stream.Name {
			t.Errorf("letter %d lacks its origin: %+v", l.Seq, l)
		}
	}
	var poison deadletter.Letter
	for _, want := range []string{"not an event", "occurred_at", "value out of range"} {
		found := false
		for r, l := range reasons {
			if strings.Contains(r, want) {
				found = true
				if want == "value out of range" {
					poison = l
				}
			}
		}
		if !found {
			t.Errorf("no letter's reason mentions %q: %v", want, letters)
		}
	}
	if poison.MsgID != "poison-1" {
		t.Fatalf("poison letter: %+v", poison)
	}

	// Inside the events stream's duplicate window, a replay is refused and the letter kept.
	if r, err := dlq.Replay(ctx, poison.Seq); err != nil || !r.Duplicate {
		t.Fatalf("replay inside the duplicate window: %+v, %v", r, err)
	}
	// The cause is fixed; after the window the replay is stored and processed.
	sink.mu.Lock()
	sink.reject = false
	sink.mu.Unlock()
	time.Sleep(dupWindow + 200*time.Millisecond)
	r, err := dlq.Replay(ctx, poison.Seq)
	if err != nil || r.Duplicate || r.Seq == 0 {
		t.Fatalf("replay after the duplicate window: %+v, %v", r, err)
	}
	waitFor(t, "the replayed event", func() bool { return sink.has("poison-1") })
	if n, _ := dlq.Count(ctx); n != 2 {
		t.Errorf("%d letters after the replay, want 2", n)
	}
	if _, err := dlq.Get(ctx, poison.Seq); err == nil {
		t.Error("the replayed letter is still there")
	}
}

// counterValue reads one series of a counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
