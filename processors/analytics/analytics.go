// Package analytics is the second, small stage over per-team aggregates: it computes
// what needs every team at once and so cannot live in a partition. Every
// CXLINK_ANALYTICS_EVERY it reads the released employee pulses and the customer surveys
// per team and period, and the solved tickets and CES responses per category, from
// ClickHouse; computes the EX–CX linkage (processors/linkage) and the effort impact
// (processors/impact); writes team_periods, linkage and effort_impact; and exports the
// current linkage as gauges. One process runs it (Config.Active); its output is a
// function of the stored rows, so a rerun or a second runner rewrites the same rows.
package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/impact"
	"github.com/cxlink/cxlink/processors/linkage"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
)

// Store is where the stage reads aggregates and writes results; *clickhouse.Client is
// one. Reads cover [from, to) of occurred_at; WriteAnalytics may be retried whole.
type Store interface {
	EmployeeAggregates(ctx context.Context, p time.Duration, offset int64, from, to time.Time, minRespondents int) ([]records.EmployeeAggregate, error)
	CustomerAggregates(ctx context.Context, p time.Duration, offset int64, from, to time.Time) ([]records.CustomerAggregate, error)
	CategoryTickets(ctx context.Context, from, to time.Time) ([]records.CategoryTickets, error)
	CategoryCES(ctx context.Context, from, to time.Time) ([]records.CategoryCES, error)
	WriteAnalytics(ctx context.Context, teams []records.TeamPeriod, links []records.Linkage, impact []records.EffortImpact, computedAt time.Time, version uint64) error
}

// Options are the stage's collaborators.
type Options struct {
	Store      Store
	Pulses     pulses.Config // the pulse period and anonymity threshold
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Stage computes linkage and effort impact periodically.
type Stage struct {
	cfg     Config
	opts    Options
	windows []effort.Window
	metrics *metrics
}

// New checks the configuration and returns the stage; Run runs it.
func New(cfg Config, opts Options) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Pulses.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Stage{cfg: cfg, opts: opts, windows: cfg.ImpactWindows, metrics: newMetrics(opts.Registerer)}, nil
}

// Run computes at once and then every Config.Every until ctx ends. A failed run is
// logged, counted and tried again at the next one.
func (s *Stage) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("linkage and effort impact not computed; retrying at the next run", "retry_in", s.cfg.Every, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Result is what one run computed.
type Result struct {
	Teams   []records.TeamPeriod
	Linkage []records.Linkage
	Impact  []records.EffortImpact
}

// RunOnce computes and writes once.
func (s *Stage) RunOnce(ctx context.Context) (err error) {
	start := s.opts.Now()
	defer func() { s.metrics.observe(start, s.opts.Now(), err) }()
	res, err := s.Compute(ctx, start)
	if err != nil {
		return err
	}
	if err := s.opts.Store.WriteAnalytics(ctx, res.Teams, res.Linkage, res.Impact, start, uint64(start.UnixNano())); err != nil {
		return fmt.Errorf("write analytics: %w", err)
	}
	s.metrics.linkage.set(s.current(res.Linkage))
	return nil
}

// Compute reads the aggregates and computes the results as of now.
func (s *Stage) Compute(ctx context.Context, now time.Time) (Result, error) {
	var res Result
	p := s.opts.Pulses.PeriodLength()
	params := linkage.Params{
		Period: p, PeriodName: s.opts.Pulses.Period.Name,
		Last: pulses.PeriodStart(now, p).Add(-p),
		Span: s.cfg.Span, MaxLag: s.cfg.MaxLag, MinTeams: s.cfg.MinTeams, MinResponses: s.cfg.MinResponses,
	}
	from, to := params.From(), params.Last.Add(p)
	off := pulses.EpochOffset(p)
	emp, err := s.opts.Store.EmployeeAggregates(ctx, p, off, from, to, s.opts.Pulses.MinRespondents)
	if err != nil {
		return res, err
	}
	cust, err := s.opts.Store.CustomerAggregates(ctx, p, off, from, to)
	if err != nil {
		return res, err
	}
	res.Teams, res.Linkage = linkage.Compute(params, emp, cust)

	// Effort impact: windows end on the minute, so that runs within a minute rewrite
	// the same rows.
	end := now.UTC().Truncate(time.Minute)
	for _, w := range s.windows {
		tk, err := s.opts.Store.CategoryTickets(ctx, end.Add(-w.Length), end)
		if err != nil {
			return res, err
		}
		ces, err := s.opts.Store.CategoryCES(ctx, end.Add(-w.Length), end)
		if err != nil {
			return res, err
		}
		res.Impact = append(res.Impact, impact.Compute(w.Name, end, tk, ces, s.cfg.ImpactMinResponses)...)
	}
	return res, nil
}

// current picks the rows the gauges show: per lag and metric pair, the pooled row and
// the latest period row.
func (s *Stage) current(links []records.Linkage) []records.Linkage {
	type key struct {
		scope, em, cm string
		lag           uint8
	}
	latest := map[key]records.Linkage{}
	for _, l := range links {
		k := key{l.Scope, l.EmployeeMetric, l.CustomerMetric, l.Lag}
		if cur, ok := latest[k]; !ok || l.PeriodStart.After(cur.PeriodStart) {
			latest[k] = l
		}
	}
	out := make([]records.Linkage, 0, len(latest))
	for _, l := range latest {
		out = append(out, l)
	}
	return out
}
