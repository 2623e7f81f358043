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
	"github.com/synadia-io/orbit.go/jetstreamext"

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

// MaxAtomicBatch is the most messages nats-server takes in one atomic batch by default
// (its max_batch_size).
const MaxAtomicBatch = 1000

// MsgID is an event's Nats-Msg-Id: its id within its source's namespace,
// "<source> <id>" (an id holds no white space, so the last space separates them), or
// the id alone for an event without a source. Two sources' events with the same id are
// two messages: a source cannot pre-empt another's ids.
func MsgID(e *event.Event) string {
	if e.Source == "" {
		return e.ID
	}
	return e.Source + " " + e.ID
}

// Publisher publishes validated events to the stream, each on its partition's subject
// with MsgID as Nats-Msg-Id. It is safe for concurrent use.
//
// The events of one Publish call are sent as atomic batches (nats-server 2.12+) of up
// to the configured size: the server stores a batch whole or not at all and, syncing
// always, syncs it once, where it would sync every message published on its own. A
// batch is refused whole when one of its ids is already stored (or appears twice in
// it), when the stream is full, or when the server cannot take the batch; the server
// does not say which message it was. Such a batch is then published again one event
// at a time, which gives every event its own answer (stored, duplicate or error) and,
// ids being message ids, can store nothing twice. A resent request, whose events are
// all duplicates, costs no sync either way: a duplicate is not written.
type Publisher struct {
	js         jetstream.JetStream
	partitions int
	batch      int
	metrics    publisherMetrics
}

type publisherMetrics struct {
	duration                   prometheus.Histogram
	stored, duplicate, failure prometheus.Counter
	committed, fellBack        prometheus.Counter
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// AtomicBatches sets the most events per atomic batch (default MaxAtomicBatch); 1 or
// less publishes every event on its own, for servers older than 2.12 or streams
// without atomic publish.
func AtomicBatches(n int) PublisherOption {
	return func(p *Publisher) { p.batch = min(n, MaxAtomicBatch) }
}

// NewPublisher returns a publisher on js. js should be created with
// jetstream.WithPublishAsyncTimeout so that an unreachable server fails a publish.
func NewPublisher(js jetstream.JetStream, partitions int, reg prometheus.Registerer, opts ...PublisherOption) *Publisher {
	f := promauto.With(reg)
	published := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_published_events_total",
		Help: "Events published to JetStream, by outcome (stored, duplicate, error).",
	}, []string{"outcome"})
	batches := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_publish_batches_total",
		Help: "Atomic batches published to JetStream, by outcome: committed, or refused and published again event by event (per_event).",
	}, []string{"outcome"})
	p := &Publisher{
		js:         js,
		partitions: partitions,
		batch:      MaxAtomicBatch,
		metrics: publisherMetrics{
			duration: f.NewHistogram(prometheus.HistogramOpts{
				Name:    "cxlink_publish_duration_seconds",
				Help:    "Time from publishing a request's events to JetStream's last acknowledgement.",
				Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
			}),
			stored:    published.WithLabelValues("stored"),
			duplicate: published.WithLabelValues("duplicate"),
			failure:   published.WithLabelValues("error"),
			committed: batches.WithLabelValues("committed"),
			fellBack:  batches.WithLabelValues("per_event"),
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// stallWait is how long a publish may wait for room among the unacknowledged ones, or
// for an acknowledgement: no longer than ctx allows.
func stallWait(ctx context.Context) time.Duration {
	wait := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(d), time.Millisecond))
	}
	return wait
}

// outgoing is an encoded event: its subject, id and body.
type outgoing struct {
	subject, id string
	data        []byte
}

func (o outgoing) msg() *nats.Msg {
	return &nats.Msg{Subject: o.subject, Header: nats.Header{jetstream.MsgIDHeader: []string{o.id}}, Data: o.data}
}

// Publish stores events and returns one result per event, in order. It returns once
// JetStream acknowledged or refused every event, or ctx ended. Batches follow each
// other in the events' order, so the events of one call are stored in that order.
func (p *Publisher) Publish(ctx context.Context, events []event.Event) []Result {
	start := time.Now()
	results := make([]Result, len(events))
	out := make([]outgoing, 0, len(events))
	index := make([]int, 0, len(events)) // out[k] is events[index[k]]
	for i := range events {
		e := &events[i]
		data, err := json.Marshal(e)
		if err != nil {
			results[i].Err = fmt.Errorf("encode event: %w", err)
			continue
		}
		out = append(out, outgoing{subject: Subject(Partition(e.RoutingKey(), p.partitions)), id: MsgID(e), data: data})
		index = append(index, i)
	}
	res := make([]Result, len(out))
	size := max(p.batch, 1)
	for first := 0; first < len(out); first += size {
		last := min(first+size, len(out))
		if p.batch > 1 && last-first > 1 && p.publishAtomic(ctx, out[first:last]) {
			continue // all stored: zero results
		}
		p.publishEach(ctx, out[first:last], res[first:last])
	}
	for k, r := range res {
		results[index[k]] = r
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

// publishAtomic stores out as one atomic batch and reports whether the server committed
// it, which stores every message. Otherwise nothing of it is stored, or (when the
// answer was lost) all of it: publishing each again answers for each either way.
func (p *Publisher) publishAtomic(ctx context.Context, out []outgoing) bool {
	if ctx.Err() != nil {
		return false
	}
	msgs := make([]*nats.Msg, len(out))
	for i := range out {
		msgs[i] = out[i].msg()
	}
	_, err := jetstreamext.PublishMsgBatch(ctx, p.js, msgs, jetstreamext.BatchFlowControl{
		AckFirst:   true, // learn at once that the server cannot take the batch
		AckTimeout: stallWait(ctx),
	})
	if err != nil {
		p.metrics.fellBack.Inc()
		return false
	}
	p.metrics.committed.Inc()
	return true
}

// publishEach publishes every message on its own, as asynchronous publishes, and sets
// its result.
func (p *Publisher) publishEach(ctx context.Context, out []outgoing, results []Result) {
	futures := make([]jetstream.PubAckFuture, len(out))
	for i := range out {
		if err := ctx.Err(); err != nil {
			results[i].Err = fmt.Errorf("publish: %w", err)
			continue
		}
		var err error
		if futures[i], err = p.js.PublishMsgAsync(out[i].msg(), jetstream.WithStallWait(stallWait(ctx))); err != nil {
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
}
