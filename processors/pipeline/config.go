// Package pipeline runs the processors: per partition this process owns, an ordered
// JetStream consumer feeding one partition state machine; one batch writer in front of
// the sink; a clock that ticks the rolling windows. See docs/partitions.md for how partitions are read,
// stored, snapshotted and shared.
package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/partition"
)

// Config of the processors.
type Config struct {
	Windows         effort.Windows `env:"CXLINK_WINDOWS" envDefault:"1h,24h,7d"`
	Step            time.Duration  `env:"CXLINK_ROLLUP_STEP" envDefault:"1m"`
	AllowedLateness time.Duration  `env:"CXLINK_ALLOWED_LATENESS" envDefault:"1h"`
	AttributionWait time.Duration  `env:"CXLINK_ATTRIBUTION_WAIT" envDefault:"10m"`
	// Partitions this process may run: "all" (shared with the other replicas through
	// leases), or a list such as "0-3,6" (only those, still under leases).
	Partitions string `env:"CXLINK_PROCESS_PARTITIONS" envDefault:"all"`
	// ReadAhead bounds the messages read from the stream but not yet applied, per
	// partition: with BatchMaxRows it bounds the memory used while ClickHouse is slow
	// or down.
	ReadAhead     int           `env:"CXLINK_READ_AHEAD" envDefault:"1000"`
	BatchMaxRows  int           `env:"CXLINK_BATCH_MAX_ROWS" envDefault:"10000"`
	BatchMaxDelay time.Duration `env:"CXLINK_BATCH_MAX_DELAY" envDefault:"500ms"`
	// SnapshotEvery: how often each partition saves its state, which bounds how many
	// messages a start must read after the snapshot.
	SnapshotEvery time.Duration `env:"CXLINK_SNAPSHOT_EVERY" envDefault:"5m"`
	// MetricsMaxKeys caps the distinct keys per dimension exported as metric labels;
	// further keys are summed under key="_other".
	MetricsMaxKeys int `env:"CXLINK_METRICS_MAX_KEYS" envDefault:"50"`
	// FollowUps decide which answers open a follow-up case (CXLINK_FOLLOWUP_*, read by
	// processors/followup); nil: none.
	FollowUps *followup.Settings `env:"-"`
}

// Validate reports every problem of the configuration. maxFuture is ingest's tolerance
// for occurred_at ahead of the clock, which the replay horizon must cover.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Step < time.Second {
		add("CXLINK_ROLLUP_STEP: %s is shorter than a second", c.Step)
	}
	if len(c.Windows) == 0 {
		add("CXLINK_WINDOWS: no windows")
	} else if c.Step > 0 {
		for _, w := range c.Windows {
			if w.Length%c.Step != 0 {
				add("CXLINK_WINDOWS: %s is not a whole number of CXLINK_ROLLUP_STEP (%s)", w.Name, c.Step)
			}
		}
	}
	if c.AllowedLateness < 0 {
		add("CXLINK_ALLOWED_LATENESS: %s is negative", c.AllowedLateness)
	}
	if c.AttributionWait < 0 {
		add("CXLINK_ATTRIBUTION_WAIT: %s is negative", c.AttributionWait)
	}
	if _, err := ParsePartitions(c.Partitions, 1024); err != nil {
		add("CXLINK_PROCESS_PARTITIONS: %v", err)
	}
	if c.ReadAhead < 1 {
		add("CXLINK_READ_AHEAD: %d is not positive", c.ReadAhead)
	}
	if c.BatchMaxRows < 1 {
		add("CXLINK_BATCH_MAX_ROWS: %d is not positive", c.BatchMaxRows)
	}
	if c.SnapshotEvery < time.Second {
		add("CXLINK_SNAPSHOT_EVERY: %s is shorter than a second", c.SnapshotEvery)
	}
	if c.BatchMaxDelay <= 0 {
		add("CXLINK_BATCH_MAX_DELAY: %s is not positive", c.BatchMaxDelay)
	}
	if c.MetricsMaxKeys < 1 {
		add("CXLINK_METRICS_MAX_KEYS: %d is not positive", c.MetricsMaxKeys)
	}
	return errors.Join(errs...)
}

// partitionConfig is the state machine's configuration; call on a valid Config.
func (c Config) partitionConfig() partition.Config {
	return partition.Config{
		Step:            c.Step,
		Windows:         c.Windows,
		AllowedLateness: c.AllowedLateness,
		AttributionWait: c.AttributionWait,
		FollowUps:       c.FollowUps,
	}
}

// ReplayHorizon is how far back a partition without snapshot reads: the longest window
// (or pulse period) and everything that can still change it. maxFuture is ingest's
// tolerance for occurred_at ahead of the clock.
func (c Config) ReplayHorizon(maxFuture time.Duration) time.Duration {
	return c.partitionConfig().Horizon() + maxFuture + c.Step
}

// DuplicateWindow is the stream's dedup window that makes a resent id harmless: a resend
// later than this is also later than the allowed lateness, so it never enters a window.
func (c Config) DuplicateWindow(maxFuture time.Duration) time.Duration {
	return c.AllowedLateness + maxFuture + 5*time.Minute
}

// ParsePartitions reads "all" or a list of partitions and ranges ("0-3,6") below n.
func ParsePartitions(s string, n int) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "all" || s == "" {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= n {
			return nil, fmt.Errorf("%q is not a partition or range below %d", part, n)
		}
		for p := a; p <= b; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}
