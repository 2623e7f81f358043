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

	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/ingest/labels"
	"github.com/cxlink/cxlink/ingest/pins"
	"github.com/cxlink/cxlink/ingest/simulator"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/lease"
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
  followups  list the follow-up cases not closed yet, overdue first (--owner, --overdue, --format json)
  token      make an API token for a source (its line goes into CXLINK_AUTH_FILE)
  alerts-receiver
             print the notifications Alertmanager sends to its webhooks, and the
             follow-up cases posted to it (checked with CXLINK_FOLLOWUP_WEBHOOK_SECRET)

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
	role := map[string]func(context.Context) error{
		"run": func(ctx context.Context) error { return r.run(ctx, args) }, "ingest": r.ingest,
		"process": r.process, "drift": r.drift,
	}[cmd]
	if role != nil {
		err := role(ctx)
		if errors.Is(err, errStoppedStarting) {
			logger.Info("stopped while starting", "reason", err)
			return nil // a stop before anything was taken on is a clean exit
		}
		return err
	}
	switch cmd {
	case "migrate":
		return r.migrate(ctx)
	case "report":
		return r.report(ctx, args)
	case "deadletters":
		return r.deadLettersCommand(ctx, args)
	case "followups":
		return r.followUpsCommand(ctx, args)
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}

// errStoppedStarting is returned by a role stopped (ctx done) while it waits for NATS or
// ClickHouse at start: nothing was taken on yet, so its stop is clean.
var errStoppedStarting = errors.New("stopped while waiting at start")

type roles struct {
	cfg    Config
	opts   Options
	logger *slog.Logger
	reg    *prometheus.Registry
	pub    *stream.Publisher // see publisher
	// noAtomic: the stream does not take atomic batches (a server before 2.12 drops
	// the setting), so the publisher sends each event on its own.
	noAtomic bool
}

// jetStream connects to NATS (or starts the embedded server when allowed) and defines or
// looks up the stream and the objects next to it: the embedded server's process owns
// their definitions, every other role only checks them (docs/partitions.md). close
// releases everything, in order.
func (r *roles) jetStream(ctx context.Context, role string, embed bool) (js jetstream.JetStream, defs *definitions, nc *nats.Conn, close func(), err error) {
	return r.connect(ctx, role, embed, false)
}

// definitionsTimeout bounds how long a role waits for the stream and its buckets to be
// usable at start.
const definitionsTimeout = 2 * time.Minute

// connect is jetStream; define makes this role the owner of the definitions (`cxlink
// migrate`), as the embedded server's process always is.
func (r *roles) connect(ctx context.Context, role string, embed, define bool) (js jetstream.JetStream, defs *definitions, nc *nats.Conn, close func(), err error) {
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
	started := time.Now()
	embedded := r.cfg.NATSURL == ""
	if embedded {
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
	// Roles starting together on a new cluster create the stream and its buckets at the
	// same moment, and a replicated one takes a moment to elect its leader: try again for
	// a while, unless the stream disagrees with this configuration.
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		if embedded || define {
			defs, err = r.defineNATS(ctx, js)
		} else {
			defs, err = r.openNATS(ctx, js)
		}
		if err == nil {
			break
		}
		if _, mismatch := errors.AsType[*stream.MismatchError](err); mismatch || time.Since(started) > definitionsTimeout {
			return nil, nil, nil, close, err
		}
		r.logger.Warn("stream and buckets not ready; trying again", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, nil, close, fmt.Errorf("%w: %w", errStoppedStarting, err)
		case <-time.After(wait):
		}
	}
	if !defs.stream.CachedInfo().Config.AllowAtomicPublish {
		r.noAtomic = true
		r.logger.Warn("the NATS server does not take atomic batches (nats-server 2.12 or newer does): every event is published on its own, with a sync each where the server syncs always",
			"server_version", nc.ConnectedServerVersion())
	}
	return js, defs, nc, close, nil
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
			return nil, fmt.Errorf("%w: clickhouse at %s: %w", errStoppedStarting, r.cfg.ClickHouse.Addr, err)
		case <-time.After(wait):
		}
	}
}

// ingestRoutes builds the routes that take events: POST /v1/events and the vendor
// webhooks, on one admission path (ingest/admit), and the probes. task keeps the
// credentials file watched while ingest serves.
func (r *roles) ingestRoutes(js jetstream.JetStream, defs *definitions, nc *nats.Conn) (events, probes func(*http.ServeMux), task func(context.Context) error, err error) {
	logger := r.logger.With("component", "ingest")
	adm, err := admit.New(r.cfg.HTTP.Admission(), admit.Options{
		Publisher:  r.publisher(js, defs),
		Labels:     labels.NewKV(defs.labelValues),
		Pins:       pins.NewKV(defs.pinned),
		Prepare:    r.preparePulse(),
		Logger:     logger,
		Registerer: r.reg,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	on, off := r.cfg.Sources.adapters()
	authn, err := r.authenticator(on)
	if err != nil {
		return nil, nil, nil, err
	}
	h, err := httpapi.New(r.cfg.HTTP, httpapi.Options{
		Admission:  adm,
		Auth:       authn,
		Ready:      natsReady(nc),
		Logger:     logger,
		Registerer: r.reg,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	sources, err := r.sourceRoutes(adm, on, off)
	if err != nil {
		return nil, nil, nil, err
	}
	// Without credentials there is nothing to watch; the task still runs until the end,
	// since runAll stops every task once one returns.
	task = func(ctx context.Context) error { <-ctx.Done(); return nil }
	if authn != nil {
		task = authn.Run
	}
	followUps := r.followUpRoutes(js, defs, authn)
	return func(mux *http.ServeMux) { h.EventRoutes(mux); sources(mux); followUps(mux) }, h.ProbeRoutes, task, nil
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
	js, defs, nc, closeJS, err := r.jetStream(ctx, "ingest", false)
	if err != nil {
		return err
	}
	defer closeJS()
	events, probes, watch, err := r.ingestRoutes(js, defs, nc)
	if err != nil {
		return err
	}
	_, serve, err := r.listen(ctx, events, probes)
	if err != nil {
		return err
	}
	return runAll(ctx, func(context.Context) error { return serve() }, watch)
}

// processing is what the process and run roles share: JetStream (embedded when allowed),
// its definitions, ClickHouse, the leases, and the pipeline over them.
type processing struct {
	js     jetstream.JetStream
	nc     *nats.Conn
	defs   *definitions
	ch     *clickhouse.Client
	leases *lease.Manager
	p      *pipeline.Pipeline
	close  func() // releases them, in reverse order
}

func (r *roles) processing(ctx context.Context, role string, embed bool) (pr *processing, err error) {
	js, defs, nc, closeJS, err := r.jetStream(ctx, role, embed)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeJS()
		}
	}()
	ch, err := r.sink(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ch.Close()
		}
	}()
	ws := r.cfg.Process.Windows
	if err := ch.WriteWindows(ctx, r.cfg.Process.Step, ws); err != nil {
		return nil, err
	}
	leases, err := lease.Open(ctx, defs.leases, r.cfg.Leases, r.logger, r.reg)
	if err != nil {
		return nil, err
	}
	opts := pipeline.Options{
		Stream:      defs.stream,
		Partitions:  defs.info.Partitions,
		Sink:        r.processSink(js, defs, ch),
		DeadLetters: defs.deadLetters,
		Checkpoints: defs.checkpoints,
		MaxFuture:   r.cfg.HTTP.MaxFuture,
		Logger:      r.logger,
		Registerer:  r.reg,
		Ticks:       r.opts.Ticks,
	}
	if !r.cfg.LeasesOff {
		var only []int
		if !r.cfg.Process.Partitions.All() {
			var err error
			if only, err = r.cfg.Process.Partitions.Of(defs.info.Partitions); err != nil {
				return nil, fmt.Errorf("CXLINK_PROCESS_PARTITIONS: %w", err)
			}
		}
		opts.Assign = leases.Partitions(defs.info.Partitions, only)
	} else {
		r.logger.Warn("CXLINK_LEASES_OFF: running partitions without leases; another process may run them too")
	}
	pcfg := r.cfg.Process
	if fu := r.followUps(); fu.On() {
		pcfg.FollowUps = fu
	}
	p, err := pipeline.New(pcfg, opts)
	if err != nil {
		return nil, err
	}
	return &processing{js: js, nc: nc, defs: defs, ch: ch, leases: leases, p: p, close: func() { ch.Close(); closeJS() }}, nil
}

// tasks are what every processing role runs: the leases, the pipeline, the follow-up
// stage when answers open cases, and the analytics stage when this process may hold it.
func (pr *processing) tasks(r *roles) ([]func(context.Context) error, error) {
	tasks := []func(context.Context) error{pr.leases.Run, pr.p.Run}
	if pr.defs.followUps != nil {
		tasks = append(tasks, r.followUpTask(pr.defs, pr.ch, pr.leases))
	}
	return r.withAnalytics(tasks, pr.ch, pr.defs, pr.leases)
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
	tasks, err := pr.tasks(r)
	if err != nil {
		return err
	}
	return runAll(ctx, append(tasks, func(context.Context) error { return serve() })...)
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
	js, nc, ch := pr.js, pr.nc, pr.ch
	events, probes, watch, err := r.ingestRoutes(js, pr.defs, nc)
	if err != nil {
		return err
	}
	addr, serve, err := r.listen(ctx, events, probes)
	if err != nil {
		return err
	}
	tasks, err := pr.tasks(r)
	if err != nil {
		return err
	}
	drift, err := r.driftTask(ch, pr.defs, pr.leases)
	if err != nil {
		return err
	}
	tasks = append(tasks, func(context.Context) error { return serve() }, watch, drift)
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
	if r.cfg.NATSURL == "" {
		fmt.Fprintln(r.opts.Stdout, "NATS: NATS_URL is not set; `cxlink run` defines its embedded server's stream itself")
		return nil
	}
	return r.migrateNATS(ctx)
}

// migrateNATS creates or updates the stream and the objects next to it to this
// configuration: the one place where they change.
func (r *roles) migrateNATS(ctx context.Context) error {
	_, defs, _, closeJS, err := r.connect(ctx, "migrate", false, true)
	if err != nil {
		return err
	}
	defer closeJS()
	fmt.Fprintf(r.opts.Stdout, "NATS at %s: stream %s (%d partitions, %d replicas), dead letters, lease and progress buckets, snapshot store defined\n",
		redactURL(r.cfg.NATSURL), stream.Name, defs.info.Partitions, defs.info.Replicas)
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
