package followup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
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
	// FollowUpCounts counts each owner's cases that are not closed, and those of them
	// due before now.
	FollowUpCounts(ctx context.Context, now time.Time) ([]OwnerCount, error)
}

// OwnerCount is where an owner's cases stand.
type OwnerCount struct {
	Owner         string
	Open, Overdue uint64
}

// countEvery is how often the stage counts the open and overdue cases.
const countEvery = 15 * time.Second

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
	notes    *prometheus.CounterVec // Zendesk notes; nil: off
	loop     *loopMetrics
	maxRows  int
}

// loopMetrics say how the loop is doing: exported by the stage's holder only.
type loopMetrics struct {
	open, overdue  *prometheus.GaugeVec
	toAck, toClose *prometheus.HistogramVec
	closed         *prometheus.CounterVec
	lastCount      prometheus.Gauge
}

// loopBuckets: from a minute to a week.
var loopBuckets = []float64{60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400}

func newLoopMetrics(reg prometheus.Registerer) *loopMetrics {
	m := &loopMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_followup_open_cases",
			Help: "Follow-up cases not closed yet (open or acknowledged), by owner.",
		}, []string{"owner"}),
		overdue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_followup_overdue_cases",
			Help: "Follow-up cases not closed and past their due time, by owner.",
		}, []string{"owner"}),
		toAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cxlink_followup_time_to_acknowledge_seconds",
			Help:    "From a case's opening to its acknowledgement (or its closing, when it was closed unacknowledged), by owner.",
			Buckets: loopBuckets,
		}, []string{"owner"}),
		toClose: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cxlink_followup_time_to_close_seconds",
			Help:    "From a case's opening to its closing, by owner.",
			Buckets: loopBuckets,
		}, []string{"owner"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_followup_closed_total",
			Help: "Follow-up cases closed, by owner, reason and whether before their due time (within_due=true|false).",
		}, []string{"owner", "reason", "within_due"}),
		lastCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cxlink_followup_counted_timestamp_seconds",
			Help: "When the open and overdue cases were last counted (the follow-up stage runs here).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.overdue, m.toAck, m.toClose, m.closed, m.lastCount)
	}
	return m
}

// since is the seconds from a to b, at least 0: changes are stamped in whole seconds of
// the API's clock, openings with the stream's.
func since(a, b time.Time) float64 { return max(0, b.Sub(a).Seconds()) }

// observe counts a change of a case read from the stream.
func (m *loopMetrics) observe(h nats.Header, c *records.FollowUp) {
	switch h.Get(HeaderChange) {
	case records.FollowUpAcknowledged:
		m.toAck.WithLabelValues(c.Owner).Observe(since(c.OpenedAt, c.AcknowledgedAt))
	case records.FollowUpClosed:
		if h.Get(HeaderAcknowledgedOnClose) == "true" {
			m.toAck.WithLabelValues(c.Owner).Observe(since(c.OpenedAt, c.AcknowledgedAt))
		}
		m.toClose.WithLabelValues(c.Owner).Observe(since(c.OpenedAt, c.ClosedAt))
		within := "true"
		if c.ClosedAt.After(c.DueAt) {
			within = "false"
		}
		m.closed.WithLabelValues(c.Owner, c.CloseReason, within).Inc()
	}
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
	if opts.Settings.Zendesk != nil {
		s.notes = newNoteMetrics(opts.Registerer)
	}
	s.loop = newLoopMetrics(opts.Registerer)
	return s
}

// count exports the open and overdue cases per owner every countEvery until ctx ends.
func (s *Stage) count(ctx context.Context) error {
	t := time.NewTicker(countEvery)
	defer t.Stop()
	defer func() {
		// A standby exports nothing: the holder's figures are the ones.
		s.loop.open.Reset()
		s.loop.overdue.Reset()
	}()
	for {
		now := time.Now()
		counts, err := s.opts.Store.FollowUpCounts(ctx, now)
		if err != nil && ctx.Err() == nil {
			s.errors.Inc()
			s.logger.Warn("count follow-ups", "err", err)
		} else if err == nil {
			s.loop.open.Reset()
			s.loop.overdue.Reset()
			for _, c := range counts {
				s.loop.open.WithLabelValues(c.Owner).Set(float64(c.Open))
				s.loop.overdue.WithLabelValues(c.Owner).Set(float64(c.Overdue))
			}
			s.loop.lastCount.Set(float64(now.Unix()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Run writes the follow-up stream's changes to the table and delivers new cases until
// ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	tasks := []func(context.Context) error{s.store, s.count}
	if s.delivery != nil {
		d := &deliverer{s: s.opts.Settings, stream: s.opts.Stream, history: s.opts.History, client: s.opts.Client,
			logger: s.logger, now: time.Now, limits: map[string][]time.Time{}, metrics: s.delivery}
		tasks = append(tasks, d.run)
	}
	if s.notes != nil {
		n := &noter{z: s.opts.Settings.Zendesk, retryMax: s.opts.Settings.RetryMax, stream: s.opts.Stream, client: s.opts.Client,
			logger: s.logger, outcomes: s.notes}
		tasks = append(tasks, n.run)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(tasks))
	for _, task := range tasks {
		go func() { errs <- task(ctx) }()
	}
	var all []error
	for range tasks {
		all = append(all, <-errs)
		cancel() // one ends: the stage ends, and its lease's next holder carries on
	}
	return errors.Join(all...)
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
			pause(ctx, time.Second)
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
			s.loop.observe(msg.Headers(), &c)
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
