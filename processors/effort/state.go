package effort

import (
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// State is the rolling windows of one partition. It is not safe for concurrent use: one
// goroutine owns a partition.
//
// Ticks are the instants the windows are read at (multiples of the step). Each Tick
// returns the rows of the new tick(s) and, for series changed since the previous Tick
// at buckets before it (late events, late attribution), the rows of the earlier ticks
// those changes affect, back to the first tick of this State.
type State struct {
	partition uint16
	step      time.Duration
	windows   []Window
	series    map[SeriesKey]*series
	// dirty holds, per changed series, the earliest bucket changed since the last Tick.
	dirty               map[SeriesKey]int64
	started             bool  // a first tick is set
	firstTick, lastTick int64 // in steps
}

// NewState returns empty windows for a partition; windows must be sorted by length and
// be multiples of step.
func NewState(partition uint16, step time.Duration, windows []Window) *State {
	return &State{
		partition: partition,
		step:      step,
		windows:   windows,
		series:    make(map[SeriesKey]*series),
		dirty:     make(map[SeriesKey]int64),
	}
}

// Index is the bucket (or tick) of an instant: whole steps since the Unix epoch.
func (s *State) Index(t time.Time) int64 { return floorDiv(t.UnixNano(), int64(s.step)) }

func (s *State) instant(index int64) time.Time { return time.Unix(0, index*int64(s.step)).UTC() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Add puts one response into the series k at its event time.
func (s *State) Add(k SeriesKey, at time.Time, a Aggregate) {
	idx := s.Index(at)
	sr := s.series[k]
	if sr == nil {
		sr = &series{}
		s.series[k] = sr
	}
	sr.add(idx, a)
	if s.started && idx < s.lastTick {
		if d, ok := s.dirty[k]; !ok || idx < d {
			s.dirty[k] = idx
		}
	}
}

// Window reads series k over window length w ending (exclusively) at end.
func (s *State) Window(k SeriesKey, end time.Time, w time.Duration) Aggregate {
	sr := s.series[k]
	if sr == nil {
		return Aggregate{}
	}
	to := s.Index(end)
	return sr.window(to-int64(w/s.step), to)
}

// StartAt makes the first Tick emit every tick from t on: used after a restart to
// rewrite the ticks that events still in flight may have changed.
func (s *State) StartAt(t time.Time) {
	s.firstTick = s.Index(t)
	s.lastTick = s.firstTick - 1
	s.started = true
}

// Tick reads the windows at t (a multiple of the step) and returns the rows to write;
// version is stamped on every row (later computations must carry higher versions).
func (s *State) Tick(t time.Time, version uint64) []records.Rollup {
	now := s.Index(t)
	if !s.started {
		s.StartAt(t)
	}
	var rows []records.Rollup
	// Series changed at buckets before the last tick: rewrite the ticks they affect.
	for k, from := range s.dirty {
		sr := s.series[k]
		for tick := max(from+1, s.firstTick); tick <= s.lastTick && sr != nil; tick++ {
			rows = s.appendRows(rows, k, sr, tick, version)
		}
	}
	clear(s.dirty)
	for tick := s.lastTick + 1; tick <= now; tick++ {
		for k, sr := range s.series {
			rows = s.appendRows(rows, k, sr, tick, version)
		}
	}
	if now > s.lastTick {
		s.lastTick = now
	}
	return rows
}

// appendRows appends the rows of series k at one tick, one per window with responses.
func (s *State) appendRows(rows []records.Rollup, k SeriesKey, sr *series, tick int64, version uint64) []records.Rollup {
	end := s.instant(tick)
	for _, w := range s.windows {
		a := sr.window(tick-int64(w.Length/s.step), tick)
		if a.Responses == 0 {
			continue
		}
		rows = append(rows, records.Rollup{
			Survey:    k.Survey,
			Window:    w.Name,
			Dimension: k.Dimension,
			Key:       k.Key,
			WindowEnd: end,
			Partition: s.partition,
			Responses: a.Responses,
			ScoreSum:  float64(a.ScoreMicro) / 1e6,
			Positive:  a.Positive,
			Negative:  a.Negative,
			SquareSum: float64(a.SqMicro) / 1e6,
			Version:   version,
		})
	}
	return rows
}

// Current reads every series over every window at the last tick, for metrics.
func (s *State) Current(fn func(k SeriesKey, w Window, a Aggregate)) {
	for k, sr := range s.series {
		for _, w := range s.windows {
			if a := sr.window(s.lastTick-int64(w.Length/s.step), s.lastTick); a.Responses > 0 {
				fn(k, w, a)
			}
		}
	}
}

// Evict drops buckets before t; no tick at or after t + the longest window reads them.
func (s *State) Evict(t time.Time) {
	idx := s.Index(t)
	for k, sr := range s.series {
		if sr.evict(idx) {
			delete(s.series, k)
			delete(s.dirty, k)
		}
	}
}

// Series is the number of series held, for metrics.
func (s *State) Series() int { return len(s.series) }
