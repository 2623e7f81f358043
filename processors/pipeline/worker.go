package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/partition"
	"github.com/cxlink/cxlink/processors/records"
)

// worker owns one partition: its durable consumer, its state machine and its share of
// the writer's input. One goroutine runs it; only the in-flight table is shared with the
// writer's callbacks.
type worker struct {
	id      int
	cfg     Config
	opts    *Options
	state   *partition.State
	cons    jetstream.Consumer
	writer  *writer
	metrics *metrics
	logger  *slog.Logger

	// replayedTo is the partition's last stream sequence at start-up: every message up
	// to it was applied by the replay. applied is the highest sequence applied since.
	replayedTo, applied uint64

	mu sync.Mutex
	// inFlight holds, per unacked message applied by this process, its rows while they
	// are not yet handed to the writer (replayed messages awaiting their redelivery), or
	// nil once they are.
	inFlight map[uint64]*records.Batch
}

func (w *worker) subject() string { return stream.Subject(w.id) }

// start creates or updates the durable consumer and rebuilds the state from the stream.
func (w *worker) start(ctx context.Context, s jetstream.Stream) error {
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       fmt.Sprintf("processor-p%d", w.id),
		Description:   fmt.Sprintf("cxlink processor of partition %d", w.id),
		FilterSubject: w.subject(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		MaxAckPending: w.cfg.MaxAckPending,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("partition %d: consumer: %w", w.id, err)
	}
	w.cons = cons
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("partition %d: consumer info: %w", w.id, err)
	}
	start := time.Now()
	n, err := w.replay(ctx, s, info.AckFloor.Stream)
	if err != nil {
		return fmt.Errorf("partition %d: replay: %w", w.id, err)
	}
	w.logger.Info("partition ready", "replayed", n, "through_seq", w.replayedTo, "ack_floor", info.AckFloor.Stream, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// replayHorizon is how far back a message can still change a window or attribution.
func (w *worker) replayHorizon() time.Duration {
	return w.cfg.partitionConfig().Horizon() + w.opts.MaxFuture + w.cfg.Step
}

// replay applies the partition's messages from min(ackFloor+1, the first inside the
// replay horizon) through its last message, keeping the rows of those not yet acked.
func (w *worker) replay(ctx context.Context, s jetstream.Stream, ackFloor uint64) (int, error) {
	last, err := s.GetLastMsgForSubject(ctx, w.subject())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("last message: %w", err)
	}
	w.replayedTo = last.Sequence
	horizon := w.opts.Now().Add(-w.replayHorizon())
	if ackFloor >= last.Sequence && last.Time.Before(horizon) {
		return 0, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{w.subject()}}
	if last.Time.Before(horizon) {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, ackFloor+1
	} else {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &horizon
	}
	n := 0
	for {
		cons, err := s.OrderedConsumer(ctx, cfg)
		if err != nil {
			return n, fmt.Errorf("ordered consumer: %w", err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1000))
		if err != nil {
			return n, fmt.Errorf("replay messages: %w", err)
		}
		restartAt, err := w.replayFrom(it, ackFloor, cfg.DeliverPolicy == jetstream.DeliverByStartTimePolicy, &n)
		it.Stop()
		if err != nil || restartAt == 0 {
			return n, err
		}
		// Unacked messages older than the horizon: start again from the ack floor.
		cfg = jetstream.OrderedConsumerConfig{FilterSubjects: []string{w.subject()},
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: restartAt}
	}
}

// replayFrom applies messages up to replayedTo. When the first message read by time lies
// beyond ackFloor+1, it stops at once and returns the sequence to restart from.
func (w *worker) replayFrom(it jetstream.MessagesContext, ackFloor uint64, byTime bool, n *int) (restartAt uint64, err error) {
	first := true
	for {
		msg, err := it.Next()
		if err != nil {
			return 0, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, err
		}
		seq := meta.Sequence.Stream
		if first && byTime && seq > ackFloor+1 {
			return ackFloor + 1, nil
		}
		first = false
		if seq > w.replayedTo {
			return 0, nil
		}
		if rows, err := w.apply(msg, meta, false); err == nil && seq > ackFloor {
			w.inFlight[seq] = &rows
		}
		*n++
		w.metrics.replayed.Inc()
		if seq == w.replayedTo || meta.NumPending == 0 {
			return 0, nil
		}
	}
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
	}
	return rows, nil
}

// handle processes one delivered message.
func (w *worker) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("partition %d: metadata: %w", w.id, err)
	}
	seq := meta.Sequence.Stream
	if seq > max(w.replayedTo, w.applied) {
		w.applied = seq
		rows, err := w.apply(msg, meta, true)
		if err != nil {
			w.deadLetter(ctx, msg, seq, reasonInvalid, err.Error())
			return nil
		}
		w.mu.Lock()
		w.inFlight[seq] = nil
		w.mu.Unlock()
		return w.submit(ctx, w.item(msg, meta, rows))
	}
	// Applied already (by the replay, or a redelivery): its rows are written unless they
	// are on their way.
	if meta.NumDelivered > 1 {
		w.metrics.redeliveries.Inc()
	}
	w.mu.Lock()
	rows, known := w.inFlight[seq]
	if known && rows != nil {
		w.inFlight[seq] = nil
	}
	w.mu.Unlock()
	switch {
	case !known: // stored and acked (or dead-lettered) before; the ack was lost
		if _, err := w.decode(msg, meta); err != nil {
			w.deadLetter(ctx, msg, seq, reasonInvalid, err.Error())
			return nil
		}
		w.settle(msg.Ack(), seq)
		return nil
	case rows == nil: // its batch is on its way; that batch acks it
		return nil
	default:
		return w.submit(ctx, w.item(msg, meta, *rows))
	}
}

// item is what the writer gets for a message's rows.
func (w *worker) item(msg jetstream.Msg, meta *jetstream.MsgMetadata, rows records.Batch) item {
	seq := meta.Sequence.Stream
	return item{rows: rows, stored: w.storedFunc(msg, seq), poison: w.poisonFunc(msg, seq),
		partition: uint16(w.id), seq: seq, receivedAt: meta.Timestamp}
}

func (w *worker) storedFunc(msg jetstream.Msg, seq uint64) func() {
	return func() {
		w.mu.Lock()
		delete(w.inFlight, seq)
		w.mu.Unlock()
		w.settle(msg.Ack(), seq)
	}
}

// settle logs a failed ack or term: the message comes again and is settled then.
func (w *worker) settle(err error, seq uint64) {
	if err != nil {
		w.logger.Warn("ack failed; the message will be redelivered", "seq", seq, "err", err)
	}
}

func (w *worker) submit(ctx context.Context, it item) error {
	select {
	case w.writer.in <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tick writes the windows at t and refreshes this partition's metrics.
func (w *worker) tick(ctx context.Context, t time.Time) error {
	rows := w.state.Tick(t, uint64(w.opts.Now().UnixNano()))
	w.metrics.rolling.update(w.id, w.state.Current)
	series, tickets, waiting := w.state.Size()
	part := partLabel(w.id)
	w.metrics.stateSize.WithLabelValues(part, "series").Set(float64(series))
	w.metrics.stateSize.WithLabelValues(part, "tickets").Set(float64(tickets))
	w.metrics.stateSize.WithLabelValues(part, "waiting_surveys").Set(float64(waiting))
	if len(rows) == 0 {
		return nil
	}
	return w.submit(ctx, item{rows: records.Batch{Rollups: rows}})
}

// observe refreshes the consumer gauges and forgets replayed rows of messages the
// consumer has acked meanwhile (acked before the restart, out of order).
func (w *worker) observe(ctx context.Context) {
	info, err := w.cons.Info(ctx)
	if err != nil {
		w.logger.Warn("consumer info", "err", err)
		return
	}
	w.metrics.pending.WithLabelValues(partLabel(w.id)).Set(float64(info.NumPending))
	w.metrics.ackPending.WithLabelValues(partLabel(w.id)).Set(float64(info.NumAckPending))
	w.mu.Lock()
	for seq, rows := range w.inFlight {
		if seq <= info.AckFloor.Stream && rows != nil {
			delete(w.inFlight, seq)
		}
	}
	w.mu.Unlock()
}

// startTicks chooses the first tick to write: far enough back to rewrite every tick that
// messages still in flight may change, and back to where rollups stopped if this
// partition went unprocessed for a while (at most Backfill).
func (w *worker) startTicks(ctx context.Context) {
	step := w.cfg.Step
	now := w.opts.Now().Truncate(step)
	from := now.Add(-w.cfg.AllowedLateness - w.cfg.AttributionWait).Truncate(step)
	if w.opts.LastWindowEnd != nil {
		last, ok, err := w.opts.LastWindowEnd(ctx, uint16(w.id))
		switch {
		case err != nil:
			w.logger.Warn("cannot tell where rollups stopped; not backfilling missed ticks", "err", err)
		case ok && last.Add(step).Before(from):
			from = last.Add(step)
			if limit := now.Add(-w.cfg.Backfill); from.Before(limit) {
				from = limit
			}
		}
	}
	w.state.StartAt(from)
}

// run consumes the partition until ctx ends.
func (w *worker) run(ctx context.Context, ticks <-chan time.Time) error {
	it, err := w.cons.Messages(jetstream.PullMaxMessages(min(w.cfg.MaxAckPending, 1000)))
	if err != nil {
		return fmt.Errorf("partition %d: consume: %w", w.id, err)
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	go func() {
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				w.logger.Warn("consume", "err", err)
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
	}()
	observe := time.NewTicker(5 * time.Second)
	defer observe.Stop()
	w.observe(ctx)
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case msg := <-msgs:
			err = w.handle(ctx, msg)
		case t := <-ticks:
			err = w.tick(ctx, t)
		case <-observe.C:
			w.observe(ctx)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}
