package app

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/httpapi"
	"github.com/cxlink/cxlink/ingest/pseudonym"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/analytics"
	"github.com/cxlink/cxlink/processors/deadletter"
	"github.com/cxlink/cxlink/processors/drift"
	"github.com/cxlink/cxlink/processors/followup"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/retention"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// Config is the whole configuration, read from the environment. Every role reads all of
// it, so that a mistake is reported wherever it is made, all at once. Its defaults are
// DefaultConfig's.
type Config struct {
	// NATSURL of an external NATS server or cluster; empty runs an embedded JetStream
	// server in the process (only `run` can: separate roles need a shared server).
	NATSURL  string `env:"NATS_URL"`
	NATS     NATSAuth
	LogLevel slog.Level `env:"CXLINK_LOG_LEVEL"`

	Broker     broker.Config
	Stream     stream.Config
	HTTP       httpapi.Config
	Process    pipeline.Config
	ClickHouse clickhouse.Config
	Employees  pseudonym.Config
	Pulses     pulses.Config
	Analytics  analytics.Config
	Sources    SourcesConfig
	DeadLetter deadletter.Config
	Auth       auth.Config
	Drift      drift.Config
	FollowUps  followup.Config
	Leases     lease.Config
	Retention  retention.Config
	// LeasesOff runs every partition of CXLINK_PROCESS_PARTITIONS in this process
	// without taking leases: for tests that show what the leases prevent.
	LeasesOff bool `env:"CXLINK_LEASES_OFF"`

	// Renamed are the old names of renamed variables that the environment used; Run
	// warns of each.
	Renamed []Rename `env:"-"`
}

// DefaultConfig is the configuration of an empty environment: each component's
// DefaultConfig.
func DefaultConfig() Config {
	return Config{
		LogLevel:   slog.LevelInfo,
		Broker:     broker.DefaultConfig(),
		Stream:     stream.DefaultConfig(),
		HTTP:       httpapi.DefaultConfig(),
		Process:    pipeline.DefaultConfig(),
		Sources:    DefaultSourcesConfig(),
		Retention:  retention.DefaultConfig(),
		FollowUps:  followup.DefaultConfig(),
		ClickHouse: clickhouse.DefaultConfig(),
		Pulses:     pulses.DefaultConfig(),
		Analytics:  analytics.DefaultConfig(),
		DeadLetter: deadletter.DefaultConfig(),
		Auth:       auth.DefaultConfig(),
		Drift:      drift.DefaultConfig(),
	}
}

// Rename is a variable's new name, and the old one still read for one release.
type Rename struct{ Old, New string }

// renames are the variables renamed since the last release.
var renames = []Rename{
	// It is the employee pulse period, which the linkage, the drift of pulses and the
	// anonymity groups all use.
	{Old: "CXLINK_LINKAGE_PERIOD", New: "CXLINK_PULSE_PERIOD"},
	// It caps the values of event dimensions that ingest accepts, not metric labels
	// (CXLINK_METRICS_MAX_KEYS caps those).
	{Old: "CXLINK_MAX_LABEL_VALUES", New: "CXLINK_MAX_DIMENSION_VALUES"},
	// It is the stream's partition count, next to CXLINK_STREAM_REPLICAS and
	// CXLINK_STREAM_MAX_AGE, not the partitions a process runs
	// (CXLINK_PROCESS_PARTITIONS says those).
	{Old: "CXLINK_PARTITIONS", New: "CXLINK_STREAM_PARTITIONS"},
}

// LoadConfig reads and validates the configuration from environ (KEY=value pairs). A
// renamed variable may still be set by its old name.
func LoadConfig(environ map[string]string) (Config, error) {
	cfg := DefaultConfig()
	environ, cfg.Renamed = applyRenames(environ)
	var errs []error
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		// A variable that does not parse keeps its default: the rest is still checked,
		// so that every problem is reported at once.
		errs = append(errs, nameVariables(err))
	}
	errs = append(errs, cfg.problems()...)
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// applyRenames copies each old name that is set, and whose new name is not, to the new
// name, and lists the renames used. (Both names set: the new one counts.)
func applyRenames(environ map[string]string) (map[string]string, []Rename) {
	var used []Rename
	for _, r := range renames {
		v, ok := environ[r.Old]
		if !ok {
			continue
		}
		used = append(used, r)
		if _, set := environ[r.New]; !set {
			environ = maps.Clone(environ)
			environ[r.New] = v
		}
	}
	return environ, used
}

// nameVariables replaces the struct field names in the parser's errors with the names of
// their variables.
func nameVariables(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	names := fieldVariables(reflect.TypeOf(Config{}))
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if vars := names[pe.Name+" "+pe.Type.String()]; len(vars) == 1 {
				e = fmt.Errorf("%s: %w", vars[0], pe.Err)
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// fieldVariables maps "FieldName type" to the variables of such fields in t.
func fieldVariables(t reflect.Type) map[string][]string {
	m := map[string][]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := f.Tag.Lookup("env"); ok && name != "-" {
			k := f.Name + " " + f.Type.String()
			m[k] = append(m[k], strings.Split(name, ",")[0])
		} else if f.Type.Kind() == reflect.Struct {
			for k, v := range fieldVariables(f.Type) {
				m[k] = append(m[k], v...)
			}
		}
	}
	return m
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	if err := errors.Join(c.problems()...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

func (c Config) problems() []error {
	errs := []error{c.Broker.Validate(), c.Stream.Validate(), c.HTTP.Validate(), c.Process.Validate(), c.ClickHouse.Validate(),
		c.Employees.Validate(), c.Pulses.Validate(), c.Analytics.Validate(), c.Sources.Validate(),
		c.DeadLetter.Validate(), c.Auth.Validate(), c.NATS.Validate(),
		c.Drift.Validate(c.Process.Windows), c.Leases.Validate(), c.validateRetention(),
		c.FollowUps.Validate(c.Drift.Owners.String())}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err != nil || p.Host == "" {
				errs = append(errs, fmt.Errorf("NATS_URL: %q is not a URL such as nats://127.0.0.1:4222", redactURL(u)))
			}
		}
	}
	return errs
}
