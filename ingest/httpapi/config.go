package httpapi

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/labels"
)

// Config of the HTTP ingest API. DefaultConfig holds the defaults.
type Config struct {
	// Addr is the listen address (host:port; empty host: every interface).
	Addr string `env:"CXLINK_HTTP_ADDR"`
	// MaxBodyBytes bounds one request body, as sent.
	MaxBodyBytes int64 `env:"CXLINK_MAX_BODY_BYTES"`
	// MaxBatchEvents bounds the events of one request, valid or not.
	MaxBatchEvents int `env:"CXLINK_MAX_BATCH_EVENTS"`
	// MaxFuture is how far ahead of this server's clock an occurred_at may be.
	MaxFuture time.Duration `env:"CXLINK_MAX_FUTURE"`
	// PublishTimeout bounds the wait for JetStream's acknowledgements of one request.
	PublishTimeout time.Duration `env:"CXLINK_PUBLISH_TIMEOUT"`
	// MaxConcurrentRequests bounds the requests served at once whose credentials are
	// decided (a token, a webhook's shared secret, a signature already checked), and
	// with it the memory they hold (each up to MaxBodyBytes, decoded); more are
	// answered 429. Unauthenticated requests never hold one.
	MaxConcurrentRequests int `env:"CXLINK_MAX_CONCURRENT_REQUESTS"`
	// MaxUnverifiedRequests bounds the requests whose body is being read to check its
	// signature (HMAC sources, the Zendesk, Intercom and Delighted webhooks): until it
	// matched, anybody may have sent them, so they have a budget of their own, of which
	// one claimed source holds at most half.
	MaxUnverifiedRequests int `env:"CXLINK_MAX_UNVERIFIED_REQUESTS"`
	// UnverifiedReadTimeout bounds the reading of such a body, so that a slow client
	// holds its slot briefly.
	UnverifiedReadTimeout time.Duration `env:"CXLINK_UNVERIFIED_READ_TIMEOUT"`
	// MaxLabelValues bounds the distinct values of each of the event dimensions
	// category, channel, team, question, source and agent_id that the deployment
	// accepts (every ingest replica together, ingest/labels): each becomes window series
	// and rollup rows. (Not Prometheus labels: CXLINK_METRICS_MAX_KEYS caps those. Its
	// old name, CXLINK_MAX_LABEL_VALUES, is read until the next release.)
	MaxLabelValues int `env:"CXLINK_MAX_DIMENSION_VALUES"`
	// AdminAddr, when set, moves /healthz, /readyz and /metrics off Addr onto a listener
	// of their own (e.g. a private interface), leaving Addr only POST /v1/events.
	AdminAddr string `env:"CXLINK_ADMIN_ADDR"`
	// TLSCertFile and TLSKeyFile (PEM) make Addr serve HTTPS.
	TLSCertFile string `env:"CXLINK_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"CXLINK_TLS_KEY_FILE"`
}

// DefaultConfig is the configuration when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:           ":8080",
		MaxBodyBytes:   8 << 20, // 8 MiB
		MaxBatchEvents: 10000,
		MaxFuture:      5 * time.Minute,
		PublishTimeout: 10 * time.Second,
		// Room for many connectors sending at once while bounding the worst case near
		// 32 × 8 MiB of bodies.
		MaxConcurrentRequests: 32,
		// 16 bodies of 8 MiB bound their memory near 128 MiB; vendors' webhooks are a
		// few kB.
		MaxUnverifiedRequests: 16,
		// A webhook of a few kB arrives in milliseconds, and 8 MiB at 2 MB/s within 5 s.
		UnverifiedReadTimeout: 5 * time.Second,
		// Far above the categories a contact centre names and the agents of a large
		// one, far below what would strain the processors.
		MaxLabelValues: 5000,
	}
}

// Limits that keep a configuration usable.
const (
	maxMaxBodyBytes   = 1 << 30
	maxMaxBatchEvents = 1_000_000
	maxMaxFuture      = 24 * time.Hour
)

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("CXLINK_HTTP_ADDR: %w", err))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("CXLINK_HTTP_ADDR: port %q is not a number between 0 and 65535", port))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > maxMaxBodyBytes {
		errs = append(errs, fmt.Errorf("CXLINK_MAX_BODY_BYTES: %d is not between 1024 and %d", c.MaxBodyBytes, maxMaxBodyBytes))
	}
	if c.MaxBatchEvents < 1 || c.MaxBatchEvents > maxMaxBatchEvents {
		errs = append(errs, fmt.Errorf("CXLINK_MAX_BATCH_EVENTS: %d is not between 1 and %d", c.MaxBatchEvents, maxMaxBatchEvents))
	}
	if c.MaxFuture < 0 || c.MaxFuture > maxMaxFuture {
		errs = append(errs, fmt.Errorf("CXLINK_MAX_FUTURE: %s is not between 0 and %s", c.MaxFuture, maxMaxFuture))
	}
	if c.MaxConcurrentRequests < 1 || c.MaxConcurrentRequests > 100_000 {
		errs = append(errs, fmt.Errorf("CXLINK_MAX_CONCURRENT_REQUESTS: %d is not between 1 and 100000", c.MaxConcurrentRequests))
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			errs = append(errs, fmt.Errorf("CXLINK_ADMIN_ADDR: %w", err))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("CXLINK_TLS_CERT_FILE and CXLINK_TLS_KEY_FILE: set both, or neither"))
	}
	if c.MaxLabelValues < 1 || c.MaxLabelValues > labels.MaxLimit {
		errs = append(errs, fmt.Errorf("CXLINK_MAX_DIMENSION_VALUES: %d is not between 1 and %d", c.MaxLabelValues, labels.MaxLimit))
	}
	if c.MaxUnverifiedRequests < 1 || c.MaxUnverifiedRequests > 10_000 {
		errs = append(errs, fmt.Errorf("CXLINK_MAX_UNVERIFIED_REQUESTS: %d is not between 1 and 10000", c.MaxUnverifiedRequests))
	}
	if c.UnverifiedReadTimeout < 100*time.Millisecond || c.UnverifiedReadTimeout > ReadTimeout {
		errs = append(errs, fmt.Errorf("CXLINK_UNVERIFIED_READ_TIMEOUT: %s is not between 100ms and %s", c.UnverifiedReadTimeout, ReadTimeout))
	}
	// The response must still fit in the server's write timeout after publishing.
	if c.PublishTimeout <= 0 || c.PublishTimeout > WriteTimeout/2 {
		errs = append(errs, fmt.Errorf("CXLINK_PUBLISH_TIMEOUT: %s must be positive and at most %s", c.PublishTimeout, WriteTimeout/2))
	}
	return errors.Join(errs...)
}

// Admission is the configuration of the admission path (ingest/admit).
func (c Config) Admission() admit.Config {
	return admit.Config{
		MaxBodyBytes:          c.MaxBodyBytes,
		MaxEvents:             c.MaxBatchEvents,
		MaxFuture:             c.MaxFuture,
		PublishTimeout:        c.PublishTimeout,
		MaxRequests:           c.MaxConcurrentRequests,
		MaxUnverified:         c.MaxUnverifiedRequests,
		UnverifiedReadTimeout: c.UnverifiedReadTimeout,
		MaxLabelValues:        c.MaxLabelValues,
	}
}
