package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/processors/records"
)

// Sink stores batches. WriteBatch must be all-or-nothing as seen by the documented read
// (a retried batch may be written twice: rows are idempotent). The writer owns the batch
// only during the call.
type Sink interface {
	WriteBatch(ctx context.Context, b *records.Batch) error
}

// chunk is what a worker hands to the writer: the rows of consecutive messages of one
// partition, and the buckets they changed.
type chunk struct {
	worker *worker
	rows   records.Batch
	// last is the sequence of the chunk's last message; lastReceived its JetStream
	// timestamp; watermark what the partition's watermark becomes once it is stored.
	last                    uint64
	lastReceived, watermark time.Time
	// msgs are the chunk's messages, to dead-letter one whose row the sink rejects.
	msgs map[uint64]jetstream.Msg
	// received are the JetStream timestamps of the chunk's messages, for the
	// ingest-to-stored latency.
	received []time.Time
}

func (c *chunk) add(msg jetstream.Msg, meta *jetstream.MsgMetadata, rows *records.Batch) {
	appendRows(&c.rows, rows)
	c.msgs[meta.Sequence.Stream] = msg
	c.received = append(c.received, meta.Timestamp)
	c.lastReceived = meta.Timestamp
}

// writer batches chunks by row count or delay, whichever comes first, writes each batch
// with retries, and then tells each chunk's worker that its rows are stored. A chunk of a
// partition whose lease was lost meanwhile is dropped, not written: its new owner writes
// the same rows.
type writer struct {
	sink     Sink
	maxRows  int
	maxDelay time.Duration
	in       chan *chunk
	logger   *slog.Logger
	metrics  *metrics
	now      func() time.Time
}

func newWriter(sink Sink, cfg Config, m *metrics, logger *slog.Logger) *writer {
	return &writer{
		sink:     sink,
		maxRows:  cfg.BatchMaxRows,
		maxDelay: cfg.BatchMaxDelay,
		// A few chunks may wait while a batch is written; more would only hold memory.
		in:      make(chan *chunk, 16),
		logger:  logger,
		metrics: m,
		now:     time.Now,
	}
}

// run writes until in is closed, then flushes what it holds, and reports whether that
// last flush stored everything. ctx ending aborts retries: what was not stored is
// written again by the partition's next owner.
func (w *writer) run(ctx context.Context) (drained bool) {
	var batch records.Batch
	var pending []*chunk
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() bool {
		timer.Stop()
		if len(pending) == 0 {
			return true
		}
		batch.Reset()
		kept := pending[:0]
		for _, c := range pending {
			if !c.worker.leaseValid() {
				w.metrics.droppedChunks.Inc()
				c.worker.chunkDone()
				continue
			}
			appendRows(&batch, &c.rows)
			kept = append(kept, c)
		}
		rejected := map[msgKey]string{}
		if batch.Len() > 0 && !w.write(ctx, &batch, rejected) {
			return false
		}
		now := w.now()
		for _, c := range kept {
			for seq, reason := range rejected {
				if msg, ok := c.msgs[seq.seq]; ok && seq.partition == uint16(c.worker.id) {
					c.worker.deadLetter(ctx, msg, seq.seq, reasonRejected, reason)
				}
			}
			for _, t := range c.received {
				w.metrics.storedLatency.Observe(now.Sub(t).Seconds())
			}
			c.worker.storedChunk(c)
		}
		clear(pending)
		pending = pending[:0]
		return true
	}
	rows := 0
	for {
		select {
		case c, ok := <-w.in:
			if !ok {
				return flush()
			}
			if len(pending) == 0 {
				timer.Reset(w.maxDelay)
				rows = 0
			}
			pending = append(pending, c)
			rows += c.rows.Len()
			if rows >= w.maxRows {
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
	dst.Buckets = append(dst.Buckets, src.Buckets...)
	dst.FollowUps = append(dst.FollowUps, src.FollowUps...)
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
