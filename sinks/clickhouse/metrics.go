package clickhouse

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of the sink, labelled by the table written. The label's values are the four
// table names, so its cardinality is fixed.
type metrics struct {
	insertDuration *prometheus.HistogramVec
	rowsWritten    *prometheus.CounterVec
	insertErrors   *prometheus.CounterVec
}

// newMetrics registers the sink's metrics on reg, or finds them there: a role that
// opens ClickHouse again after a failed start (it was down) registers them again.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(nil)
	m := &metrics{
		insertDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cxlink_clickhouse_insert_duration_seconds",
			Help: "Time of one insert of a batch into one ClickHouse table, failed ones included.",
			// 1 ms to about 33 s: a small batch on loopback up to the insert timeout.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"table"}),
		rowsWritten: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_clickhouse_rows_written_total",
			Help: "Rows ClickHouse acknowledged, retried rows counted again.",
		}, []string{"table"}),
		insertErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_clickhouse_insert_errors_total",
			Help: "Inserts into ClickHouse that failed; the whole batch is retried.",
		}, []string{"table"}),
	}
	if reg != nil {
		m.insertDuration = register(reg, m.insertDuration)
		m.rowsWritten = register(reg, m.rowsWritten)
		m.insertErrors = register(reg, m.insertErrors)
	}
	// Series exist from the start, so that rate() and absent() see a zero, not nothing.
	for _, t := range tables {
		m.insertDuration.WithLabelValues(t)
		m.rowsWritten.WithLabelValues(t)
		m.insertErrors.WithLabelValues(t)
	}
	return m
}

// register registers c on reg, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}
