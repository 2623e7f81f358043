package adapters

import (
	"strconv"

	"github.com/cxlink/cxlink/ingest/admit"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of all sources; every label value is known in advance (sources, kinds,
// outcomes, reasons), so that no payload can create a time series.
type metrics struct {
	requests     *prometheus.CounterVec
	items        *prometheus.CounterVec
	ignored      *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	sources      map[string]*sourceMetrics
}

type sourceMetrics struct {
	name         string
	parent       *metrics
	authFailures prometheus.Counter
}

var outcomes = []string{string(admit.Accepted), string(admit.Duplicate), string(admit.Rejected), string(admit.Failed), string(admit.Ignored)}

func newMetrics(reg prometheus.Registerer, names []string) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_source_requests_total",
			Help: "Webhook requests to POST /v1/sources/{source}, by source and HTTP status code.",
		}, []string{"source", "code"}),
		items: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_source_items_total",
			Help: "Items in webhook payloads, by source, kind (ticket, rating, survey_response, other) and outcome (accepted, duplicate, rejected, failed, ignored).",
		}, []string{"source", "kind", "outcome"}),
		ignored: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_source_ignored_total",
			Help: "Webhook items acknowledged but not used, by source and reason (event_type, status, not_rated, survey_type).",
		}, []string{"source", "reason"}),
		authFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_source_auth_failures_total",
			Help: "Webhook requests refused because their signature or shared secret was missing or wrong.",
		}, []string{"source"}),
		sources: map[string]*sourceMetrics{},
	}
	for _, name := range names {
		s := &sourceMetrics{name: name, parent: m, authFailures: m.authFailures.WithLabelValues(name)}
		for _, k := range Kinds {
			for _, o := range outcomes {
				m.items.WithLabelValues(name, string(k), o)
			}
		}
		for _, r := range Reasons {
			m.ignored.WithLabelValues(name, string(r))
		}
		m.sources[name] = s
	}
	return m
}

func (m *metrics) source(name string) *sourceMetrics { return m.sources[name] }

func (s *sourceMetrics) request(code int) {
	s.parent.requests.WithLabelValues(s.name, strconv.Itoa(code)).Inc()
}

func (s *sourceMetrics) item(k Kind, outcome string) {
	s.parent.items.WithLabelValues(s.name, string(k), outcome).Inc()
}

func (s *sourceMetrics) ignore(r Reason) {
	s.parent.ignored.WithLabelValues(s.name, string(r)).Inc()
}
