package clickhouse

import (
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

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
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
	// Series exist from the start, so that rate() and absent() see a zero, not nothing.
	for _, t := range tables {
		m.insertDuration.WithLabelValues(t)
		m.rowsWritten.WithLabelValues(t)
		m.insertErrors.WithLabelValues(t)
	}
	return m
}
