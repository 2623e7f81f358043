package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/partition"
	"github.com/cxlink/cxlink/processors/pipeline"
)

// A snapshot of an earlier format (here: the one before the columns) is not decoded: the
// partition replays from the stream and holds the same state as from a usable snapshot.
func TestSnapshotOfAnEarlierFormatIsReplayed(t *testing.T) {
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	const partitions = 1
	tj := startJetStream(t, partitions, time.Minute)
	js, s, checkpoints := tj.js, tj.stream, tj.checkpoints
	cfg := pipeline.DefaultConfig()
	cfg.BatchMaxDelay = 20 * time.Millisecond

	now := time.Now().UTC()
	var events []event.Event
	for i := range 40 {
		score, lo, hi := float64(1+i%7), 1.0, 7.0
		events = append(events, event.Event{ID: fmt.Sprintf("s%d", i), Type: event.TypeSurveyResponse,
			OccurredAt: now.Add(-time.Duration(i) * time.Minute), Survey: event.SurveyCES, Score: &score, ScaleMin: &lo, ScaleMax: &hi,
			Team: fmt.Sprintf("team-%d", i%3), Category: fmt.Sprintf("cat-%d", i%4), Channel: "chat", AgentID: fmt.Sprintf("a%d", i%5)})
	}
	for _, r := range stream.NewPublisher(js, partitions, nil).Publish(ctx, events) {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("publish: %+v", r)
		}
	}
	last, err := s.GetLastMsgForSubject(ctx, stream.Subject(0))
	if err != nil {
		t.Fatal(err)
	}

	// run starts the pipeline, waits until it is ready and its state reported, and stops
	// it cleanly (which saves a snapshot); it returns the registry.
	run := func(what string) (*prometheus.Registry, float64) {
		reg := prometheus.NewRegistry()
		ticks := make(chan time.Time)
		p, err := pipeline.New(cfg, pipeline.Options{Stream: s, Partitions: partitions, Sink: &pickySink{rows: map[string]int{}},
			Checkpoints: checkpoints, MaxFuture: 5 * time.Minute, Logger: logger, Registerer: reg, Ticks: ticks})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		waitFor(t, what+": ready", func() bool { return p.Ready() == nil })
		waitFor(t, what+": progress stored", func() bool {
			pr, _, err := checkpoints.Progress(ctx, 0)
			return err == nil && pr.Seq >= last.Sequence
		})
		ticks <- now.Truncate(time.Minute).Add(time.Minute)
		var series float64
		waitFor(t, what+": state reported", func() bool {
			series = gauge(t, reg, "cxlink_processor_state_entries", "series")
			return series > 0
		})
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return reg, series
	}

	_, want := run("first start")
	snap, ok, err := checkpoints.Snapshot(ctx, 0)
	if err != nil || !ok || snap.Format != partition.SnapshotFormat {
		t.Fatalf("snapshot after a clean stop: %v, %v, format %q", ok, err, snap.Format)
	}
	snap.Format = "cxlink-partition-state/3 gob+gzip"
	if err := checkpoints.PutSnapshot(ctx, 0, snap); err != nil {
		t.Fatal(err)
	}
	reg, got := run("start from the earlier format")
	if n := counterValue(t, reg, "cxlink_snapshot_loads_total", "result", "mismatch"); n != 1 {
		t.Errorf("loads of the earlier format counted as mismatch: %v, want 1", n)
	}
	if got != want {
		t.Errorf("replayed state: %v series, want %v", got, want)
	}
	reg, got = run("start from the current format")
	if n := counterValue(t, reg, "cxlink_snapshot_loads_total", "result", "ok"); n != 1 {
		t.Errorf("loads of the current format: %v, want 1", n)
	}
	if got != want {
		t.Errorf("restored state: %v series, want %v", got, want)
	}
}

// gauge reads a gauge of partition 0 by its kind label.
func gauge(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
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
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["partition"] == "0" && labels["kind"] == kind {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
