package records

import "time"

// WindowTotal is one rolling window of one series at one tick, the partitions added up:
// what the drift detector reads back from the rollups.
type WindowTotal struct {
	Survey    string
	Dimension string
	Key       string
	WindowEnd time.Time
	Responses uint64
	ScoreSum  float64
	SquareSum float64 // 0 in rows written before squares were kept
	Positive  uint64
	Negative  uint64
}

// DriftEvent is one drift episode of one series: a row of drift_events. The row is
// written again, with a higher Version, whenever the episode reaches a new peak or ends.
type DriftEvent struct {
	Survey    string
	Dimension string
	Key       string
	Owner     string
	Detector  string // "mean", "negative_share", "ewma"
	Direction string // "worse", "better" (for the customers)
	StartedAt time.Time
	// EndedAt is zero while the episode lasts (NULL in ClickHouse).
	EndedAt time.Time
	PeakAt  time.Time
	// PeakStatistic is the detector's standardized statistic at the peak (a z score).
	PeakStatistic float64
	// PeakRecent and PeakBaseline are the compared values at the peak: means on the
	// survey's standard scale, or shares of negative answers in percent.
	PeakRecent, PeakBaseline                   float64
	PeakRecentResponses, PeakBaselineResponses uint64
	RecentWindow, BaselineWindow               string
	Version                                    uint64
}
