package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Timeouts of the HTTP server. ReadTimeout covers a whole body: 8 MiB at a slow
// 150 KB/s still fits. WriteTimeout runs from the end of the request headers, so it must
// leave room for the body, the publish and the response.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	ShutdownTimeout   = 30 * time.Second
	// MaxHeaderBytes bounds a request's headers: credentials and a few more fit easily.
	MaxHeaderBytes = 64 << 10
)

// Timeouts of the server; zero fields take the defaults above.
type Timeouts struct {
	ReadHeader, Read, Write, Idle, Shutdown time.Duration
}

func (t Timeouts) orDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, ReadHeaderTimeout)
	def(&t.Read, ReadTimeout)
	def(&t.Write, WriteTimeout)
	def(&t.Idle, IdleTimeout)
	def(&t.Shutdown, ShutdownTimeout)
	return t
}

// ServeOptions of ServeWith.
type ServeOptions struct {
	Timeouts Timeouts
	// TLS, when set, serves HTTPS on the listener.
	TLS *tls.Config
}

// ListenAndServe serves h on addr until ctx ends, then shuts down gracefully: it stops
// accepting connections and waits up to ShutdownTimeout for requests in flight, so that
// a request whose events were published still gets its answer. It returns nil after a
// clean shutdown.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	return Serve(ctx, ln, h, logger)
}

// Serve is ListenAndServe on a listener it takes ownership of.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	return ServeWith(ctx, ln, h, logger, ServeOptions{})
}

// ServeWith is Serve with options: TLS, and other timeouts (tests).
func ServeWith(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, opts ServeOptions) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := opts.Timeouts.orDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		TLSConfig:         opts.TLS,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("http listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		// Serve never returns nil; it failed on its own.
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("http shutting down", "deadline", t.Shutdown)
	// Requests in flight must finish even though ctx has ended.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.Shutdown)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	if shutdownErr != nil {
		srv.Close()
		return fmt.Errorf("http shutdown: %w", shutdownErr)
	}
	logger.Info("http stopped")
	return nil
}
