package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// contractFields are the fields of event contract v1, plus "(event)", the name
// ingest/event gives to problems with an event as a whole (not JSON, not an object).
// They are the only values of the rejections' field label: the sender chooses field
// names, so an unknown one must not become a time series.
var contractFields = []string{
	"(event)",
	"id", "type", "occurred_at", "source",
	"survey", "score", "scale_min", "scale_max", "ticket_id", "customer_id",
	"channel", "category", "team", "agent_id", "comment",
	"status", "handle_seconds", "contacts",
	"employee_id", "question",
}

// otherField is the label of a field outside contractFields.
const otherField = "other"

// Status codes the events endpoint answers with, precomputed as label values.
var eventCodes = []int{
	http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusServiceUnavailable, http.StatusInternalServerError,
}

type metrics struct {
	requests   *prometheus.CounterVec
	codes      map[int]prometheus.Counter
	accepted   prometheus.Counter
	duplicate  prometheus.Counter
	rejected   prometheus.Counter
	failed     prometheus.Counter
	rejections map[string]prometheus.Counter
	duration   prometheus.Histogram
	events     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_ingest_requests_total",
			Help: "Requests to POST /v1/events, by HTTP status code.",
		}, []string{"code"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "cxlink_ingest_request_duration_seconds",
			Help: "Time to answer a POST /v1/events request, from reading its body to JetStream's last acknowledgement.",
			// 1 ms to 16 s: past the default publish timeout of 10 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		events: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_ingest_request_events",
			Help:    "Events per POST /v1/events request whose body could be read, valid or not.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 to 16384
		}),
		codes:      make(map[int]prometheus.Counter, len(eventCodes)),
		rejections: make(map[string]prometheus.Counter, len(contractFields)+1),
	}
	for _, c := range eventCodes {
		m.codes[c] = m.requests.WithLabelValues(strconv.Itoa(c))
	}
	outcomes := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_ingest_events_total",
		Help: "Events received on POST /v1/events, by outcome (accepted, duplicate, rejected, failed).",
	}, []string{"outcome"})
	m.accepted = outcomes.WithLabelValues(statusAccepted)
	m.duplicate = outcomes.WithLabelValues(statusDuplicate)
	m.rejected = outcomes.WithLabelValues(statusRejected)
	m.failed = outcomes.WithLabelValues(statusFailed)
	rejections := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlink_ingest_rejections_total",
		Help: "Rejected events by the field of their first error (fields outside contract v1: other).",
	}, []string{"field"})
	for _, name := range contractFields {
		m.rejections[name] = rejections.WithLabelValues(name)
	}
	m.rejections[otherField] = rejections.WithLabelValues(otherField)
	return m
}

// request records one answered request to the events endpoint.
func (m *metrics) request(code int, start time.Time, events int, readable bool) {
	c, ok := m.codes[code]
	if !ok {
		c = m.requests.WithLabelValues(strconv.Itoa(code))
	}
	c.Inc()
	m.duration.Observe(time.Since(start).Seconds())
	if readable {
		m.events.Observe(float64(events))
	}
}

// rejection counts a rejected event by the field of its first error.
func (m *metrics) rejection(field string) {
	c, ok := m.rejections[field]
	if !ok {
		c = m.rejections[otherField]
	}
	c.Inc()
}
