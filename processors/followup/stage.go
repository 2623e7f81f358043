package followup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/records"
)

// Store keeps the followups table.
type Store interface {
	// FollowUpsStoredThrough is the highest follow-up stream sequence whose row is
	// stored (0: none).
	FollowUpsStoredThrough(ctx context.Context) (uint64, error)
	// WriteFollowUps stores rows; writing one again is harmless (it carries its
	// version).
	WriteFollowUps(ctx context.Context, rows []records.FollowUp) error
}

// StageOptions are the stage's collaborators.
type StageOptions struct {
	Settings *Settings
	Stream   jetstream.Stream // the follow-up stream
	Store    Store
	History  History // the customers' earlier answers, sent with a case; nil: none
	// Client posts deliveries; nil: a client with a 20s timeout.
	Client     *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Stage reads the follow-up stream in order and writes every change of every case to
// the followups table, each row versioned by its message's sequence: whoever writes it
// writes the same row, so a second runner or a restart changes nothing. With webhooks
// configured it also delivers each new case to its owner (through a durable consumer:
// see DeliveryConsumer). Run it while holding the stage's lease: the per-owner rate
// limits hold for one deliverer.
type Stage struct {
	opts     StageOptions
	logger   *slog.Logger
	stored   prometheus.Counter
	errors   prometheus.Counter
	delivery *deliveryMetrics
	maxRows  int
}

// NewStage returns the stage; Run runs it.
func NewStage(opts StageOptions) *Stage {
	s := &Stage{opts: opts, logger: opts.Logger.With("component", "followups"), maxRows: 1000}
	s.stored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cxlink_followup_changes_stored_total",
		Help: "Changes of follow-up cases (opened, acknowledged, closed) written to the followups table.",
	})
	s.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cxlink_followup_store_errors_total",
		Help: "Failed writes of follow-up rows to ClickHouse (retried).",
	})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.stored, s.errors)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 20 * time.Second}
		s.opts.Client = opts.Client
	}
	if len(opts.Settings.Webhooks) > 0 {
		s.delivery = newDeliveryMetrics(opts.Registerer)
	}
	return s
}

// Run writes the follow-up stream's changes to the table and delivers new cases until
// ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	if s.delivery == nil {
		return s.store(ctx)
	}
	d := &deliverer{s: s.opts.Settings, stream: s.opts.Stream, history: s.opts.History, client: s.opts.Client,
		logger: s.logger, now: time.Now, limits: map[string][]time.Time{}, metrics: s.delivery}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- s.store(ctx) }()
	go func() { errs <- d.run(ctx) }()
	err := <-errs
	cancel()
	return errors.Join(err, <-errs)
}

// store writes the follow-up stream's changes to the table until ctx ends, from the
// first change not stored yet.
func (s *Stage) store(ctx context.Context) error {
	var from uint64
	if err := s.retry(ctx, "read stored follow-ups", func() (err error) {
		from, err = s.opts.Store.FollowUpsStoredThrough(ctx)
		return err
	}); err != nil {
		return nil // ctx ended
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from+1
	}
	cons, err := s.opts.Stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", StreamName, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.maxRows))
	if err != nil {
		return fmt.Errorf("read %s: %w", StreamName, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var rows []records.FollowUp
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.logger.Warn("read follow-ups", "err", err)
			continue
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow-up metadata: %w", err)
		}
		c, err := Decode(msg.Data())
		if err != nil {
			// Only cxlink publishes here; a message it cannot read is skipped, loudly.
			s.logger.Error("skipping an unreadable follow-up message", "seq", meta.Sequence.Stream, "err", err)
		} else {
			c.Version = meta.Sequence.Stream
			rows = append(rows, c)
		}
		if len(rows) > 0 && (meta.NumPending == 0 || len(rows) >= s.maxRows) {
			if err := s.retry(ctx, "write follow-ups", func() error { return s.opts.Store.WriteFollowUps(ctx, rows) }); err != nil {
				return nil
			}
			s.stored.Add(float64(len(rows)))
			rows = rows[:0]
		}
	}
}

// retry runs f until it succeeds or ctx ends (its error), with capped back-off.
func (s *Stage) retry(ctx context.Context, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		s.errors.Inc()
		s.logger.Warn(what+"; retrying", "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
