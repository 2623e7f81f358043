package clickhouse

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config says where the ClickHouse sink writes. Read it with LoadConfig, or embed it in a
// larger struct parsed by caarlos0/env.
type Config struct {
	// Addr is host:port of ClickHouse's native protocol (not the HTTP port 8123: the
	// driver's HTTP mode fails on ClickHouse 18.16).
	Addr string `env:"CLICKHOUSE_ADDR" envDefault:"127.0.0.1:9000"`
	// Database is created by Migrate when missing; every table is qualified with it.
	Database string `env:"CLICKHOUSE_DATABASE" envDefault:"cxlink"`
	User     string `env:"CLICKHOUSE_USER" envDefault:"default"`
	Password string `env:"CLICKHOUSE_PASSWORD"`
	// DialTimeout bounds connecting, and waiting for a free connection of the pool.
	DialTimeout time.Duration `env:"CLICKHOUSE_DIAL_TIMEOUT" envDefault:"5s"`
	// InsertTimeout bounds one table's insert of a batch. 30 s is far above the time of
	// a large batch (10k survey rows take under 0.1 s on loopback) but keeps a stalled
	// server from holding the writer, and with it the acks, forever.
	InsertTimeout time.Duration `env:"CLICKHOUSE_INSERT_TIMEOUT" envDefault:"30s"`
}

// LoadConfig reads the Config from the environment and validates it.
func LoadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("read clickhouse config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// identifier is what a database name may be; it is pasted into SQL unquoted.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem of the Config at once.
func (c Config) Validate() error {
	var errs []error
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_ADDR %q is not host:port", c.Addr))
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_ADDR %q: port %q is not a number from 1 to 65535", c.Addr, port))
	}
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_DATABASE %q must match %s", c.Database, identifier))
	}
	if c.User == "" {
		errs = append(errs, errors.New("CLICKHOUSE_USER must not be empty"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_DIAL_TIMEOUT %s must be positive", c.DialTimeout))
	}
	if c.InsertTimeout <= 0 {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_INSERT_TIMEOUT %s must be positive", c.InsertTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid clickhouse config: %w", err)
	}
	return nil
}
