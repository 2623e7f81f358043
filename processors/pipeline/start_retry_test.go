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
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/pipeline"
)

// A partition whose start cannot read its progress (JetStream answers nothing for a while
// after a node of its cluster restarts; here the progress bucket is gone) keeps trying
// instead of stopping the pipeline, and starts once the progress can be read.
func TestPartitionStartRetriesUntilItsProgressCanBeRead(t *testing.T) {
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	tj := startJetStream(t, 1, time.Minute)
	js, s, checkpoints := tj.js, tj.stream, tj.checkpoints
	score, lo, hi := 5.0, 1.0, 7.0
	var events []event.Event
	for i := range 10 {
		events = append(events, event.Event{ID: fmt.Sprintf("s%d", i), Type: event.TypeSurveyResponse, OccurredAt: time.Now().UTC(),
			Survey: event.SurveyCES, Score: &score, ScaleMin: &lo, ScaleMax: &hi, Category: "billing"})
	}
	for _, r := range stream.NewPublisher(js, 1, nil).Publish(ctx, events) {
		if r.Err != nil {
			t.Fatalf("publish: %+v", r)
		}
	}
	// The progress cannot be read when the partition starts.
	if err := js.DeleteKeyValue(ctx, checkpoint.ProgressBucketConfig(1).Bucket); err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.DefaultConfig()
	cfg.BatchMaxDelay = 20 * time.Millisecond
	sink := &pickySink{rows: map[string]int{}}
	p, err := pipeline.New(cfg, pipeline.Options{Stream: s, Partitions: 1, Sink: sink, Checkpoints: checkpoints,
		MaxFuture: 5 * time.Minute, Logger: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	time.Sleep(time.Second)
	select {
	case err := <-done:
		t.Fatalf("the pipeline stopped while the progress could not be read: %v", err)
	default:
	}
	if p.Ready() == nil {
		t.Fatal("ready before the partition could start")
	}
	if _, err := js.CreateKeyValue(ctx, checkpoint.ProgressBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the partition applied and stored every event", func() bool {
		pr, _, err := checkpoints.Progress(ctx, 0)
		return p.Ready() == nil && err == nil && pr.Seq >= uint64(len(events))
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
