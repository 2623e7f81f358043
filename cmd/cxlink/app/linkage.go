package app

import (
	"context"
	"fmt"

	"github.com/cxlink/cxlink/processors/analytics"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// withAnalytics adds the cross-team stage (linkage and effort impact) to a process's
// tasks when this process is the one to run it (CXLINK_ANALYTICS).
func (r *roles) withAnalytics(tasks []func(context.Context) error, ch *clickhouse.Client) ([]func(context.Context) error, error) {
	owned, err := pipeline.ParsePartitions(r.cfg.Process.Partitions, r.cfg.Stream.Partitions)
	if err != nil {
		return nil, fmt.Errorf("CXLINK_PROCESS_PARTITIONS: %w", err)
	}
	if !r.cfg.Analytics.Active(owned) {
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
	return append(tasks, stage.Run), nil
}
