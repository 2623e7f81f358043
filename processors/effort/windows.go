// Package effort keeps the event-time rolling windows of customer survey scores (CES,
// CSAT, NPS) for one partition: per survey kind and per dimension key, a sparse series of
// step-wide buckets with exact integer sums. The changed buckets are written as rows;
// sliding windows are sums of buckets, read at each tick for metrics.
package effort

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Dimensions a survey is rolled up by. "overall" has the single key "".
const (
	Overall  = "overall"
	Category = "category"
	Channel  = "channel"
	Team     = "team"
	Agent    = "agent"
)

// Window is one rolling window length, named as in the rollups table ("1h", "7d").
type Window struct {
	Name   string
	Length time.Duration
}

// ParseWindows reads a comma-separated list such as "1h,24h,7d" (units m, h, d).
func ParseWindows(s string) ([]Window, error) {
	var out []Window
	for _, part := range strings.Split(s, ",") {
		name := strings.TrimSpace(part)
		if name == "" {
			continue
		}
		d, err := parseLength(name)
		if err != nil {
			return nil, fmt.Errorf("window %q: %w", name, err)
		}
		out = append(out, Window{Name: name, Length: d})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no windows in %q", s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Length < out[j].Length })
	return out, nil
}

// Windows are windows read from configuration text such as "1h,24h,7d" (ParseWindows),
// shortest first: parsed once, where the configuration is read.
type Windows []Window

// UnmarshalText parses the windows with ParseWindows.
func (ws *Windows) UnmarshalText(b []byte) error {
	w, err := ParseWindows(string(b))
	if err != nil {
		return err
	}
	*ws = w
	return nil
}

// MarshalText gives the windows' names, comma-separated.
func (ws Windows) MarshalText() ([]byte, error) {
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.Name
	}
	return []byte(strings.Join(names, ",")), nil
}

// MustParseWindows is ParseWindows for text known to be valid (defaults, tests); it
// panics on an error.
func MustParseWindows(s string) Windows {
	ws, err := ParseWindows(s)
	if err != nil {
		panic(err)
	}
	return ws
}

func parseLength(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days <= 0 || fmt.Sprint(days) != n {
			return 0, fmt.Errorf("want a whole number of days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive length such as 15m, 1h or 7d")
	}
	return d, nil
}

// SeriesKey names one series: a survey kind by one dimension key.
type SeriesKey struct {
	Survey    string
	Dimension string
	Key       string
}

// Aggregate is the content of a bucket or a window. Score sums are integer micro-points
// (event.ScoreUnit), so adding and subtracting them is exact. SqMicro sums the squared
// standard scores, each square rounded to a micro-point: with Responses and ScoreMicro it
// gives the window's variance, which drift detection needs.
type Aggregate struct {
	Responses  uint64
	ScoreMicro int64
	Positive   uint64
	Negative   uint64
	SqMicro    int64
}

func (a *Aggregate) add(b Aggregate) {
	a.Responses += b.Responses
	a.ScoreMicro += b.ScoreMicro
	a.Positive += b.Positive
	a.Negative += b.Negative
	a.SqMicro += b.SqMicro
}

func (a Aggregate) minus(b Aggregate) Aggregate {
	return Aggregate{a.Responses - b.Responses, a.ScoreMicro - b.ScoreMicro, a.Positive - b.Positive, a.Negative - b.Negative, a.SqMicro - b.SqMicro}
}

type bucket struct {
	index int64 // start of the bucket in steps since the Unix epoch
	agg   Aggregate
}

// series is sorted by bucket index; prefix[i] is the sum of buckets[:i], valid up to
// prefixValid (buckets mostly arrive in order, so it is usually extended, not rebuilt).
type series struct {
	buckets     []bucket
	prefix      []Aggregate
	prefixValid int
}

func (s *series) add(index int64, a Aggregate) {
	i := sort.Search(len(s.buckets), func(i int) bool { return s.buckets[i].index >= index })
	if i < len(s.buckets) && s.buckets[i].index == index {
		s.buckets[i].agg.add(a)
	} else {
		s.buckets = append(s.buckets, bucket{})
		copy(s.buckets[i+1:], s.buckets[i:])
		s.buckets[i] = bucket{index: index, agg: a}
	}
	s.prefixValid = min(s.prefixValid, i)
}

// sumBefore is the sum of all buckets with index < end.
func (s *series) sumBefore(end int64) Aggregate {
	for len(s.prefix) < len(s.buckets)+1 {
		s.prefix = append(s.prefix, Aggregate{})
	}
	s.prefix = s.prefix[:len(s.buckets)+1]
	for i := s.prefixValid; i < len(s.buckets); i++ {
		s.prefix[i+1] = s.prefix[i]
		s.prefix[i+1].add(s.buckets[i].agg)
	}
	s.prefixValid = len(s.buckets)
	i := sort.Search(len(s.buckets), func(i int) bool { return s.buckets[i].index >= end })
	return s.prefix[i]
}

// bucket is the content of the bucket at index (zero if there is none).
func (s *series) bucket(index int64) Aggregate {
	i := sort.Search(len(s.buckets), func(i int) bool { return s.buckets[i].index >= index })
	if i < len(s.buckets) && s.buckets[i].index == index {
		return s.buckets[i].agg
	}
	return Aggregate{}
}

// window is the sum of buckets with from ≤ index < to.
func (s *series) window(from, to int64) Aggregate {
	return s.sumBefore(to).minus(s.sumBefore(from))
}

// evict drops buckets before index and reports whether the series is now empty.
func (s *series) evict(index int64) bool {
	i := sort.Search(len(s.buckets), func(i int) bool { return s.buckets[i].index >= index })
	if i > 0 {
		s.buckets = append(s.buckets[:0], s.buckets[i:]...)
		s.prefixValid = 0
	}
	return len(s.buckets) == 0
}
