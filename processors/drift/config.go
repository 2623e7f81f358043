// Package drift watches every customer-score series (CES, CSAT, NPS; overall and by
// category, channel and team) and every team's employee engagement and eNPS for drift
// against its own baseline, exports the statistics for Prometheus to alert on, and
// records each drift episode in ClickHouse.
//
// Partitions are keyed by ticket, so no processor holds a whole series: the stage reads
// the rolling windows back from the rollup buckets, the partitions added up, so that its
// statistics are the same however many processes share the partitions. One process at a
// time runs it, the holder of its lease (`cxlink drift` replicas, or inside `cxlink run`).
// See docs/architecture.md, Drift.
package drift

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
)

// Config of the drift stage. The defaults (DefaultConfig) are those of the alert rules in
// deploy/prometheus/rules/cxlink-drift.yml: keep both in step.
type Config struct {
	// Recent is the window judged, Baseline the one it is judged against; both are
	// among CXLINK_WINDOWS, by default its shortest and longest (1h and 7d). The
	// baseline is read as it was one Recent ago, so that it holds no recent response:
	// the trailing 7 d before the last hour.
	Recent   string `env:"CXLINK_DRIFT_RECENT"`
	Baseline string `env:"CXLINK_DRIFT_BASELINE"`
	// MinRecent and MinBaseline: the fewest responses in either window for a drift to
	// start. 30 is where a mean of 1–7 answers is close enough to normal for a z test;
	// a baseline of 100 pins its mean and spread well.
	MinRecent   uint64 `env:"CXLINK_DRIFT_MIN_RECENT"`
	MinBaseline uint64 `env:"CXLINK_DRIFT_MIN_BASELINE"`
	// Z starts an episode (|z| ≥ Z); it ends once |z| < ClearZ. The gap is the
	// hysteresis that keeps a series near the threshold from flapping. Under no drift
	// |z| ≥ 3 comes by chance once in about 370 evaluations of a series (a drop alone,
	// once in 740); the alerts' `for:` asks for it to last.
	Z      float64 `env:"CXLINK_DRIFT_Z"`
	ClearZ float64 `env:"CXLINK_DRIFT_CLEAR_Z"`
	// MinEffect is the smallest drift worth an alert whatever the number of responses:
	// with thousands of answers a z of 3 comes from a shift too small to act on. For the
	// mean it is Cohen's d (the shift in baseline standard deviations), for the negative
	// share Cohen's h. 0.2 is what Cohen calls small; 0.3 (about half a point of CES)
	// keeps the ordinary wobble of a series out (in the demo, the simulated teams'
	// engagement moves every team's and category's CES by about 0.2) and lets a
	// problem in: a category getting 2 points harder is near 1. The slow
	// drift detector (EWMA) has no floor: small shifts are what it is for.
	MinEffect float64 `env:"CXLINK_DRIFT_MIN_EFFECT"`
	// EWMALambda weighs the newest block in the slow-drift average: 0.2 remembers about
	// the last 9 blocks (recent windows); a shift of 1.5 standard errors in every block
	// reaches z = 3 after 5 blocks, 1.2 after 8, where one block alone needs 3.
	EWMALambda float64 `env:"CXLINK_DRIFT_EWMA_LAMBDA"`
	// PulseBaselinePeriods is how many pulse periods (CXLINK_PULSE_PERIOD) before a
	// team's latest one form the baseline its engagement and eNPS are judged against;
	// at least PulseMinBaselinePeriods of them must have published figures (a team's
	// first periods, or one that answers rarely, is not judged). Four weeks pool a few
	// dozen answers: enough to know a team's usual level, recent enough to be it.
	PulseBaselinePeriods    int `env:"CXLINK_DRIFT_PULSE_BASELINE_PERIODS"`
	PulseMinBaselinePeriods int `env:"CXLINK_DRIFT_PULSE_MIN_BASELINE_PERIODS"`
	// Delay after each rollup tick before it is read: the processors need a moment to
	// store what arrived just before it.
	Delay time.Duration `env:"CXLINK_DRIFT_DELAY"`
	// MaxWait: a tick is judged once every partition's watermark has passed it (every
	// message received before it is stored), or at the latest this long after it, when
	// a partition is slow or has no owner (counted in
	// cxlink_drift_incomplete_ticks_total).
	MaxWait time.Duration `env:"CXLINK_DRIFT_MAX_WAIT"`
	// Owners maps series to the owning department; see ParseOwners.
	Owners Owners `env:"CXLINK_OWNERS"`
	// BaselineHistory: the baseline also counts the late answers (imported history, a
	// helpdesk export sent days later), which the rolling windows leave out, read from
	// the raw survey_responses by when they occurred. The recent window stays live (on
	// time answers only). So a deployment that imported last week's answers judges its
	// first hour against them instead of an empty baseline.
	BaselineHistory bool `env:"CXLINK_DRIFT_BASELINE_HISTORY"`
}

// DefaultConfig is the configuration when nothing is set; the fields' comments explain
// the numbers.
func DefaultConfig() Config {
	return Config{
		MinRecent: 30, MinBaseline: 100,
		Z: 3, ClearZ: 2,
		MinEffect:            0.3,
		EWMALambda:           0.2,
		PulseBaselinePeriods: 4, PulseMinBaselinePeriods: 2,
		Delay:   10 * time.Second,
		MaxWait: 2 * time.Minute,
		Owners:  MustParseOwners("*=support"),
		// Imported history makes a baseline from the first hour.
		BaselineHistory: true,
	}
}

// Validate reports every problem; windows is CXLINK_WINDOWS, whose own problems (none
// set) are reported by the processors' configuration.
func (c Config) Validate(windows effort.Windows) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(windows) > 0 {
		recent, baseline, okR, okB := c.windows(windows)
		names, _ := windows.MarshalText()
		if !okR {
			add("CXLINK_DRIFT_RECENT: %q is not one of CXLINK_WINDOWS (%s)", c.Recent, names)
		}
		if !okB {
			add("CXLINK_DRIFT_BASELINE: %q is not one of CXLINK_WINDOWS (%s)", c.Baseline, names)
		}
		if okR && okB && baseline.Length <= recent.Length {
			add("CXLINK_DRIFT_BASELINE: %s is not longer than CXLINK_DRIFT_RECENT (%s); with the defaults, CXLINK_WINDOWS needs two lengths", baseline.Name, recent.Name)
		}
	}
	if c.MinRecent < 2 {
		add("CXLINK_DRIFT_MIN_RECENT: %d is below 2 (a spread needs two responses)", c.MinRecent)
	}
	if c.MinBaseline < 2 {
		add("CXLINK_DRIFT_MIN_BASELINE: %d is below 2 (a spread needs two responses)", c.MinBaseline)
	}
	if !(c.Z > 0) || math.IsInf(c.Z, 0) {
		add("CXLINK_DRIFT_Z: %v is not a positive number", c.Z)
	}
	if !(c.ClearZ >= 0) || !(c.ClearZ <= c.Z) {
		add("CXLINK_DRIFT_CLEAR_Z: %v must be between 0 and CXLINK_DRIFT_Z (%v)", c.ClearZ, c.Z)
	}
	if !(c.MinEffect >= 0) || math.IsInf(c.MinEffect, 0) {
		add("CXLINK_DRIFT_MIN_EFFECT: %v is not a number of 0 or more", c.MinEffect)
	}
	if !(c.EWMALambda > 0 && c.EWMALambda <= 1) {
		add("CXLINK_DRIFT_EWMA_LAMBDA: %v is not in (0, 1]", c.EWMALambda)
	}
	if c.PulseBaselinePeriods < 1 {
		add("CXLINK_DRIFT_PULSE_BASELINE_PERIODS: %d is below 1", c.PulseBaselinePeriods)
	}
	if c.PulseMinBaselinePeriods < 1 || c.PulseMinBaselinePeriods > c.PulseBaselinePeriods {
		add("CXLINK_DRIFT_PULSE_MIN_BASELINE_PERIODS: %d must be between 1 and CXLINK_DRIFT_PULSE_BASELINE_PERIODS (%d)", c.PulseMinBaselinePeriods, c.PulseBaselinePeriods)
	}
	if c.MaxWait < 0 {
		add("CXLINK_DRIFT_MAX_WAIT: %s is negative", c.MaxWait)
	}
	if c.Delay < 0 {
		add("CXLINK_DRIFT_DELAY: %s is negative", c.Delay)
	}
	if c.Owners.fallback == "" {
		add("CXLINK_OWNERS: not set")
	}
	return errors.Join(errs...)
}

// windows picks the recent and baseline windows among ws (sorted by length).
func (c Config) windows(ws []effort.Window) (recent, baseline effort.Window, okR, okB bool) {
	recent, okR = ws[0], true
	if c.Recent != "" {
		recent, okR = find(ws, c.Recent)
	}
	baseline, okB = ws[len(ws)-1], true
	if c.Baseline != "" {
		baseline, okB = find(ws, c.Baseline)
	}
	return recent, baseline, okR, okB
}

func find(ws []effort.Window, name string) (effort.Window, bool) {
	for _, w := range ws {
		if w.Name == name {
			return w, true
		}
	}
	return effort.Window{}, false
}
