// Package admit is the one admission path of ingest. Every route that takes events —
// POST /v1/events and every vendor webhook of ingest/adapters — is served by it, so that
// every route is as hard as the best of them and there is one place to make it harder:
//
//	authenticate   from the headers alone, before any of the body is read: a token or a
//	               shared secret is decided at once (401 without reading further); a
//	               signature over the body is only claimed
//	budget         a request whose credentials are decided takes a slot of
//	               CXLINK_MAX_CONCURRENT_REQUESTS; a request whose signature must still be
//	               checked takes one of CXLINK_MAX_UNVERIFIED_REQUESTS instead (a claimed
//	               source at most half of them), reads its body within
//	               CXLINK_UNVERIFIED_READ_TIMEOUT, and moves to the first budget once its
//	               signature matched. Unauthenticated clients therefore never hold a slot
//	               that an authenticated sender needs; 429 with Retry-After beyond either
//	bounded read   CXLINK_MAX_BODY_BYTES (413), the server's read timeout (408)
//	decode         the route's: JSON, NDJSON, or the vendor's payload (Route.Decode)
//	validate       event contract v1 (ingest/event)
//	source, scope  an event takes its sender's source, and must be within its scope
//	prepare        e.g. pseudonymise employee ids (Options.Prepare)
//	pin            a webhook item's id and time from its entity's pinned state (ingest/pins)
//	label guard    bounded label values across the deployment (ingest/labels)
//	publish        to JetStream, within CXLINK_PUBLISH_TIMEOUT (ingest/stream)
//	answer         one status and Retry-After decision for every route (Answer.Code)
//
// The route only authenticates from headers, decodes its body into Items and renders
// the outcome in its own response shape.
package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/labels"
	"github.com/cxlink/cxlink/ingest/pins"
	"github.com/cxlink/cxlink/ingest/stream"
)

// Publisher stores validated events; *stream.Publisher is one. Publish returns one
// result per event, in order, once each is stored or refused or ctx ended.
type Publisher interface {
	Publish(ctx context.Context, events []event.Event) []stream.Result
}

// Config of the admission path (see httpapi.Config for the variables).
type Config struct {
	MaxBodyBytes   int64
	MaxEvents      int
	MaxFuture      time.Duration
	PublishTimeout time.Duration
	// MaxRequests bounds the requests served at once whose credentials are decided.
	MaxRequests int
	// MaxUnverified bounds the requests whose body is read to check its signature; one
	// claimed source may hold at most half (at least one).
	MaxUnverified int
	// UnverifiedReadTimeout bounds the reading of such a body.
	UnverifiedReadTimeout time.Duration
	// MaxLabelValues bounds the distinct values of each label field (ingest/labels).
	MaxLabelValues int
}

// Options are the dependencies of an Admission.
type Options struct {
	// Publisher is required.
	Publisher Publisher
	// Labels holds the admitted label values; nil: this process's memory (a single
	// ingest without NATS, e.g. tests).
	Labels labels.Store
	// Pins holds the webhooks' pinned states; nil: this process's memory.
	Pins pins.Store
	// Prepare, when set, is applied to every valid event before it is published (e.g.
	// pseudonymizing employee ids); an error rejects the event with that field error.
	Prepare func(*event.Event) *event.FieldError
	// Now is the clock events are checked against; defaults to time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Retry-After values.
const (
	// RetryAfter: JetStream refused or did not acknowledge in time.
	RetryAfter = "2"
	// RetryAfterFull: the stream is full; room comes back only when an operator raises
	// the limit or old events age out.
	RetryAfterFull = "30"
	// RetryAfterBusy: too many requests at once.
	RetryAfterBusy = "1"
)

// Admission serves routes. It is safe for concurrent use; one per process, shared by
// every route, so that the budgets are the process's.
type Admission struct {
	cfg        Config
	opts       Options
	labels     *labels.Guard
	pins       pins.Store
	verified   *budget
	unverified *budget
	logger     *slog.Logger
}

// New returns the admission path of cfg.
func New(cfg Config, opts Options) (*Admission, error) {
	if opts.Publisher == nil {
		return nil, errors.New("admit: Options.Publisher is required")
	}
	if cfg.MaxBodyBytes <= 0 || cfg.MaxEvents <= 0 || cfg.PublishTimeout <= 0 || cfg.MaxRequests <= 0 ||
		cfg.MaxUnverified <= 0 || cfg.UnverifiedReadTimeout <= 0 || cfg.MaxLabelValues <= 0 {
		return nil, fmt.Errorf("admit: every limit of %+v must be positive", cfg)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Labels == nil {
		opts.Labels = labels.NewMemory()
	}
	if opts.Pins == nil {
		opts.Pins = pins.NewMemory()
	}
	f := promauto.With(opts.Registerer)
	inFlight := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cxlink_admission_in_flight",
		Help: "Requests being served, by budget: verified (credentials decided) or unverified (body being read to check its signature).",
	}, []string{"budget"})
	busy := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_admission_busy_total",
		Help: "Requests answered 429 because their budget was used up, by budget (verified, unverified).",
	}, []string{"budget"})
	a := &Admission{
		cfg:    cfg,
		opts:   opts,
		labels: labels.New(opts.Labels, cfg.MaxLabelValues, "CXLINK_MAX_DIMENSION_VALUES", opts.Now),
		pins:   opts.Pins,
		logger: opts.Logger,
		verified: newBudget(cfg.MaxRequests, 0, inFlight.WithLabelValues("verified"), busy.WithLabelValues("verified"),
			"%d requests are being served already (CXLINK_MAX_CONCURRENT_REQUESTS): send again later"),
		unverified: newBudget(cfg.MaxUnverified, max(1, cfg.MaxUnverified/2), inFlight.WithLabelValues("unverified"), busy.WithLabelValues("unverified"),
			"%d signed requests are being read already (CXLINK_MAX_UNVERIFIED_REQUESTS): send again later"),
	}
	for _, field := range labels.Fields {
		f.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "cxlink_label_values",
			Help:        "Distinct values of a label field admitted across the deployment (confirmed or reserved), as this process last read them; bounded by CXLINK_MAX_DIMENSION_VALUES.",
			ConstLabels: prometheus.Labels{"field": field},
		}, func() float64 { return float64(a.labels.Counts()[field]) })
	}
	return a, nil
}

// Identity is who sent a request, once authenticated.
type Identity struct {
	// Source is the namespace of the sender's event ids: a credential's source, or a
	// webhook's vendor. Empty when ingest runs without authentication: the events' own
	// source fields name it then.
	Source string
	// Scope is what the credential may send; nil: anything.
	Scope *auth.Scope
}

// Pending is a request whose credentials are a signature of its body.
type Pending interface {
	// Claimed is the source the request claims to be, for its share of the budget.
	Claimed() string
	// Verify checks the signature against the body; an error is a *Refusal (401).
	Verify(body []byte) (Identity, error)
}

// Route is one way events arrive: how its requests authenticate, how its bodies become
// items, and how its answers look. Implementations are safe for concurrent use.
type Route interface {
	// Authenticate decides from the headers alone: an Identity, or a Pending whose body
	// decides, or an error (a *Refusal, else 401).
	Authenticate(r *http.Request) (Identity, Pending, error)
	// Decode reads the body (bounded by CXLINK_MAX_BODY_BYTES) into items, in body
	// order; an error (a *Refusal, else 400) refuses the request as a whole.
	Decode(r *http.Request, body io.Reader, d Decoding) ([]Item, error)
	// Answer renders the outcome as the response body and counts it.
	Answer(r *http.Request, a *Answer) any
	// Refused counts a request refused as a whole; its answer is {"error": "..."}.
	Refused(r *http.Request, ref *Refusal, start time.Time)
}

// Decoding is what a route's decoder needs.
type Decoding struct {
	Validator event.Validator
	// MaxEvents bounds the events of one request, valid or not (413 beyond).
	MaxEvents int
}

// Item is one thing a body carried: an event to admit, something ignored, or
// something rejected while decoding.
type Item struct {
	// Event is set when the item is an event to admit.
	Event *event.Event
	// Validated: Event passed event contract v1 while decoding.
	Validated bool
	// Errors reject the item as decoded, each naming a field.
	Errors event.Errors
	// Ignored: of no use to cxlink (a webhook's other event types); acknowledged.
	Ignored bool
	// Pin, when set, gives Event the id and time of its entity's pinned state.
	Pin *Pin

	// Where the item was, for the route's answer.
	Index, Line int
	// ID of an item rejected while decoding, when it has a usable one.
	ID string
	// Meta is the route's own, e.g. what a vendor calls the item.
	Meta any

	// Outcome, set by admission; Err is the publish error of a failed item.
	Outcome Outcome
	Err     error
}

// Pin asks for the state of an entity to be pinned (ingest/pins): Key names the entity,
// State is what this item reports. The event's OccurredAt is the time of the report.
type Pin struct{ Key, State string }

// Outcome of an item.
type Outcome string

// Outcomes.
const (
	Accepted  Outcome = "accepted"
	Duplicate Outcome = "duplicate"
	Rejected  Outcome = "rejected"
	Failed    Outcome = "failed"
	Ignored   Outcome = "ignored"
)

// Answer is the outcome of a request whose body was read.
type Answer struct {
	// Code is the status: 503 when some event was not stored (resend), else 202 when
	// something was stored or was stored already, else 400 when something was rejected,
	// else 200 (nothing to store).
	Code int
	// RetryAfter is set with 503.
	RetryAfter string
	Items      []Item
	Identity   Identity
	Start      time.Time
	// Counts by outcome.
	Accepted, Duplicates, Rejected, Failed, Ignored int
}

// Refusal is a request refused as a whole, with its status and what to tell the client.
type Refusal struct {
	Code    int
	Message string
	// Header is added to the answer (e.g. Retry-After, WWW-Authenticate).
	Header http.Header
}

func (r *Refusal) Error() string { return r.Message }

// Refuse returns a *Refusal.
func Refuse(code int, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

func asRefusal(err error, code int) *Refusal {
	if ref, ok := errors.AsType[*Refusal](err); ok {
		return ref
	}
	return &Refusal{Code: code, Message: err.Error()}
}

// ErrorResponse is the body of an answer about the request as a whole.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Handler serves route.
func (a *Admission) Handler(route Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(route, w, r) })
}

func (a *Admission) serve(route Route, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	refuse := func(ref *Refusal) {
		for k, vs := range ref.Header {
			w.Header()[k] = vs
		}
		// The body is not read (further): the connection is closed after the answer,
		// and the server must not read the rest of the body first (it tries up to
		// 256 kB), which a slow client would make last until the read timeout.
		w.Header().Set("Connection", "close")
		WriteJSON(w, ref.Code, ErrorResponse{Error: ref.Message})
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		route.Refused(r, ref, start)
	}
	id, pending, err := route.Authenticate(r)
	if err != nil {
		refuse(asRefusal(err, http.StatusUnauthorized))
		return
	}
	var body io.Reader
	if pending != nil {
		data, ref := a.readUnverified(w, r, pending.Claimed())
		if ref != nil {
			refuse(ref)
			return
		}
		if id, err = pending.Verify(data); err != nil {
			refuse(asRefusal(err, http.StatusUnauthorized))
			return
		}
		body = bytes.NewReader(data)
	}
	release, ref := a.verified.acquire("")
	if ref != nil {
		refuse(ref)
		return
	}
	defer release()
	if body == nil {
		if r.ContentLength > a.cfg.MaxBodyBytes {
			refuse(tooLarge(a.cfg.MaxBodyBytes))
			return
		}
		body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	}
	items, err := route.Decode(r, body, Decoding{
		Validator: event.Validator{Now: a.opts.Now, MaxFuture: a.cfg.MaxFuture},
		MaxEvents: a.cfg.MaxEvents,
	})
	if err != nil {
		refuse(asRefusal(err, http.StatusBadRequest))
		return
	}
	ans := a.admit(r.Context(), id, items)
	ans.Start = start
	if ans.RetryAfter != "" {
		w.Header().Set("Retry-After", ans.RetryAfter)
	}
	WriteJSON(w, ans.Code, route.Answer(r, ans))
}

// readUnverified reads the body of a request whose signature decides, in a slot of the
// unverified budget and within the tight read timeout.
func (a *Admission) readUnverified(w http.ResponseWriter, r *http.Request, claimed string) ([]byte, *Refusal) {
	release, ref := a.unverified.acquire(claimed)
	if ref != nil {
		return nil, ref
	}
	defer release()
	if r.ContentLength > a.cfg.MaxBodyBytes {
		return nil, tooLarge(a.cfg.MaxBodyBytes)
	}
	// Not every ResponseWriter can (httptest's cannot); the server's read timeout
	// still bounds the body then.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.cfg.UnverifiedReadTimeout))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, Refuse(http.StatusRequestTimeout,
				"the signed body did not arrive within %s (CXLINK_UNVERIFIED_READ_TIMEOUT): send it faster, or in smaller requests", a.cfg.UnverifiedReadTimeout)
		}
		return nil, ReadError(err)
	}
	return data, nil
}

func tooLarge(limit int64) *Refusal {
	return Refuse(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes: split it into smaller requests", limit)
}

// ReadError describes an error reading a body: too large, or cut off by the client or
// the server's read timeout.
func ReadError(err error) *Refusal {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge(mbe.Limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return Refuse(http.StatusRequestTimeout, "the body did not arrive within the server's read timeout: send it faster, or in smaller requests")
	}
	return Refuse(http.StatusBadRequest, "could not read the body: %v", err)
}

// WriteJSON writes v as the JSON body of an answer with code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	// A write error means the client left; the outcome is already counted.
	_ = json.NewEncoder(w).Encode(v)
}
