package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/stream"
)

// Publisher stores validated events; *stream.Publisher is one (the same one that
// POST /v1/events uses). Publish returns one result per event, in order.
type Publisher interface {
	Publish(ctx context.Context, events []event.Event) []stream.Result
}

// Options are the dependencies of a Handler.
type Options struct {
	// Adapters are the vendors to serve, enabled or not. Disabled is keyed by the name of
	// a vendor that is known but not configured, with the variable that enables it.
	Adapters []Adapter
	Disabled map[string]string
	// Publisher is required.
	Publisher Publisher
	// MaxBodyBytes bounds a request body; PublishTimeout bounds the wait for JetStream;
	// MaxFuture is how far ahead of Now an event may be.
	MaxBodyBytes   int64
	PublishTimeout time.Duration
	MaxFuture      time.Duration
	// Logger defaults to discarding; Registerer may be nil; Now defaults to time.Now.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Handler serves POST /v1/sources/{name}.
type Handler struct {
	opts     Options
	adapters map[string]Adapter
	metrics  *metrics
}

// New returns the handler of opts.
func New(opts Options) (*Handler, error) {
	if opts.Publisher == nil {
		return nil, errors.New("adapters: Options.Publisher is required")
	}
	if opts.MaxBodyBytes <= 0 || opts.PublishTimeout <= 0 {
		return nil, errors.New("adapters: Options.MaxBodyBytes and PublishTimeout must be positive")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, adapters: map[string]Adapter{}}
	names := []string{}
	for _, a := range opts.Adapters {
		h.adapters[a.Name()] = a
		names = append(names, a.Name())
	}
	for name := range opts.Disabled {
		names = append(names, name)
	}
	h.metrics = newMetrics(opts.Registerer, names)
	return h, nil
}

// Routes registers POST /v1/sources/{name} on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sources/{name}", h.serve)
}

// Response is the body of every answer that got past authentication.
type Response struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Failed     int `json:"failed"`
	Ignored    int `json:"ignored"`
	// Results lists every item that was not accepted, in payload order.
	Results []ItemResult `json:"results"`
}

// ItemResult is what became of one item that was not accepted.
type ItemResult struct {
	Index  int                `json:"index"`
	ID     string             `json:"id,omitempty"`
	Ref    string             `json:"ref,omitempty"`
	Status string             `json:"status"` // rejected, duplicate, failed, ignored
	Reason string             `json:"reason,omitempty"`
	Errors []event.FieldError `json:"errors,omitempty"`
}

// ErrorResponse is the body of an answer about the request as a whole.
type ErrorResponse struct {
	Error string `json:"error"`
}

const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeRejected  = "rejected"
	outcomeFailed    = "failed"
	outcomeIgnored   = "ignored"
)

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a, ok := h.adapters[name]
	if !ok {
		msg := fmt.Sprintf("no source %q: known sources are zendesk, freshdesk, intercom and delighted", name)
		if env, known := h.opts.Disabled[name]; known {
			msg = fmt.Sprintf("the %s source is not configured: set %s", name, env)
		}
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: msg})
		return
	}
	m := h.metrics.source(name)
	code := h.handle(w, r, a, m)
	m.request(code)
}

func (h *Handler) handle(w http.ResponseWriter, r *http.Request, a Adapter, m *sourceMetrics) int {
	logger := h.opts.Logger.With("source", a.Name())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return reply(w, http.StatusRequestEntityTooLarge, ErrorResponse{Error: fmt.Sprintf("body over %d bytes", tooLarge.Limit)})
		}
		return reply(w, http.StatusBadRequest, ErrorResponse{Error: "reading the body: " + err.Error()})
	}
	now := h.opts.Now()
	if err := a.Verify(r.Header, body, now); err != nil {
		m.authFailures.Inc()
		// The reason names what is wrong (missing header, mismatch, stale timestamp);
		// it never contains the secret.
		logger.Warn("webhook refused", "remote", r.RemoteAddr, "reason", err.Error())
		return reply(w, http.StatusUnauthorized, ErrorResponse{Error: err.Error()})
	}
	items, err := a.Map(body, now)
	if err != nil {
		logger.Debug("webhook body refused", "error", err)
		return reply(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
	}

	v := event.Validator{Now: h.opts.Now, MaxFuture: h.opts.MaxFuture}
	var events []event.Event
	var index []int // item index of events[i]
	resp := Response{Results: []ItemResult{}}
	results := make([]*ItemResult, len(items))
	for i := range items {
		it := &items[i]
		switch {
		case it.Ignored != "":
			resp.Ignored++
			m.item(it.Kind, outcomeIgnored)
			m.ignore(it.Ignored)
			results[i] = &ItemResult{Index: i, Ref: it.Ref, Status: outcomeIgnored, Reason: string(it.Ignored) + ": " + it.Detail}
		case len(it.Errors) > 0 || it.Event == nil:
			results[i] = h.reject(&resp, m, i, it, it.Errors)
		default:
			if errs := v.Validate(it.Event); len(errs) > 0 {
				results[i] = h.reject(&resp, m, i, it, errs)
				continue
			}
			events = append(events, *it.Event)
			index = append(index, i)
		}
	}
	if len(events) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.PublishTimeout)
		pub := h.opts.Publisher.Publish(ctx, events)
		cancel()
		if len(pub) != len(events) {
			err := fmt.Errorf("publisher returned %d results for %d events", len(pub), len(events))
			pub = make([]stream.Result, len(events))
			for i := range pub {
				pub[i].Err = err
			}
		}
		for j, res := range pub {
			i := index[j]
			it := &items[i]
			switch {
			case res.Err != nil:
				resp.Failed++
				m.item(it.Kind, outcomeFailed)
				logger.Warn("event not stored", "id", events[j].ID, "error", res.Err)
				results[i] = &ItemResult{Index: i, ID: events[j].ID, Ref: it.Ref, Status: outcomeFailed,
					Errors: []event.FieldError{{Field: "(event)", Message: "not stored, send it again: " + res.Err.Error()}}}
			case res.Duplicate:
				resp.Duplicates++
				m.item(it.Kind, outcomeDuplicate)
				results[i] = &ItemResult{Index: i, ID: events[j].ID, Ref: it.Ref, Status: outcomeDuplicate}
			default:
				resp.Accepted++
				m.item(it.Kind, outcomeAccepted)
			}
		}
	}
	for _, res := range results {
		if res != nil {
			resp.Results = append(resp.Results, *res)
		}
	}
	code := http.StatusAccepted
	switch {
	case resp.Failed > 0:
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "2")
	case resp.Accepted+resp.Duplicates > 0:
	case resp.Rejected > 0:
		code = http.StatusBadRequest
	default:
		code = http.StatusOK
	}
	if resp.Rejected > 0 {
		logger.Debug("webhook items rejected", "rejected", resp.Rejected, "items", len(items))
	}
	return reply(w, code, resp)
}

func (h *Handler) reject(resp *Response, m *sourceMetrics, i int, it *Item, errs event.Errors) *ItemResult {
	resp.Rejected++
	m.item(it.Kind, outcomeRejected)
	res := &ItemResult{Index: i, Ref: it.Ref, Status: outcomeRejected, Errors: errs}
	if it.Event != nil {
		res.ID = it.Event.ID
	}
	return res
}

func reply(w http.ResponseWriter, code int, v any) int {
	writeJSON(w, code, v)
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
