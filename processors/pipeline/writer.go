package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// Sink stores batches. WriteBatch must be all-or-nothing as seen by the documented read
// (a retried batch may be written twice: rows are idempotent). The writer owns the batch
// only during the call.
type Sink interface {
	WriteBatch(ctx context.Context, b *records.Batch) error
}

// item is what a partition hands to the writer: the rows of one message (or of one
// tick) and what to do once they are stored.
type item struct {
	rows records.Batch
	// stored runs after the batch holding these rows was written; nil for tick rows.
	stored func()
	// poison runs instead of stored when the sink rejected a row of this message for
	// good; it dead-letters the message. partition and seq locate the message.
	poison    func(ctx context.Context, reason string)
	partition uint16
	seq       uint64
	// receivedAt of the message, for the ingest-to-stored latency; zero for tick rows.
	receivedAt time.Time
}

// writer batches items by row count or delay, whichever comes first, writes each batch
// with retries, and only then runs the items' stored callbacks (the JetStream acks).
type writer struct {
	sink     Sink
	maxRows  int
	maxDelay time.Duration
	in       chan item
	logger   *slog.Logger
	metrics  *metrics
	now      func() time.Time
}

func newWriter(sink Sink, cfg Config, m *metrics, logger *slog.Logger) *writer {
	return &writer{
		sink:     sink,
		maxRows:  cfg.BatchMaxRows,
		maxDelay: cfg.BatchMaxDelay,
		// Room for one batch in the channel: more would only hold memory, since the
		// consumers' MaxAckPending already bounds what is in flight.
		in:      make(chan item, cfg.BatchMaxRows),
		logger:  logger,
		metrics: m,
		now:     time.Now,
	}
}

// run writes until in is closed, then flushes what it holds, and reports whether that
// last flush stored everything. ctx ending aborts retries: rows not written are not
// acked, so JetStream delivers them again later.
func (w *writer) run(ctx context.Context) (drained bool) {
	var batch records.Batch
	var done []item
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() bool {
		timer.Stop()
		if len(done) == 0 {
			return true
		}
		// Messages may produce no rows: they are acked all the same.
		rejected := map[msgKey]string{}
		if batch.Len() > 0 && !w.write(ctx, &batch, rejected) {
			return false
		}
		now := w.now()
		for _, it := range done {
			if reason, ok := rejected[msgKey{it.partition, it.seq}]; ok && it.poison != nil {
				it.poison(ctx, reason)
			} else if it.stored != nil {
				it.stored()
			}
			if !it.receivedAt.IsZero() {
				w.metrics.storedLatency.Observe(now.Sub(it.receivedAt).Seconds())
			}
		}
		batch.Reset()
		clear(done)
		done = done[:0]
		return true
	}
	for {
		select {
		case it, ok := <-w.in:
			if !ok {
				return flush()
			}
			if len(done) == 0 {
				timer.Reset(w.maxDelay)
			}
			appendRows(&batch, &it.rows)
			done = append(done, it)
			if batch.Len() >= w.maxRows {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

func appendRows(dst, src *records.Batch) {
	dst.Surveys = append(dst.Surveys, src.Surveys...)
	dst.Tickets = append(dst.Tickets, src.Tickets...)
	dst.Pulses = append(dst.Pulses, src.Pulses...)
	dst.Rollups = append(dst.Rollups, src.Rollups...)
}

// write retries the batch with capped exponential back-off until it is stored or ctx
// ends, and reports whether it was stored. A row the sink can never store is taken out
// of the batch at once (retrying cannot help) and its message noted in rejected; the
// others are written.
func (w *writer) write(ctx context.Context, b *records.Batch, rejected map[msgKey]string) bool {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := w.now()
		err := w.sink.WriteBatch(ctx, b)
		w.metrics.flushDuration.Observe(w.now().Sub(start).Seconds())
		if err == nil {
			w.metrics.batchRows.Observe(float64(b.Len()))
			if attempt > 1 {
				w.logger.Info("sink recovered", "attempts", attempt)
			}
			return true
		}
		w.metrics.flushErrors.Inc()
		if w.setAside(err, b, rejected) {
			if b.Len() == 0 {
				return true
			}
			continue
		}
		w.logger.Warn("write batch failed; retrying", "rows", b.Len(), "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
