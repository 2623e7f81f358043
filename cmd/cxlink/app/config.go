package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
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
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/retention"
	"github.com/cxlink/cxlink/sinks/clickhouse"
)

// Config is the whole configuration, read from the environment. Every role reads all of
// it, so that a mistake is reported wherever it is made, all at once.
type Config struct {
	// NATSURL of an external NATS server or cluster; empty runs an embedded JetStream
	// server in the process (only `run` can: separate roles need a shared server).
	NATSURL  string `env:"NATS_URL"`
	NATS     NATSAuth
	LogLevel string `env:"CXLINK_LOG_LEVEL" envDefault:"info"`

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
	Leases     lease.Config
	Retention  retention.Config
	// LeasesOff runs every partition of CXLINK_PROCESS_PARTITIONS in this process
	// without taking leases: for tests that show what the leases prevent.
	LeasesOff bool `env:"CXLINK_LEASES_OFF"`
}

// LoadConfig reads and validates the configuration from environ (KEY=value pairs).
func LoadConfig(environ map[string]string) (Config, error) {
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, cfg.Validate()
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	errs := []error{c.Broker.Validate(), c.Stream.Validate(), c.HTTP.Validate(), c.Process.Validate(), c.ClickHouse.Validate(),
		c.Employees.Validate(), c.Pulses.Validate(), c.Analytics.Validate(), c.Sources.Validate(),
		c.DeadLetter.Validate(), c.Auth.Validate(), c.NATS.Validate(),
		c.Drift.Validate(c.Process.Windows), c.Leases.Validate(), c.validateRetention()}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err != nil || p.Host == "" {
				errs = append(errs, fmt.Errorf("NATS_URL: %q is not a URL such as nats://127.0.0.1:4222", redactURL(u)))
			}
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("CXLINK_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}
