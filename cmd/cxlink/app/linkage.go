package app

import (
	"context"

	"github.com/cxlink/cxlink/processors/analytics"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/retention"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// withAnalytics adds the cross-team stage (linkage and effort impact) and the retention
// job to a process's tasks unless CXLINK_ANALYTICS is off: every such process stands by,
// and the one holding the stage's lease runs both.
func (r *roles) withAnalytics(tasks []func(context.Context) error, ch *clickhouse.Client, leases *lease.Manager) ([]func(context.Context) error, error) {
	if !r.cfg.Analytics.Active() {
		r.logger.Info("linkage and effort impact run in another process", "CXLINK_ANALYTICS", r.cfg.Analytics.Enabled)
		return tasks, nil
	}
	stage, err := analytics.New(r.cfg.Analytics, analytics.Options{
		Store:      ch,
		Pulses:     r.cfg.Pulses,
		Logger:     r.logger.With("component", "analytics"),
		Registerer: r.reg,
	})
	if err != nil {
		return nil, err
	}
	job := retention.New(r.cfg.Retention, retention.Options{
		Store:      ch,
		Logger:     r.logger.With("component", "retention"),
		Registerer: r.reg,
	})
	return append(tasks, func(ctx context.Context) error {
		return leases.Singleton(ctx, "analytics", func(ctx context.Context, l *lease.Lease) error {
			return runAll(ctx, func(ctx context.Context) error { return stage.Run(ctx, l.Token()) }, job.Run)
		})
	}), nil
}

// validateRetention checks the retention against what the rollups and the analytics
// stage read.
func (c Config) validateRetention() error {
	ws := c.Process.Windows
	if len(ws) == 0 || c.Analytics.Validate() != nil || c.Pulses.Validate() != nil {
		return nil // reported by the components
	}
	return c.Retention.Validate(ws[len(ws)-1].Length, c.Analytics.Lookback(c.Pulses.PeriodLength()))
}
