package httpapi

import (
	"context"
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
)

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
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
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
	logger.Info("http shutting down", "deadline", ShutdownTimeout)
	// Requests in flight must finish even though ctx has ended.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
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
