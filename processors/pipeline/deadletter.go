package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/processors/records"
)

// DeadLetters keeps the messages that can never be processed, with the reason, for an
// operator to inspect and replay (processors/deadletter is one). Put may be called again
// for a message it already holds (after a crash): it must keep one copy.
type DeadLetters interface {
	Put(ctx context.Context, msg jetstream.Msg, reason string) error
}

// RowRejecter is an error of Sink.WriteBatch about one row the sink can never store:
// writing the same batch again fails the same way. *clickhouse.RowError is one.
type RowRejecter interface {
	error
	RejectedRow() records.RowRef
}

// Reasons a message is dead-lettered, the values of cxlink_dead_letters_total{reason}.
const (
	reasonInvalid  = "invalid"       // not an event of contract v1
	reasonRejected = "sink_rejected" // the sink can never store one of its rows
)

// clockSkew is how far the ingest host's clock may run ahead of the NATS server's: an
// event is checked against the JetStream timestamp, which ingest did not see.
const clockSkew = time.Hour

// decode reads and validates a message's event, as ingest validated it but against the
// message's JetStream timestamp, so that the verdict is the same on every replay. A
// message that is not a valid event was not published by cxlink ingest (or by a version
// with other rules); it must not reach the state or the sink.
func (w *worker) decode(msg jetstream.Msg, meta *jetstream.MsgMetadata) (event.Event, error) {
	var e event.Event
	if err := json.Unmarshal(msg.Data(), &e); err != nil {
		return event.Event{}, fmt.Errorf("not an event: %w", err)
	}
	v := event.Validator{Now: func() time.Time { return meta.Timestamp }, MaxFuture: w.opts.MaxFuture + clockSkew}
	if errs := v.Validate(&e); len(errs) > 0 {
		return event.Event{}, fmt.Errorf("invalid event: %w", errs)
	}
	return e, nil
}

// deadLetter hands the message to the dead letters, retrying until they hold it or ctx
// ends. The dead-letter stream keeps one copy per message, so the next owner of the
// partition, replaying it, puts the same letter again harmlessly.
func (w *worker) deadLetter(ctx context.Context, msg jetstream.Msg, seq uint64, kind, reason string) {
	w.logger.Error("message can never be processed; dead-lettering it", "seq", seq, "reason", reason)
	if w.opts.DeadLetters != nil {
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
			err := w.opts.DeadLetters.Put(ctx, msg, reason)
			if err == nil {
				break
			}
			w.logger.Warn("dead-letter failed; retrying", "seq", seq, "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}
	w.metrics.deadLetters.WithLabelValues(kind).Inc()
}

// msgKey locates a message in the stream.
type msgKey struct {
	partition uint16
	seq       uint64
}

// setAside removes the row a RowRejecter names from b and records its message in
// rejected; it reports false when err is not about a row of b.
func (w *writer) setAside(err error, b *records.Batch, rejected map[msgKey]string) bool {
	rr, ok := errors.AsType[RowRejecter](err)
	if !ok {
		return false
	}
	ref := rr.RejectedRow()
	origin, fromMessage := b.Origin(ref)
	if !b.Remove(ref) {
		return false
	}
	w.logger.Error("the sink can never store a row; writing the others", "row", ref.Kind.String(),
		"partition", origin.Partition, "seq", origin.Seq, "err", err)
	w.metrics.rejectedRows.WithLabelValues(ref.Kind.String()).Inc()
	if fromMessage {
		if _, seen := rejected[msgKey{origin.Partition, origin.Seq}]; !seen {
			rejected[msgKey{origin.Partition, origin.Seq}] = err.Error()
		}
	}
	return true
}
