package simulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config describes one simulation run. Zero fields take the value of DefaultConfig; the
// env tags let a caller read it with caarlos0/env under a prefix of its choice.
type Config struct {
	// Target is the base URL of the ingest API; events go to Target + "/v1/events".
	Target string `env:"TARGET"`
	// Rate is the mean number of customer events (tickets and survey responses) per
	// second of simulated time. Customer contacts arrive as a Poisson process at
	// Rate / ~2.9 per second. Employee pulses come on top; they are few.
	Rate float64 `env:"RATE"`
	// Teams and AgentsPerTeam size the contact centre.
	Teams         int `env:"TEAMS"`
	AgentsPerTeam int `env:"AGENTS_PER_TEAM"`
	// Seed makes the data and the event ids repeatable: a run with the same seed and
	// start time sends the same events with the same ids. Run replaces 0 with a seed
	// from the clock and logs it, so that repeated runs do not collide on ids.
	Seed int64 `env:"SEED"`
	// PulseEvery is the employee pulse period: every team answers once per period and
	// its engagement takes one step of its random walk.
	PulseEvery time.Duration `env:"PULSE_EVERY"`
	// History, if set, is simulated first and sent as fast as the API accepts it, with
	// past occurred_at: the simulation starts at now − History and then goes on live.
	History time.Duration `env:"HISTORY"`
	// Duration is how long the run lasts on the Now clock from its start, sending the
	// history included: it simulates from start − History to start + Duration. 0 runs
	// until the context is done.
	Duration time.Duration `env:"DURATION"`
	// BatchSize is the maximum number of events per POST (sent as NDJSON). In the live
	// part a smaller batch is sent at least once a second.
	BatchSize int `env:"BATCH_SIZE"`
	// Drift, if set, makes a category or a team worse for a while.
	Drift *Drift `env:"DRIFT"`

	// Now is the clock; nil means time.Now.
	Now func() time.Time `env:"-"`
	// Client posts the batches; nil means a client with a 30 s timeout.
	Client *http.Client `env:"-"`

	// sleep waits between live ticks and before retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// DefaultConfig is the configuration zero fields fall back to.
var DefaultConfig = Config{
	Target: "http://127.0.0.1:8080",
	// ~7 contacts/s: enough for rolling windows per agent to fill within minutes, small
	// next to what one ingest process takes (thousands of events/s).
	Rate: 20,
	// 6 teams are the least the EX–CX linkage needs to print a correlation; 8 agents
	// keep a team above the anonymity threshold (5) in most pulse periods.
	Teams:         6,
	AgentsPerTeam: 8,
	// A weekly pulse, as contact centres run them; demos use minutes.
	PulseEvery: 7 * 24 * time.Hour,
	BatchSize:  100,
}

// Limits of the configuration.
const (
	maxTeams     = 1000
	maxAgents    = 1000
	maxBatchSize = 10000
	minPulse     = time.Second
)

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.Target == "" {
		c.Target = d.Target
	}
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.Teams == 0 {
		c.Teams = d.Teams
	}
	if c.AgentsPerTeam == 0 {
		c.AgentsPerTeam = d.AgentsPerTeam
	}
	if c.PulseEvery == 0 {
		c.PulseEvery = d.PulseEvery
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if c.sleep == nil {
		c.sleep = sleep
	}
	return c
}

// Validate checks a configuration after defaults are applied to its zero fields.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("target %q: want a base URL such as http://127.0.0.1:8080", c.Target))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, fmt.Errorf("batch size %d: want 1 to %d", c.BatchSize, maxBatchSize))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %s: must not be negative", c.Duration))
	}
	errs = append(errs, c.validateModel())
	return errors.Join(errs...)
}

// validateModel checks what the generator needs.
func (c Config) validateModel() error {
	var errs []error
	if math.IsNaN(c.Rate) || c.Rate <= 0 || c.Rate > 1e6 {
		errs = append(errs, fmt.Errorf("rate %v: want events per second above 0 and at most 1e6", c.Rate))
	}
	if c.Teams < 1 || c.Teams > maxTeams {
		errs = append(errs, fmt.Errorf("teams %d: want 1 to %d", c.Teams, maxTeams))
	}
	if c.AgentsPerTeam < 1 || c.AgentsPerTeam > maxAgents {
		errs = append(errs, fmt.Errorf("agents per team %d: want 1 to %d", c.AgentsPerTeam, maxAgents))
	}
	if c.PulseEvery < minPulse {
		errs = append(errs, fmt.Errorf("pulse period %s: want at least %s", c.PulseEvery, minPulse))
	}
	if c.History < 0 {
		errs = append(errs, fmt.Errorf("history %s: must not be negative", c.History))
	}
	if d := c.Drift; d != nil {
		if err := d.validate(); err != nil {
			errs = append(errs, err)
		} else if d.Team != "" && c.Teams >= 1 && c.Teams <= maxTeams && !slices.Contains(TeamNames(c.Teams), d.Team) {
			errs = append(errs, fmt.Errorf("drift: team %q is not one of the %d simulated teams (%s)",
				d.Team, c.Teams, strings.Join(TeamNames(min(c.Teams, 6)), ", ")+ellipsis(c.Teams > 6)))
		}
	}
	return errors.Join(errs...)
}

func ellipsis(more bool) string {
	if more {
		return ", …"
	}
	return ""
}

// Drift makes the customers of a category, a team or both have a worse (or better)
// experience for a while: the latent CES mean of every survey response in the window
// moves by CESDelta, and CSAT and NPS with it. Scores stay on their scales. A team's
// drift may move its employees' engagement instead (or too): EngagementDelta is added to
// the team's engagement level in every pulse period that starts inside the window, so
// its pulse answers (engagement and eNPS) drop, and its customers feel it a period later
// through the simulated engagement→CES link.
type Drift struct {
	// Category and Team select the contacts; empty matches all. At least one is set.
	Category string
	Team     string
	// After is when the drift starts, from the moment the run goes live (the end of
	// History). Negative values start it inside History.
	After time.Duration
	// For is how long it lasts; 0 lasts until the end of the run.
	For time.Duration
	// CESDelta is added to the CES mean (points on 1–7); negative is worse.
	CESDelta float64
	// EngagementDelta is added to the team's engagement level (points on 1–5); it needs
	// Team.
	EngagementDelta float64
}

// defaultDriftCES is the CES shift of a drift flag without ces=.
const defaultDriftCES = -2

// ParseDrift reads a drift from a flag value of comma-separated key=value pairs:
//
//	category=NAME  the category that drifts (see Categories)
//	team=NAME      the team that drifts (see TeamNames)
//	after=DURATION when it starts, from the moment the run goes live (default 0; may be negative)
//	for=DURATION   how long it lasts (default: until the end of the run)
//	ces=NUMBER     the shift of the CES mean in points (default -2, or 0 with engagement=)
//	engagement=NUMBER  the shift of the team's engagement level in points on 1–5 (with team=)
//
// for example "category=plan_correction,after=2m,for=10m,ces=-2" or
// "team=bravo,after=5m,for=30m,engagement=-1.5".
func ParseDrift(s string) (*Drift, error) {
	d := &Drift{}
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("drift: empty; want e.g. category=plan_correction,after=2m,for=10m,ces=-2")
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fmt.Errorf("drift: %q is not key=value (keys: category, team, after, for, ces, engagement)", part)
		}
		if seen[key] {
			return nil, fmt.Errorf("drift: %s is given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "category":
			d.Category = value
		case "team":
			d.Team = value
		case "after":
			d.After, err = parseDuration(value)
		case "for":
			d.For, err = parseDuration(value)
		case "ces":
			d.CESDelta, err = parseNumber(value)
		case "engagement":
			d.EngagementDelta, err = parseNumber(value)
		default:
			return nil, fmt.Errorf("drift: unknown key %q (keys: category, team, after, for, ces, engagement)", key)
		}
		if err != nil {
			return nil, fmt.Errorf("drift: %s: %w", key, err)
		}
	}
	if !seen["ces"] && !seen["engagement"] {
		d.CESDelta = defaultDriftCES
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}

func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 90s, 2m, 1h30m)", s)
	}
	return d, nil
}

func (d *Drift) validate() error {
	switch {
	case d.Category == "" && d.Team == "":
		return errors.New("drift: set category=… or team=… (or both)")
	case d.Category != "" && !knownCategory(d.Category):
		return fmt.Errorf("drift: category %q is not simulated (categories: %s)", d.Category, strings.Join(Categories(), ", "))
	case d.Team != "" && strings.ContainsAny(d.Team, ",= \t"):
		return fmt.Errorf("drift: team %q is not a team name", d.Team)
	case d.For < 0:
		return fmt.Errorf("drift: for: %s must not be negative", d.For)
	case d.CESDelta == 0 && d.EngagementDelta == 0:
		return errors.New("drift: ces and engagement are both 0: nothing drifts")
	case math.IsNaN(d.CESDelta) || math.Abs(d.CESDelta) > 6:
		return fmt.Errorf("drift: ces: %v must be a shift of the 1–7 CES mean, between -6 and 6", d.CESDelta)
	case math.IsNaN(d.EngagementDelta) || math.Abs(d.EngagementDelta) > 4:
		return fmt.Errorf("drift: engagement: %v must be a shift of the 1–5 engagement level, between -4 and 4", d.EngagementDelta)
	case d.EngagementDelta != 0 && d.Team == "":
		return errors.New("drift: engagement: set team=… (engagement is a team's)")
	}
	return nil
}

// String formats the drift as ParseDrift reads it.
func (d *Drift) String() string {
	if d == nil {
		return ""
	}
	var parts []string
	if d.Category != "" {
		parts = append(parts, "category="+d.Category)
	}
	if d.Team != "" {
		parts = append(parts, "team="+d.Team)
	}
	parts = append(parts, "after="+d.After.String())
	if d.For > 0 {
		parts = append(parts, "for="+d.For.String())
	}
	if d.CESDelta != 0 {
		parts = append(parts, "ces="+strconv.FormatFloat(d.CESDelta, 'g', -1, 64))
	}
	if d.EngagementDelta != 0 {
		parts = append(parts, "engagement="+strconv.FormatFloat(d.EngagementDelta, 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

// MarshalText and UnmarshalText let a Drift be a flag (flag.TextVar) or an
// environment variable.
func (d *Drift) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the drift with ParseDrift.
func (d *Drift) UnmarshalText(b []byte) error {
	p, err := ParseDrift(string(b))
	if err != nil {
		return err
	}
	*d = *p
	return nil
}

// window returns when the drift applies, given the moment the run goes live; a zero
// until means no end.
func (d *Drift) window(live time.Time) (from, until time.Time) {
	from = live.Add(d.After)
	if d.For > 0 {
		until = from.Add(d.For)
	}
	return from, until
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
