package pulses

import (
	"errors"
	"fmt"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
)

// Config of employee pulse periods and of the disclosure policy, shared by ingest
// (which refuses pulses that could never count), the analytics stage (which publishes
// team figures) and the drift detector and report (which read what was published).
// DefaultConfig holds the defaults.
type Config struct {
	// Period is the pulse period: employee answers are counted, published, and linked
	// to customer scores, per team and period. Periods are aligned like time.Truncate.
	// (Its old name, CXLINK_LINKAGE_PERIOD, is read until the next release.)
	Period Period `env:"CXLINK_PULSE_PERIOD"`
	// MinRespondents is k, the anonymity threshold: a team's answers to one question in
	// one period are published only once at least k distinct employees gave one, and
	// published again only once k more did. Never below MinThreshold.
	MinRespondents int `env:"CXLINK_ANONYMITY_MIN_RESPONDENTS"`
	// Grace is how long after its end a period is closed: its team figures are
	// published only then, so that the answers given on time are published together.
	Grace time.Duration `env:"CXLINK_PULSE_GRACE"`
	// Lookback is how far back pulses count: a pulse that occurred earlier is refused
	// at ingest (it could never be published), and the analytics stage publishes the
	// closed periods in it.
	Lookback Period `env:"CXLINK_PULSE_LOOKBACK"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		// Weeks (starting Monday 00:00 UTC), as HR pulse surveys are usually sent;
		// demos use minutes.
		Period: MustParsePeriod("7d"),
		// Five, the minimum group of HR survey tools (Peakon, Culture Amp).
		MinRespondents: 5,
		// An hour lets a weekly pulse's stragglers of Sunday night in; later answers
		// count too, but need k more respondents to change what was published.
		Grace: time.Hour,
		// 92 days hold a quarter of HR exports.
		Lookback: MustParsePeriod("92d"),
	}
}

// Period is a pulse period (or a span of time written like one): its name as configured
// (e.g. "7d", written with every linkage row) and its length.
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

// String is the period's name.
func (p Period) String() string { return p.Name }

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

// Slack is how much further back than Lookback the analytics stage reads: a pulse
// accepted at ingest may reach ClickHouse later (a ClickHouse outage), and must still
// find its period published.
const Slack = 7 * 24 * time.Hour

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	p := c.Period.Length
	if p <= 0 {
		errs = append(errs, errors.New("CXLINK_PULSE_PERIOD: not set"))
	}
	if c.MinRespondents < MinThreshold {
		errs = append(errs, fmt.Errorf("CXLINK_ANONYMITY_MIN_RESPONDENTS: %d is below %d, the least that keeps answers anonymous", c.MinRespondents, MinThreshold))
	}
	if c.Grace < 0 || c.Grace > 31*24*time.Hour {
		errs = append(errs, fmt.Errorf("CXLINK_PULSE_GRACE: %s is not between 0 and 31 days", c.Grace))
	}
	if l := c.Lookback.Length; l <= 0 {
		errs = append(errs, errors.New("CXLINK_PULSE_LOOKBACK: not set"))
	} else if p > 0 && l < p {
		errs = append(errs, fmt.Errorf("CXLINK_PULSE_LOOKBACK: %s is shorter than a period (%s)", c.Lookback, c.Period))
	}
	return errors.Join(errs...)
}

// PeriodLength is the length of Period.
func (c Config) PeriodLength() time.Duration { return c.Period.Length }

// LookbackLength is the length of Lookback.
func (c Config) LookbackLength() time.Duration { return c.Lookback.Length }

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
