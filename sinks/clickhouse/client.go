// Package clickhouse is the sink that writes the processors' records to ClickHouse: the
// raw tables and the rolling-window partials, created and upgraded by versioned
// migrations.
//
// It speaks the native protocol through clickhouse-go v2.25, pinned because newer
// versions cannot batch-insert into ClickHouse 18.16, and writes with batches only:
// on 18.16 the driver's INSERT … VALUES through Exec hangs. The SQL runs on 18.16 and on
// current ClickHouse.
package clickhouse

import (
	"context"
	"fmt"
	"log/slog"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// Client writes batches of records into one ClickHouse database. It is safe for
// concurrent use; Close releases its connections.
type Client struct {
	conn    driver.Conn
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
}

// Open connects to ClickHouse and checks that it answers. The connection has no
// default database, because the configured one may not exist before Migrate: every
// statement names its tables with the database. reg may be nil.
func Open(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	password, err := cfg.password()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	opts := &ch.Options{
		Addr: []string{cfg.Addr},
		Auth: ch.Auth{Username: cfg.User, Password: password},
		TLS:  tlsCfg,
		// LZ4 costs little CPU and cuts the bytes of text-heavy rows by several times
		// when ClickHouse is not on the same host.
		Compression: &ch.Compression{Method: ch.CompressionLZ4},
		DialTimeout: cfg.DialTimeout,
		ClientInfo: ch.ClientInfo{
			Products: []struct{ Name, Version string }{{Name: "cxlink", Version: "1"}},
		},
	}
	if cfg.Cluster != "" {
		opts.Settings = clusterSettings
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", cfg.Addr, err)
	}
	c := &Client{
		conn:    conn,
		cfg:     cfg,
		logger:  logger.With("component", "clickhouse"),
		metrics: newMetrics(reg),
	}
	if err := c.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if v, err := conn.ServerVersion(); err == nil {
		c.logger.Info("connected to clickhouse", "addr", cfg.Addr, "database", cfg.Database, "server_version", v.String())
	}
	return c, nil
}

// Ping checks that ClickHouse answers; it is the sink's readiness.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	if err := c.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping clickhouse %s: %w", c.cfg.Addr, err)
	}
	return nil
}

// Conn is the underlying connection pool, for queries the sink does not offer (tests,
// the migrate command). Tables must be qualified with Database().
func (c *Client) Conn() driver.Conn { return c.conn }

// Database is the configured database.
func (c *Client) Database() string { return c.cfg.Database }

// PrivateDatabase is the database of individual employee answers (Config.Private).
func (c *Client) PrivateDatabase() string { return c.cfg.Private() }

// Close closes the connections. In-flight writes fail.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close clickhouse connection: %w", err)
	}
	return nil
}
