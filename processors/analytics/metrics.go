package analytics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cxlink/cxlink/processors/records"
)

type metrics struct {
	runs        *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	published   prometheus.Counter
	linkage     *linkageCollector
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	m := &metrics{
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlink_analytics_runs_total",
			Help: "Runs of the linkage and effort-impact stage, by outcome (ok, error).",
		}, []string{"outcome"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cxlink_analytics_run_duration_seconds",
			Help:    "Time of one run of the linkage and effort-impact stage (reads, computation, writes).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "cxlink_analytics_last_success_timestamp_seconds",
			Help: "When the linkage and effort-impact stage last wrote its results (Unix time).",
		}),
		// No team label: when a team's group is published is the team's own business.
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "cxlink_pulse_publications_total",
			Help: "Pulse groups (team, question, closed period) whose figures the disclosure policy published, first or again, into team_periods.",
		}),
		linkage: &linkageCollector{},
	}
	m.runs.WithLabelValues("ok")
	m.runs.WithLabelValues("error")
	reg.MustRegister(m.linkage)
	return m
}

func (m *metrics) observe(start, end time.Time, err error) {
	m.duration.Observe(end.Sub(start).Seconds())
	if err != nil {
		m.runs.WithLabelValues("error").Inc()
		return
	}
	m.runs.WithLabelValues("ok").Inc()
	m.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
}

// The current linkage as gauges. Labels are bounded: scope (period, between_teams,
// within_teams), lag (0…CXLINK_LINKAGE_MAX_LAG), and the fixed employee and customer
// metric names; never a team. Coefficients are exported only for results with status
// ok.
var (
	linkageLabels = []string{"scope", "lag", "employee_metric", "customer_metric"}
	descTeams     = prometheus.NewDesc("cxlink_linkage_teams", "Teams in the current linkage result (between_teams: teams over the span; within_teams: those seen in two periods or more).", linkageLabels, nil)
	descPairs     = prometheus.NewDesc("cxlink_linkage_pairs", "Team-period pairs in the current linkage result.", linkageLabels, nil)
	descDF        = prometheus.NewDesc("cxlink_linkage_df", "Degrees of freedom of the current linkage result's test (absent unless status ok).", linkageLabels, nil)
	descMinDet    = prometheus.NewDesc("cxlink_linkage_min_detectable_r", "Smallest |r| the current linkage result's n detects with 80% power at p < 0.05, two-sided (absent unless status ok).", linkageLabels, nil)
	descPearson   = prometheus.NewDesc("cxlink_linkage_pearson_r", "Pearson r across teams of the current linkage result (absent unless status ok).", linkageLabels, nil)
	descSpearman  = prometheus.NewDesc("cxlink_linkage_spearman_r", "Spearman rank correlation across teams of the current linkage result (absent unless status ok).", linkageLabels, nil)
	descLow       = prometheus.NewDesc("cxlink_linkage_ci_low", "Lower bound of the 95% Fisher-z interval of Pearson r (absent unless status ok).", linkageLabels, nil)
	descHigh      = prometheus.NewDesc("cxlink_linkage_ci_high", "Upper bound of the 95% Fisher-z interval of Pearson r (absent unless status ok).", linkageLabels, nil)
	descP         = prometheus.NewDesc("cxlink_linkage_p_value", "Two-sided p-value of Pearson r (absent unless status ok).", linkageLabels, nil)
	descPeriod    = prometheus.NewDesc("cxlink_linkage_period_start_timestamp_seconds", "Start of the employee period of the current linkage result (between_teams, within_teams: the last period of the span).", linkageLabels, nil)
)

type linkageCollector struct {
	mu   sync.Mutex
	rows []records.Linkage
}

func (c *linkageCollector) set(rows []records.Linkage) {
	c.mu.Lock()
	c.rows = rows
	c.mu.Unlock()
}

func (c *linkageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTeams, descPairs, descDF, descPearson, descSpearman, descLow, descHigh, descP, descMinDet, descPeriod} {
		ch <- d
	}
}

func (c *linkageCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	rows := c.rows
	c.mu.Unlock()
	for _, l := range rows {
		lv := []string{l.Scope, strconv.Itoa(int(l.Lag)), l.EmployeeMetric, l.CustomerMetric}
		ch <- prometheus.MustNewConstMetric(descTeams, prometheus.GaugeValue, float64(l.Teams), lv...)
		ch <- prometheus.MustNewConstMetric(descPairs, prometheus.GaugeValue, float64(l.Pairs), lv...)
		ch <- prometheus.MustNewConstMetric(descPeriod, prometheus.GaugeValue, float64(l.PeriodStart.Unix()), lv...)
		if l.Status != "ok" {
			continue
		}
		if l.DF != nil {
			ch <- prometheus.MustNewConstMetric(descDF, prometheus.GaugeValue, float64(*l.DF), lv...)
		}
		for _, g := range []struct {
			d *prometheus.Desc
			v *float64
		}{{descPearson, l.Pearson}, {descSpearman, l.Spearman}, {descLow, l.CILow}, {descHigh, l.CIHigh}, {descP, l.P}, {descMinDet, l.MinDetectable}} {
			if g.v != nil {
				ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, *g.v, lv...)
			}
		}
	}
}
