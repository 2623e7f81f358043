package effort

import (
	"cmp"
	"slices"
	"time"

	"github.com/cxlink/cxlink/processors/records"
)

// State is the rolling windows of one partition. It is not safe for concurrent use: one
// goroutine owns a partition.
//
// Responses go into step-wide buckets at their event time. The buckets a message changed
// are handed out as rows (TakeChanged), each with its cumulative sums and the stream
// sequence of the last message that changed it, so the rows depend on the stream alone.
// Ticks only set the instant the windows are read at for metrics (Current).
type State struct {
	partition uint16
	step      time.Duration
	windows   []Window
	series    map[SeriesKey]*series
	// changed holds the buckets changed since the last TakeChanged, with the sequence of
	// the last message that changed each.
	changed  map[bucketRef]uint64
	lastTick int64 // in steps
}

type bucketRef struct {
	k     SeriesKey
	index int64
}

// NewState returns empty windows for a partition; windows must be sorted by length and
// be multiples of step.
func NewState(partition uint16, step time.Duration, windows []Window) *State {
	return &State{
		partition: partition,
		step:      step,
		windows:   windows,
		series:    make(map[SeriesKey]*series),
		changed:   make(map[bucketRef]uint64),
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

// Add puts one response into the series k at its event time; seq is the stream sequence
// of the message that brought it.
func (s *State) Add(k SeriesKey, at time.Time, a Aggregate, seq uint64) {
	idx := s.Index(at)
	sr := s.series[k]
	if sr == nil {
		sr = &series{}
		s.series[k] = sr
	}
	sr.add(idx, a)
	s.changed[bucketRef{k, idx}] = seq
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

// TakeChanged returns the rows of the buckets changed since the last call, in a
// deterministic order, and forgets that they changed.
func (s *State) TakeChanged() []records.Bucket {
	if len(s.changed) == 0 {
		return nil
	}
	rows := make([]records.Bucket, 0, len(s.changed))
	for ref, seq := range s.changed {
		a := s.series[ref.k].bucket(ref.index)
		rows = append(rows, records.Bucket{
			Survey:    ref.k.Survey,
			Dimension: ref.k.Dimension,
			Key:       ref.k.Key,
			Start:     s.instant(ref.index),
			Partition: s.partition,
			Responses: a.Responses,
			ScoreSum:  float64(a.ScoreMicro) / 1e6,
			Positive:  a.Positive,
			Negative:  a.Negative,
			SquareSum: float64(a.SqMicro) / 1e6,
			Version:   seq,
		})
	}
	clear(s.changed)
	slices.SortFunc(rows, func(a, b records.Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Survey, b.Survey),
			cmp.Compare(a.Dimension, b.Dimension), cmp.Compare(a.Key, b.Key))
	})
	return rows
}

// Tick sets the instant (a multiple of the step) Current reads the windows at.
func (s *State) Tick(t time.Time) { s.lastTick = s.Index(t) }

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

// Evict drops buckets before t. The caller chooses t so that no later message can change
// them and no later tick reads them; changed buckets not yet taken are kept.
func (s *State) Evict(t time.Time) {
	idx := s.Index(t)
	for ref := range s.changed {
		idx = min(idx, ref.index)
	}
	for k, sr := range s.series {
		if sr.evict(idx) {
			delete(s.series, k)
		}
	}
}

// Series is the number of series held, for metrics.
func (s *State) Series() int { return len(s.series) }

// Snapshot is the content of a State, for saving it (processors/partition encodes it).
// Buckets changed but not yet taken are not part of it: a snapshot is only used once the
// rows of every message it holds are stored.
type Snapshot struct {
	LastTick int64
	Series   []SeriesSnapshot
}

// SeriesSnapshot is one series' buckets.
type SeriesSnapshot struct {
	Key     SeriesKey
	Buckets []BucketSnapshot
}

// BucketSnapshot is one bucket: its index (steps since the epoch) and sums.
type BucketSnapshot struct {
	Index int64
	Agg   Aggregate
}

// Snapshot returns the state's content.
func (s *State) Snapshot() Snapshot {
	out := Snapshot{LastTick: s.lastTick, Series: make([]SeriesSnapshot, 0, len(s.series))}
	for k, sr := range s.series {
		ss := SeriesSnapshot{Key: k, Buckets: make([]BucketSnapshot, len(sr.buckets))}
		for i, b := range sr.buckets {
			ss.Buckets[i] = BucketSnapshot{Index: b.index, Agg: b.agg}
		}
		out.Series = append(out.Series, ss)
	}
	return out
}

// Restore replaces the state's content with a snapshot's.
func (s *State) Restore(snap Snapshot) {
	s.lastTick = snap.LastTick
	clear(s.series)
	clear(s.changed)
	for _, ss := range snap.Series {
		sr := &series{buckets: make([]bucket, len(ss.Buckets))}
		for i, b := range ss.Buckets {
			sr.buckets[i] = bucket{index: b.Index, agg: b.Agg}
		}
		s.series[ss.Key] = sr
	}
}

// DiscardChanged forgets which buckets changed, without rows: their rows are stored
// already (a replay of messages whose rows were written before).
func (s *State) DiscardChanged() { clear(s.changed) }
