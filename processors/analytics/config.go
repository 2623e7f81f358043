package analytics

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cxlink/cxlink/processors/effort"
)

// Config of the cross-team stage. DefaultConfig holds the defaults.
type Config struct {
	// Enabled: "auto" or "on": this process stands by to run the stage, and runs it while
	// it holds the stage's lease; "off": it never does. One process at a time runs it:
	// what a run publishes of employee figures depends on what was published before, so
	// two at once could each publish a figure the other would have held back
	// (docs/privacy.md).
	Enabled string `env:"CXLINK_ANALYTICS"`
	// Every is how often linkage and effort impact are computed.
	Every time.Duration `env:"CXLINK_ANALYTICS_EVERY"`
	// Span is the number of pulse periods of the between-team and within-team results.
	Span int `env:"CXLINK_LINKAGE_SPAN"`
	// MaxLag: employee period t is linked with customer periods t … t+MaxLag.
	MaxLag int `env:"CXLINK_LINKAGE_MAX_LAG"`
	// MinTeams is the fewest teams a correlation is reported for; below, the result
	// says too_few_teams and has no coefficient. Never below 4 (the interval needs it).
	MinTeams int `env:"CXLINK_LINKAGE_MIN_TEAMS"`
	// MinResponses is the fewest customer responses a team needs in a period to take
	// part in a customer metric.
	MinResponses int `env:"CXLINK_LINKAGE_MIN_RESPONSES"`
	// ImpactWindows are the effort-impact windows.
	ImpactWindows effort.Windows `env:"CXLINK_IMPACT_WINDOWS"`
	// ImpactMinResponses is the fewest CES responses a category needs to be ranked.
	ImpactMinResponses int `env:"CXLINK_IMPACT_MIN_RESPONSES"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		Enabled: "auto",
		// Pulse periods are weeks and impact windows days: runs minutes apart keep the
		// dashboards current for a few queries each.
		Every: 5 * time.Minute,
		// A quarter of weekly periods pooled; lags up to a month.
		Span:               12,
		MaxLag:             4,
		MinTeams:           6,
		MinResponses:       10,
		ImpactWindows:      effort.MustParseWindows("7d,30d"),
		ImpactMinResponses: 30,
	}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains([]string{"auto", "on", "off"}, c.Enabled) {
		add("CXLINK_ANALYTICS: %q is not auto, on or off", c.Enabled)
	}
	if c.Every < time.Second {
		add("CXLINK_ANALYTICS_EVERY: %s is shorter than a second", c.Every)
	}
	if c.Span < 1 || c.Span > 520 {
		add("CXLINK_LINKAGE_SPAN: %d is not between 1 and 520 periods", c.Span)
	}
	if c.MaxLag < 0 || c.MaxLag > 52 {
		add("CXLINK_LINKAGE_MAX_LAG: %d is not between 0 and 52 periods", c.MaxLag)
	}
	if c.MinTeams < 4 {
		add("CXLINK_LINKAGE_MIN_TEAMS: %d is below 4, the fewest a confidence interval can be computed for", c.MinTeams)
	}
	if c.MinResponses < 1 {
		add("CXLINK_LINKAGE_MIN_RESPONSES: %d is not positive", c.MinResponses)
	}
	if len(c.ImpactWindows) == 0 {
		add("CXLINK_IMPACT_WINDOWS: no windows")
	}
	if c.ImpactMinResponses < 1 {
		add("CXLINK_IMPACT_MIN_RESPONSES: %d is not positive", c.ImpactMinResponses)
	}
	return errors.Join(errs...)
}

// Active says whether this process stands by to run the stage.
func (c Config) Active() bool { return c.Enabled != "off" }

// Lookback is how far back a run reads the raw events and rewrites its results, with
// pulse periods of length period: the linkage's periods (Span and MaxLag of them before
// the last complete one) and the longest effort-impact window. Call on a valid Config.
func (c Config) Lookback(period time.Duration) time.Duration {
	d := time.Duration(c.Span+c.MaxLag+1) * period
	ws := c.ImpactWindows
	return max(d, ws[len(ws)-1].Length)
}
