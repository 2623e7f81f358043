package clickhouse

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// The cluster variant of the schema (CLICKHOUSE_CLUSTER; docs/storage.md, "ClickHouse past
// one node"). Each table that holds rows is, on a cluster, two tables on every node:
//
//   - <table>_local, a Replicated*MergeTree that holds the rows of the node's shard,
//     replicated through ZooKeeper at /clickhouse/tables/{shard}/<database>.<table>
//     among the replicas of that shard ({shard} and {replica} are the nodes' macros);
//   - <table>, a Distributed table over the <table>_local of every shard: the name that
//     readers, views and writers use, as on one node.
//
// Every DDL statement runs ON CLUSTER, so that each node gets it. A row is sent to the
// shard its table's sharding key picks; the keys below are functions of the columns of
// the table's ORDER BY, so that every version of one row lands on one shard, where
// ReplacingMergeTree and FINAL collapse them as on one node.

// shardingKeys are the Distributed tables' sharding keys, by table.
var shardingKeys = map[string]string{
	"schema_migrations": "version",
	// Raw rows by event id: spread evenly, and a redelivered event (same id, same
	// sorting key) lands where its first copy did.
	TableSurveys: "cityHash64(id)",
	TableTickets: "cityHash64(id)",
	TablePulses:  "cityHash64(id)",
	// The raw tables as they were before migration 0011, read through a Distributed
	// table while their rows are copied: as the raw tables.
	TableSurveys + "_before_0011": "cityHash64(id)",
	TableTickets + "_before_0011": "cityHash64(id)",
	TablePulses + "_before_0011":  "cityHash64(id)",
	// Windows by series: a series' buckets (every partition, minute and version) sit on
	// one shard.
	TableBuckets:      "cityHash64(survey, dimension, key)",
	"rollup_partials": "cityHash64(survey, dimension, key)",
	TableWindows:      "cityHash64(`window`)",
	// Hours as the buckets they add up: a shard compacts its own series.
	TableHours: "cityHash64(survey, dimension, key)",
	// Readers take the max over every shard.
	TableHoursDone: "version",
	// Daily totals by their whole sorting key: a day added up again lands on its rows.
	TableSurveyDays:  "cityHash64(survey, day_start, category)",
	TableTicketDays:  "cityHash64(day_start, category)",
	TableDaysChanged: "cityHash64(day_start)",
	TableDaysDone:    "version",
	// Results by their whole sorting key.
	TableTeamPeriods:  "cityHash64(period, period_start, team)",
	TableLinkage:      "cityHash64(period, scope, employee_metric, customer_metric, lag, period_start)",
	TableEffortImpact: "cityHash64(`window`, window_end, category)",
	TableDriftEvents:  "cityHash64(survey, dimension, key, detector, direction, started_at)",
	// A follow-up case's every change on one shard.
	TableFollowUps: "cityHash64(id)",
}

// clusterSettings are the settings of every query of a client of a cluster.
// insert_distributed_sync: an insert into a Distributed table returns once every shard
// stored its rows, not once they are queued on the node the client talks to; so a batch
// reported stored is stored (progress and watermarks rely on it), and a failed one is
// written again, which the sharding keys make idempotent. (A query whose subquery reads a
// Distributed table, IN or JOIN, says GLOBAL: ClickHouse refuses it otherwise, and the
// driver cannot send 18.16 the setting distributed_product_mode.)
var clusterSettings = ch.Settings{"insert_distributed_sync": 1}

// localSuffix names the table that holds a shard's rows on a cluster.
const localSuffix = "_local"

// schema is what the migrations render for: a database, on one node (Cluster empty) or on
// the ClickHouse cluster named Cluster in the servers' remote_servers.
type schema struct {
	Database        string
	PrivateDatabase string
	Cluster         string
}

// in is the schema with its tables in database db, if one is given (the private
// database's tables: {{table "t" .PrivateDatabase}}).
func (s schema) in(db []string) schema {
	if len(db) > 0 {
		s.Database = db[0]
	}
	return s
}

// funcs are the functions a migration's template may call. On one node each renders the
// text the migrations had before there was a cluster variant, so a released migration
// runs the same statements (TestSingleNodeRenderingIsFrozen):
//
//	CREATE TABLE IF NOT EXISTS {{table "t"}} (…) ENGINE = {{engine "t" "ReplacingMergeTree(version)"}}
//	PARTITION BY … ORDER BY (…){{distributed "t"}};
//	ALTER TABLE {{table "t"}} ADD COLUMN …{{redistribute "t"}};
//	CREATE VIEW IF NOT EXISTS {{.Database}}.v{{onCluster}} AS SELECT … FROM {{.Database}}.t FINAL;
//	{{drop "t"}};
//	{{swap "t" "t_old" "t_new"}};
//
// Reads and inserts name {{.Database}}.t, the Distributed table on a cluster. A table of
// another database names it last: {{table "t" .PrivateDatabase}}. A new table needs its
// entry in shardingKeys.
func (s schema) funcs() template.FuncMap {
	return template.FuncMap{
		"table": func(name string, db ...string) string { return s.in(db).table(name) },
		// engine is the table engine: a Replicated one on a cluster.
		"engine": func(name, engine string, db ...string) (string, error) { return s.in(db).engine(name, engine) },
		// distributed follows the CREATE of a table: on a cluster, it adds the statement
		// that creates the Distributed table over it.
		"distributed": func(name string, db ...string) (string, error) {
			if s.Cluster == "" {
				return "", nil
			}
			d, err := s.in(db).createDistributed(name)
			return ";\n\n" + d, err
		},
		// redistribute follows the last ALTER of a table's columns: on a cluster, the
		// Distributed table is created again with the new columns. ClickHouse 18.16
		// refuses ALTER … ON CLUSTER of a table that is not replicated on a cluster of
		// replicated shards.
		"redistribute": func(name string) (string, error) {
			if s.Cluster == "" {
				return "", nil
			}
			d, err := s.createDistributed(name)
			return ";\n\nDROP TABLE IF EXISTS " + s.Database + "." + name + s.onCluster() + ";\n\n" + d, err
		},
		// drop drops a table, and on a cluster its Distributed table and the local one
		// on every node.
		"drop": func(name string, db ...string) string {
			t := s.in(db)
			if s.Cluster == "" {
				return "DROP TABLE IF EXISTS " + t.Database + "." + name
			}
			return "DROP TABLE IF EXISTS " + t.Database + "." + name + s.onCluster() + ";\n\n" +
				"DROP TABLE IF EXISTS " + t.Database + "." + name + localSuffix + s.onCluster()
		},
		// swap replaces table name by the table created as next, keeping the old one as
		// old: on a cluster, the local tables on every node, under the Distributed table
		// that keeps the name (Client.swap makes it idempotent).
		"swap": func(name, old, next string, db ...string) string {
			t := s.in(db)
			if s.Cluster == "" {
				d := t.Database + "."
				return "RENAME TABLE " + d + name + " TO " + d + old + ", " + d + next + " TO " + d + name
			}
			d, l := t.Database+".", localSuffix
			return "RENAME TABLE " + d + name + l + " TO " + d + old + l + ", " + d + next + l + " TO " + d + name + l + s.onCluster()
		},
		// onCluster follows the name of anything else every node has (the database,
		// views).
		"onCluster": s.onCluster,
	}
}

// table is the table that holds the rows of name, as the target of CREATE and ALTER.
func (s schema) table(name string) string {
	if s.Cluster == "" {
		return s.Database + "." + name
	}
	return s.Database + "." + name + localSuffix + s.onCluster()
}

func (s schema) onCluster() string {
	if s.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + s.Cluster
}

// mergeTree matches a MergeTree family engine with its parameters, if any.
var mergeTree = regexp.MustCompile(`^(\w*MergeTree)(?:\((.*)\))?$`)

// engine is engine on one node, and on a cluster the Replicated variant of it with the
// table's replication path and the {replica} macro before its parameters.
func (s schema) engine(name, engine string) (string, error) {
	if s.Cluster == "" {
		return engine, nil
	}
	m := mergeTree.FindStringSubmatch(engine)
	if m == nil {
		return "", fmt.Errorf("table %s: engine %q is not of the MergeTree family, which a cluster replicates", name, engine)
	}
	params := "'/clickhouse/tables/{shard}/" + s.Database + "." + name + "', '{replica}'"
	if m[2] != "" {
		params += ", " + m[2]
	}
	return "Replicated" + m[1] + "(" + params + ")", nil
}

// createDistributed is the statement that creates the Distributed table name over
// name_local on every node.
func (s schema) createDistributed(name string) (string, error) {
	key, ok := shardingKeys[name]
	if !ok {
		return "", fmt.Errorf("table %s has no sharding key: add one to shardingKeys (sinks/clickhouse/cluster.go)", name)
	}
	return "CREATE TABLE IF NOT EXISTS " + s.Database + "." + name + s.onCluster() +
		" AS " + s.Database + "." + name + localSuffix + "\nENGINE = Distributed(" +
		strings.Join([]string{s.Cluster, s.Database, name + localSuffix, key}, ", ") + ")", nil
}

func (c *Client) schema() schema {
	return schema{Database: c.cfg.Database, PrivateDatabase: c.cfg.Private(), Cluster: c.cfg.Cluster}
}

// checkCluster makes sure that the server knows the configured cluster and has the macros
// the replicated tables need, so that a mistake is named before any DDL waits on it.
func (c *Client) checkCluster(ctx context.Context) error {
	name := c.cfg.Cluster
	var hosts uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = ?", name).Scan(&hosts); err != nil {
		return fmt.Errorf("CLICKHOUSE_CLUSTER=%s: read system.clusters: %w", name, err)
	}
	if hosts == 0 {
		return fmt.Errorf("CLICKHOUSE_CLUSTER=%s: the server at %s has no such cluster in its remote_servers", name, c.cfg.Addr)
	}
	// Fails when the server has no ZooKeeper, which replicated tables and ON CLUSTER need.
	var znodes uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = '/'").Scan(&znodes); err != nil {
		return fmt.Errorf("CLICKHOUSE_CLUSTER=%s: the server at %s cannot reach ZooKeeper: %w", name, c.cfg.Addr, err)
	}
	var macros uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.macros WHERE macro IN ('shard', 'replica')").Scan(&macros); err != nil {
		return fmt.Errorf("CLICKHOUSE_CLUSTER=%s: read system.macros: %w", name, err)
	}
	if macros != 2 {
		return fmt.Errorf("CLICKHOUSE_CLUSTER=%s: the server at %s lacks the macros shard and replica that its replicated tables are named by", name, c.cfg.Addr)
	}
	return nil
}

// checkLayout refuses a database made for the other layout: CLICKHOUSE_CLUSTER does not
// convert a database created on one server (its tables would stay on that node), and a
// cluster's database cannot be migrated as one server's.
func (c *Client) checkLayout(ctx context.Context) error {
	var (
		n      uint64
		engine string
	)
	if err := c.conn.QueryRow(ctx, "SELECT count(), any(engine) FROM system.tables WHERE database = ? AND name = 'schema_migrations'",
		c.cfg.Database).Scan(&n, &engine); err != nil {
		return fmt.Errorf("look for table %s.schema_migrations: %w", c.cfg.Database, err)
	}
	onCluster := engine == "Distributed"
	switch {
	case n == 0:
		return nil
	case c.cfg.Cluster != "" && !onCluster:
		return fmt.Errorf("CLICKHOUSE_CLUSTER=%s: database %s on %s was created for one server, and a cluster needs a database of its own: "+
			"migrate a new CLICKHOUSE_DATABASE and copy the rows (docs/storage.md, ClickHouse past one node)", c.cfg.Cluster, c.cfg.Database, c.cfg.Addr)
	case c.cfg.Cluster == "" && onCluster:
		return fmt.Errorf("database %s on %s was created on a ClickHouse cluster: set CLICKHOUSE_CLUSTER to its name", c.cfg.Database, c.cfg.Addr)
	}
	return nil
}
