package stream_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/stream"
)

// startStream starts an embedded server (sync always, as `cxlink run`) with the events
// stream of cfg.
func startStream(tb testing.TB, cfg stream.Config) (jetstream.JetStream, jetstream.Stream) {
	tb.Helper()
	srv, err := broker.Start(broker.Config{DataDir: tb.TempDir(), Sync: broker.SyncAlways}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	s, _, err := stream.Define(tb.Context(), js, cfg, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return js, s
}

func testConfig() stream.Config {
	return stream.Config{Partitions: 4, Replicas: 1, MaxAge: time.Hour, MaxBytes: -1}
}

// msgs builds one message per id, spread over the partitions, with the id as Nats-Msg-Id.
func msgs(ids ...string) []*nats.Msg {
	out := make([]*nats.Msg, len(ids))
	for i, id := range ids {
		out[i] = &nats.Msg{
			Subject: stream.Subject(i % 4),
			Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
			Data:    []byte(`{"id":"` + id + `"}`),
		}
	}
	return out
}

func storedCount(tb testing.TB, s jetstream.Stream) uint64 {
	tb.Helper()
	info, err := s.Info(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Msgs
}

func errorCode(err error) jetstream.ErrorCode {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		return apiErr.ErrorCode
	}
	return 0
}

// TestAtomicBatchOnTheServer pins what the pinned nats-server does with an atomic batch
// on the events stream, which the publisher's fallback is designed around: a batch is
// stored whole or not at all, and a duplicate id (already stored, or twice in the
// batch) or a message the stream cannot take refuses the whole batch without saying
// which message it was.
func TestAtomicBatchOnTheServer(t *testing.T) {
	ctx := t.Context()

	t.Run("a batch over several partitions is stored whole and its ids deduplicate later publishes", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs("a", "b", "c", "d", "e"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.BatchSize != 5 || ack.Sequence != 5 {
			t.Fatalf("ack %+v, want 5 messages up to sequence 5", ack)
		}
		pa, err := js.PublishMsg(ctx, msgs("c")[0])
		if err != nil {
			t.Fatal(err)
		}
		if !pa.Duplicate {
			t.Fatalf("c published again after the batch: %+v, want a duplicate", pa)
		}
		if n := storedCount(t, s); n != 5 {
			t.Fatalf("%d messages stored, want 5", n)
		}
	})

	t.Run("an id stored before refuses the whole batch", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		if _, err := js.PublishMsg(ctx, msgs("b")[0]); err != nil {
			t.Fatal(err)
		}
		_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs("a", "b", "c"))
		if errorCode(err) != jetstreamext.JSErrCodeBatchPublishDuplicateMsgID {
			t.Fatalf("batch with a stored id: %v, want error %d", err, jetstreamext.JSErrCodeBatchPublishDuplicateMsgID)
		}
		if n := storedCount(t, s); n != 1 {
			t.Fatalf("%d messages stored, want only the first b", n)
		}
	})

	t.Run("an id twice in the batch refuses the whole batch", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs("a", "b", "a"))
		if errorCode(err) != jetstreamext.JSErrCodeBatchPublishDuplicateMsgID {
			t.Fatalf("batch with an id twice: %v, want error %d", err, jetstreamext.JSErrCodeBatchPublishDuplicateMsgID)
		}
		if n := storedCount(t, s); n != 0 {
			t.Fatalf("%d messages stored, want none", n)
		}
	})

	t.Run("a message the full stream cannot take refuses the whole batch", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxBytes = 400 // room for a few of these messages, not for the batch
		js, s := startStream(t, cfg)
		_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs("a", "b", "c", "d", "e", "f", "g", "h"))
		if err == nil {
			t.Fatal("a batch larger than the stream's room was stored")
		}
		if c := errorCode(err); c != 10077 && c != 10047 { // store failed, insufficient resources
			t.Fatalf("batch over the stream's room: %v (code %d), want a storage-limit error", err, errorCode(err))
		}
		if n := storedCount(t, s); n != 0 {
			t.Fatalf("%d messages stored, want none", n)
		}
	})

	t.Run("a batch over the server's size limit is refused", func(t *testing.T) {
		js, s := startStream(t, testConfig())
		ids := make([]string, 1001)
		for i := range ids {
			ids[i] = fmt.Sprintf("ev-%d", i)
		}
		_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs(ids...))
		if errorCode(err) != jetstreamext.JSErrCodeBatchPublishExceedsLimit {
			t.Fatalf("batch of %d: %v, want error %d", len(ids), err, jetstreamext.JSErrCodeBatchPublishExceedsLimit)
		}
		if n := storedCount(t, s); n != 0 {
			t.Fatalf("%d messages stored, want none", n)
		}
	})

	t.Run("a stream created before atomic batches is updated to allow them", func(t *testing.T) {
		js, _ := startStream(t, testConfig())
		s, err := js.Stream(ctx, stream.Name)
		if err != nil {
			t.Fatal(err)
		}
		old := s.CachedInfo().Config
		old.AllowAtomicPublish = false
		if _, err := js.UpdateStream(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := jetstreamext.PublishMsgBatch(ctx, js, msgs("a")); errorCode(err) != jetstreamext.JSErrCodeBatchPublishNotEnabled {
			t.Fatalf("batch on a stream without atomic publish: %v, want error %d", err, jetstreamext.JSErrCodeBatchPublishNotEnabled)
		}
		s, _, err = stream.Define(ctx, js, testConfig(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !s.CachedInfo().Config.AllowAtomicPublish {
			t.Fatal("Ensure did not allow atomic publish on the existing stream")
		}
		if _, err := jetstreamext.PublishMsgBatch(ctx, js, msgs("a")); err != nil {
			t.Fatal(err)
		}
	})
}
