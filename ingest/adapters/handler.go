package adapters

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/admit"
	"github.com/cxlink/cxlink/ingest/event"
)

// Options are the dependencies of a Handler.
type Options struct {
	// Adapters are the vendors to serve, enabled or not. Disabled is keyed by the name of
	// a vendor that is known but not configured, with the variable that enables it.
	Adapters []Adapter
	Disabled map[string]string
	// Admission is the process's admission path, shared with POST /v1/events.
	Admission *admit.Admission
	// Logger defaults to discarding; Registerer may be nil; Now (the time of receipt
	// given to Map and Verify) defaults to time.Now.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Handler serves POST /v1/sources/{name}.
type Handler struct {
	opts    Options
	routes  map[string]http.Handler
	metrics *metrics
}

// New returns the handler of opts.
func New(opts Options) (*Handler, error) {
	if opts.Admission == nil {
		return nil, errors.New("adapters: Options.Admission is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, routes: map[string]http.Handler{}}
	names := []string{}
	for _, a := range opts.Adapters {
		names = append(names, a.Name())
	}
	for name := range opts.Disabled {
		names = append(names, name)
	}
	h.metrics = newMetrics(opts.Registerer, names)
	for _, a := range opts.Adapters {
		h.routes[a.Name()] = opts.Admission.Handler(&route{h: h, a: a, m: h.metrics.source(a.Name()),
			logger: opts.Logger.With("source", a.Name())})
	}
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
type ErrorResponse = admit.ErrorResponse

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rt, ok := h.routes[name]
	if !ok {
		msg := fmt.Sprintf("no source %q: known sources are zendesk, freshdesk, intercom and delighted", name)
		if env, known := h.opts.Disabled[name]; known {
			msg = fmt.Sprintf("the %s source is not configured: set %s", name, env)
		}
		w.Header().Set("Connection", "close") // the body is not read
		admit.WriteJSON(w, http.StatusNotFound, ErrorResponse{Error: msg})
		return
	}
	rt.ServeHTTP(w, r)
}

// route is one vendor's webhook on the admission path.
type route struct {
	h      *Handler
	a      Adapter
	m      *sourceMetrics
	logger *slog.Logger
}

// pending is a webhook whose signature covers its body.
type pending struct {
	a      Adapter
	header http.Header
	now    time.Time
}

func (p pending) Claimed() string { return p.a.Name() }

func (p pending) Verify(body []byte) (admit.Identity, error) {
	if err := p.a.Verify(p.header, body, p.now); err != nil {
		return admit.Identity{}, refusal(err)
	}
	return admit.Identity{Source: p.a.Name()}, nil
}

// refusal is the 401 of a failed authentication; its reason names what is wrong
// (missing header, mismatch, stale timestamp), never the secret.
func refusal(err error) *admit.Refusal {
	return &admit.Refusal{Code: http.StatusUnauthorized, Message: err.Error()}
}

// Authenticate implements admit.Route: a shared secret in the headers is checked now,
// a signature over the body once it is read.
func (rt *route) Authenticate(r *http.Request) (admit.Identity, admit.Pending, error) {
	now := rt.h.opts.Now()
	if hv, ok := rt.a.(HeaderVerifier); ok {
		if err := hv.VerifyHeader(r.Header, now); err != nil {
			return admit.Identity{}, nil, refusal(err)
		}
		return admit.Identity{Source: rt.a.Name()}, nil, nil
	}
	return admit.Identity{}, pending{a: rt.a, header: r.Header, now: now}, nil
}

// Decode implements admit.Route: the vendor's payload, mapped onto items.
func (rt *route) Decode(_ *http.Request, body io.Reader, d admit.Decoding) ([]admit.Item, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, admit.ReadError(err)
	}
	items, err := rt.a.Map(data, rt.h.opts.Now())
	if err != nil {
		rt.logger.Debug("webhook body refused", "error", err)
		return nil, admit.Refuse(http.StatusBadRequest, "%s", err)
	}
	if len(items) > d.MaxEvents {
		return nil, admit.Refuse(http.StatusRequestEntityTooLarge, "more than %d items in one request: split them into smaller requests", d.MaxEvents)
	}
	out := make([]admit.Item, len(items))
	for i := range items {
		it := &items[i]
		out[i] = admit.Item{Index: i, Event: it.Event, Errors: it.Errors, Ignored: it.Ignored != "", Meta: it}
		if it.Pin != nil {
			out[i].Pin = &admit.Pin{Key: it.Pin.Key, State: it.Pin.State}
		}
		if it.Event == nil && len(it.Errors) == 0 && it.Ignored == "" {
			out[i].Errors = event.Errors{{Field: "(item)", Message: "maps onto no event"}}
		}
	}
	return out, nil
}

// Refused implements admit.Route.
func (rt *route) Refused(r *http.Request, ref *admit.Refusal, _ time.Time) {
	if ref.Code == http.StatusUnauthorized {
		rt.m.authFailures.Inc()
		rt.logger.Warn("webhook refused", "remote", r.RemoteAddr, "reason", ref.Message)
	}
	rt.m.request(ref.Code)
}

// Answer implements admit.Route.
func (rt *route) Answer(_ *http.Request, a *admit.Answer) any {
	resp := Response{Accepted: a.Accepted, Duplicates: a.Duplicates, Rejected: a.Rejected, Failed: a.Failed,
		Ignored: a.Ignored, Results: []ItemResult{}}
	for _, ai := range a.Items {
		it := ai.Meta.(*Item)
		rt.m.item(it.Kind, string(ai.Outcome))
		if ai.Outcome == admit.Accepted {
			continue
		}
		res := ItemResult{Index: ai.Index, Ref: it.Ref, Status: string(ai.Outcome)}
		if ai.Event != nil && ai.Outcome != admit.Ignored {
			res.ID = ai.Event.ID
		}
		switch ai.Outcome {
		case admit.Ignored:
			rt.m.ignore(it.Ignored)
			res.Reason = string(it.Ignored) + ": " + it.Detail
		case admit.Rejected, admit.Failed:
			res.Errors = ai.Errors
		}
		if ai.Outcome == admit.Failed {
			rt.logger.Warn("event not stored", "id", res.ID, "error", ai.Err)
		}
		resp.Results = append(resp.Results, res)
	}
	if a.Rejected > 0 {
		rt.logger.Debug("webhook items rejected", "rejected", a.Rejected, "items", len(a.Items))
	}
	rt.m.request(a.Code)
	return resp
}
