// Package retention drops what is older than configured: every hour it lists the
// partitions of the stored tables and drops the whole partitions whose time range ended
// before now − the retention of their kind of table. Dropping whole partitions works on
// ClickHouse 18.16, which has no TTL, and on current servers alike (docs/storage.md).
// One process runs it: the holder of the analytics stage's lease.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
)

// Class is a kind of table; each kind has one retention.
type Class string

// The kinds of tables.
const (
	// Raw: the events as received (survey_responses, tickets). They
	// are the record, from which everything else can be computed again: kept longest.
	Raw Class = "raw"
	// Rollups: the rollup buckets, which dashboards and the drift detector read.
	Rollups Class = "rollups"
	// Results: what the analytics, drift and follow-up stages write (team_periods,
	// linkage, effort_impact, drift_events, followups).
	Results Class = "results"
)

// Config says how long each kind of table keeps its rows; 0 keeps them forever.
// Durations take the units of Prometheus (d, w, y, h, m, s; "400d").
type Config struct {
	Raw     model.Duration `env:"CXLINK_RETENTION_RAW"`
	Rollups model.Duration `env:"CXLINK_RETENTION_ROLLUPS"`
	Results model.Duration `env:"CXLINK_RETENTION_RESULTS"`
}

// DefaultConfig is the configuration when nothing is set: more than a year of events
// and results (a month can be compared with the same month a year before), half a
// year of rollups (docs/storage.md).
func DefaultConfig() Config {
	const day = model.Duration(24 * time.Hour)
	return Config{Raw: 400 * day, Rollups: 180 * day, Results: 400 * day}
}

// Keep is the retention of a class; 0: forever.
func (c Config) Keep(class Class) time.Duration {
	switch class {
	case Raw:
		return time.Duration(c.Raw)
	case Rollups:
		return time.Duration(c.Rollups)
	case Results:
		return time.Duration(c.Results)
	}
	return 0
}

// Validate reports every problem of the configuration. longestWindow is the longest
// rolling window (CXLINK_WINDOWS): the rollups must hold it whole, and a day more, so
// that the current windows and the drift detector's baseline never miss a dropped day.
// lookback is how far back the analytics stage reads the raw events and rewrites its
// results (the linkage's periods, the longest effort-impact window): dropping raw
// events inside it would change results already written.
func (c Config) Validate(longestWindow, lookback time.Duration) error {
	var errs []error
	day := 24 * time.Hour
	for _, f := range []struct {
		name string
		d    model.Duration
		min  time.Duration
		why  string
	}{
		{"CXLINK_RETENTION_RAW", c.Raw, lookback, "what the analytics stage reads (linkage periods and effort-impact windows)"},
		{"CXLINK_RETENTION_ROLLUPS", c.Rollups, longestWindow + day, "the longest window (CXLINK_WINDOWS) and a day"},
		{"CXLINK_RETENTION_RESULTS", c.Results, lookback, "what the analytics stage rewrites (linkage periods and effort-impact windows)"},
	} {
		switch d := time.Duration(f.d); {
		case d < 0:
			errs = append(errs, fmt.Errorf("%s: %s is negative (0 keeps forever)", f.name, days(d)))
		case d > 0 && d < f.min:
			errs = append(errs, fmt.Errorf("%s: %s is shorter than %s (%s); 0 keeps forever", f.name, days(d), f.why, days(f.min)))
		}
	}
	return errors.Join(errs...)
}

// days prints d in days when it is whole days ("400d"), as the settings are written.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// Partition is one partition of a stored table and the time range it covers.
type Partition struct {
	Table string
	Class Class
	ID    string // as ClickHouse names it (system.parts partition_id)
	// Start and End bound the time of its rows, End excluded: a month or a day of the
	// table's time column. A partition holding something still going on (a drift
	// episode that has not ended) has Open set and is never dropped.
	Start, End time.Time
	Open       bool
	Rows       uint64
}

// Store lists and drops partitions; *clickhouse.Client is one.
type Store interface {
	// Partitions lists the partitions of every table the retention applies to.
	Partitions(ctx context.Context) ([]Partition, error)
	// DropPartition drops one partition with all its rows.
	DropPartition(ctx context.Context, p Partition) error
}

// Every is how often the job runs: partitions are a day wide at least, so an hour
// keeps a row at most an hour past its partition's expiry, at the cost of one listing.
const Every = time.Hour

// Options are the job's collaborators.
type Options struct {
	Store      Store
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Job is the retention job.
type Job struct {
	cfg     Config
	opts    Options
	dropped *prometheus.CounterVec
	runs    *prometheus.CounterVec
}

// New returns the job; Run runs it.
func New(cfg Config, opts Options) *Job {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	j := &Job{
		cfg:  cfg,
		opts: opts,
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_retention_dropped_partitions_total",
			Help: "Partitions the retention job dropped, by table: their time range ended before now minus the table's retention.",
		}, []string{"table"}),
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_retention_runs_total",
			Help: "Runs of the retention job, by outcome (ok, error).",
		}, []string{"outcome"}),
	}
	j.runs.WithLabelValues("ok")
	j.runs.WithLabelValues("error")
	return j
}

// Run runs the job at once and then every hour until ctx ends. A failed run is logged
// and counted; the next one tries again.
func (j *Job) Run(ctx context.Context) error {
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		if _, err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.opts.Logger.Warn("retention: partitions not dropped; retrying at the next run", "retry_in", Every, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Expired reports whether p is to be dropped at now: its whole time range ended before
// now − its class's retention, and nothing in it is still going on.
func (c Config) Expired(p Partition, now time.Time) bool {
	keep := c.Keep(p.Class)
	return keep > 0 && !p.Open && !p.End.After(now.Add(-keep))
}

// RunOnce drops the expired partitions and returns them.
func (j *Job) RunOnce(ctx context.Context) (dropped []Partition, err error) {
	defer func() {
		if err != nil {
			j.runs.WithLabelValues("error").Inc()
		} else {
			j.runs.WithLabelValues("ok").Inc()
		}
	}()
	parts, err := j.opts.Store.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	now := j.opts.Now()
	var errs []error
	for _, p := range parts {
		j.dropped.WithLabelValues(p.Table) // a zero from the first run on, for rate()
		if !j.cfg.Expired(p, now) {
			continue
		}
		if err := j.opts.Store.DropPartition(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		j.dropped.WithLabelValues(p.Table).Inc()
		j.opts.Logger.Info("retention: dropped a partition", "table", p.Table, "partition", p.ID,
			"from", p.Start, "until", p.End, "rows", p.Rows, "retention", days(j.cfg.Keep(p.Class)))
		dropped = append(dropped, p)
	}
	return dropped, errors.Join(errs...)
}
