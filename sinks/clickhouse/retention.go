package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cxlink/cxlink/processors/retention"
)

// TablePartials holds the per-tick window rows of earlier versions; nothing writes it
// any more, and the rollups' retention empties it.
const TablePartials = "rollup_partials"

// retained are the tables the retention applies to, by kind. The others (rollup_windows,
// schema_migrations) are a handful of bookkeeping rows; individual employee answers, in the
// private database, are deleted by the analytics stage once older than
// CXLINK_PULSE_LOOKBACK (docs/privacy.md).
var retained = map[string]retention.Class{
	TableSurveys:  retention.Raw,
	TableTickets:  retention.Raw,
	TableBuckets:  retention.Rollups,
	TablePartials: retention.Rollups,
	TableHours:    retention.Rollups,
	// The raw tables' daily totals: as long as the raw rows they add up.
	TableSurveyDays: retention.Raw,
	TableTicketDays: retention.Raw,
	// Markers are read within a minute or two of being written.
	TableDaysChanged:  retention.Rollups,
	TableTeamPeriods:  retention.Results,
	TableLinkage:      retention.Results,
	TableEffortImpact: retention.Results,
	TableDriftEvents:  retention.Results,
	// Follow-up cases by the month they opened: long closed by the time it is dropped.
	TableFollowUps: retention.Results,
}

// partitionKey is a partition key the retention can read: the month or the day of one
// column, so that a partition's id is the first day of its time range (YYYYMM or
// YYYYMMDD).
var partitionKey = regexp.MustCompile("^(toYYYYMM|toYYYYMMDD)\\(`?([A-Za-z_][A-Za-z0-9_]*)`?\\)$")

// retainedTable is the retained table whose rows the table name holds: on a cluster, the
// local tables hold them (the Distributed ones hold none and have no partition key).
func (c *Client) retainedTable(name string) (string, retention.Class, bool) {
	if c.cfg.Cluster != "" {
		var local bool
		if name, local = strings.CutSuffix(name, localSuffix); !local {
			return "", "", false
		}
	}
	class, ok := retained[name]
	return name, class, ok
}

// Partitions lists the partitions of the retained tables (system.parts) with the time
// range each covers. On a cluster they are those of the node the client talks to, and a
// drop runs on every node: each shard holds rows of every month. A drift_events partition holding an episode that has not ended is
// Open; one whose episodes ended after its month ends where the last of them ended.
func (c *Client) Partitions(ctx context.Context) ([]retention.Partition, error) {
	keys, err := c.partitionKeys(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.conn.Query(ctx, "SELECT table, partition_id, sum(rows) FROM system.parts "+
		"WHERE database = ? AND active GROUP BY table, partition_id ORDER BY table, partition_id", c.cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	defer rows.Close()
	var out []retention.Partition
	for rows.Next() {
		var p retention.Partition
		var table string
		if err := rows.Scan(&table, &p.ID, &p.Rows); err != nil {
			return nil, fmt.Errorf("list partitions: %w", err)
		}
		var (
			class retention.Class
			ok    bool
		)
		if p.Table, class, ok = c.retainedTable(table); !ok {
			continue
		}
		p.Class = class
		if p.Start, p.End, err = partitionRange(keys[p.Table], p.ID); err != nil {
			return nil, fmt.Errorf("table %s: %w", p.Table, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	if err := c.extendEpisodes(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// partitionKeys reads the partition key of every retained table, and fails for one the
// retention cannot read: a migration that changes one must teach partitionRange.
func (c *Client) partitionKeys(ctx context.Context) (map[string]string, error) {
	rows, err := c.conn.Query(ctx, "SELECT name, partition_key FROM system.tables WHERE database = ?", c.cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("read partition keys: %w", err)
	}
	defer rows.Close()
	keys := map[string]string{}
	for rows.Next() {
		var table, key string
		if err := rows.Scan(&table, &key); err != nil {
			return nil, fmt.Errorf("read partition keys: %w", err)
		}
		name, _, ok := c.retainedTable(table)
		if !ok {
			continue
		}
		m := partitionKey.FindStringSubmatch(key)
		if m == nil {
			return nil, fmt.Errorf("table %s is partitioned by %q: retention needs the month (toYYYYMM) or the day (toYYYYMMDD) of a time column", name, key)
		}
		keys[name] = m[1]
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partition keys: %w", err)
	}
	return keys, nil
}

// partitionRange is the time range of the partition id of a table partitioned by fn
// (toYYYYMM or toYYYYMMDD), in UTC: the tables' time columns are DateTime('UTC').
func partitionRange(fn, id string) (start, end time.Time, err error) {
	switch fn {
	case "toYYYYMM":
		start, err = time.Parse("200601", id)
		end = start.AddDate(0, 1, 0)
	case "toYYYYMMDD":
		start, err = time.Parse("20060102", id)
		end = start.AddDate(0, 0, 1)
	default:
		err = errors.New("no partition key")
	}
	if err != nil {
		return start, end, fmt.Errorf("partition %q of a table partitioned by %s: %w", id, fn, err)
	}
	return start, end, nil
}

// extendEpisodes marks the drift_events partitions that hold an open episode, and moves
// the end of those whose episodes outlasted their month to the last end: an episode is
// kept as long as its end is younger than the retention.
func (c *Client) extendEpisodes(ctx context.Context, parts []retention.Partition) error {
	has := false
	for _, p := range parts {
		has = has || p.Table == TableDriftEvents
	}
	if !has {
		return nil
	}
	// Under FINAL: earlier versions of an episode that ended have no end yet.
	rows, err := c.conn.Query(ctx, "SELECT toString(toYYYYMM(started_at)) AS p, countIf(isNull(ended_at)), "+
		"max(ifNull(ended_at, toDateTime(0, 'UTC'))) FROM (SELECT started_at, ended_at FROM "+
		c.cfg.Database+"."+TableDriftEvents+" FINAL) GROUP BY p")
	if err != nil {
		return fmt.Errorf("read drift episodes per partition: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			open uint64
			last time.Time
		)
		if err := rows.Scan(&id, &open, &last); err != nil {
			return fmt.Errorf("read drift episodes per partition: %w", err)
		}
		for i := range parts {
			p := &parts[i]
			if p.Table != TableDriftEvents || p.ID != id {
				continue
			}
			p.Open = open > 0
			if end := last.UTC().Add(time.Second); end.After(p.End) {
				p.End = end
			}
		}
	}
	return rows.Err()
}

// partitionID is what DropPartition pastes into SQL.
var partitionID = regexp.MustCompile(`^[0-9]{6}([0-9]{2})?$`)

// DropPartition drops a partition of a retained table with all its rows.
func (c *Client) DropPartition(ctx context.Context, p retention.Partition) error {
	if _, ok := retained[p.Table]; !ok || !partitionID.MatchString(p.ID) {
		return fmt.Errorf("drop partition %q of %s: not a retained table's partition", p.ID, p.Table)
	}
	if err := c.conn.Exec(ctx, "ALTER TABLE "+c.schema().table(p.Table)+" DROP PARTITION ID '"+p.ID+"'"); err != nil {
		return fmt.Errorf("drop partition %s of %s: %w", p.ID, p.Table, err)
	}
	return nil
}
