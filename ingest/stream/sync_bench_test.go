package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// BenchmarkPublishSync measures what the embedded server's sync policy costs ingest:
// events/s stored (JetStream acknowledged) by the publisher, in requests of 500 events
// from 4 concurrent senders, with the store synced after every message or on an
// interval, and each request an atomic batch (the default) or every event published
// on its own (CXLINK_PUBLISH_BATCH=1). Run:
//
//	go test -run '^$' -bench PublishSync -benchtime 100000x ./ingest/stream
func BenchmarkPublishSync(b *testing.B) {
	for _, policy := range []string{"always", "1s", "2m"} {
		for _, batch := range []int{stream.MaxAtomicBatch, 1} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", policy, batch), func(b *testing.B) { benchPublish(b, policy, batch) })
		}
	}
}

func benchPublish(b *testing.B, policy string, batch int) {
	ns, err := broker.Start(broker.Config{DataDir: b.TempDir(), Sync: policy}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := stream.Define(ctx, js, stream.Config{Partitions: 4, Replicas: 1, MaxAge: time.Hour, MaxBytes: -1}, time.Hour); err != nil {
		b.Fatal(err)
	}
	pub := stream.NewPublisher(js, 4, nil, stream.AtomicBatches(batch))
	const perRequest = 500
	now := time.Now().UTC()
	score, lo, hi := 5.0, 1.0, 7.0
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(perRequest)) - perRequest
				if first >= b.N {
					return
				}
				events := make([]event.Event, 0, perRequest)
				for i := first; i < min(first+perRequest, b.N); i++ {
					events = append(events, event.Event{ID: fmt.Sprintf("ev-%d", i), Type: event.TypeSurveyResponse,
						OccurredAt: now, Survey: event.SurveyCES, Score: &score, ScaleMin: &lo, ScaleMax: &hi,
						TicketID: fmt.Sprintf("T%d", i/2), Team: "blue", Category: "refund_request",
						Channel: "chat", AgentID: "agent-17", CustomerID: fmt.Sprintf("c%d", i), Comment: "quick and friendly"})
				}
				for _, r := range pub.Publish(ctx, events) {
					if r.Err != nil {
						b.Error(r.Err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishModes compares, on the raw stream, the ways JetStream can take a
// request's messages: one asynchronous publish per message (each synced on its own
// with sync always), an atomic batch (nats-server 2.12+, one sync per batch since
// 2.15) and a fast-ingest batch (2.14+, which stores, and so syncs, message by
// message). Requests of 500 messages of 300 bytes with a Nats-Msg-Id each, from 4
// concurrent senders. Run:
//
//	go test -run '^$' -bench PublishModes -benchtime 40000x ./ingest/stream
func BenchmarkPublishModes(b *testing.B) {
	const perRequest = 500
	payload := []byte(strings.Repeat("x", 300))
	for _, policy := range []string{"always", "2m"} {
		for _, mode := range []string{"async", "atomic", "fast"} {
			b.Run("sync="+policy+"/"+mode, func(b *testing.B) {
				ns, err := broker.Start(broker.Config{DataDir: b.TempDir(), Sync: policy}, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				defer ns.Shutdown()
				nc, err := ns.Connect()
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				s, _, err := stream.Define(ctx, js, stream.Config{Partitions: 4, Replicas: 1, MaxAge: time.Hour, MaxBytes: -1}, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "fast" {
					cfg := s.CachedInfo().Config
					cfg.AllowBatchPublish = true
					if _, err := js.UpdateStream(ctx, cfg); err != nil {
						b.Fatal(err)
					}
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							first := int(next.Add(perRequest)) - perRequest
							if first >= b.N {
								return
							}
							batch := make([]*nats.Msg, 0, perRequest)
							for i := first; i < min(first+perRequest, b.N); i++ {
								batch = append(batch, &nats.Msg{Subject: stream.Subject(i % 4),
									Header: nats.Header{jetstream.MsgIDHeader: []string{fmt.Sprintf("ev-%d", i)}}, Data: payload})
							}
							if err := publishAs(ctx, js, mode, batch); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if info, err := s.Info(ctx); err != nil || info.State.Msgs != uint64(b.N) {
					b.Fatalf("stored %d of %d (%v)", info.State.Msgs, b.N, err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

func publishAs(ctx context.Context, js jetstream.JetStream, mode string, batch []*nats.Msg) error {
	switch mode {
	case "atomic":
		_, err := jetstreamext.PublishMsgBatch(ctx, js, batch, jetstreamext.BatchFlowControl{AckFirst: true, AckTimeout: 10 * time.Second})
		return err
	case "fast":
		fp, err := jetstreamext.NewFastPublisher(js, jetstreamext.FastPublishFlowControl{Flow: 500, AckTimeout: 10 * time.Second})
		if err != nil {
			return err
		}
		for _, m := range batch[:len(batch)-1] {
			if _, err := fp.AddMsg(m); err != nil {
				return err
			}
		}
		_, err = fp.CommitMsg(ctx, batch[len(batch)-1])
		return err
	}
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, m := range batch {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		}
	}
	return nil
}
