// Package app wires cxlink's components into its roles (run, ingest, process, migrate,
// simulate). main only turns signals into a context and calls Run, so that every role
// can also run inside a test.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/ingest/simulator"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// Options are what the caller provides: the environment and where output goes.
type Options struct {
	Environ        map[string]string
	Stdout, Stderr io.Writer
	// Ticks, when set, drives the rolling windows instead of the wall clock (tests).
	Ticks <-chan time.Time
	// Listening, when set, is called with the HTTP address once it accepts requests.
	Listening func(addr string)
}

const usage = `cxlink links customer and employee experience in real time.

Usage: cxlink <command> [flags]

Commands:
  run        all roles in one process; JetStream embedded unless NATS_URL is set
             (--simulate also runs the contact-centre simulator against it)
  ingest     the HTTP ingest API (needs NATS_URL)
  process    the processors and the ClickHouse sink (needs NATS_URL)
  drift      the drift detector over the rollups in ClickHouse (run one)
  migrate    apply the ClickHouse migrations and list them
  simulate   post a simulated contact centre's events to an ingest API
  report     print the effort-impact ranking and the EX–CX linkage (--format json)
  import     import a CSV or NDJSON export through an ingest API (cxlink import -h)
  deadletters  list, show, replay or discard the events that could never be processed
  token      make an API token for a source (its line goes into CXLINK_AUTH_FILE)
  alerts-receiver
             print the notifications Alertmanager sends to its webhooks

Configuration comes from the environment; see README.md for every variable.
`

// Run runs the command in args[0] until it ends or ctx is done.
func Run(ctx context.Context, args []string, opts Options) error {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(opts.Stdout, usage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	if cmd == "simulate" {
		return runSimulate(ctx, args, opts)
	}
	if cmd == "import" {
		return runImport(ctx, args, opts)
	}
	if cmd == "token" {
		return runToken(args, opts)
	}
	if cmd == "alerts-receiver" {
		return runAlertsReceiver(ctx, args, opts)
	}
	cfg, err := LoadConfig(opts.Environ)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(opts.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	for _, r := range cfg.Renamed {
		logger.Warn("a variable was renamed: its old name is read until the next release", "old", r.Old, "new", r.New)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := &roles{cfg: cfg, opts: opts, logger: logger, reg: reg}
	switch cmd {
	case "run":
		return r.run(ctx, args)
	case "ingest":
		return r.ingest(ctx)
	case "process":
		return r.process(ctx)
	case "drift":
		return r.drift(ctx)
	case "migrate":
		return r.migrate(ctx)
	case "report":
		return r.report(ctx, args)
	case "deadletters":
		return r.deadLettersCommand(ctx, args)
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}

type roles struct {
	cfg    Config
	opts   Options
	logger *slog.Logger
	reg    *prometheus.Registry
	pub    *stream.Publisher // see publisher
}

// jetStream connects to NATS (or starts the embedded server when allowed) and makes sure
// the stream exists. close releases both, in order.
func (r *roles) jetStream(ctx context.Context, role string, embed bool) (js jetstream.JetStream, s jetstream.Stream, nc *nats.Conn, close func(), err error) {
	closers := []func(){}
	close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			close()
		}
	}()
	if r.cfg.NATSURL == "" {
		if !embed {
			return nil, nil, nil, close, fmt.Errorf("NATS_URL is required for the %s role: only `cxlink run` embeds JetStream", role)
		}
		bcfg, err := r.cfg.NATS.embedded(r.cfg.Broker)
		if err != nil {
			return nil, nil, nil, close, err
		}
		srv, err := broker.Start(bcfg, r.logger.With("component", "broker"))
		if err != nil {
			return nil, nil, nil, close, err
		}
		closers = append(closers, srv.Shutdown)
		if nc, err = srv.Connect(nats.Name("cxlink-" + role)); err != nil {
			return nil, nil, nil, close, fmt.Errorf("connect to embedded nats: %w", err)
		}
	} else {
		logger := r.logger.With("component", "nats")
		secure, err := r.cfg.NATS.options()
		if err != nil {
			return nil, nil, nil, close, err
		}
		nc, err = nats.Connect(r.cfg.NATSURL, append(secure,
			nats.Name("cxlink-"+role),
			nats.MaxReconnects(-1),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { logger.Warn("disconnected", "err", err) }),
			nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("reconnected", "url", c.ConnectedUrlRedacted()) }),
		)...)
		if err != nil {
			return nil, nil, nil, close, fmt.Errorf("connect to %s: %w", redactURL(r.cfg.NATSURL), err)
		}
	}
	closers = append(closers, func() {
		// Acks are fire-and-forget publishes: flush them before the connection goes.
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			r.logger.Warn("flush nats before closing", "err", err)
		}
		nc.Close()
	})
	js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(r.cfg.HTTP.PublishTimeout),
		// A whole request's events may be in flight at once.
		jetstream.WithPublishAsyncMaxPending(max(4000, r.cfg.HTTP.MaxBatchEvents)))
	if err != nil {
		return nil, nil, nil, close, fmt.Errorf("jetstream: %w", err)
	}
	s, err = stream.Ensure(ctx, js, r.cfg.Stream, r.cfg.Process.DuplicateWindow(r.cfg.HTTP.MaxFuture))
	if err != nil {
		return nil, nil, nil, close, err
	}
	return js, s, nc, close, nil
}

// sink opens ClickHouse and migrates it, retrying while it is not reachable yet (it may
// still be starting next to us).
func (r *roles) sink(ctx context.Context) (*clickhouse.Client, error) {
	logger := r.logger.With("component", "clickhouse")
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		c, err := clickhouse.Open(ctx, r.cfg.ClickHouse, r.logger, r.reg)
		if err == nil {
			if err = c.Migrate(ctx); err == nil {
				return c, nil
			}
			c.Close()
		}
		logger.Warn("clickhouse not ready; retrying", "addr", r.cfg.ClickHouse.Addr, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("clickhouse at %s: %w", r.cfg.ClickHouse.Addr, err)
		case <-time.After(wait):
		}
	}
}

func (r *roles) ingestHandler(js jetstream.JetStream, nc *nats.Conn) (*httpapi.Handler, error) {
	guard, err := r.authGuard()
	if err != nil {
		return nil, err
	}
	return httpapi.New(r.cfg.HTTP, httpapi.Options{
		Publisher:  r.publisher(js),
		Ready:      natsReady(nc),
		Logger:     r.logger.With("component", "ingest"),
		Registerer: r.reg,
		Prepare:    r.pseudonymizer().Event,
		Guard:      guard,
	})
}

func natsReady(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("nats is %s", s)
		}
		return nil
	}
}

func (r *roles) ingest(ctx context.Context) error {
	js, _, nc, closeJS, err := r.jetStream(ctx, "ingest", false)
	if err != nil {
		return err
	}
	defer closeJS()
	h, err := r.ingestHandler(js, nc)
	if err != nil {
		return err
	}
	sources, err := r.sourceRoutes(js)
	if err != nil {
		return err
	}
	_, serve, err := r.listen(ctx, func(mux *http.ServeMux) { h.EventRoutes(mux); sources(mux) }, h.ProbeRoutes)
	if err != nil {
		return err
	}
	return serve()
}

func (r *roles) newPipeline(s jetstream.Stream, ch *clickhouse.Client, dlq pipeline.DeadLetters) (*pipeline.Pipeline, error) {
	return pipeline.New(r.cfg.Process, pipeline.Options{
		Stream:        s,
		Partitions:    r.cfg.Stream.Partitions,
		Sink:          ch,
		DeadLetters:   dlq,
		LastWindowEnd: ch.LastWindowEnd,
		MaxFuture:     r.cfg.HTTP.MaxFuture,
		Logger:        r.logger,
		Registerer:    r.reg,
		Ticks:         r.opts.Ticks,
	})
}

// processing is what the process and run roles share: JetStream (embedded when allowed),
// the dead-letter stream, ClickHouse, and the pipeline over them.
type processing struct {
	js    jetstream.JetStream
	nc    *nats.Conn
	ch    *clickhouse.Client
	p     *pipeline.Pipeline
	close func() // releases them, in reverse order
}

func (r *roles) processing(ctx context.Context, role string, embed bool) (*processing, error) {
	js, s, nc, closeJS, err := r.jetStream(ctx, role, embed)
	if err != nil {
		return nil, err
	}
	dlq, err := r.deadLetters(ctx, js)
	if err != nil {
		closeJS()
		return nil, err
	}
	ch, err := r.sink(ctx)
	if err != nil {
		closeJS()
		return nil, err
	}
	p, err := r.newPipeline(s, ch, dlq)
	if err != nil {
		ch.Close()
		closeJS()
		return nil, err
	}
	return &processing{js: js, nc: nc, ch: ch, p: p, close: func() { ch.Close(); closeJS() }}, nil
}

func (r *roles) process(ctx context.Context) error {
	pr, err := r.processing(ctx, "process", false)
	if err != nil {
		return err
	}
	defer pr.close()
	nc, ch, p := pr.nc, pr.ch, pr.p
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", readyz(natsReady(nc), func(context.Context) error { return p.Ready() }, ch.Ping))
	_, serve, err := r.serve(ctx, mux)
	if err != nil {
		return err
	}
	tasks, err := r.withAnalytics([]func(context.Context) error{p.Run, func(context.Context) error { return serve() }}, ch)
	if err != nil {
		return err
	}
	return runAll(ctx, tasks...)
}

func readyz(checks ...func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		for _, check := range checks {
			if err := check(req.Context()); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	}
}

func (r *roles) run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(r.opts.Stderr)
	simulate := fs.Bool("simulate", false, "also run the contact-centre simulator against this process")
	sim := simulatorFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := r.demoEmployeeKey(); err != nil {
		return err
	}
	pr, err := r.processing(ctx, "run", true)
	if err != nil {
		return err
	}
	defer pr.close()
	js, nc, ch, p := pr.js, pr.nc, pr.ch, pr.p
	h, err := r.ingestHandler(js, nc)
	if err != nil {
		return err
	}
	sources, err := r.sourceRoutes(js)
	if err != nil {
		return err
	}
	addr, serve, err := r.listen(ctx, func(mux *http.ServeMux) { h.EventRoutes(mux); sources(mux) }, h.ProbeRoutes)
	if err != nil {
		return err
	}
	tasks, err := r.withAnalytics([]func(context.Context) error{p.Run, func(context.Context) error { return serve() }}, ch)
	if err != nil {
		return err
	}
	stage, err := r.newDriftStage(ch)
	if err != nil {
		return err
	}
	tasks = append(tasks, stage.Run)
	if *simulate {
		cfg, err := sim.config()
		if err != nil {
			return err
		}
		cfg.Target = "http://" + addr
		tasks = append(tasks, func(ctx context.Context) error {
			_, err := simulator.Run(ctx, cfg, r.logger.With("component", "simulator"))
			return err
		})
	}
	return runAll(ctx, tasks...)
}

func (r *roles) migrate(ctx context.Context) error {
	c, err := clickhouse.Open(ctx, r.cfg.ClickHouse, r.logger, r.reg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Migrate(ctx); err != nil {
		return err
	}
	ms, err := c.Migrations(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.opts.Stdout, "database %s at %s:\n", r.cfg.ClickHouse.Database, r.cfg.ClickHouse.Addr)
	for _, m := range ms {
		fmt.Fprintf(r.opts.Stdout, "  %04d %-20s applied %s\n", m.Version, m.Name, m.AppliedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// runAll runs tasks until the first returns; then it cancels the others and waits for
// them. It returns every task's error, joined.
func runAll(ctx context.Context, tasks ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(tasks))
	for i, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			errs[i] = task(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// splitEnviron turns KEY=value pairs into a map.
func splitEnviron(pairs []string) map[string]string {
	m := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Environ is the process environment as a map, for Options.Environ.
func Environ(pairs []string) map[string]string { return splitEnviron(pairs) }
