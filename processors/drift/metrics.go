package drift

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Drift gauges, one set per series (survey, dimension, key) with its owner; survey is
// ces, csat or nps, or engagement or enps (dimension team). They are read
// from merged windows, so one process exports them for all; the keys per dimension are
// capped like the rolling gauges' (CXLINK_METRICS_MAX_KEYS).
var (
	seriesLabels = []string{"survey", "dimension", "key", "owner"}
	descZ        = prometheus.NewDesc("cxlink_drift_z",
		"Drift statistic of the recent window against the baseline, as a z score, by detector: mean (Welch z; negative = lower scores), negative_share (two-proportion z of the share of negative answers; positive = more), ewma (standardized moving average of the mean's z over blocks of the recent window, for slow drifts).",
		append(seriesLabels, "detector"), nil)
	descEffect = prometheus.NewDesc("cxlink_drift_effect",
		"Size of the difference between the recent window and the baseline whatever the number of responses, by detector: mean (Cohen's d, in baseline standard deviations), negative_share (Cohen's h).",
		append(seriesLabels, "detector"), nil)
	descScore = prometheus.NewDesc("cxlink_drift_score",
		"The recent window's value the detector compares: mean on the survey's standard scale (detector mean; engagement 1-5, enps in eNPS points), or the share of negative answers in percent (detector negative_share).",
		append(seriesLabels, "detector"), nil)
	descBaseline = prometheus.NewDesc("cxlink_drift_baseline",
		"The baseline's value the detector compares (see cxlink_drift_score); the baseline window ends where the recent window starts.",
		append(seriesLabels, "detector"), nil)
	descResponses = prometheus.NewDesc("cxlink_drift_responses",
		"Responses in the recent window and in the baseline window (side); for engagement and enps, the respondents of the team's latest pulse period and of the periods before it.",
		append(seriesLabels, "side"), nil)
	descActive = prometheus.NewDesc("cxlink_drift_episode_active",
		"1 while a drift episode of the series is open (recorded in ClickHouse drift_events), by detector and direction (worse, better).",
		append(seriesLabels, "detector", "direction"), nil)
)

type metrics struct {
	errors     prometheus.Counter
	incomplete prometheus.Counter
	evaluated  prometheus.Gauge
	mu         sync.Mutex
	current    *snapshot
	maxKeys    int
	keys       map[string]map[string]bool // dimension → keys admitted as labels
}

func newMetrics(reg prometheus.Registerer, maxKeys int) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		errors: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_drift_evaluation_errors_total",
			Help: "Drift evaluations that failed (ClickHouse unreachable); the next tick tries again.",
		}),
		incomplete: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_drift_incomplete_ticks_total",
			Help: "Ticks judged before every partition's watermark passed them (CXLINK_DRIFT_MAX_WAIT): a partition was slow or had no owner.",
		}),
		evaluated: f.NewGauge(prometheus.GaugeOpts{
			Name: "cxlink_drift_last_evaluated_tick_timestamp_seconds",
			Help: "The rollup tick (window end, Unix seconds) the drift gauges describe; it lags the clock by the step and CXLINK_DRIFT_DELAY.",
		}),
		current: &snapshot{},
		maxKeys: maxKeys,
		keys:    map[string]map[string]bool{},
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

type gaugeSample struct {
	labels []string
	value  float64
}

// snapshot holds the gauges of one evaluation.
type snapshot struct {
	m                                           *metrics
	z, effect, score, baseline, responses, open []gaugeSample
}

func (m *metrics) newSnapshot() *snapshot { return &snapshot{m: m} }

// admit reports whether a series' key may be a label value.
func (m *metrics) admit(dimension, key string) bool {
	ks := m.keys[dimension]
	if ks == nil {
		ks = map[string]bool{}
		m.keys[dimension] = ks
	}
	if ks[key] {
		return true
	}
	if len(ks) < m.maxKeys {
		ks[key] = true
		return true
	}
	return false
}

func (s *snapshot) series(k seriesKey, owner string, nRecent, nBaseline uint64, readings map[string]reading) {
	if !s.m.admit(k.dimension, k.key) {
		return
	}
	lv := []string{k.survey, k.dimension, k.key, owner}
	with := func(extra string) []string { return append(append([]string(nil), lv...), extra) }
	s.responses = append(s.responses, gaugeSample{with("recent"), float64(nRecent)}, gaugeSample{with("baseline"), float64(nBaseline)})
	for det, r := range readings {
		s.z = append(s.z, gaugeSample{with(det), r.z})
		if det != EWMA {
			s.effect = append(s.effect, gaugeSample{with(det), r.effect})
			s.score = append(s.score, gaugeSample{with(det), r.recent})
			s.baseline = append(s.baseline, gaugeSample{with(det), r.baseline})
		}
	}
}

func (s *snapshot) active(k seriesKey, owner, detector, direction string) {
	if !s.m.admit(k.dimension, k.key) {
		return
	}
	s.open = append(s.open, gaugeSample{[]string{k.survey, k.dimension, k.key, owner, detector, direction}, 1})
}

func (m *metrics) publish(s *snapshot, tick time.Time) {
	m.mu.Lock()
	m.current = s
	m.mu.Unlock()
	m.evaluated.Set(float64(tick.Unix()))
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descZ, descEffect, descScore, descBaseline, descResponses, descActive} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	s := m.current
	m.mu.Unlock()
	for _, set := range []struct {
		desc    *prometheus.Desc
		samples []gaugeSample
	}{{descZ, s.z}, {descEffect, s.effect}, {descScore, s.score}, {descBaseline, s.baseline}, {descResponses, s.responses}, {descActive, s.open}} {
		for _, v := range set.samples {
			ch <- prometheus.MustNewConstMetric(set.desc, prometheus.GaugeValue, v.value, v.labels...)
		}
	}
}

// clear stops exporting the series: another process holds the stage now.
func (m *metrics) clear() {
	m.mu.Lock()
	m.current = m.newSnapshot()
	m.mu.Unlock()
}
