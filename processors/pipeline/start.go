package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/processors/partition"
)

// begin rebuilds the partition's starting point and opens its ordered consumer there:
// the newest usable snapshot and the messages after it, or, without one, the messages
// of the replay horizon (from further back when rows of older messages are not stored
// yet). It returns how it started, for the log.
func (w *worker) begin(ctx context.Context) (jetstream.Consumer, string, error) {
	s := w.opts.Stream
	if cp := w.opts.Checkpoints; cp != nil {
		pr, _, err := cp.Progress(ctx, w.id)
		if err != nil {
			return nil, "", err
		}
		w.stored, w.progress, w.persisted = pr.Seq, pr, pr
	}
	last, err := s.GetLastMsgForSubject(ctx, w.subject())
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return nil, "", fmt.Errorf("last message: %w", err)
	default:
		w.readyAt = last.Sequence
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{w.subject()}}
	from, err := w.fromSnapshot(ctx)
	if err != nil {
		return nil, "", err
	}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
		w.checkGap(ctx, from)
		cons, err := s.OrderedConsumer(ctx, cfg)
		if err != nil {
			return nil, "", fmt.Errorf("ordered consumer: %w", err)
		}
		return cons, fmt.Sprintf("snapshot at seq %d", from-1), nil
	}
	start, err := w.replayStart(ctx)
	if err != nil {
		return nil, "", err
	}
	cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	if w.stored > 0 {
		w.checkGap(ctx, w.stored+1)
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("ordered consumer: %w", err)
	}
	return cons, "replay from " + start.UTC().Format(time.RFC3339), nil
}

// fromSnapshot restores the newest snapshot and returns the sequence to read from, or 0
// when there is none to use: none saved, made with another format or configuration, or
// ahead of the stored progress (its messages' rows might not all be stored).
func (w *worker) fromSnapshot(ctx context.Context) (uint64, error) {
	cp := w.opts.Checkpoints
	if cp == nil {
		return 0, nil
	}
	snap, ok, err := cp.Snapshot(ctx, w.id)
	if err != nil {
		w.logger.Warn("read snapshot; replaying instead", "err", err)
		w.metrics.snapshotLoads.WithLabelValues("error").Inc()
		return 0, nil
	}
	if !ok {
		w.metrics.snapshotLoads.WithLabelValues("none").Inc()
		return 0, nil
	}
	if snap.Format != partition.SnapshotFormat || snap.Config != w.state.ConfigFingerprint() || snap.Seq > w.stored {
		w.logger.Info("snapshot not usable; replaying instead", "format", snap.Format, "config", snap.Config, "seq", snap.Seq, "stored_seq", w.stored)
		w.metrics.snapshotLoads.WithLabelValues("mismatch").Inc()
		return 0, nil
	}
	state, err := partition.Restore(uint16(w.id), w.cfg.partitionConfig(), snap.Data)
	if err != nil {
		w.logger.Warn("decode snapshot; replaying instead", "err", err)
		w.metrics.snapshotLoads.WithLabelValues("error").Inc()
		return 0, nil
	}
	w.state = state
	w.applied = snap.Seq
	w.metrics.snapshotLoads.WithLabelValues("ok").Inc()
	return snap.Seq + 1, nil
}

// replayStart is where a replay without snapshot starts: the replay horizon, so that the
// windows the metrics read are whole, or earlier when the first message whose rows are not
// stored is older; and a change horizon before that, so that every bucket such a message
// changes holds all its earlier responses.
func (w *worker) replayStart(ctx context.Context) (time.Time, error) {
	now := w.opts.Now()
	start := now.Add(-w.cfg.ReplayHorizon(w.opts.MaxFuture))
	next, err := w.opts.Stream.GetMsg(ctx, w.stored+1, jetstream.WithGetMsgSubject(w.subject()))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return time.Time{}, fmt.Errorf("first unstored message: %w", err)
	case next.Time.Before(start):
		start = next.Time
	}
	return start.Add(-w.cfg.partitionConfig().ChangeHorizon() - w.opts.MaxFuture), nil
}

// checkGap warns when the stream no longer starts at or before from: messages the
// partition had not processed may have been removed (the stream's max age or size).
func (w *worker) checkGap(ctx context.Context, from uint64) {
	info, err := w.opts.Stream.Info(ctx)
	if err != nil || info.State.FirstSeq <= from {
		return
	}
	w.logger.Error("the stream no longer holds every message after this partition's progress: events may be lost",
		"from_seq", from, "stream_first_seq", info.State.FirstSeq)
	w.metrics.gaps.Inc()
}
