// Package compact adds the rollup buckets of every final hour up into hours
// (rollup_hours), so that charts over weeks read hours instead of minutes
// (docs/storage.md, "Hourly compaction"). An hour is final once every partition's
// watermark passed its end by the change horizon: no message received later can change
// one of its buckets. It also adds the raw tables up per day (survey_days, ticket_days)
// for every day the sink marked as changed ("Daily totals of the raw tables"). One
// process runs it: the holder of the analytics stage's lease.
package compact

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Store reads the buckets and writes the hours; *clickhouse.Client is one.
type Store interface {
	// CompactedUntil is the instant before which every hour is compacted (zero: none).
	CompactedUntil(ctx context.Context) (time.Time, error)
	// FirstBucket is the earliest bucket start in [from, to); false when there is none.
	FirstBucket(ctx context.Context, from, to time.Time) (time.Time, bool, error)
	// CompactHours writes the hours of [from, to) and then records to as compacted.
	// Writing an hour again writes the same row.
	CompactHours(ctx context.Context, from, to time.Time) error

	// ServerTime is the clock the sink's day markers are stamped with.
	ServerTime(ctx context.Context) (time.Time, error)
	// DaysDone is the server time before which every marker is added up (zero: none).
	DaysDone(ctx context.Context) (time.Time, error)
	// ChangedDays lists the days of the markers stamped at or after since; with a zero
	// since, every day the raw tables hold.
	ChangedDays(ctx context.Context, since time.Time) ([]time.Time, error)
	// CompactDays adds up the raw rows of the whole days [from, to), stamped version.
	CompactDays(ctx context.Context, from, to time.Time, version uint64) error
	// SetDaysDone records that every marker stamped before until is added up.
	SetDaysDone(ctx context.Context, until time.Time) error
}

// MarkerSlack is how far before the last run's start the compaction reads the day
// markers again: a marker stamped before that start whose insert ended after that run
// read the markers is still seen.
const MarkerSlack = 2 * time.Minute

// Every is how often the compactor runs: an hour becomes final once its last bucket
// passed the change horizon, so a minute keeps the hourly reads at most a minute behind.
const Every = time.Minute

// Options are the compactor's collaborators.
type Options struct {
	Store Store
	// Watermarks reads every partition's watermark: every message it received before
	// it is stored (zero: none yet).
	Watermarks func(ctx context.Context) ([]time.Time, error)
	// Horizon is how long after a bucket's start a message received may still change
	// it (partition.Config.ChangeHorizon: allowed lateness, attribution wait, a step
	// and a minute).
	Horizon    time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Compactor is the hourly compaction.
type Compactor struct {
	opts   Options
	runs   *prometheus.CounterVec
	writes prometheus.Counter
	until  prometheus.Gauge
	days   prometheus.Counter
}

// New returns the compactor; Run runs it.
func New(opts Options) *Compactor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	c := &Compactor{
		opts: opts,
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_compact_runs_total",
			Help: "Runs of the hourly compaction of the rollup buckets, by outcome (ok, error).",
		}, []string{"outcome"}),
		writes: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_compact_writes_total",
			Help: "Inserts of compacted hours into rollup_hours, each of a day at most.",
		}),
		until: f.NewGauge(prometheus.GaugeOpts{
			Name: "cxlink_compact_until_seconds",
			Help: "Unix time before which every hour of the rollup buckets is compacted into rollup_hours, as of the last run that found work.",
		}),
		days: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_compact_day_writes_total",
			Help: "Days of the raw tables added up into survey_days and ticket_days (a day each time it changed).",
		}),
	}
	c.runs.WithLabelValues("ok")
	c.runs.WithLabelValues("error")
	return c
}

// Run compacts at once and then every minute until ctx ends. A failed run is logged and
// counted; the next one tries again (compacting an hour again is harmless).
func (c *Compactor) Run(ctx context.Context) error {
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		if _, err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
			c.opts.Logger.Warn("compaction: not done; retrying at the next run", "retry_in", Every, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Final is the instant before which every hour is final, given the partitions'
// watermarks: the lowest watermark less the horizon, rounded down to the hour. Zero when
// a partition has no watermark yet.
func Final(watermarks []time.Time, horizon time.Duration) time.Time {
	if len(watermarks) == 0 {
		return time.Time{}
	}
	low := watermarks[0]
	for _, w := range watermarks {
		if w.IsZero() {
			return time.Time{}
		}
		if w.Before(low) {
			low = w
		}
	}
	return low.Add(-horizon).UTC().Truncate(time.Hour)
}

// RunOnce compacts the final hours not compacted yet, a day (at most) per write, then
// adds up the days of the raw tables changed since the last run, and returns the instant
// the hours are compacted until (zero when it wrote no hour).
func (c *Compactor) RunOnce(ctx context.Context) (until time.Time, err error) {
	defer func() {
		if err != nil {
			c.runs.WithLabelValues("error").Inc()
		} else {
			c.runs.WithLabelValues("ok").Inc()
		}
	}()
	if until, err = c.compactHours(ctx); err != nil {
		return until, err
	}
	return until, c.addUpDays(ctx)
}

func (c *Compactor) compactHours(ctx context.Context) (until time.Time, err error) {
	marks, err := c.opts.Watermarks(ctx)
	if err != nil {
		return time.Time{}, err
	}
	final := Final(marks, c.opts.Horizon)
	done, err := c.opts.Store.CompactedUntil(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if !final.After(done) {
		return time.Time{}, nil
	}
	first, ok, err := c.opts.Store.FirstBucket(ctx, done, final)
	if err != nil || !ok {
		// No bucket since: nothing to write (the hours in between are empty, and the
		// readers read their buckets, of which there are none).
		return time.Time{}, err
	}
	for from := first.UTC().Truncate(time.Hour); from.Before(final); {
		to := from.Truncate(24 * time.Hour).Add(24 * time.Hour) // a day (of buckets) per write
		if to.After(final) {
			to = final
		}
		if err := c.opts.Store.CompactHours(ctx, from, to); err != nil {
			return until, err
		}
		c.writes.Inc()
		c.until.Set(float64(to.Unix()))
		until, from = to, to
	}
	c.opts.Logger.Debug("compaction: hours compacted", "from", first.Truncate(time.Hour), "until", until)
	return until, nil
}

// addUpDays adds up again every day of the raw tables a marker named since the last run
// (every day they hold, at the first run), a month at most per write, and then records
// the run's start. A run that finds no marker writes nothing.
func (c *Compactor) addUpDays(ctx context.Context) error {
	store := c.opts.Store
	start, err := store.ServerTime(ctx)
	if err != nil {
		return err
	}
	done, err := store.DaysDone(ctx)
	if err != nil {
		return err
	}
	since := time.Time{}
	if done.Unix() > 0 {
		since = done.Add(-MarkerSlack)
	}
	days, err := store.ChangedDays(ctx, since)
	if err != nil || len(days) == 0 {
		return err
	}
	version := uint64(start.UnixMilli())
	for _, r := range dayRuns(days) {
		if err := store.CompactDays(ctx, r.from, r.to, version); err != nil {
			return err
		}
		c.days.Add(float64(r.to.Sub(r.from) / (24 * time.Hour)))
	}
	c.opts.Logger.Debug("compaction: days added up", "days", len(days), "first", days[0], "last", days[len(days)-1])
	return store.SetDaysDone(ctx, start)
}

// dayRun is the whole UTC days [from, to).
type dayRun struct{ from, to time.Time }

// dayRuns groups sorted days into runs of consecutive days within one month, so that a
// write reads one month's partition of the raw tables at most.
func dayRuns(days []time.Time) []dayRun {
	var runs []dayRun
	for _, d := range days {
		if n := len(runs); n > 0 && runs[n-1].to.Equal(d) && d.Month() == runs[n-1].from.Month() {
			runs[n-1].to = d.Add(24 * time.Hour)
			continue
		}
		runs = append(runs, dayRun{d, d.Add(24 * time.Hour)})
	}
	return runs
}
