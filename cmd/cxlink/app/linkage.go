package app

import (
	"context"

	"github.com/cxlink/cxlink/processors/analytics"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// withAnalytics adds the cross-team stage (linkage and effort impact) to a process's
// tasks unless CXLINK_ANALYTICS is off: every such process stands by, and the one holding
// the stage's lease runs it.
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
	return append(tasks, func(ctx context.Context) error {
		return leases.Singleton(ctx, "analytics", func(ctx context.Context, l *lease.Lease) error {
			return stage.Run(ctx, l.Token())
		})
	}), nil
}
