package app

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/cxlink/cxlink/processors/drift"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// driftTask is the drift detector over the rollups in ClickHouse, run while this process
// holds the stage's lease; otherwise it stands by.
func (r *roles) driftTask(ch *clickhouse.Client, defs *definitions, leases *lease.Manager) (func(context.Context) error, error) {
	stage, err := drift.New(r.cfg.Drift, drift.Options{
		Source:     ch,
		Sink:       ch,
		Windows:    r.cfg.Process.Windows,
		Step:       r.cfg.Process.Step,
		Pulses:     r.cfg.Pulses,
		MaxKeys:    r.cfg.Process.MetricsMaxKeys,
		Logger:     r.logger,
		Registerer: r.reg,
		Watermarks: func(ctx context.Context) ([]time.Time, error) {
			return defs.checkpoints.Watermarks(ctx, defs.info.Partitions)
		},
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		return leases.Singleton(ctx, "drift", func(ctx context.Context, l *lease.Lease) error {
			return stage.Run(ctx, l.Token())
		})
	}, nil
}

// drift runs the drift detector alone: run two or more for a standby, next to the
// processors.
func (r *roles) drift(ctx context.Context) error {
	_, defs, nc, closeJS, err := r.jetStream(ctx, "drift", false)
	if err != nil {
		return err
	}
	defer closeJS()
	ch, err := r.sink(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	leases, err := lease.Open(ctx, defs.leases, r.cfg.Leases, r.logger, r.reg)
	if err != nil {
		return err
	}
	task, err := r.driftTask(ch, defs, leases)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", readyz(natsReady(nc), ch.Ping))
	_, serve, err := r.serve(ctx, mux)
	if err != nil {
		return err
	}
	return runAll(ctx, leases.Run, task, func(ctx context.Context) error { return serve() })
}
