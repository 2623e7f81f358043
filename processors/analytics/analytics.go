// Package analytics is the second, small stage over per-team aggregates: it computes
// what needs every team at once and so cannot live in a partition. Every
// CXLINK_ANALYTICS_EVERY it publishes employee figures: it reads, from the private
// database, the pulse groups of closed periods that changed since its last run, and
// writes to team_periods those the disclosure policy (processors/pulses) lets out. Then
// it reads the customer surveys per team and period, and the solved tickets and CES
// responses per category; computes the EX–CX linkage (processors/linkage) from the
// published employee figures only, and the effort impact (processors/impact); writes
// team_periods, linkage and effort_impact; and exports the current linkage as gauges.
//
// One process runs it (Config.Active). What it publishes depends on what it published
// before (team_periods), so two runners at once could each publish a figure the other
// would have held back: run exactly one.
package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/impact"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/linkage"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
)

// Store is where the stage reads aggregates and writes results; *clickhouse.Client is
// one. Reads cover [from, to) of occurred_at; WriteAnalytics may be retried whole.
type Store interface {
	// ServerNow is the store's clock, the one of the private table's stored_at.
	ServerNow(ctx context.Context) (time.Time, error)
	// PulseGroups reads the groups of individual answers of [from, to) with a row
	// stored at or after since, or of a period starting at or after closedFrom.
	PulseGroups(ctx context.Context, p time.Duration, offset int64, from, to, since, closedFrom time.Time, minRespondents int) ([]records.EmployeeAggregate, error)
	// TeamPeriods reads what team_periods holds (is published) for [from, to).
	TeamPeriods(ctx context.Context, period string, from, to time.Time) ([]records.TeamPeriod, error)
	// DropPulsesBefore deletes the individual answers of the months ended by t.
	DropPulsesBefore(ctx context.Context, t time.Time) ([]string, error)
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
	token   uint64 // of the lease this process holds the stage under
	// Since the last successful run: the store's clock when it read the private
	// database, and the end of the closed periods then. Zero at start: the first run
	// reads every group of the lookback.
	readAt, closedTo time.Time
}

// storeLag covers a row whose insert began before a run read the store's clock and
// became visible after (an insert takes at most CLICKHOUSE_INSERT_TIMEOUT).
const storeLag = 5 * time.Minute

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

// Run computes at once and then every Config.Every until ctx ends, while this process
// holds the stage's lease taken at token (processors/lease): token orders its rows after
// those of earlier holders. A failed run is logged, counted and tried again at the next.
func (s *Stage) Run(ctx context.Context, token uint64) error {
	// A new tenure: another holder may have published since this process last ran it,
	// so the first run reads every group of the lookback again.
	s.token, s.readAt, s.closedTo = token, time.Time{}, time.Time{}
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
	// Teams are the team_periods rows that changed: newly published employee figures,
	// or customer figures that moved.
	Teams     []records.TeamPeriod
	Linkage   []records.Linkage
	Impact    []records.EffortImpact
	Published int // pulse groups published (again) by this run

	readAt, closedTo time.Time // the watermarks after this run
}

// RunOnce computes and writes once.
func (s *Stage) RunOnce(ctx context.Context) (err error) {
	start := s.opts.Now()
	defer func() { s.metrics.observe(start, s.opts.Now(), err) }()
	res, err := s.Compute(ctx, start)
	if err != nil {
		return err
	}
	if err := s.opts.Store.WriteAnalytics(ctx, res.Teams, res.Linkage, res.Impact, start, lease.Version(start, s.token)); err != nil {
		return fmt.Errorf("write analytics: %w", err)
	}
	s.readAt, s.closedTo = res.readAt, res.closedTo
	s.metrics.published.Add(float64(res.Published))
	s.metrics.linkage.set(s.current(res.Linkage))
	// Retention: individual answers no period can publish any more are deleted, whole
	// months at a time (the private table's partitions).
	dropped, err := s.opts.Store.DropPulsesBefore(ctx, s.opts.Pulses.PublishFrom(start))
	if len(dropped) > 0 {
		s.opts.Logger.Info("deleted employee answers older than the pulse lookback", "months", dropped,
			"CXLINK_PULSE_LOOKBACK", s.opts.Pulses.Lookback)
	}
	if err != nil {
		return fmt.Errorf("retention of employee answers: %w", err)
	}
	return nil
}

// Compute reads the aggregates and computes the results as of now.
func (s *Stage) Compute(ctx context.Context, now time.Time) (Result, error) {
	var res Result
	pol := s.opts.Pulses
	p := pol.PeriodLength()
	params := linkage.Params{
		Period: p, PeriodName: pol.Period.Name,
		Last: pulses.PeriodStart(now, p).Add(-p),
		Span: s.cfg.Span, MaxLag: s.cfg.MaxLag, MinTeams: s.cfg.MinTeams, MinResponses: s.cfg.MinResponses,
	}
	pubFrom, closedTo := pol.PublishFrom(now), pol.ClosedBefore(now)
	from, to := params.From(), params.Last.Add(p)
	if pubFrom.Before(from) {
		from = pubFrom
	}
	off := pulses.EpochOffset(p)

	// Publish: what team_periods holds, then the groups that changed since the last run.
	rows, err := s.opts.Store.TeamPeriods(ctx, pol.Period.Name, from, to)
	if err != nil {
		return res, err
	}
	pub := newPublished(rows)
	before := newPublished(rows)
	if res.readAt, err = s.opts.Store.ServerNow(ctx); err != nil {
		return res, err
	}
	// A group is published once no row joined it for a whole run interval; one that
	// has not settled yet is read again next time, since reaches back past it.
	settle := s.cfg.Every
	since := time.Time{}
	if !s.readAt.IsZero() {
		since = s.readAt.Add(-storeLag - settle)
	}
	groups, err := s.opts.Store.PulseGroups(ctx, p, off, pubFrom, closedTo, since, s.closedTo, pol.MinRespondents)
	if err != nil {
		return res, err
	}
	res.Published, res.closedTo = pub.publish(pol, groups, res.readAt.Add(-settle)), closedTo

	cust, err := s.opts.Store.CustomerAggregates(ctx, p, off, from, to)
	if err != nil {
		return res, err
	}
	_, res.Linkage = linkage.Compute(params, pub.aggregates(params.From(), to), cust)

	// team_periods: every team-period with published employee figures, with its
	// customer figures; written only when something in it changed.
	byTeamPeriod := map[teamPeriod][]records.CustomerAggregate{}
	for _, a := range cust {
		k := teamPeriod{a.Team, a.PeriodStart.Unix()}
		byTeamPeriod[k] = append(byTeamPeriod[k], a)
	}
	for k, r := range pub {
		row := withCustomers(*r, byTeamPeriod[k])
		if old, ok := before[k]; !ok || !sameRow(*old, row) {
			res.Teams = append(res.Teams, row)
		}
	}
	sort.Slice(res.Teams, func(i, j int) bool {
		a, b := res.Teams[i], res.Teams[j]
		if !a.PeriodStart.Equal(b.PeriodStart) {
			return a.PeriodStart.Before(b.PeriodStart)
		}
		return a.Team < b.Team
	})

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

// current picks the rows the gauges show: per lag and metric pair, the between-team
// and within-team rows and the latest period row.
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
