package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
)

// Detectors, as named in the metrics' detector label and in drift_events.
const (
	// Mean: Welch z of the recent window's mean against the baseline's.
	Mean = "mean"
	// NegativeShare: two-proportion z of the share of negative answers (CES difficult,
	// CSAT dissatisfied, NPS detractors); positive z = more negative answers.
	NegativeShare = "negative_share"
	// EWMA: the standardized moving average of the mean's z over consecutive blocks of
	// the recent window's length, for drifts too slow for one window to show.
	EWMA = "ewma"
)

// Directions of an episode, for the customers.
const (
	Worse  = "worse"
	Better = "better"
)

// Source reads the rolling windows back, the partitions added up.
type Source interface {
	// WindowTotals returns window w ending at each tick in ends, for every series with
	// responses (overall, category, channel, team).
	WindowTotals(ctx context.Context, w effort.Window, ends []time.Time) ([]records.WindowTotal, error)
	// TeamPeriods returns the published team figures (team_periods) of the pulse
	// period named period with period_start in [from, to).
	TeamPeriods(ctx context.Context, period string, from, to time.Time) ([]records.TeamPeriod, error)
	// OpenDriftEvents returns the recorded episodes that have not ended.
	OpenDriftEvents(ctx context.Context) ([]records.DriftEvent, error)
}

// HistorySource is a Source that also reads the late answers' windows, for baselines
// that count imported history (Config.BaselineHistory).
type HistorySource interface {
	// LateWindowTotals is WindowTotals of the answers that arrived late (left out of
	// the rolling windows), by when they occurred.
	LateWindowTotals(ctx context.Context, w effort.Window, ends []time.Time) ([]records.WindowTotal, error)
}

// Sink stores episode rows; writing a row twice is harmless.
type Sink interface {
	WriteDriftEvents(ctx context.Context, events []records.DriftEvent) error
}

// Options are the stage's collaborators.
type Options struct {
	Source Source
	Sink   Sink
	// Windows and Step are the processors' (CXLINK_WINDOWS, CXLINK_ROLLUP_STEP).
	Windows effort.Windows
	Step    time.Duration
	// Pulses is the pulse period and anonymity threshold (CXLINK_PULSE_PERIOD,
	// CXLINK_ANONYMITY_MIN_RESPONDENTS) for the engagement and eNPS series; with no
	// period, those series are not judged.
	Pulses pulses.Config
	// MaxKeys caps the keys per dimension exported as metric labels
	// (CXLINK_METRICS_MAX_KEYS); the others are still judged and recorded.
	MaxKeys    int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Ticks, when set, are the rollup ticks to evaluate instead of the wall clock's.
	Ticks <-chan time.Time
	// Watermarks, when set, reads every partition's watermark (processors/checkpoint):
	// a tick is judged once all have passed it, or Config.MaxWait after it.
	Watermarks func(ctx context.Context) ([]time.Time, error)
}

type seriesKey struct{ survey, dimension, key string }

type episodeKey struct {
	series   seriesKey
	detector string
}

type pendingKey struct {
	episodeKey
	start time.Time
}

// reading is one detector's view of one series at one tick.
type reading struct {
	z  float64
	ok bool // z could be computed
	// effect is the size of the difference, whatever n: Cohen's d for the mean (in
	// baseline standard deviations), Cohen's h for the negative share; NaN when unknown.
	// A drift starts only if |effect| ≥ MinEffect (the EWMA, meant for small shifts,
	// has no such floor).
	effect             float64
	recent, baseline   float64
	nRecent, nBaseline uint64
}

// Stage is the drift detector. Run evaluates each rollup tick once it is written.
type Stage struct {
	cfg            Config
	opts           Options
	owners         *Owners
	recent, base   effort.Window
	logger         *slog.Logger
	metrics        *metrics
	ewmas          map[seriesKey]*ewma
	lastBlock      time.Time // the last block folded into the EWMAs
	open           map[episodeKey]*records.DriftEvent
	pending        map[pendingKey]records.DriftEvent // latest rows not yet written
	loaded         bool                              // open episodes were read back
	lastEvaluation time.Time
	token          uint64 // of the lease this process holds the stage under
}

// New checks the configuration and prepares the stage.
func New(cfg Config, opts Options) (*Stage, error) {
	if err := cfg.Validate(opts.Windows); err != nil {
		return nil, err
	}
	ws := opts.Windows
	if len(ws) == 0 {
		return nil, errors.New("CXLINK_WINDOWS: no windows")
	}
	if opts.Pulses.Period.Name != "" {
		if err := opts.Pulses.Validate(); err != nil {
			return nil, err
		}
	}
	if opts.MaxKeys < 1 {
		return nil, fmt.Errorf("drift: MaxKeys %d: the metrics need a positive cap (CXLINK_METRICS_MAX_KEYS)", opts.MaxKeys)
	}
	recent, base, _, _ := cfg.windows(ws)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Stage{
		cfg: cfg, opts: opts, owners: &cfg.Owners, recent: recent, base: base,
		logger:  opts.Logger.With("component", "drift"),
		metrics: newMetrics(opts.Registerer, opts.MaxKeys),
		ewmas:   map[seriesKey]*ewma{},
		open:    map[episodeKey]*records.DriftEvent{},
		pending: map[pendingKey]records.DriftEvent{},
	}, nil
}

// Run evaluates every rollup tick, Delay after it and once the partitions stored it,
// until ctx ends, while this process holds the stage's lease taken at token
// (processors/lease): token orders its rows after those of earlier holders. It starts
// from the episodes as recorded, whoever wrote them. A failed evaluation is logged and
// counted; the next tick tries again (nothing is lost: episode rows not written are kept
// until they are).
func (s *Stage) Run(ctx context.Context, token uint64) error {
	s.reset(token)
	defer s.metrics.clear()
	ticks := s.opts.Ticks
	if ticks == nil {
		ch := make(chan time.Time)
		go func() {
			for {
				next := time.Now().Add(-s.cfg.Delay).Truncate(s.opts.Step).Add(s.opts.Step)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next.Add(s.cfg.Delay))):
				}
				select {
				case ch <- next:
				case <-ctx.Done():
					return
				}
			}
		}()
		ticks = ch
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-ticks:
			if !s.awaitPartitions(ctx, t) {
				return nil
			}
			if err := s.Evaluate(ctx, t); err != nil && ctx.Err() == nil {
				s.metrics.errors.Inc()
				s.logger.Warn("drift evaluation failed; trying again at the next tick", "tick", t, "err", err)
			}
		}
	}
}

// reset forgets what an earlier tenure held: another holder may have changed the
// episodes since.
func (s *Stage) reset(token uint64) {
	s.token = token
	s.loaded = false
	s.lastEvaluation, s.lastBlock = time.Time{}, time.Time{}
	clear(s.ewmas)
	clear(s.open)
	clear(s.pending)
}

// awaitPartitions waits until every partition's watermark passed t, or MaxWait after t;
// false when ctx ended first.
func (s *Stage) awaitPartitions(ctx context.Context, t time.Time) bool {
	if s.opts.Watermarks == nil {
		return true
	}
	for {
		wm, err := s.opts.Watermarks(ctx)
		if err == nil && allPassed(wm, t) {
			return true
		}
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("read partition watermarks", "err", err)
		}
		if !time.Now().Before(t.Add(s.cfg.MaxWait)) {
			s.metrics.incomplete.Inc()
			s.logger.Warn("judging a tick before every partition stored it", "tick", t, "max_wait", s.cfg.MaxWait)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

func allPassed(watermarks []time.Time, t time.Time) bool {
	for _, w := range watermarks {
		if w.Before(t) {
			return false
		}
	}
	return true
}

// Evaluate judges every series at rollup tick t (a multiple of the step).
func (s *Stage) Evaluate(ctx context.Context, t time.Time) error {
	t = t.UTC()
	if !s.loaded {
		if err := s.loadOpen(ctx); err != nil {
			return err
		}
		s.loaded = true
	}
	if !t.After(s.lastEvaluation) {
		return nil
	}
	recent, err := s.windows(ctx, s.recent, t)
	if err != nil {
		return err
	}
	baseline, err := s.baselines(ctx, []time.Time{t.Add(-s.recent.Length)})
	if err != nil {
		return err
	}
	if err := s.foldBlocks(ctx, t); err != nil {
		return err
	}
	var pulseReadings map[seriesKey]reading
	if s.opts.Pulses.Period.Name != "" {
		if pulseReadings, err = s.pulseSeries(ctx, t); err != nil {
			return err
		}
	}
	snap := s.metrics.newSnapshot()
	seen := map[episodeKey]bool{}
	baseEnd := t.Add(-s.recent.Length)
	for k, r := range recent {
		b := baseline[windowAt{k, baseEnd}]
		rs, bs := toSample(r), toSample(b)
		eligible := r.Responses >= s.cfg.MinRecent && b.Responses >= s.cfg.MinBaseline
		readings := map[string]reading{}
		if z, ok := welchZ(rs, bs); ok {
			readings[Mean] = reading{z: z, ok: true, effect: cohenD(rs, bs), recent: rs.mean(), baseline: bs.mean(),
				nRecent: r.Responses, nBaseline: b.Responses}
		}
		if z, ok := twoProportionZ(rs, bs); ok {
			readings[NegativeShare] = reading{z: z, ok: true, effect: cohenH(rs, bs), recent: 100 * rs.negative / rs.n,
				baseline: 100 * bs.negative / bs.n, nRecent: r.Responses, nBaseline: b.Responses}
		}
		if e := s.ewmas[k]; e != nil {
			if z, ok := e.z(); ok && b.Responses > 0 {
				readings[EWMA] = reading{z: z, ok: true, effect: math.NaN(), recent: rs.mean(), baseline: bs.mean(),
					nRecent: r.Responses, nBaseline: b.Responses}
			}
		}
		s.judge(snap, seen, k, t, readings, r.Responses, b.Responses, eligible)
	}
	// A pulse series has a reading only when it can start an episode: published groups,
	// with enough baseline periods.
	for k, r := range pulseReadings {
		s.judge(snap, seen, k, t, map[string]reading{Mean: r}, r.nRecent, r.nBaseline, true)
	}
	// Series with an open episode and no reading now (no responses left, or no spread):
	// the drift is over as far as can be told.
	for ek := range s.open {
		if !seen[ek] {
			s.step(ek, s.owners.Owner(ek.series.dimension, ek.series.key), t, reading{}, false)
		}
	}
	for ek, e := range s.open {
		snap.active(ek.series, e.Owner, ek.detector, e.Direction)
	}
	s.metrics.publish(snap, t)
	s.lastEvaluation = t
	return s.flush(ctx)
}

// judge exports the readings of one series and advances its episodes.
func (s *Stage) judge(snap *snapshot, seen map[episodeKey]bool, k seriesKey, t time.Time, readings map[string]reading, nRecent, nBaseline uint64, eligible bool) {
	owner := s.owners.Owner(k.dimension, k.key)
	snap.series(k, owner, nRecent, nBaseline, readings)
	for det, rd := range readings {
		ek := episodeKey{k, det}
		seen[ek] = true
		s.step(ek, owner, t, rd, eligible)
	}
}

// step advances the episode of one series and detector with the reading at t.
func (s *Stage) step(ek episodeKey, owner string, t time.Time, r reading, eligible bool) {
	e := s.open[ek]
	if e != nil {
		sign := math.Copysign(1, e.PeakStatistic)
		switch {
		case !r.ok || sign*r.z < s.cfg.ClearZ:
			e.EndedAt = t
			delete(s.open, ek)
		case sign*r.z > sign*e.PeakStatistic:
			setPeak(e, t, r)
		default:
			return
		}
		e.Owner = owner
		e.Version = lease.Version(t, s.token)
		s.pending[pendingKey{ek, e.StartedAt}] = *e
		if !e.EndedAt.IsZero() {
			s.logger.Info("drift ended", "survey", e.Survey, "dimension", e.Dimension, "key", e.Key, "owner", owner,
				"detector", e.Detector, "direction", e.Direction, "started", e.StartedAt, "peak_z", round2(e.PeakStatistic))
		}
		return
	}
	if !r.ok || !eligible || math.Abs(r.z) < s.cfg.Z || ek.detector != EWMA && !(math.Abs(r.effect) >= s.cfg.MinEffect) {
		return
	}
	recentSpan, baselineSpan := s.spans(ek.series.survey)
	e = &records.DriftEvent{
		Survey: ek.series.survey, Dimension: ek.series.dimension, Key: ek.series.key, Owner: owner,
		Detector: ek.detector, Direction: direction(ek.detector, r.z), StartedAt: t,
		RecentWindow: recentSpan, BaselineWindow: baselineSpan, Version: lease.Version(t, s.token),
	}
	setPeak(e, t, r)
	s.open[ek] = e
	s.pending[pendingKey{ek, e.StartedAt}] = *e
	s.logger.Info("drift started", "survey", e.Survey, "dimension", e.Dimension, "key", e.Key, "owner", owner,
		"detector", e.Detector, "direction", e.Direction, "z", round2(r.z), "recent", round2(r.recent),
		"baseline", round2(r.baseline), "responses", r.nRecent, "baseline_responses", r.nBaseline)
}

func setPeak(e *records.DriftEvent, t time.Time, r reading) {
	e.PeakAt, e.PeakStatistic = t, r.z
	e.PeakRecent, e.PeakBaseline = r.recent, r.baseline
	e.PeakRecentResponses, e.PeakBaselineResponses = r.nRecent, r.nBaseline
}

// direction tells whether a z is bad news for the customers: a lower mean, or more
// negative answers.
func direction(detector string, z float64) string {
	if (detector == NegativeShare) == (z > 0) {
		return Worse
	}
	return Better
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func toSample(w records.WindowTotal) sample {
	return sample{n: float64(w.Responses), sum: w.ScoreSum, sq: w.SquareSum, negative: float64(w.Negative)}
}

// windows reads one window at one tick, by series.
func (s *Stage) windows(ctx context.Context, window effort.Window, end time.Time) (map[seriesKey]records.WindowTotal, error) {
	rows, err := s.opts.Source.WindowTotals(ctx, window, []time.Time{end})
	if err != nil {
		return nil, err
	}
	out := make(map[seriesKey]records.WindowTotal, len(rows))
	for _, r := range rows {
		out[seriesKey{r.Survey, r.Dimension, r.Key}] = r
	}
	return out, nil
}

// windowAt names a series' window ending at end.
type windowAt struct {
	seriesKey
	end time.Time
}

// baselines reads the baseline window ending at each of ends, by series and end: the
// rollup buckets' on-time answers, and with BaselineHistory the late ones too.
func (s *Stage) baselines(ctx context.Context, ends []time.Time) (map[windowAt]records.WindowTotal, error) {
	rows, err := s.opts.Source.WindowTotals(ctx, s.base, ends)
	if err != nil {
		return nil, err
	}
	if hs, ok := s.opts.Source.(HistorySource); ok && s.cfg.BaselineHistory {
		late, err := hs.LateWindowTotals(ctx, s.base, ends)
		if err != nil {
			return nil, err
		}
		rows = append(rows, late...)
	}
	out := make(map[windowAt]records.WindowTotal, len(rows))
	for _, r := range rows {
		k := windowAt{seriesKey{r.Survey, r.Dimension, r.Key}, r.WindowEnd.UTC()}
		w := out[k]
		w.Survey, w.Dimension, w.Key, w.WindowEnd = r.Survey, r.Dimension, r.Key, k.end
		w.Responses += r.Responses
		w.ScoreSum += r.ScoreSum
		w.SquareSum += r.SquareSum
		w.Positive += r.Positive
		w.Negative += r.Negative
		out[k] = w
	}
	return out, nil
}

// foldBlocks adds to the EWMAs the blocks that ended since the last one folded, up to t:
// the recent windows ending at multiples of its length, each judged against the baseline
// ending where it starts. At start-up that is every block of the last baseline length, so
// that a restart finds (nearly) the same averages it had.
func (s *Stage) foldBlocks(ctx context.Context, t time.Time) error {
	r := s.recent.Length
	last := t.Truncate(r)
	first := s.lastBlock.Add(r)
	if s.lastBlock.IsZero() || first.Before(t.Add(-s.base.Length)) {
		first = last.Add(-s.base.Length).Add(r)
	}
	if first.After(last) {
		return nil
	}
	var ends, starts []time.Time
	for b := first; !b.After(last); b = b.Add(r) {
		ends = append(ends, b)
		starts = append(starts, b.Add(-r))
	}
	rec, err := s.opts.Source.WindowTotals(ctx, s.recent, ends)
	if err != nil {
		return err
	}
	baseRows, err := s.baselines(ctx, starts)
	if err != nil {
		return err
	}
	type at struct {
		k   seriesKey
		end time.Time
	}
	baseAt := make(map[at]records.WindowTotal, len(baseRows))
	for k, w := range baseRows {
		baseAt[at{k.seriesKey, k.end.Add(r)}] = w
	}
	byEnd := map[time.Time][]records.WindowTotal{}
	for _, w := range rec {
		byEnd[w.WindowEnd] = append(byEnd[w.WindowEnd], w)
	}
	for _, end := range ends {
		for _, w := range byEnd[end] {
			k := seriesKey{w.Survey, w.Dimension, w.Key}
			b := baseAt[at{k, end}]
			if w.Responses < s.cfg.MinRecent || b.Responses < s.cfg.MinBaseline {
				continue
			}
			z, ok := welchZ(toSample(w), toSample(b))
			if !ok {
				continue
			}
			e := s.ewmas[k]
			if e == nil {
				e = &ewma{lambda: s.cfg.EWMALambda}
				s.ewmas[k] = e
			}
			e.add(math.Max(-ewmaBlockCap, math.Min(ewmaBlockCap, z)))
		}
	}
	s.lastBlock = last
	return nil
}

// loadOpen reads back the episodes a previous run left open, so that they go on (or end)
// with the same start.
func (s *Stage) loadOpen(ctx context.Context) error {
	events, err := s.opts.Source.OpenDriftEvents(ctx)
	if err != nil {
		return err
	}
	for _, e := range events {
		s.open[episodeKey{seriesKey{e.Survey, e.Dimension, e.Key}, e.Detector}] = &e
	}
	if len(s.open) > 0 {
		s.logger.Info("drift episodes still open from before", "episodes", len(s.open))
	}
	return nil
}

// flush writes the pending episode rows.
func (s *Stage) flush(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	rows := make([]records.DriftEvent, 0, len(s.pending))
	for _, e := range s.pending {
		rows = append(rows, e)
	}
	if err := s.opts.Sink.WriteDriftEvents(ctx, rows); err != nil {
		return fmt.Errorf("write %d drift episode rows: %w", len(rows), err)
	}
	clear(s.pending)
	return nil
}
