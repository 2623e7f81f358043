package pulses

import (
	"errors"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
)

// Config of employee pulse handling, shared by the processors (which hold answers back)
// and the linkage stage (which reads the released ones per period).
type Config struct {
	// Period is the pulse period: employee answers are counted, and linked to customer
	// scores, per team and period. "7d" (weeks starting Monday 00:00 UTC) by default;
	// demos use minutes. Periods are aligned like time.Truncate.
	Period string `env:"CXLINK_LINKAGE_PERIOD" envDefault:"7d"`
	// MinRespondents is the anonymity threshold: the answers to one question of one team
	// in one period are stored, and counted anywhere, only once at least this many
	// distinct employees gave one. Never below MinThreshold.
	MinRespondents int `env:"CXLINK_ANONYMITY_MIN_RESPONDENTS" envDefault:"5"`
}

// MinThreshold is the lowest anonymity threshold allowed: with fewer, an answer is too
// easily traced to the person who gave it.
const MinThreshold = 3

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParsePeriod(c.Period); err != nil {
		errs = append(errs, fmt.Errorf("CXLINK_LINKAGE_PERIOD: %w", err))
	}
	if c.MinRespondents < MinThreshold {
		errs = append(errs, fmt.Errorf("CXLINK_ANONYMITY_MIN_RESPONDENTS: %d is below %d, the least that keeps answers anonymous", c.MinRespondents, MinThreshold))
	}
	return errors.Join(errs...)
}

// PeriodLength is the parsed Period; call on a valid Config.
func (c Config) PeriodLength() time.Duration {
	d, _ := ParsePeriod(c.Period)
	return d
}

// ParsePeriod reads a period such as "7d", "1d", "1h" or "10m": whole seconds, at least
// a minute.
func ParsePeriod(s string) (time.Duration, error) {
	ws, err := effort.ParseWindows(s)
	if err != nil || len(ws) != 1 {
		return 0, fmt.Errorf("%q is not a period such as 7d, 1d or 10m", s)
	}
	d := ws[0].Length
	if d < time.Minute || d%time.Second != 0 {
		return 0, fmt.Errorf("%q: a period is whole seconds and at least a minute", s)
	}
	return d, nil
}

// PeriodStart is the start of the period of length p holding t.
func PeriodStart(t time.Time, p time.Duration) time.Time { return t.UTC().Truncate(p) }

// zeroToEpoch is the number of seconds from Go's zero time, which time.Truncate aligns
// to, to the Unix epoch, which SQL counts from.
const zeroToEpoch = 62135596800

// EpochOffset is what SQL adds to Unix seconds before dividing by the period so that its
// periods start where PeriodStart's do:
// start = intDiv(unix + off, p) * p − off.
func EpochOffset(p time.Duration) int64 { return zeroToEpoch % int64(p/time.Second) }
