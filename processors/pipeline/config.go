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

// Config of the processors. DefaultConfig holds the defaults.
type Config struct {
	Windows         effort.Windows `env:"CXLINK_WINDOWS"`
	Step            time.Duration  `env:"CXLINK_ROLLUP_STEP"`
	AllowedLateness time.Duration  `env:"CXLINK_ALLOWED_LATENESS"`
	AttributionWait time.Duration  `env:"CXLINK_ATTRIBUTION_WAIT"`
	// Partitions this process may run: all (shared with the other replicas through
	// leases), or a list such as "0-3,6" (only those, still under leases).
	Partitions PartitionSet `env:"CXLINK_PROCESS_PARTITIONS"`
	// ReadAhead bounds the messages read from the stream but not yet applied, per
	// partition: with BatchMaxRows it bounds the memory used while ClickHouse is slow
	// or down.
	ReadAhead     int           `env:"CXLINK_READ_AHEAD"`
	BatchMaxRows  int           `env:"CXLINK_BATCH_MAX_ROWS"`
	BatchMaxDelay time.Duration `env:"CXLINK_BATCH_MAX_DELAY"`
	// SnapshotEvery: how often each partition saves its state, which bounds how many
	// messages a start must read after the snapshot.
	SnapshotEvery time.Duration `env:"CXLINK_SNAPSHOT_EVERY"`
	// MetricsMaxKeys caps the distinct keys per dimension exported as metric labels;
	// further keys are summed under key="_other".
	MetricsMaxKeys int `env:"CXLINK_METRICS_MAX_KEYS"`
	// FollowUps decide which answers open a follow-up case (CXLINK_FOLLOWUP_*, read by
	// processors/followup); nil: none.
	FollowUps *followup.Settings `env:"-"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		Windows:         effort.MustParseWindows("1h,24h,7d"),
		Step:            time.Minute,
		AllowedLateness: time.Hour,
		AttributionWait: 10 * time.Minute,
		ReadAhead:       1000,
		BatchMaxRows:    10000,
		BatchMaxDelay:   500 * time.Millisecond,
		SnapshotEvery:   5 * time.Minute,
		MetricsMaxKeys:  50,
	}
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

// ChangeHorizon is how long after a bucket's start a message received may still change it
// (partition.Config.ChangeHorizon): the hourly compaction waits for it.
func (c Config) ChangeHorizon() time.Duration { return c.partitionConfig().ChangeHorizon() }

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

// PartitionSet is a set of partitions: all of them, or a list of partitions and ranges
// such as "0-3,6".
type PartitionSet struct {
	ranges [][2]int // nil: all
}

// UnmarshalText reads "all" (or nothing) or a list of partitions and ranges.
func (s *PartitionSet) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	s.ranges = nil
	if text == "all" || text == "" {
		return nil
	}
	for _, part := range strings.Split(text, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return fmt.Errorf("%q is not a partition or a range of partitions (such as 0-3)", part)
		}
		s.ranges = append(s.ranges, [2]int{a, b})
	}
	return nil
}

// String is the set as UnmarshalText reads it.
func (s PartitionSet) String() string {
	if s.All() {
		return "all"
	}
	parts := make([]string, len(s.ranges))
	for i, r := range s.ranges {
		parts[i] = strconv.Itoa(r[0])
		if r[1] != r[0] {
			parts[i] += "-" + strconv.Itoa(r[1])
		}
	}
	return strings.Join(parts, ",")
}

// All reports whether the set is every partition.
func (s PartitionSet) All() bool { return s.ranges == nil }

// Of lists the set's partitions, in the order given and each once, among the n of the
// stream; a partition n or above is an error.
func (s PartitionSet) Of(n int) ([]int, error) {
	if s.All() {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, r := range s.ranges {
		if r[1] >= n {
			return nil, fmt.Errorf("%s names partition %d, but the stream has %d (0-%d)", s, r[1], n, n-1)
		}
		for p := r[0]; p <= r[1]; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}
