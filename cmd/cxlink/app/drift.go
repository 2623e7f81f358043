package app

import (
	"context"
	"io"
	"net/http"

	"github.com/cxlink/cxlink/processors/drift"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// newDriftStage prepares the drift detector over the rollups in ClickHouse.
func (r *roles) newDriftStage(ch *clickhouse.Client) (*drift.Stage, error) {
	return drift.New(r.cfg.Drift, drift.Options{
		Source:     ch,
		Sink:       ch,
		Windows:    r.cfg.Process.Windows,
		Step:       r.cfg.Process.Step,
		Pulses:     r.cfg.Pulses,
		MaxKeys:    r.cfg.Process.MetricsMaxKeys,
		Logger:     r.logger,
		Registerer: r.reg,
	})
}

// drift runs the drift detector alone: one per deployment, next to the processors.
func (r *roles) drift(ctx context.Context) error {
	ch, err := r.sink(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	stage, err := r.newDriftStage(ch)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", readyz(ch.Ping))
	_, serve, err := r.serve(ctx, mux)
	if err != nil {
		return err
	}
	return runAll(ctx, stage.Run, func(ctx context.Context) error { return serve() })
}
