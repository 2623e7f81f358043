package app

import (
	"context"
	"fmt"
	"time"

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
		Pulses:     r.cfg.Process.Pulses,
		Logger:     r.logger.With("component", "analytics"),
		Registerer: r.reg,
	})
	if err != nil {
		return nil, err
	}
	return append(tasks, stage.Run), nil
}

// validateLinkage checks what spans components: processors replay a pulse period's
// messages, so the stream must keep them that long.
func (c Config) validateLinkage() error {
	if c.Process.Pulses.Validate() != nil || c.Stream.Validate() != nil {
		return nil // reported by the components
	}
	need := c.Process.Pulses.PeriodLength() + c.Process.AllowedLateness + c.Process.AttributionWait + c.HTTP.MaxFuture + c.Process.Step
	if c.Stream.MaxAge < need {
		return fmt.Errorf("CXLINK_STREAM_MAX_AGE: %s is shorter than CXLINK_PULSE_PERIOD + CXLINK_ALLOWED_LATENESS + CXLINK_ATTRIBUTION_WAIT + CXLINK_MAX_FUTURE + CXLINK_ROLLUP_STEP (%s): processors could not rebuild a period's pulses", c.Stream.MaxAge, need.Round(time.Minute))
	}
	return nil
}
