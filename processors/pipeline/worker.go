package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/partition"
	"github.com/cxlink/cxlink/processors/records"
)

// worker runs one partition: it reads the partition's messages in stream order with an
// ordered consumer, applies them to the partition's state, and hands the rows to the
// writer in chunks. Its output depends on the stream alone (docs/partitions.md), so it
// needs no acks: its progress is the last sequence whose rows the writer stored.
type worker struct {
	id      int
	cfg     Config
	opts    *Options
	lease   *lease.Lease // nil: never expires
	state   *partition.State
	writer  *writer
	metrics *metrics
	logger  *slog.Logger
	ticks   chan time.Time
	ready   atomic.Bool

	// stored: rows of every message up to it were stored before this worker started;
	// messages up to it only rebuild the state.
	stored uint64
	// readyAt is the partition's last sequence when the worker started: it is ready
	// once it applied that far.
	readyAt uint64
	applied uint64 // the last sequence applied
	// caughtUp: no message of the partition was pending after the last one read.
	caughtUp bool
	chunk    *chunk // rows not yet handed to the writer

	mu sync.Mutex
	// progress is what the writer stored so far; persisted is its last saved value.
	progress, persisted checkpoint.Progress
	// outstanding counts chunks handed to the writer and not yet stored; idle is
	// signalled when it drops to zero.
	outstanding int
	idle        *sync.Cond
	// snapshot waits for its sequence to be stored before it is published.
	snapshot *checkpoint.Snapshot
}

func newWorker(id int, p *Pipeline, l *lease.Lease) *worker {
	w := &worker{
		id:      id,
		cfg:     p.cfg,
		opts:    &p.opts,
		lease:   l,
		state:   partition.New(uint16(id), p.cfg.partitionConfig()),
		writer:  p.writer,
		metrics: p.metrics,
		logger:  p.opts.Logger.With("component", "processor", "partition", id),
		ticks:   make(chan time.Time, 1),
	}
	w.idle = sync.NewCond(&w.mu)
	return w
}

func (w *worker) subject() string { return stream.Subject(w.id) }

func (w *worker) leaseValid() bool { return w.lease == nil || w.lease.Valid() }

func (w *worker) leaseLost() <-chan struct{} {
	if w.lease == nil {
		return nil
	}
	return w.lease.Lost()
}

// run processes the partition until ctx ends (a clean stop: what was applied is stored
// and a snapshot published) or the lease is lost (the partition is dropped at once).
func (w *worker) run(ctx context.Context) error {
	start := time.Now()
	cons, from, err := w.begin(ctx)
	// JetStream may answer nothing for some seconds after a node of its cluster restarts:
	// the partition tries again, as long as it may run it, rather than failing the
	// process (seen: every replica's pipeline stopped on "no responders" while taking
	// partitions back after the stream leader's node restarted).
	for wait := 250 * time.Millisecond; err != nil; wait = min(2*wait, 5*time.Second) {
		w.logger.Warn("partition not started; trying again", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-w.leaseLost():
			w.logger.Warn("lease lost: dropping the partition")
			return nil
		case <-time.After(wait):
		}
		w.state, w.applied, w.readyAt = partition.New(uint16(w.id), w.cfg.partitionConfig()), 0, 0
		cons, from, err = w.begin(ctx)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(w.cfg.ReadAhead))
	if err != nil {
		return fmt.Errorf("read partition: %w", err)
	}
	msgs := make(chan jetstream.Msg)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go w.read(readCtx, it, msgs)
	defer it.Stop()
	if w.readyAt <= w.applied {
		// Nothing to read: the partition held nothing after the snapshot (or at all).
		w.caughtUp = true
		w.becomeReady(start, from)
	}

	maxDelay := time.NewTimer(time.Hour)
	maxDelay.Stop()
	snapshots := time.NewTicker(w.cfg.SnapshotEvery)
	defer snapshots.Stop()
	persist := time.NewTicker(time.Second)
	defer persist.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			stopReading()
			return w.finish()
		case <-w.leaseLost():
			w.logger.Warn("lease lost: dropping the partition")
			return nil
		case msg := <-msgs:
			first := w.chunk == nil
			err = w.handle(ctx, msg)
			if w.chunk != nil && first {
				maxDelay.Reset(w.cfg.BatchMaxDelay)
			}
			if !w.ready.Load() && w.applied >= w.readyAt {
				w.becomeReady(start, from)
			}
		case <-maxDelay.C:
			err = w.cut(ctx, false)
		case t := <-w.ticks:
			w.tick(t)
		case <-snapshots.C:
			w.takeSnapshot()
		case <-persist.C:
			w.persist(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return w.finish()
			}
			return err
		}
	}
}

func (w *worker) becomeReady(start time.Time, from string) {
	w.ready.Store(true)
	w.logger.Info("partition ready", "from", from, "replayed", w.metrics.replayedBy(w.id), "applied_seq", w.applied,
		"stored_seq", w.stored, "took", time.Since(start).Round(time.Millisecond))
}

// read moves messages from the consumer to msgs until ctx ends.
func (w *worker) read(ctx context.Context, it jetstream.MessagesContext, msgs chan<- jetstream.Msg) {
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			w.logger.Warn("read", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case msgs <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// handle applies one message and adds its rows to the current chunk.
func (w *worker) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	seq := meta.Sequence.Stream
	if seq <= w.applied {
		return nil // the ordered consumer delivers each message once; a restart may repeat
	}
	w.applied = seq
	w.caughtUp = meta.NumPending == 0
	w.metrics.pending.WithLabelValues(partLabel(w.id)).Set(float64(meta.NumPending))
	live := seq > w.stored
	if !live {
		w.metrics.replayed.Inc()
		w.metrics.replayedPart(w.id)
	}
	rows, err := w.apply(msg, meta, live)
	if !live {
		// Its rows, and the buckets as they stand, are stored already.
		w.state.DiscardBuckets()
		return nil
	}
	c := w.currentChunk()
	if err != nil {
		// Dead-lettered, and part of the chunk all the same: once the chunk is stored,
		// the partition's progress passes it.
		w.deadLetter(ctx, msg, seq, reasonInvalid, err.Error())
	} else {
		c.add(msg, meta, &rows)
	}
	if c.rows.Len() >= w.cfg.BatchMaxRows || meta.NumPending == 0 {
		return w.cut(ctx, meta.NumPending == 0)
	}
	return nil
}

func (w *worker) currentChunk() *chunk {
	if w.chunk == nil {
		w.chunk = &chunk{worker: w, msgs: map[uint64]jetstream.Msg{}}
	}
	return w.chunk
}

// apply decodes a message and applies it to the state; live applications count in the
// metrics. It fails for a message that is not a valid event, without applying it.
func (w *worker) apply(msg jetstream.Msg, meta *jetstream.MsgMetadata, live bool) (records.Batch, error) {
	e, err := w.decode(msg, meta)
	if err != nil {
		if live {
			w.metrics.undecodable.Inc()
		}
		return records.Batch{}, err
	}
	rows, oc := w.state.Apply(partition.Message{Seq: meta.Sequence.Stream, ReceivedAt: meta.Timestamp, Event: e})
	if live {
		w.metrics.events.WithLabelValues(string(e.Type)).Inc()
		if oc.Late {
			w.metrics.late.WithLabelValues(string(e.Type)).Inc()
		}
		if oc.Attributed {
			w.metrics.attribution.WithLabelValues("immediate").Inc()
		}
		if oc.Waiting {
			w.metrics.attribution.WithLabelValues("waiting").Inc()
		}
		if oc.LateAttributed > 0 {
			w.metrics.attribution.WithLabelValues("late").Add(float64(oc.LateAttributed))
		}
		if oc.Unattributed > 0 {
			w.metrics.attribution.WithLabelValues("unattributed").Add(float64(oc.Unattributed))
		}
		if outcome := followUpOutcome[oc.FollowUp]; outcome != "" {
			w.metrics.followUps.WithLabelValues(outcome).Inc()
		}
	}
	return rows, nil
}

// followUpOutcome names a follow-up verdict in cxlink_followup_decisions_total.
var followUpOutcome = map[followup.Verdict]string{followup.Opened: "opened", followup.SameTicket: "same_ticket", followup.Late: "late"}

// cut hands the current chunk, with the buckets its messages changed, to the writer.
// caughtUp: no message of the partition was pending after its last one.
func (w *worker) cut(ctx context.Context, caughtUp bool) error {
	c := w.chunk
	if c == nil {
		return nil
	}
	w.chunk = nil
	c.rows.Buckets = w.state.TakeBuckets()
	c.last = w.applied
	c.watermark = c.lastReceived
	if caughtUp {
		c.watermark = w.opts.Now()
	}
	w.mu.Lock()
	w.outstanding++
	w.mu.Unlock()
	select {
	case w.writer.in <- c:
		return nil
	case <-ctx.Done():
		w.chunkDone()
		return ctx.Err()
	case <-w.leaseLost():
		w.chunkDone()
		return nil
	}
}

// stored runs once the writer stored a chunk: the partition's progress moves to its last
// message, and a snapshot waiting for it is published.
func (w *worker) storedChunk(c *chunk) {
	w.mu.Lock()
	w.progress.Seq = max(w.progress.Seq, c.last)
	if c.watermark.After(w.progress.Watermark) {
		w.progress.Watermark = c.watermark
	}
	w.mu.Unlock()
	w.metrics.watermark.WithLabelValues(partLabel(w.id)).Set(float64(c.watermark.Unix()))
	w.chunkDone()
}

func (w *worker) chunkDone() {
	w.mu.Lock()
	w.outstanding--
	if w.outstanding == 0 {
		w.idle.Broadcast()
	}
	w.mu.Unlock()
}

// persist saves the progress (and publishes a snapshot whose sequence is now stored).
func (w *worker) persist(ctx context.Context) {
	if w.opts.Checkpoints == nil || !w.leaseValid() {
		return
	}
	w.mu.Lock()
	pr, saved := w.progress, w.persisted
	snap := w.snapshot
	if snap != nil && snap.Seq <= pr.Seq {
		w.snapshot = nil
	} else {
		snap = nil
	}
	w.mu.Unlock()
	if pr != saved {
		if err := w.opts.Checkpoints.Advance(ctx, w.id, pr); err != nil {
			w.logger.Warn("save progress", "err", err)
		} else {
			w.mu.Lock()
			w.persisted = pr
			w.mu.Unlock()
		}
	}
	if snap != nil {
		start := time.Now()
		if err := w.opts.Checkpoints.PutSnapshot(ctx, w.id, *snap); err != nil {
			w.logger.Warn("save snapshot", "err", err)
			return
		}
		w.metrics.snapshotBytes.WithLabelValues(partLabel(w.id)).Set(float64(len(snap.Data)))
		w.metrics.snapshotSaves.Observe(time.Since(start).Seconds())
	}
}

// tick reads the windows at t for the metrics, forgets what no later message or tick
// needs, and advances the watermark of an idle partition.
func (w *worker) tick(t time.Time) {
	w.state.Tick(t)
	w.metrics.rolling.update(w.id, w.state.Current)
	series, tickets, waiting := w.state.Size()
	part := partLabel(w.id)
	w.metrics.stateSize.WithLabelValues(part, "series").Set(float64(series))
	w.metrics.stateSize.WithLabelValues(part, "tickets").Set(float64(tickets))
	w.metrics.stateSize.WithLabelValues(part, "waiting_surveys").Set(float64(waiting))
	w.metrics.stateSize.WithLabelValues(part, "followup_tickets").Set(float64(w.state.FollowUpTickets()))
	w.mu.Lock()
	if w.chunk == nil && w.outstanding == 0 && w.ready.Load() && w.caughtUp {
		// Nothing applied is unstored, and the last message read left nothing pending:
		// everything received until about now is stored.
		if now := w.opts.Now().Add(-time.Second); now.After(w.progress.Watermark) {
			w.progress.Watermark = now
		}
	}
	w.mu.Unlock()
}

// takeSnapshot encodes the state as it is after the last applied message; it is
// published once that message's rows are stored.
func (w *worker) takeSnapshot() {
	if w.opts.Checkpoints == nil || !w.ready.Load() || w.applied == 0 {
		return
	}
	data, err := w.state.Snapshot()
	if err != nil {
		w.logger.Warn("encode snapshot", "err", err)
		return
	}
	w.mu.Lock()
	w.snapshot = &checkpoint.Snapshot{Seq: w.applied, Format: partition.SnapshotFormat,
		Config: w.state.ConfigFingerprint(), Data: data}
	w.mu.Unlock()
}

// finish stops cleanly: the last chunk goes to the writer, and once everything applied
// is stored the progress and a snapshot are saved.
func (w *worker) finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.DrainTimeout)
	defer cancel()
	if err := w.cut(ctx, false); err != nil {
		return nil
	}
	w.takeSnapshot()
	done := make(chan struct{})
	go func() {
		w.mu.Lock()
		for w.outstanding > 0 {
			w.idle.Wait()
		}
		w.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil
	case <-w.leaseLost():
		return nil
	}
	w.persist(ctx)
	return nil
}
