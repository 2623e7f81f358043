package pipeline_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/checkpoint"
)

// testJetStream is an in-process JetStream holding the event stream of partitions, with
// the duplicate window given, and the progress and snapshot stores, all gone when the
// test ends.
type testJetStream struct {
	js          jetstream.JetStream
	stream      jetstream.Stream
	checkpoints *checkpoint.Store
}

func startJetStream(t *testing.T, partitions int, dupWindow time.Duration) testJetStream {
	t.Helper()
	ctx := t.Context()
	ns, err := broker.Start(broker.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := stream.Define(ctx, js, stream.Config{Partitions: partitions, Replicas: 1, MaxAge: time.Hour, MaxBytes: -1}, dupWindow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, checkpoint.ProgressBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateObjectStore(ctx, checkpoint.SnapshotStoreConfig(1)); err != nil {
		t.Fatal(err)
	}
	checkpoints, err := checkpoint.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return testJetStream{js: js, stream: s, checkpoints: checkpoints}
}
