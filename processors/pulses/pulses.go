// Package pulses is the disclosure policy of employee pulse results (docs/privacy.md).
// Individual answers are stored at once in the private database; what leaves it is a
// team's figures per question and closed period, under two rules:
//
//   - a group (team, question, period) is published only once at least k distinct
//     employees answered (MinRespondents), and only after its period closed (its end
//     plus Grace), so that figures never move answer by answer during a period;
//   - a published group is published again only once at least k new respondents joined
//     since its last publication, so that the difference between any two published
//     figures of a group mixes at least k people's answers: a late sixth answer after
//     five changes nothing anyone can read.
//
// Everything downstream (team_periods, the linkage, the drift detector's pulse series
// and its metrics, the report, the dashboards) reads published figures only.
package pulses

import "time"

// Publish reports whether a group now answered by respondents distinct employees may
// be published, given the respondents of its last publication (0: never published).
func (c Config) Publish(respondents, published uint64) bool {
	k := uint64(c.MinRespondents)
	if published == 0 {
		return respondents >= k
	}
	return respondents >= published+k
}

// ClosedBefore is the end of the latest closed period at now: periods that end at or
// before it may be published.
func (c Config) ClosedBefore(now time.Time) time.Time {
	return PeriodStart(now.Add(-c.Grace), c.PeriodLength())
}

// OldestAccepted is the earliest occurred_at of a pulse ingest accepts at now: older
// ones could never be published.
func (c Config) OldestAccepted(now time.Time) time.Time {
	return now.Add(-c.LookbackLength())
}

// PublishFrom is the start of the earliest period the analytics stage publishes at now:
// the lookback and Slack, so that every pulse ingest accepted finds its period there.
func (c Config) PublishFrom(now time.Time) time.Time {
	return PeriodStart(now.Add(-c.LookbackLength()-Slack), c.PeriodLength())
}
