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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/partition"
	"github.com/cxlink/cxlink/processors/records"
)

// Options are the pipeline's collaborators.
type Options struct {
	Stream     jetstream.Stream
	Partitions int // the stream's partition count
	Sink       Sink
	// DeadLetters keeps the messages that can never be processed; nil: they are only
	// logged and terminated.
	DeadLetters DeadLetters
	// LastWindowEnd, when set, tells where a partition's rollups stopped before a
	// restart, so that the ticks missed while down are written (up to Config.Backfill).
	LastWindowEnd func(ctx context.Context, partition uint16) (time.Time, bool, error)
	// MaxFuture is ingest's tolerance for occurred_at ahead of the clock.
	MaxFuture  time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Ticks, when set, drives the windows instead of the wall clock (tests).
	Ticks <-chan time.Time
	Now   func() time.Time
	// DrainTimeout bounds the final flush after ctx ends.
	DrainTimeout time.Duration
}

// Pipeline runs the processors of the partitions this process owns.
type Pipeline struct {
	cfg     Config
	opts    Options
	metrics *metrics
	workers []*worker
	writer  *writer
	ready   atomic.Bool
}

// New checks the configuration and prepares the pipeline; Run starts it.
func New(cfg Config, opts Options) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	owned, err := ParsePartitions(cfg.Partitions, opts.Partitions)
	if err != nil {
		return nil, fmt.Errorf("CXLINK_PROCESS_PARTITIONS: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	p := &Pipeline{cfg: cfg, opts: opts, metrics: newMetrics(opts.Registerer, cfg.MetricsMaxKeys)}
	p.writer = newWriter(opts.Sink, cfg, p.metrics, opts.Logger.With("component", "writer"))
	for _, id := range owned {
		p.workers = append(p.workers, &worker{
			id:       id,
			cfg:      cfg,
			opts:     &p.opts,
			state:    partition.New(uint16(id), cfg.partitionConfig()),
			writer:   p.writer,
			metrics:  p.metrics,
			logger:   opts.Logger.With("component", "processor", "partition", id),
			inFlight: make(map[uint64]*records.Batch),
		})
	}
	return p, nil
}

// Ready reports whether every owned partition has rebuilt its state and is consuming.
func (p *Pipeline) Ready() error {
	if !p.ready.Load() {
		return errors.New("processors are replaying the stream")
	}
	return nil
}

// Run replays, then consumes until ctx ends; then it stops pulling, lets the writer
// store and ack what was processed, and returns.
func (p *Pipeline) Run(ctx context.Context) error {
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	writerDone := make(chan struct{})
	var drained bool
	go func() {
		defer close(writerDone)
		drained = p.writer.run(drainCtx)
	}()
	defer func() {
		// Workers have returned: nothing sends any more.
		close(p.writer.in)
		t := time.AfterFunc(p.opts.DrainTimeout, cancelDrain)
		<-writerDone
		t.Stop()
		if drained {
			p.opts.Logger.Info("processors drained: every message taken is stored and acked")
		} else {
			p.opts.Logger.Warn("processors stopped before the last batch was stored; JetStream delivers its messages again")
		}
	}()

	for _, w := range p.workers {
		if err := w.start(ctx, p.opts.Stream); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting: nothing taken, nothing to report
			}
			return err
		}
		w.startTicks(ctx)
	}
	p.ready.Store(true)

	ticks := p.opts.Ticks
	if ticks == nil {
		t := newAlignedTicker(p.cfg.Step)
		defer t.stop()
		ticks = t.C
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(p.workers))
	tickChans := make([]chan time.Time, len(p.workers))
	for i, w := range p.workers {
		tickChans[i] = make(chan time.Time, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(ctx, tickChans[i]); err != nil && ctx.Err() == nil {
				errs <- err
			}
		}()
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case t := <-ticks:
				for _, ch := range tickChans {
					// A busy partition misses a tick; its next Tick covers both.
					select {
					case ch <- t:
					default:
					}
				}
			}
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		stop()
	}
	wg.Wait()
	return err
}

// alignedTicker ticks at every multiple of step on the wall clock.
type alignedTicker struct {
	C    chan time.Time
	done chan struct{}
}

func newAlignedTicker(step time.Duration) *alignedTicker {
	t := &alignedTicker{C: make(chan time.Time), done: make(chan struct{})}
	go func() {
		for {
			next := time.Now().Truncate(step).Add(step)
			select {
			case <-t.done:
				return
			case <-time.After(time.Until(next)):
			}
			select {
			case t.C <- next:
			case <-t.done:
				return
			}
		}
	}()
	return t
}

func (t *alignedTicker) stop() { close(t.done) }
