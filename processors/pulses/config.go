package pulses

import (
	"errors"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
)

// Config of employee pulse handling, shared by the processors (which hold answers back)
// and the linkage and drift stages (which read the released ones per period).
// DefaultConfig holds the defaults.
type Config struct {
	// Period is the pulse period: employee answers are counted, and linked to customer
	// scores, per team and period. Periods are aligned like time.Truncate. (Its old name,
	// CXLINK_LINKAGE_PERIOD, is read until the next release.)
	Period Period `env:"CXLINK_PULSE_PERIOD"`
	// MinRespondents is the anonymity threshold: the answers to one question of one team
	// in one period are stored, and counted anywhere, only once at least this many
	// distinct employees gave one. Never below MinThreshold.
	MinRespondents int `env:"CXLINK_ANONYMITY_MIN_RESPONDENTS"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		// Weeks (starting Monday 00:00 UTC), as HR pulse surveys are usually sent;
		// demos use minutes.
		Period: MustParsePeriod("7d"),
		// Five, the minimum group of HR survey tools (Peakon, Culture Amp).
		MinRespondents: 5,
	}
}

// Period is a pulse period: its name as configured (e.g. "7d", written with every
// linkage row) and its length.
type Period struct {
	Name   string
	Length time.Duration
}

// UnmarshalText reads a period with ParsePeriod.
func (p *Period) UnmarshalText(b []byte) error {
	d, err := ParsePeriod(string(b))
	if err != nil {
		return err
	}
	*p = Period{Name: string(b), Length: d}
	return nil
}

// MarshalText gives the period's name.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.Name), nil }

// MustParsePeriod is a Period for text known to be valid (defaults, tests); it panics on
// an error.
func MustParsePeriod(s string) Period {
	var p Period
	if err := p.UnmarshalText([]byte(s)); err != nil {
		panic(err)
	}
	return p
}

// MinThreshold is the lowest anonymity threshold allowed: with fewer, an answer is too
// easily traced to the person who gave it.
const MinThreshold = 3

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Period.Length <= 0 {
		errs = append(errs, errors.New("CXLINK_PULSE_PERIOD: not set"))
	}
	if c.MinRespondents < MinThreshold {
		errs = append(errs, fmt.Errorf("CXLINK_ANONYMITY_MIN_RESPONDENTS: %d is below %d, the least that keeps answers anonymous", c.MinRespondents, MinThreshold))
	}
	return errors.Join(errs...)
}

// PeriodLength is the length of Period.
func (c Config) PeriodLength() time.Duration { return c.Period.Length }

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
