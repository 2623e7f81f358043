package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cxlink/cxlink/ingest/event"
)

// Result of publishing one event.
type Result struct {
	// Duplicate: JetStream already held an event with this id (within its duplicate
	// window) and did not store it again.
	Duplicate bool
	// Err is set when the event may not be stored. It is always retryable: publishing the
	// same id again cannot store it twice.
	Err error
}

// Publisher publishes validated events to the stream, each on its partition's subject
// with its id as Nats-Msg-Id. It is safe for concurrent use.
type Publisher struct {
	js         jetstream.JetStream
	partitions int
	metrics    publisherMetrics
}

type publisherMetrics struct {
	duration                   prometheus.Histogram
	stored, duplicate, failure prometheus.Counter
}

// NewPublisher returns a publisher on js. js should be created with
// jetstream.WithPublishAsyncTimeout so that an unreachable server fails a publish.
func NewPublisher(js jetstream.JetStream, partitions int, reg prometheus.Registerer) *Publisher {
	f := promauto.With(reg)
	published := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_published_events_total",
		Help: "Events published to JetStream, by outcome (stored, duplicate, error).",
	}, []string{"outcome"})
	return &Publisher{
		js:         js,
		partitions: partitions,
		metrics: publisherMetrics{
			duration: f.NewHistogram(prometheus.HistogramOpts{
				Name:    "cxlink_publish_duration_seconds",
				Help:    "Time from publishing a request's events to JetStream's last acknowledgement.",
				Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
			}),
			stored:    published.WithLabelValues("stored"),
			duplicate: published.WithLabelValues("duplicate"),
			failure:   published.WithLabelValues("error"),
		},
	}
}

// stallWait is how long a publish may wait for room among the unacknowledged ones: no
// longer than ctx allows.
func stallWait(ctx context.Context) time.Duration {
	wait := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(d), time.Millisecond))
	}
	return wait
}

// Publish stores events and returns one result per event, in order. It returns once
// JetStream acknowledged or refused every event, or ctx ended.
func (p *Publisher) Publish(ctx context.Context, events []event.Event) []Result {
	start := time.Now()
	results := make([]Result, len(events))
	futures := make([]jetstream.PubAckFuture, len(events))
	for i := range events {
		e := &events[i]
		data, err := json.Marshal(e)
		if err != nil {
			results[i].Err = fmt.Errorf("encode event: %w", err)
			continue
		}
		msg := &nats.Msg{
			Subject: Subject(Partition(e.RoutingKey(), p.partitions)),
			Header:  nats.Header{jetstream.MsgIDHeader: []string{e.ID}},
			Data:    data,
		}
		if err := ctx.Err(); err != nil {
			results[i].Err = fmt.Errorf("publish: %w", err)
			continue
		}
		if futures[i], err = p.js.PublishMsgAsync(msg, jetstream.WithStallWait(stallWait(ctx))); err != nil {
			results[i].Err = fmt.Errorf("publish: %w", err)
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			results[i].Duplicate = ack.Duplicate
		case err := <-f.Err():
			if full(err) {
				err = fmt.Errorf("%w: %w", ErrFull, err)
			}
			results[i].Err = fmt.Errorf("publish: %w", err)
		case <-ctx.Done():
			results[i].Err = fmt.Errorf("publish: %w", ctx.Err())
		}
	}
	for _, r := range results {
		switch {
		case r.Err != nil:
			p.metrics.failure.Inc()
		case r.Duplicate:
			p.metrics.duplicate.Inc()
		default:
			p.metrics.stored.Inc()
		}
	}
	p.metrics.duration.Observe(time.Since(start).Seconds())
	return results
}
