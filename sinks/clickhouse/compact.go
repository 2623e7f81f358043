package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The hourly compaction of the rollup buckets (processors/compact, docs/storage.md).
const (
	// TableHours holds the sums of each series' buckets per hour, every partition added
	// up, for the hours no message can change any more.
	TableHours = "rollup_hours"
	// TableHoursDone says how far TableHours is complete: max(compacted_until).
	TableHoursDone = "rollup_hours_done"
)

// CompactedUntil is the instant before which every hour is in rollup_hours; the zero
// time (1970) before the first compaction.
func (c *Client) CompactedUntil(ctx context.Context) (time.Time, error) {
	var sec uint32
	if err := c.conn.QueryRow(ctx, "SELECT toUInt32(max(compacted_until)) FROM "+c.cfg.Database+"."+TableHoursDone).Scan(&sec); err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", TableHoursDone, err)
	}
	return time.Unix(int64(sec), 0).UTC(), nil
}

// FirstBucket is the earliest bucket_start in [from, to); false when there is none. It
// reads without FINAL: any version of a bucket says that it is there.
func (c *Client) FirstBucket(ctx context.Context, from, to time.Time) (time.Time, bool, error) {
	var (
		sec uint32
		n   uint64
	)
	if err := c.conn.QueryRow(ctx, "SELECT toUInt32(min(bucket_start)), count() FROM "+c.cfg.Database+"."+TableBuckets+
		" WHERE bucket_start >= toDateTime("+unix(from)+", 'UTC') AND bucket_start < toDateTime("+unix(to)+", 'UTC')").Scan(&sec, &n); err != nil {
		return time.Time{}, false, fmt.Errorf("look for buckets to compact: %w", err)
	}
	return time.Unix(int64(sec), 0).UTC(), n > 0, nil
}

// CompactHours writes the hours of [from, to) (both whole hours) into rollup_hours from
// the buckets under FINAL, and then records to as compacted. Scores are added up as
// integers of 1e-6 points, the precision the processors store, so that an hour's row
// does not depend on the order of its buckets: compacting an hour again writes the same
// row with the same version.
func (c *Client) CompactHours(ctx context.Context, from, to time.Time) error {
	db := c.cfg.Database
	if err := c.conn.Exec(ctx, "INSERT INTO "+db+"."+TableHours+
		" (survey, dimension, key, hour_start, responses, score_sum, score_sq_sum, positive, negative, version)"+
		" SELECT survey, dimension, key, toDateTime(intDiv(toUInt32(bucket_start), 3600) * 3600, 'UTC') AS hour,"+
		" sum(responses), sum(toInt64(round(score_sum * 1000000))) / 1000000, sum(toInt64(round(score_sq_sum * 1000000))) / 1000000,"+
		" sum(positive), sum(negative), max(version)"+
		" FROM "+db+"."+TableBuckets+" FINAL"+
		" WHERE bucket_start >= toDateTime("+unix(from)+", 'UTC') AND bucket_start < toDateTime("+unix(to)+", 'UTC')"+
		" GROUP BY survey, dimension, key, hour"); err != nil {
		return fmt.Errorf("compact the hours from %s to %s: %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	if err := c.conn.Exec(ctx, "INSERT INTO "+db+"."+TableHoursDone+" (compacted_until, version) SELECT toDateTime("+
		unix(to)+", 'UTC'), "+unix(to)); err != nil {
		return fmt.Errorf("record the hours compacted until %s: %w", to.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// unix is t in Unix seconds, for a query: integers cannot inject anything, and the
// driver's binding of times differs between versions.
func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
