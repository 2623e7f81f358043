package clickhouse

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config says where the ClickHouse sink writes: DefaultConfig, then the environment
// (caarlos0/env) over it.
type Config struct {
	// Addr is host:port of ClickHouse's native protocol (not the HTTP port 8123: the
	// driver's HTTP mode fails on ClickHouse 18.16).
	Addr string `env:"CLICKHOUSE_ADDR"`
	// Database is created by Migrate when missing; every table is qualified with it.
	Database string `env:"CLICKHOUSE_DATABASE"`
	// PrivateDatabase holds the individual employee pulse answers, apart from the
	// aggregates the dashboards read: grant it to the cxlink writer only (docs/privacy.md).
	// Empty: Database + "_private", so that two installations on one server (or two
	// tests) never share one.
	PrivateDatabase string `env:"CLICKHOUSE_PRIVATE_DATABASE"`
	User            string `env:"CLICKHOUSE_USER"`
	Password        string `env:"CLICKHOUSE_PASSWORD"`
	// PasswordFile names a file holding the password (a mounted secret), read at Open.
	PasswordFile string `env:"CLICKHOUSE_PASSWORD_FILE"`
	// TLS speaks the native protocol over TLS (ClickHouse's tcp_port_secure, 9440 by
	// default), verifying the server against the system's roots or TLSCAFile.
	TLS           bool   `env:"CLICKHOUSE_TLS"`
	TLSCAFile     string `env:"CLICKHOUSE_TLS_CA_FILE"`
	TLSServerName string `env:"CLICKHOUSE_TLS_SERVER_NAME"`
	// Cluster names the ClickHouse cluster (the servers' remote_servers) that holds the
	// database: migrations then create replicated tables on every node, with Distributed
	// tables under the names readers and writers use (cluster.go). Empty: one server.
	Cluster string `env:"CLICKHOUSE_CLUSTER"`
	// DialTimeout bounds connecting, and waiting for a free connection of the pool.
	DialTimeout time.Duration `env:"CLICKHOUSE_DIAL_TIMEOUT"`
	// InsertTimeout bounds one table's insert of a batch.
	InsertTimeout time.Duration `env:"CLICKHOUSE_INSERT_TIMEOUT"`
}

// DefaultConfig is the configuration when nothing is set: the local server's default
// user and database cxlink.
func DefaultConfig() Config {
	return Config{
		Addr:        "127.0.0.1:9000",
		Database:    "cxlink",
		User:        "default",
		DialTimeout: 5 * time.Second,
		// Far above the time of a large batch (10k survey rows take under 0.1 s on
		// loopback), but a stalled server does not hold the writer, and with it the
		// acks, forever.
		InsertTimeout: 30 * time.Second,
	}
}

// identifier is what a database or cluster name may be; it is pasted into SQL unquoted.
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
	if c.Cluster != "" && !identifier.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_CLUSTER %q must match %s", c.Cluster, identifier))
	}
	if c.PrivateDatabase != "" && (!identifier.MatchString(c.PrivateDatabase) || c.PrivateDatabase == c.Database) {
		errs = append(errs, fmt.Errorf("CLICKHOUSE_PRIVATE_DATABASE %q must match %s and differ from CLICKHOUSE_DATABASE", c.PrivateDatabase, identifier))
	}
	if c.User == "" {
		errs = append(errs, errors.New("CLICKHOUSE_USER must not be empty"))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("CLICKHOUSE_PASSWORD and CLICKHOUSE_PASSWORD_FILE: set one, not both"))
	}
	if !c.TLS && (c.TLSCAFile != "" || c.TLSServerName != "") {
		errs = append(errs, errors.New("CLICKHOUSE_TLS_CA_FILE and CLICKHOUSE_TLS_SERVER_NAME need CLICKHOUSE_TLS=true"))
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

// Private is the database of individual employee answers.
func (c Config) Private() string {
	if c.PrivateDatabase != "" {
		return c.PrivateDatabase
	}
	return c.Database + "_private"
}

// password is the configured password, read from PasswordFile when that is set.
func (c Config) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("CLICKHOUSE_PASSWORD_FILE: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// tlsConfig is the connection's TLS, nil without CLICKHOUSE_TLS.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("CLICKHOUSE_TLS_CA_FILE: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CLICKHOUSE_TLS_CA_FILE: %s holds no PEM certificate", c.TLSCAFile)
		}
	}
	return cfg, nil
}
