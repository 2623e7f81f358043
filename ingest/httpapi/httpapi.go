package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// Publisher stores validated events; *stream.Publisher is one. Publish returns one
// result per event, in order, once each is stored or refused or ctx ended.
type Publisher interface {
	Publish(ctx context.Context, events []event.Event) []stream.Result
}

// Options are the dependencies of a Handler.
type Options struct {
	// Publisher is required.
	Publisher Publisher
	// Ready reports why the process cannot take events (e.g. JetStream unreachable);
	// nil: always ready.
	Ready func(ctx context.Context) error
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registerer receives the metrics; nil: they are not registered.
	Registerer prometheus.Registerer
	// Now defaults to time.Now; occurred_at is checked against it.
	Now func() time.Time
	// Guard, when set, wraps POST /v1/events (after the concurrency limit): it refuses
	// requests without valid credentials and puts the authenticated source into the
	// request's context (ingest/auth). Events of an authenticated request take its
	// source when they name none, and are rejected when they name another.
	Guard func(http.Handler) http.Handler
	// Prepare, when set, is applied to every valid event before it is published (e.g.
	// pseudonymizing employee ids); an error rejects the event with that field error.
	Prepare func(*event.Event) *event.FieldError
}

// Statuses of an event in a response.
const (
	statusAccepted  = "accepted"
	statusDuplicate = "duplicate"
	statusRejected  = "rejected"
	statusFailed    = "failed"
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
type ErrorResponse struct {
	Error string `json:"error"`
}

// RetryAfter is the Retry-After of a 503: JetStream refused or did not acknowledge in time.
const RetryAfter = "2"

// RetryAfterFull is the Retry-After of a 503 because the stream is full: room comes
// back only when an operator raises the limit or old events age out.
const RetryAfterFull = "30"

// RetryAfterBusy is the Retry-After of a 429: too many requests at once.
const RetryAfterBusy = "1"

// readyTimeout bounds one readiness check.
const readyTimeout = 5 * time.Second

// Handler serves the ingest API. Mount it with Routes, or use it as an http.Handler on
// its own: it then answers 404 for every other path.
type Handler struct {
	cfg       Config
	publisher Publisher
	ready     func(ctx context.Context) error
	logger    *slog.Logger
	now       func() time.Time
	metrics   *metrics
	mux       *http.ServeMux
	guard     func(http.Handler) http.Handler
	// inFlight holds a token per event request being served.
	inFlight chan struct{}
	labels   *labelGuard
	prepare  func(*event.Event) *event.FieldError
}

// New returns the handler of cfg, which must be valid.
func New(cfg Config, opts Options) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Publisher == nil {
		return nil, errors.New("httpapi: Options.Publisher is required")
	}
	h := &Handler{
		cfg:       cfg,
		publisher: opts.Publisher,
		ready:     opts.Ready,
		logger:    opts.Logger,
		now:       opts.Now,
		metrics:   newMetrics(opts.Registerer),
		mux:       http.NewServeMux(),
		inFlight:  make(chan struct{}, cfg.MaxConcurrentRequests),
		labels:    newLabelGuard(cfg.MaxLabelValues),
		guard:     opts.Guard,
		prepare:   opts.Prepare,
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
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
	var events http.Handler = http.HandlerFunc(h.serveEvents)
	if h.guard != nil {
		events = h.guard(events)
	}
	mux.Handle("POST /v1/events", h.limit(events))
}

// ProbeRoutes registers GET /healthz and GET /readyz only.
func (h *Handler) ProbeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.serveHealth)
	mux.HandleFunc("GET /readyz", h.serveReady)
}

// limit answers 429 while CXLINK_MAX_CONCURRENT_REQUESTS requests are being served.
func (h *Handler) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.inFlight <- struct{}{}:
			defer func() { <-h.inFlight }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", RetryAfterBusy)
			writeJSON(w, http.StatusTooManyRequests, ErrorResponse{Error: fmt.Sprintf(
				"%d requests are being served already (CXLINK_MAX_CONCURRENT_REQUESTS): send again later", cap(h.inFlight))})
			h.metrics.request(http.StatusTooManyRequests, time.Now(), 0, false)
		}
	})
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

func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	b := &batch{
		validator: event.Validator{Now: h.now, MaxFuture: h.cfg.MaxFuture},
		maxEvents: h.cfg.MaxBatchEvents,
		labels:    h.labels,
		source:    auth.SourceFrom(r.Context()),
		prepare:   h.prepare,
	}
	if scope, ok := auth.ScopeFrom(r.Context()); ok {
		b.scope = &scope
	}
	if be := h.readBody(w, r, b); be != nil {
		h.logger.Debug("event request refused", "remote", r.RemoteAddr, "code", be.code, "reason", be.msg)
		writeJSON(w, be.code, ErrorResponse{Error: be.msg})
		h.metrics.request(be.code, start, b.n, false)
		return
	}
	if b.n == 0 {
		const msg = "no events in the body: send a JSON object, a JSON array of objects, or NDJSON"
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: msg})
		h.metrics.request(http.StatusBadRequest, start, 0, true)
		return
	}

	var results []stream.Result
	if len(b.events) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
		results = h.publisher.Publish(ctx, b.events)
		cancel()
		if len(results) != len(b.events) {
			// Nothing can be said about any event: report all as failed, to be resent.
			err := fmt.Errorf("publisher returned %d results for %d events", len(results), len(b.events))
			h.logger.Error("publish", "error", err)
			results = make([]stream.Result, len(b.events))
			for i := range results {
				results[i].Err = err
			}
		}
	}

	resp := h.respond(b, results)
	code := http.StatusAccepted
	switch {
	case resp.Failed > 0:
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", RetryAfter)
		for _, res := range results {
			if errors.Is(res.Err, stream.ErrFull) {
				w.Header().Set("Retry-After", RetryAfterFull)
				break
			}
		}
	case resp.Accepted+resp.Duplicates == 0:
		code = http.StatusBadRequest
	}
	writeJSON(w, code, resp)
	h.metrics.request(code, start, b.n, true)
}

// readBody checks the request's headers and reads its body into b.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, b *batch) *bodyError {
	ndjson := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return unsupported("unreadable Content-Type %q: %v", ct, err)
		case mt == "application/x-ndjson":
			ndjson = true
		case mt != "application/json":
			return unsupported("Content-Type %q is not supported: use application/json or application/x-ndjson", mt)
		}
		if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
			return unsupported("charset %q is not supported: send UTF-8", cs)
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return unsupported("Content-Encoding %q is not supported: send the body uncompressed", ce)
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return tooLarge(&http.MaxBytesError{Limit: h.cfg.MaxBodyBytes})
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	if ndjson {
		return b.readNDJSON(body)
	}
	return b.readJSON(body)
}

func unsupported(format string, args ...any) *bodyError {
	return &bodyError{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf(format, args...)}
}

// respond merges the rejected events and the publish results into the response, counts
// the outcomes and logs failures.
func (h *Handler) respond(b *batch, results []stream.Result) Response {
	resp := Response{Results: make([]EventResult, 0, len(b.rejected))}
	var firstErr error
	rejected := b.rejected
	for i, res := range results {
		p := b.pos[i]
		// Rejected events come before this one in the body: keep body order.
		for len(rejected) > 0 && rejected[0].Index < p.index {
			resp.Results = append(resp.Results, rejected[0])
			rejected = rejected[1:]
		}
		switch {
		case res.Err != nil:
			resp.Failed++
			if firstErr == nil {
				firstErr = res.Err
			}
			resp.Results = append(resp.Results, EventResult{
				Index: p.index, Line: p.line, ID: b.events[i].ID, Status: statusFailed,
				Errors: []event.FieldError{{Field: eventField, Message: "not stored, send it again: " + res.Err.Error()}},
			})
		case res.Duplicate:
			resp.Duplicates++
			resp.Results = append(resp.Results, EventResult{
				Index: p.index, Line: p.line, ID: b.events[i].ID, Status: statusDuplicate,
			})
		default:
			resp.Accepted++
		}
	}
	resp.Results = append(resp.Results, rejected...)
	resp.Rejected = len(b.rejected)

	m := h.metrics
	m.accepted.Add(float64(resp.Accepted))
	m.duplicate.Add(float64(resp.Duplicates))
	m.failed.Add(float64(resp.Failed))
	m.rejected.Add(float64(resp.Rejected))
	for _, rej := range b.rejected {
		m.rejection(rej.Errors[0].Field)
	}
	if resp.Rejected > 0 {
		h.logger.Debug("events rejected", "rejected", resp.Rejected, "events", b.n,
			"first_index", b.rejected[0].Index, "first_error", b.rejected[0].Errors[0].Error())
	}
	if firstErr != nil {
		h.logger.Warn("events not stored", "failed", resp.Failed, "events", len(b.events), "error", firstErr)
	}
	return resp
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	// A write error means the client left; the outcome is already counted.
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
