package pipeline

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cxlink/cxlink/processors/effort"
)

type metrics struct {
	events        *prometheus.CounterVec
	late          *prometheus.CounterVec
	attribution   *prometheus.CounterVec
	followUps     *prometheus.CounterVec
	undecodable   prometheus.Counter
	deadLetters   *prometheus.CounterVec
	rejectedRows  *prometheus.CounterVec
	replayed      prometheus.Counter
	pending       *prometheus.GaugeVec
	owned         *prometheus.GaugeVec
	watermark     *prometheus.GaugeVec
	snapshotBytes *prometheus.GaugeVec
	snapshotSaves prometheus.Histogram
	snapshotLoads *prometheus.CounterVec
	droppedChunks prometheus.Counter
	gaps          prometheus.Counter
	stateSize     *prometheus.GaugeVec
	batchRows     prometheus.Histogram
	flushDuration prometheus.Histogram
	flushErrors   prometheus.Counter
	storedLatency prometheus.Histogram
	rolling       *rollingCollector

	mu              sync.Mutex
	replayedPerPart map[int]int
}

// replayedPart counts a message replayed by partition p since it last started.
func (m *metrics) replayedPart(p int) {
	m.mu.Lock()
	m.replayedPerPart[p]++
	m.mu.Unlock()
}

func (m *metrics) replayedBy(p int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.replayedPerPart[p]
}

// forget removes the series of a partition this process no longer runs, so that the
// sums over processes count it once.
func (m *metrics) forget(p int) {
	part := partLabel(p)
	for _, g := range []*prometheus.GaugeVec{m.pending, m.owned, m.watermark, m.snapshotBytes} {
		g.DeleteLabelValues(part)
	}
	m.stateSize.DeletePartialMatch(prometheus.Labels{"partition": part})
	m.rolling.remove(p)
	m.mu.Lock()
	delete(m.replayedPerPart, p)
	m.mu.Unlock()
}

func newMetrics(reg prometheus.Registerer, maxKeys int) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_processor_events_total",
			Help: "Events applied by the processors, by type (replays not counted).",
		}, []string{"type"}),
		late: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_late_events_total",
			Help: "Events received later than the allowed lateness: stored raw, kept out of rolling windows.",
		}, []string{"type"}),
		attribution: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_survey_attribution_total",
			Help: "Surveys with only a ticket id, by outcome: immediate (ticket known), waiting, late (ticket came later), unattributed (it never came in time).",
		}, []string{"outcome"}),
		followUps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_followup_decisions_total",
			Help: "Answers that matched a follow-up rule, by outcome: opened (a case), same_ticket (the ticket had a case within the window), late (history: no case).",
		}, []string{"outcome"}),
		undecodable: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_processor_undecodable_total",
			Help: "Stream messages that are not a valid event (not published by cxlink ingest); dead-lettered.",
		}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_dead_letters_total",
			Help: "Messages set aside in the dead-letter stream, by reason: invalid (not a valid event), sink_rejected (the sink can never store a row of it).",
		}, []string{"reason"}),
		rejectedRows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_sink_rejected_rows_total",
			Help: "Rows the sink can never store (e.g. a value out of a column's range), by kind; taken out of their batch, which is written without them.",
		}, []string{"kind"}),
		replayed: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_processor_replayed_messages_total",
			Help: "Messages replayed at start-up to rebuild partition state.",
		}),
		pending: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_consumer_pending_messages",
			Help: "Messages of the partition in the stream not yet read by its processor.",
		}, []string{"partition"}),
		owned: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_partition_owned",
			Help: "1 for each partition this process runs.",
		}, []string{"partition"}),
		watermark: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_partition_watermark_timestamp_seconds",
			Help: "Every message of the partition received before this instant is stored.",
		}, []string{"partition"}),
		snapshotBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_partition_snapshot_bytes",
			Help: "Size of the partition's last saved snapshot.",
		}, []string{"partition"}),
		snapshotSaves: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_partition_snapshot_save_duration_seconds",
			Help:    "Time to save one partition snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		snapshotLoads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_snapshot_loads_total",
			Help: "Partition starts, by what the snapshot gave: ok, none (replayed), mismatch (other format or configuration: replayed), error (replayed).",
		}, []string{"result"}),
		droppedChunks: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_processor_dropped_chunks_total",
			Help: "Rows of a partition not written because its lease was lost first; its next owner writes them.",
		}),
		gaps: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_partition_stream_gaps_total",
			Help: "Partition starts that found the stream no longer holding every message after the partition's progress (its max age or size was reached first).",
		}),
		stateSize: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cxlink_processor_state_entries",
			Help: "Entries held in a partition's state, by kind (series, tickets, waiting_surveys, followup_tickets).",
		}, []string{"partition", "kind"}),
		batchRows: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_sink_batch_rows",
			Help:    "Rows per batch written to the sink.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		flushDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_sink_flush_duration_seconds",
			Help:    "Time to write one batch to the sink (each attempt).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		flushErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_sink_flush_errors_total",
			Help: "Failed batch writes (each is retried).",
		}),
		storedLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_ingest_to_stored_seconds",
			Help:    "Time from JetStream accepting an event to its raw row being stored in the sink.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		rolling: newRollingCollector(maxKeys),
	}
	for _, r := range []string{reasonInvalid, reasonRejected} {
		m.deadLetters.WithLabelValues(r)
	}
	m.replayedPerPart = map[int]int{}
	reg.MustRegister(m.rolling)
	return m
}

// Rolling-window gauges are additive (counts and sums), so that Prometheus can sum them
// over the processes sharing the partitions; means and shares are recording rules.
var (
	rollingLabels    = []string{"survey", "window", "dimension", "key"}
	rollingResponses = prometheus.NewDesc("cxlink_rolling_responses", "Survey responses in the rolling window (event time).", rollingLabels, nil)
	rollingScoreSum  = prometheus.NewDesc("cxlink_rolling_score_sum", "Sum of standard scores in the rolling window; divide by cxlink_rolling_responses for the mean.", rollingLabels, nil)
	rollingPositive  = prometheus.NewDesc("cxlink_rolling_positive", "Positive responses (CES easy 5–7, CSAT 4–5, NPS promoters 9–10) in the rolling window.", rollingLabels, nil)
	rollingNegative  = prometheus.NewDesc("cxlink_rolling_negative", "Negative responses (CES difficult 1–3, CSAT 1–2, NPS detractors 0–6) in the rolling window.", rollingLabels, nil)
)

type rollingKey struct{ survey, window, dimension, key string }

// rollingCollector exports the windows at the last tick, summed over the owned partitions.
// Agents never become labels, and each dimension exports at most maxKeys keys.
type rollingCollector struct {
	maxKeys int
	mu      sync.Mutex
	byPart  map[int]map[rollingKey]effort.Aggregate
	keys    map[string]map[string]bool // dimension → keys admitted as labels
}

func newRollingCollector(maxKeys int) *rollingCollector {
	return &rollingCollector{maxKeys: maxKeys, byPart: map[int]map[rollingKey]effort.Aggregate{}, keys: map[string]map[string]bool{}}
}

// update replaces a partition's windows; read is the partition's State.Current.
func (c *rollingCollector) update(part int, read func(func(effort.SeriesKey, effort.Window, effort.Aggregate))) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[rollingKey]effort.Aggregate)
	read(func(k effort.SeriesKey, w effort.Window, a effort.Aggregate) {
		if k.Dimension == effort.Agent {
			return
		}
		key := c.admit(k.Dimension, k.Key)
		rk := rollingKey{k.Survey, w.Name, k.Dimension, key}
		sum := m[rk]
		sum.Responses += a.Responses
		sum.ScoreMicro += a.ScoreMicro
		sum.Positive += a.Positive
		sum.Negative += a.Negative
		sum.SqMicro += a.SqMicro
		m[rk] = sum
	})
	c.byPart[part] = m
}

func (c *rollingCollector) remove(part int) {
	c.mu.Lock()
	delete(c.byPart, part)
	c.mu.Unlock()
}

func (c *rollingCollector) admit(dimension, key string) string {
	ks := c.keys[dimension]
	if ks == nil {
		ks = map[string]bool{}
		c.keys[dimension] = ks
	}
	if ks[key] {
		return key
	}
	if len(ks) < c.maxKeys {
		ks[key] = true
		return key
	}
	return "_other"
}

func (c *rollingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rollingResponses
	ch <- rollingScoreSum
	ch <- rollingPositive
	ch <- rollingNegative
}

func (c *rollingCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	total := make(map[rollingKey]effort.Aggregate)
	for _, m := range c.byPart {
		for k, a := range m {
			sum := total[k]
			sum.Responses += a.Responses
			sum.ScoreMicro += a.ScoreMicro
			sum.Positive += a.Positive
			sum.Negative += a.Negative
			total[k] = sum
		}
	}
	c.mu.Unlock()
	for k, a := range total {
		lv := []string{k.survey, k.window, k.dimension, k.key}
		ch <- prometheus.MustNewConstMetric(rollingResponses, prometheus.GaugeValue, float64(a.Responses), lv...)
		ch <- prometheus.MustNewConstMetric(rollingScoreSum, prometheus.GaugeValue, float64(a.ScoreMicro)/1e6, lv...)
		ch <- prometheus.MustNewConstMetric(rollingPositive, prometheus.GaugeValue, float64(a.Positive), lv...)
		ch <- prometheus.MustNewConstMetric(rollingNegative, prometheus.GaugeValue, float64(a.Negative), lv...)
	}
}

func partLabel(p int) string { return strconv.Itoa(p) }
