// Package broker runs an embedded, in-process NATS server with JetStream: the default
// broker of `cxlink run`, so that one process needs no external NATS. Its store lives on
// disk and survives restarts.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config of the embedded server. DefaultConfig holds the defaults.
type Config struct {
	// DataDir holds the JetStream store (under jetstream/).
	DataDir string `env:"CXLINK_DATA_DIR"`
	// Listen, when set (host:port), also serves NATS clients over TCP, e.g. for the
	// nats CLI or roles running as separate processes. Empty: in-process only.
	Listen string `env:"CXLINK_EMBEDDED_NATS_LISTEN"`
	// Sync is when the store is flushed to disk: "always" (before each message is
	// acknowledged) or an interval such as "2m" (NATS's default). Messages reach the
	// operating system before they are acknowledged either way, so a crash of cxlink
	// alone loses nothing; an interval risks the acknowledged messages of its last
	// stretch on a power loss or kernel crash. The embedded server is a single node with
	// no replica to fall back on, so the default is always: it costs a fraction of the
	// throughput (docs/guarantees.md has the figures) and ingest stays far above a
	// contact centre's rate.
	Sync string `env:"CXLINK_NATS_SYNC"`
	// User and Password, or Token, when set, are required of every client of the
	// listener (and of in-process clients, which Connect gives them).
	User     string `env:"-"`
	Password string `env:"-"`
	Token    string `env:"-"`
}

// SyncAlways is the value of Config.Sync that flushes every message.
const SyncAlways = "always"

// DefaultConfig is the configuration when nothing is set: the store in .cxlink of the
// working directory, synced always (see Sync).
func DefaultConfig() Config { return Config{DataDir: ".cxlink", Sync: SyncAlways} }

// syncInterval reads Sync: (0, true) for always, which an empty Sync means too.
func (c Config) syncInterval() (time.Duration, bool, error) {
	if c.Sync == SyncAlways || c.Sync == "" {
		return 0, true, nil
	}
	d, err := time.ParseDuration(c.Sync)
	if err != nil || d < time.Millisecond || d > time.Hour {
		return 0, false, fmt.Errorf("CXLINK_NATS_SYNC: %q is neither always nor an interval from 1ms to 1h", c.Sync)
	}
	return d, false, nil
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("CXLINK_DATA_DIR: must not be empty"))
	}
	if _, _, err := c.syncInterval(); err != nil {
		errs = append(errs, err)
	}
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("CXLINK_EMBEDDED_NATS_LISTEN: %w", err))
		} else if _, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("CXLINK_EMBEDDED_NATS_LISTEN: port %q is not a number", port))
		}
	}
	return errors.Join(errs...)
}

// Server is a running embedded NATS server. It owns its store until Shutdown.
type Server struct {
	ns     *server.Server
	unlock func()
	cfg    Config
}

// Start starts the server and waits until it accepts connections. A listener that other
// hosts can reach (CXLINK_EMBEDDED_NATS_LISTEN on an address other than loopback)
// requires a user and password or a token: anyone reaching it could otherwise read and
// write the events, bypassing ingest's authentication.
func Start(cfg Config, logger *slog.Logger) (*Server, error) {
	if cfg.Listen != "" && !loopback(cfg.Listen) && cfg.User == "" && cfg.Token == "" {
		return nil, fmt.Errorf("embedded nats: CXLINK_EMBEDDED_NATS_LISTEN=%s can be reached from other hosts: "+
			"set NATS_USER with NATS_PASSWORD (or NATS_PASSWORD_FILE), or NATS_TOKEN (or NATS_TOKEN_FILE), "+
			"which its clients must then present; or listen on 127.0.0.1", cfg.Listen)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	unlock, err := lockStore(filepath.Join(cfg.DataDir, "jetstream.lock"))
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	interval, always, err := cfg.syncInterval()
	if err != nil {
		unlock()
		return nil, err
	}
	opts := &server.Options{
		Username:      cfg.User,
		Password:      cfg.Password,
		Authorization: cfg.Token,
		SyncAlways:    always,
		SyncInterval:  interval,
		ServerName:    "cxlink-embedded",
		JetStream:     true,
		StoreDir:      filepath.Join(cfg.DataDir, "jetstream"),
		DontListen:    cfg.Listen == "",
		NoSigs:        true,
		NoLog:         true,
	}
	if cfg.Listen != "" {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		opts.Host = host
		opts.Port, _ = strconv.Atoi(port)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		unlock()
		return nil, errors.New("embedded nats: not ready after 30s")
	}
	logger.Info("embedded JetStream started", "store", opts.StoreDir, "listen", cfg.Listen, "sync", cfg.Sync)
	return &Server{ns: ns, unlock: unlock, cfg: cfg}, nil
}

// loopback reports whether host:port listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Connect opens an in-process client connection to the server.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	switch {
	case s.cfg.User != "":
		opts = append(opts, nats.UserInfo(s.cfg.User, s.cfg.Password))
	case s.cfg.Token != "":
		opts = append(opts, nats.Token(s.cfg.Token))
	}
	return nats.Connect("", append(opts, nats.InProcessServer(s.ns))...)
}

// ClientURL is the server's nats:// address, empty when it has no listener.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until its store is closed.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.unlock()
}
