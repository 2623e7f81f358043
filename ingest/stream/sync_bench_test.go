package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// BenchmarkPublishSync measures what the embedded server's sync policy costs ingest:
// events/s stored (JetStream acknowledged) by the publisher, in requests of 500 events
// from 4 concurrent senders, with the store synced after every message or on an
// interval. Run:
//
//	go test -run '^$' -bench PublishSync -benchtime 100000x ./ingest/stream
func BenchmarkPublishSync(b *testing.B) {
	for _, policy := range []string{"always", "1s", "2m"} {
		b.Run("sync="+policy, func(b *testing.B) {
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
			pub := stream.NewPublisher(js, 4, nil)
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
		})
	}
}
