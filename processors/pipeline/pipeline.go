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

	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/lease"
)

// Checkpoints keeps where each partition stands (processors/checkpoint is one).
type Checkpoints interface {
	Progress(ctx context.Context, p int) (checkpoint.Progress, bool, error)
	Advance(ctx context.Context, p int, pr checkpoint.Progress) error
	Snapshot(ctx context.Context, p int) (checkpoint.Snapshot, bool, error)
	PutSnapshot(ctx context.Context, p int, s checkpoint.Snapshot) error
}

// Options are the pipeline's collaborators.
type Options struct {
	Stream     jetstream.Stream
	Partitions int // the stream's partition count
	Sink       Sink
	// DeadLetters keeps the messages that can never be processed; nil: they are only
	// logged and skipped.
	DeadLetters DeadLetters
	// Checkpoints keeps progress and snapshots; nil: every start replays from the
	// replay horizon and writes every row again.
	Checkpoints Checkpoints
	// Assign decides which partitions this process runs (processors/lease); nil: the
	// partitions of Config.Partitions, without leases.
	Assign <-chan lease.Change
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
	static  []int // the partitions to run without leases
	metrics *metrics
	writer  *writer

	mu      sync.Mutex
	running map[int]*running
	started atomic.Bool
}

type running struct {
	w    *worker
	stop context.CancelFunc // stops it cleanly: flush, snapshot
	done chan struct{}
}

// New checks the configuration and prepares the pipeline; Run starts it.
func New(cfg Config, opts Options) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	static, err := cfg.Partitions.Of(opts.Partitions)
	if err != nil {
		return nil, fmt.Errorf("CXLINK_PROCESS_PARTITIONS: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	p := &Pipeline{cfg: cfg, opts: opts, static: static, running: map[int]*running{},
		metrics: newMetrics(opts.Registerer, cfg.MetricsMaxKeys)}
	p.writer = newWriter(opts.Sink, cfg, p.metrics, opts.Logger.With("component", "writer"))
	return p, nil
}

// Ready reports whether every partition this process runs has rebuilt its state and
// caught up with the stream as it was when the partition started.
func (p *Pipeline) Ready() error {
	if !p.started.Load() {
		return errors.New("processors are starting")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, r := range p.running {
		if !r.w.ready.Load() {
			return fmt.Errorf("partition %d is replaying the stream", id)
		}
	}
	return nil
}

// Owned lists the partitions this process runs now.
func (p *Pipeline) Owned() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.running))
	for id := range p.running {
		out = append(out, id)
	}
	return out
}

// Run processes partitions until ctx ends: the static ones, or those Assign grants,
// stopping each when its lease is lost or it is to be handed over. At the end every
// partition stores what it applied, publishes a snapshot and stops.
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
			p.opts.Logger.Info("processors drained: every message applied is stored")
		} else {
			p.opts.Logger.Warn("processors stopped before the last batch was stored; the next owner writes it again")
		}
	}()

	ticks := p.opts.Ticks
	if ticks == nil {
		t := newAlignedTicker(p.cfg.Step)
		defer t.stop()
		ticks = t.C
	}
	errs := make(chan error, 1)
	// Workers stop with stopAll on the way out, after the loop below: each gets a
	// context of its own, so that ctx ending lets them drain instead of dropping work.
	base := context.WithoutCancel(ctx)
	if p.opts.Assign == nil {
		for _, id := range p.static {
			p.start(base, id, nil, errs)
		}
	}
	p.started.Store(true)
	defer p.stopAll(drainCtx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case t := <-ticks:
			p.broadcast(t)
		case c := <-p.opts.Assign:
			switch {
			case c.Lease != nil:
				p.start(base, c.Partition, c.Lease, errs)
			case c.Release != nil:
				go func() {
					p.stop(drainCtx, c.Partition)
					c.Release()
				}()
			}
		}
	}
}

// start runs a worker for partition id; a nil lease never expires.
func (p *Pipeline) start(base context.Context, id int, l *lease.Lease, errs chan<- error) {
	p.mu.Lock()
	if old := p.running[id]; old != nil {
		p.mu.Unlock()
		<-old.done // a lost lease taken again: let the old worker finish first
		p.mu.Lock()
	}
	w := newWorker(id, p, l)
	ctx, stop := context.WithCancel(base)
	r := &running{w: w, stop: stop, done: make(chan struct{})}
	p.running[id] = r
	p.mu.Unlock()
	p.metrics.owned.WithLabelValues(partLabel(id)).Set(1)
	go func() {
		defer close(r.done)
		defer p.forget(id, r)
		err := w.run(ctx)
		if err != nil && ctx.Err() == nil && w.leaseValid() {
			select {
			case errs <- fmt.Errorf("partition %d: %w", id, err):
			default:
			}
		}
	}()
}

func (p *Pipeline) forget(id int, r *running) {
	p.mu.Lock()
	if p.running[id] == r {
		delete(p.running, id)
	}
	p.mu.Unlock()
	p.metrics.forget(id)
}

// stop stops partition id cleanly and waits for it (at most until ctx ends).
func (p *Pipeline) stop(ctx context.Context, id int) {
	p.mu.Lock()
	r := p.running[id]
	p.mu.Unlock()
	if r == nil {
		return
	}
	r.stop()
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}

func (p *Pipeline) stopAll(ctx context.Context) {
	p.mu.Lock()
	all := make([]*running, 0, len(p.running))
	for _, r := range p.running {
		all = append(all, r)
	}
	p.mu.Unlock()
	for _, r := range all {
		r.stop()
	}
	for _, r := range all {
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
}

// broadcast hands a tick to every worker; a busy one misses it, and its next tick
// covers both.
func (p *Pipeline) broadcast(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.running {
		select {
		case r.w.ticks <- t:
		default:
		}
	}
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
