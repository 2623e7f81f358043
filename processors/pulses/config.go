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
type Config struct {
	// Period is the pulse period: employee answers are counted, published, and linked
	// to customer scores, per team and period. "7d" (weeks starting Monday 00:00 UTC)
	// by default; demos use minutes. Periods are aligned like time.Truncate.
	Period string `env:"CXLINK_LINKAGE_PERIOD" envDefault:"7d"`
	// MinRespondents is k, the anonymity threshold: a team's answers to one question in
	// one period are published only once at least k distinct employees gave one, and
	// published again only once k more did. Never below MinThreshold.
	MinRespondents int `env:"CXLINK_ANONYMITY_MIN_RESPONDENTS" envDefault:"5"`
	// Grace is how long after its end a period is closed: its team figures are
	// published only then, so that the answers given on time are published together.
	// An hour lets a weekly pulse's stragglers of Sunday night in; later answers count
	// too, but need k more respondents to change what was published.
	Grace time.Duration `env:"CXLINK_PULSE_GRACE" envDefault:"1h"`
	// Lookback is how far back pulses count: a pulse that occurred earlier is refused
	// at ingest (it could never be published), and the analytics stage publishes the
	// closed periods in it. 92 days hold a quarter of HR exports.
	Lookback string `env:"CXLINK_PULSE_LOOKBACK" envDefault:"92d"`
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
	p, err := ParsePeriod(c.Period)
	if err != nil {
		errs = append(errs, fmt.Errorf("CXLINK_LINKAGE_PERIOD: %w", err))
	}
	if c.MinRespondents < MinThreshold {
		errs = append(errs, fmt.Errorf("CXLINK_ANONYMITY_MIN_RESPONDENTS: %d is below %d, the least that keeps answers anonymous", c.MinRespondents, MinThreshold))
	}
	if c.Grace < 0 || c.Grace > 31*24*time.Hour {
		errs = append(errs, fmt.Errorf("CXLINK_PULSE_GRACE: %s is not between 0 and 31 days", c.Grace))
	}
	if l, err := ParsePeriod(c.Lookback); err != nil {
		errs = append(errs, fmt.Errorf("CXLINK_PULSE_LOOKBACK: %w", err))
	} else if p > 0 && l < p {
		errs = append(errs, fmt.Errorf("CXLINK_PULSE_LOOKBACK: %s is shorter than a period (%s)", c.Lookback, c.Period))
	}
	return errors.Join(errs...)
}

// PeriodLength is the parsed Period; call on a valid Config.
func (c Config) PeriodLength() time.Duration {
	d, _ := ParsePeriod(c.Period)
	return d
}

// LookbackLength is the parsed Lookback; call on a valid Config.
func (c Config) LookbackLength() time.Duration {
	d, _ := ParsePeriod(c.Lookback)
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
