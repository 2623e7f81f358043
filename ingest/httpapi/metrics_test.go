package httpapi

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/ingest/event"
)

// metricValue is the value of the counter, or the sample count of the histogram, with
// exactly these labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func checkMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := metricValue(t, reg, name, labels); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestMetrics(t *testing.T) {
	h, reg := newTestHandler(t, testConfig(), &fakePublisher{})
	post(h, "application/x-ndjson", strings.Join([]string{
		survey,
		`{"id":"a","type":"ticket","occurred_at":"2026-11-23T10:00:00Z","ticket_id":"t","status":"created","mood":1}`,
		`{"id":"b","type":"ticket","occurred_at":"2026-11-23T10:00:00Z","status":"created"}`,
		`not json`,
	}, "\n"))
	post(h, "text/plain", survey)
	post(h, "", "[{]")

	checkMetric(t, reg, "cxlink_ingest_requests_total", map[string]string{"code": "202"}, 1)
	checkMetric(t, reg, "cxlink_ingest_requests_total", map[string]string{"code": "415"}, 1)
	checkMetric(t, reg, "cxlink_ingest_requests_total", map[string]string{"code": "400"}, 1)
	checkMetric(t, reg, "cxlink_ingest_events_total", map[string]string{"outcome": "accepted"}, 1)
	checkMetric(t, reg, "cxlink_ingest_events_total", map[string]string{"outcome": "rejected"}, 3)
	checkMetric(t, reg, "cxlink_ingest_events_total", map[string]string{"outcome": "duplicate"}, 0)
	checkMetric(t, reg, "cxlink_ingest_rejections_total", map[string]string{"field": "other"}, 1)
	checkMetric(t, reg, "cxlink_ingest_rejections_total", map[string]string{"field": "ticket_id"}, 1)
	checkMetric(t, reg, "cxlink_ingest_rejections_total", map[string]string{"field": "(event)"}, 1)
	checkMetric(t, reg, "cxlink_ingest_request_duration_seconds", nil, 3)
	// Only the request whose body could be read has a number of events.
	checkMetric(t, reg, "cxlink_ingest_request_events", nil, 1)

	// The label sets are bounded and exist before the first event.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "cxlink_ingest_rejections_total" && len(f.GetMetric()) != len(contractFields)+1 {
			t.Errorf("%d rejection series, want %d", len(f.GetMetric()), len(contractFields)+1)
		}
	}
}

// TestContractFields keeps the rejection labels in step with the contract.
func TestContractFields(t *testing.T) {
	typ := reflect.TypeFor[event.Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !slices.Contains(contractFields, name) {
			t.Errorf("contract field %q has no rejection label", name)
		}
	}
	if len(contractFields) != typ.NumField()+1 {
		t.Errorf("%d rejection labels for %d contract fields and (event)", len(contractFields), typ.NumField())
	}
}
