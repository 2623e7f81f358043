package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/event"
)

// Publisher stores validated events; *stream.Publisher is one.
type Publisher = admit.Publisher

// Options are the dependencies of a Handler.
type Options struct {
	// Admission is the process's admission path, shared with the webhooks; nil: one of
	// the Handler's own, from the configuration and the options below.
	Admission *admit.Admission
	// Publisher is required without Admission.
	Publisher Publisher
	// Auth, when set, authenticates every request (ingest/auth); nil: ingest serves
	// without credentials, and events keep the source they name.
	Auth *auth.Authenticator
	// Ready reports why the process cannot take events (e.g. JetStream unreachable);
	// nil: always ready.
	Ready func(ctx context.Context) error
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registerer receives the metrics; nil: they are not registered.
	Registerer prometheus.Registerer
	// Now defaults to time.Now; occurred_at is checked against it. Without Admission.
	Now func() time.Time
	// Prepare, when set, is applied to every valid event before it is published (e.g.
	// pseudonymizing employee ids); an error rejects the event with that field error.
	// Without Admission.
	Prepare func(*event.Event) *event.FieldError
}

// Statuses of an event in a response.
const (
	statusAccepted  = string(admit.Accepted)
	statusDuplicate = string(admit.Duplicate)
	statusRejected  = string(admit.Rejected)
	statusFailed    = string(admit.Failed)
)

// Response is the body of every answer of POST /v1/events that read the body.
type Response struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Failed     int `json:"failed"`
	// Results lists the events that were not accepted, in body order.
	Results []EventResult `json:"results"`
}

// EventResult is what became of one event that was not accepted.
type EventResult struct {
	// Index is the event's position in the body, from 0.
	Index int `json:"index"`
	// Line is the event's NDJSON line, from 1; absent for JSON bodies.
	Line int `json:"line,omitempty"`
	// ID is the event's id, when it has a usable one.
	ID string `json:"id,omitempty"`
	// Status is "rejected" (invalid: do not resend as is), "duplicate" (already stored)
	// or "failed" (not stored: resend).
	Status string             `json:"status"`
	Errors []event.FieldError `json:"errors,omitempty"`
}

// ErrorResponse is the body of an answer about the request as a whole.
type ErrorResponse = admit.ErrorResponse

// Retry-After values (see ingest/admit).
const (
	RetryAfter     = admit.RetryAfter
	RetryAfterFull = admit.RetryAfterFull
	RetryAfterBusy = admit.RetryAfterBusy
)

// readyTimeout bounds one readiness check.
const readyTimeout = 5 * time.Second

// Handler serves the ingest API. Mount it with Routes, or use it as an http.Handler on
// its own: it then answers 404 for every other path.
type Handler struct {
	cfg       Config
	admission *admit.Admission
	auth      *auth.Authenticator
	ready     func(ctx context.Context) error
	logger    *slog.Logger
	metrics   *metrics
	mux       *http.ServeMux
}

// New returns the handler of cfg, which must be valid.
func New(cfg Config, opts Options) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	adm := opts.Admission
	if adm == nil {
		if opts.Publisher == nil {
			return nil, errors.New("httpapi: Options.Publisher is required")
		}
		var err error
		adm, err = admit.New(cfg.Admission(), admit.Options{Publisher: opts.Publisher, Prepare: opts.Prepare,
			Now: opts.Now, Logger: opts.Logger, Registerer: opts.Registerer})
		if err != nil {
			return nil, err
		}
	}
	h := &Handler{
		cfg:       cfg,
		admission: adm,
		auth:      opts.Auth,
		ready:     opts.Ready,
		logger:    opts.Logger,
		metrics:   newMetrics(opts.Registerer),
		mux:       http.NewServeMux(),
	}
	h.Routes(h.mux)
	return h, nil
}

// Routes registers POST /v1/events, GET /healthz and GET /readyz on mux. The mux answers
// 405 with an Allow header for another method on these paths, and 404 for unknown paths.
func (h *Handler) Routes(mux *http.ServeMux) {
	h.EventRoutes(mux)
	h.ProbeRoutes(mux)
}

// EventRoutes registers POST /v1/events only, for a listener of its own.
func (h *Handler) EventRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/events", h.admission.Handler(eventsRoute{h}))
}

// ProbeRoutes registers GET /healthz and GET /readyz only.
func (h *Handler) ProbeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.serveHealth)
	mux.HandleFunc("GET /readyz", h.serveReady)
}

// ServeHTTP serves the routes of Routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) serveHealth(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	if h.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := h.ready(ctx); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	writeText(w, http.StatusOK, "ok")
}

// eventsRoute is POST /v1/events on the admission path.
type eventsRoute struct{ h *Handler }

// signed is a request signed with a source's HMAC secret.
type signed struct{ s *auth.Signed }

func (p signed) Claimed() string { return p.s.Source() }

func (p signed) Verify(body []byte) (admit.Identity, error) {
	source, scope, e := p.s.Verify(body)
	if e != nil {
		return admit.Identity{}, unauthorized(e)
	}
	return admit.Identity{Source: source, Scope: &scope}, nil
}

func unauthorized(e *auth.Error) *admit.Refusal {
	ref := &admit.Refusal{Code: e.Code, Message: e.Message}
	if e.Code == http.StatusUnauthorized {
		ref.Header = http.Header{"Www-Authenticate": {`Bearer realm="cxlink"`}}
	}
	return ref
}

// Authenticate implements admit.Route.
func (rt eventsRoute) Authenticate(r *http.Request) (admit.Identity, admit.Pending, error) {
	if rt.h.auth == nil {
		return admit.Identity{}, nil, nil
	}
	source, scope, s, e := rt.h.auth.Check(r.Header)
	switch {
	case e != nil:
		return admit.Identity{}, nil, unauthorized(e)
	case s != nil:
		return admit.Identity{}, signed{s}, nil
	}
	return admit.Identity{Source: source, Scope: &scope}, nil, nil
}

// Decode implements admit.Route: the headers' content type, then the body as one JSON
// object, a JSON array of objects, or NDJSON.
func (rt eventsRoute) Decode(r *http.Request, body io.Reader, d admit.Decoding) ([]admit.Item, error) {
	ndjson := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return nil, unsupported("unreadable Content-Type %q: %v", ct, err)
		case mt == "application/x-ndjson":
			ndjson = true
		case mt != "application/json":
			return nil, unsupported("Content-Type %q is not supported: use application/json or application/x-ndjson", mt)
		}
		if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
			return nil, unsupported("charset %q is not supported: send UTF-8", cs)
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, unsupported("Content-Encoding %q is not supported: send the body uncompressed", ce)
	}
	b := &batch{d: d}
	var ref *admit.Refusal
	if ndjson {
		ref = b.readNDJSON(body)
	} else {
		ref = b.readJSON(body)
	}
	switch {
	case ref != nil:
		return nil, ref
	case len(b.items) == 0:
		return nil, badBody("no events in the body: send a JSON object, a JSON array of objects, or NDJSON")
	}
	return b.items, nil
}

func unsupported(format string, args ...any) *admit.Refusal {
	return admit.Refuse(http.StatusUnsupportedMediaType, format, args...)
}

// Refused implements admit.Route.
func (rt eventsRoute) Refused(r *http.Request, ref *admit.Refusal, start time.Time) {
	rt.h.logger.Debug("event request refused", "remote", r.RemoteAddr, "code", ref.Code, "reason", ref.Message)
	rt.h.metrics.request(ref.Code, start, 0, false)
}

// Answer implements admit.Route: the counts, and every event not accepted in body
// order.
func (rt eventsRoute) Answer(_ *http.Request, a *admit.Answer) any {
	resp := Response{Accepted: a.Accepted, Duplicates: a.Duplicates, Rejected: a.Rejected, Failed: a.Failed,
		Results: make([]EventResult, 0, len(a.Items)-a.Accepted)}
	m := rt.h.metrics
	for _, it := range a.Items {
		if it.Outcome == admit.Accepted {
			continue
		}
		res := EventResult{Index: it.Index, Line: it.Line, ID: it.ID, Status: string(it.Outcome)}
		if it.Event != nil && it.Event.ID != "" {
			res.ID = it.Event.ID
		}
		if it.Outcome != admit.Duplicate {
			res.Errors = it.Errors
		}
		if it.Outcome == admit.Rejected {
			m.rejection(it.Errors[0].Field)
		}
		resp.Results = append(resp.Results, res)
	}
	m.accepted.Add(float64(a.Accepted))
	m.duplicate.Add(float64(a.Duplicates))
	m.failed.Add(float64(a.Failed))
	m.rejected.Add(float64(a.Rejected))
	m.request(a.Code, a.Start, len(a.Items), true)
	return resp
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
