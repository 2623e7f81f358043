package app

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cxlink/cxlink/ingest/adapters"
	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/httpapi"
)

// authenticator returns the authentication of POST /v1/events, or nil when ingest
// serves without (CXLINK_AUTH=off, or auto on a loopback address). The credentials file
// may not name a source after an enabled webhook: that is the webhook's namespace.
func (r *roles) authenticator(webhooks []adapters.Adapter) (*auth.Authenticator, error) {
	enabled, err := r.cfg.Auth.Enabled(r.cfg.HTTP.Addr)
	if err != nil {
		return nil, err
	}
	if !enabled {
		r.logger.Warn("ingest accepts events without credentials", "addr", r.cfg.HTTP.Addr, "auth", r.cfg.Auth.Mode)
		return nil, nil
	}
	reserved := map[string]string{}
	for _, a := range webhooks {
		reserved[a.Name()] = "the event ids of POST /v1/sources/" + a.Name() + " are its"
	}
	return auth.New(r.cfg.Auth, auth.Options{
		Reserved:   reserved,
		Logger:     r.logger.With("component", "auth"),
		Registerer: r.reg,
	})
}

// listen opens the HTTP listeners: events (nil for a role without the ingest API) and
// admin (probes; /metrics is added) on CXLINK_HTTP_ADDR, with TLS when configured; or,
// when CXLINK_ADMIN_ADDR is set, admin on that address, plain HTTP, on its own. It
// returns the address of the first listener and a function that serves until ctx ends.
func (r *roles) listen(ctx context.Context, events, admin func(*http.ServeMux)) (string, func() error, error) {
	adminMux := http.NewServeMux()
	admin(adminMux)
	adminMux.Handle("GET /metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg}))
	type listener struct {
		name, addr string
		mux        *http.ServeMux
		tls        bool
	}
	var ls []listener
	switch {
	case r.cfg.HTTP.AdminAddr == "" && events == nil:
		ls = append(ls, listener{"CXLINK_HTTP_ADDR", r.cfg.HTTP.Addr, adminMux, false})
	case r.cfg.HTTP.AdminAddr == "":
		events(adminMux)
		ls = append(ls, listener{"CXLINK_HTTP_ADDR", r.cfg.HTTP.Addr, adminMux, true})
	case events == nil:
		ls = append(ls, listener{"CXLINK_ADMIN_ADDR", r.cfg.HTTP.AdminAddr, adminMux, false})
	default:
		mux := http.NewServeMux()
		events(mux)
		ls = append(ls, listener{"CXLINK_HTTP_ADDR", r.cfg.HTTP.Addr, mux, true},
			listener{"CXLINK_ADMIN_ADDR", r.cfg.HTTP.AdminAddr, adminMux, false})
	}
	tlsCfg, err := r.cfg.HTTP.TLSConfig()
	if err != nil {
		return "", nil, err
	}
	var tasks []func(context.Context) error
	var opened []net.Listener
	var first string
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return "", nil, fmt.Errorf("%s: %w", l.name, err)
		}
		opened = append(opened, ln)
		addr := ln.Addr().String()
		if host, port, _ := net.SplitHostPort(addr); host == "::" || host == "0.0.0.0" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		opts := httpapi.ServeOptions{}
		if l.tls {
			opts.TLS = tlsCfg
		}
		r.logger.Info("http listening", "addr", addr, "for", l.name, "tls", opts.TLS != nil)
		if first == "" {
			first = addr
		}
		mux, logger := l.mux, r.logger.With("component", "http", "listener", l.name)
		tasks = append(tasks, func(ctx context.Context) error { return httpapi.ServeWith(ctx, ln, mux, logger, opts) })
	}
	if r.opts.Listening != nil {
		r.opts.Listening(first)
	}
	return first, func() error { return runAll(ctx, tasks...) }, nil
}

// serve serves mux, with /metrics added, on CXLINK_HTTP_ADDR (or CXLINK_ADMIN_ADDR when
// set), until ctx is done: for roles whose routes are all probes and metrics.
func (r *roles) serve(ctx context.Context, mux *http.ServeMux) (string, func() error, error) {
	return r.listen(ctx, nil, func(admin *http.ServeMux) { admin.Handle("/", mux) })
}
