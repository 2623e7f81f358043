package effort

import (
	"cmp"
	"fmt"
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

// Snapshot is the content of a State, for saving it (processors/partition encodes it):
// columns of flat slices, so that encoding and decoding run in tight loops and a restore
// allocates per column, not per bucket. Buckets changed but not yet taken are not part of
// it: a snapshot is only used once the rows of every message it holds are stored.
type Snapshot struct {
	LastTick int64
	// Keys are the series, sorted; Lens[i] is the number of buckets of Keys[i].
	Keys []SeriesKey
	Lens []int
	// The buckets, series after series, each series by ascending index: the index (steps
	// since the epoch) and the sums.
	Index      []int64
	Responses  []uint64
	ScoreMicro []int64
	Positive   []uint64
	Negative   []uint64
	SqMicro    []int64
}

// Snapshot returns the state's content, the series in key order (equal states give
// equal snapshots).
func (s *State) Snapshot() Snapshot {
	keys := make([]SeriesKey, 0, len(s.series))
	n := 0
	for k, sr := range s.series {
		keys = append(keys, k)
		n += len(sr.buckets)
	}
	slices.SortFunc(keys, func(a, b SeriesKey) int {
		return cmp.Or(cmp.Compare(a.Survey, b.Survey), cmp.Compare(a.Dimension, b.Dimension), cmp.Compare(a.Key, b.Key))
	})
	out := Snapshot{LastTick: s.lastTick, Keys: keys, Lens: make([]int, len(keys)),
		Index: make([]int64, 0, n), Responses: make([]uint64, 0, n), ScoreMicro: make([]int64, 0, n),
		Positive: make([]uint64, 0, n), Negative: make([]uint64, 0, n), SqMicro: make([]int64, 0, n)}
	for i, k := range keys {
		bs := s.series[k].buckets
		out.Lens[i] = len(bs)
		for _, b := range bs {
			out.Index = append(out.Index, b.index)
			out.Responses = append(out.Responses, b.agg.Responses)
			out.ScoreMicro = append(out.ScoreMicro, b.agg.ScoreMicro)
			out.Positive = append(out.Positive, b.agg.Positive)
			out.Negative = append(out.Negative, b.agg.Negative)
			out.SqMicro = append(out.SqMicro, b.agg.SqMicro)
		}
	}
	return out
}

// Restore replaces the state's content with a snapshot's. Every bucket goes into one
// array, each series a slice of it capped at its length, so a series that grows moves to
// its own array and never writes into its neighbour's.
func (s *State) Restore(snap Snapshot) error {
	n := len(snap.Index)
	if len(snap.Lens) != len(snap.Keys) || len(snap.Responses) != n || len(snap.ScoreMicro) != n ||
		len(snap.Positive) != n || len(snap.Negative) != n || len(snap.SqMicro) != n {
		return fmt.Errorf("windows: %d series with %d lengths; %d bucket indexes with %d, %d, %d, %d, %d sums",
			len(snap.Keys), len(snap.Lens), n, len(snap.Responses), len(snap.ScoreMicro), len(snap.Positive), len(snap.Negative), len(snap.SqMicro))
	}
	all := make([]bucket, n)
	for i := range all {
		all[i] = bucket{index: snap.Index[i], agg: Aggregate{Responses: snap.Responses[i], ScoreMicro: snap.ScoreMicro[i],
			Positive: snap.Positive[i], Negative: snap.Negative[i], SqMicro: snap.SqMicro[i]}}
	}
	slab := make([]series, len(snap.Keys))
	s.series = make(map[SeriesKey]*series, len(snap.Keys))
	clear(s.changed)
	s.lastTick = snap.LastTick
	at := 0
	for i, k := range snap.Keys {
		l := snap.Lens[i]
		if l < 0 || l > n-at {
			return fmt.Errorf("windows: series %v has %d buckets, %d are left", k, l, n-at)
		}
		bs := all[at : at+l : at+l]
		at += l
		for j := 1; j < len(bs); j++ {
			if bs[j].index <= bs[j-1].index {
				return fmt.Errorf("windows: series %v: bucket %d after %d", k, bs[j].index, bs[j-1].index)
			}
		}
		slab[i].buckets = bs
		s.series[k] = &slab[i]
	}
	if at != n {
		return fmt.Errorf("windows: %d buckets, the series hold %d", n, at)
	}
	return nil
}

// DiscardChanged forgets which buckets changed, without rows: their rows are stored
// already (a replay of messages whose rows were written before).
func (s *State) DiscardChanged() { clear(s.changed) }
