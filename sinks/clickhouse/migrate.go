package clickhouse

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// migrationFiles are the schema's versions, NNNN_name.sql. Each is a text/template with
// {{.Database}} for the dashboards' database, {{.PrivateDatabase}} for the database of
// individual employee answers, and the functions of schema.funcs, which give the
// cluster variant (cluster.go), and holds statements ended by ';'. Lines starting
// with -- are dropped before splitting, so only a statement itself may not contain a ';'.
// Every statement must be idempotent (IF NOT EXISTS, IF EXISTS, an ALTER TABLE … ADD
// COLUMN, which is skipped when the column is there, an INSERT … SELECT into a
// ReplacingMergeTree whose copied rows keep their version, or a RENAME TABLE a TO b, c
// TO a ({{swap}}), run only while a's sorting key is not c's yet, with what a swap run
// again finds done on a cluster: swappedIn): two processes may migrate at once, and a
// version interrupted half-way is applied again from its start. A released file is
// never edited; a change is a new version.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migration is one version of the schema.
type Migration struct {
	Version uint32
	Name    string
	// AppliedAt is when the version was first recorded in the database; zero while it
	// is pending.
	AppliedAt time.Time
	sql       string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		if len(out) > 0 && out[len(out)-1].Version == uint32(v) {
			return nil, fmt.Errorf("migration version %d is used twice", v)
		}
		out = append(out, Migration{Version: uint32(v), Name: m[2], sql: string(b)})
	}
	return out, nil
}

// file is the migration's file name under migrations/.
func (m Migration) file() string { return fmt.Sprintf("%04d_%s.sql", m.Version, m.Name) }

// render is the migration's text for the schema.
func (m Migration) render(s schema) (string, error) {
	return s.render("migration "+m.file(), m.sql)
}

// render executes the template text named name for the schema.
func (s schema) render(name, text string) (string, error) {
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(s.funcs()).Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, s); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return buf.String(), nil
}

// statements renders the migration for the schema and splits it into statements.
func (m Migration) statements(s schema) ([]string, error) {
	text, err := m.render(s)
	if err != nil {
		return nil, err
	}
	return split(text), nil
}

// split drops the comment lines of text and splits the rest into statements.
func split(text string) []string {
	var code strings.Builder
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			code.WriteString(line)
		}
	}
	var out []string
	for chunk := range strings.SplitSeq(code.String(), ";") {
		if s := strings.TrimSpace(chunk); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Migrate creates the database if missing and applies the migrations it lacks, in
// version order. Processes may migrate at once: ClickHouse serialises concurrent
// CREATE … IF NOT EXISTS of one object (TestMigrateConcurrently), and a version recorded
// twice is read once.
func (c *Client) Migrate(ctx context.Context) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	if c.cfg.Cluster != "" {
		if err := c.checkCluster(ctx); err != nil {
			return err
		}
	}
	if err := c.checkLayout(ctx); err != nil {
		return err
	}
	if err := c.ensureMigrationsTable(ctx); err != nil {
		return err
	}
	applied, err := c.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	if pending(all, applied) {
		// One process applies at a time; the others wait, then find them applied.
		unlock, err := c.lockMigrations(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		if applied, err = c.appliedMigrations(ctx); err != nil {
			return err
		}
	}
	for _, m := range all {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		if err := c.apply(ctx, m); err != nil {
			return err
		}
		c.logger.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	if len(all) > 0 {
		for v := range applied {
			if v > all[len(all)-1].Version {
				c.logger.Warn("database has a migration this binary does not know; is an older binary running against a newer schema?",
					"version", v, "latest_known", all[len(all)-1].Version)
			}
		}
	}
	return nil
}

// Migrations lists the embedded migrations with the time each was applied, zero for the
// pending ones. It creates nothing: on a database that does not exist yet every version
// is pending.
func (c *Client) Migrations(ctx context.Context) ([]Migration, error) {
	all, err := migrations()
	if err != nil {
		return nil, err
	}
	var n uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'",
		c.cfg.Database).Scan(&n); err != nil {
		return nil, fmt.Errorf("look for table %s.schema_migrations: %w", c.cfg.Database, err)
	}
	if n == 0 {
		return all, nil
	}
	applied, err := c.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		all[i].AppliedAt = applied[all[i].Version]
	}
	return all, nil
}

// migrationsTable creates the database and the record of applied versions: one row per
// applied version; two processes migrating at once may both record a version, so it is
// read grouped by version.
const migrationsTable = `CREATE DATABASE IF NOT EXISTS {{.Database}}{{onCluster}};
CREATE TABLE IF NOT EXISTS {{table "schema_migrations"}} (version UInt32, name String, applied_at DateTime('UTC')) ` +
	`ENGINE = {{engine "schema_migrations" "MergeTree"}} ORDER BY version{{distributed "schema_migrations"}}`

func (c *Client) ensureMigrationsTable(ctx context.Context) error {
	db := c.cfg.Database
	text, err := c.schema().render("the migrations table", migrationsTable)
	if err != nil {
		return err
	}
	for _, q := range split(text) {
		if err := c.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("prepare migrations of database %s: %w", db, err)
		}
	}
	return nil
}

// appliedMigrations maps each applied version to when it was first applied.
func (c *Client) appliedMigrations(ctx context.Context) (map[uint32]time.Time, error) {
	rows, err := c.conn.Query(ctx, "SELECT version, min(applied_at) FROM "+c.cfg.Database+
		".schema_migrations GROUP BY version")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]time.Time{}
	for rows.Next() {
		var (
			v  uint32
			at time.Time
		)
		if err := rows.Scan(&v, &at); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		applied[v] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return applied, nil
}

func (c *Client) apply(ctx context.Context, m Migration) error {
	stmts, err := m.statements(c.schema())
	if err != nil {
		return err
	}
	for i, q := range stmts {
		if swap.MatchString(q) {
			if err := c.swap(ctx, q); err != nil {
				return fmt.Errorf("apply migration %04d_%s, statement %d: %w", m.Version, m.Name, i+1, err)
			}
			continue
		}
		if err := c.execIdempotent(ctx, q); err != nil && !c.sourceMoved(ctx, q, err) && !c.swappedIn(ctx, q, err) {
			return fmt.Errorf("apply migration %04d_%s, statement %d: %w", m.Version, m.Name, i+1, err)
		}
	}
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.cfg.Database+".schema_migrations (version, name, applied_at)")
	if err != nil {
		return fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if err := b.Append(m.Version, m.Name, time.Now().UTC()); err != nil {
		_ = b.Abort()
		return fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
	}
	return nil
}

// addColumn matches an ALTER TABLE … [ON CLUSTER …] ADD COLUMN statement; its groups are
// the database (empty when not named), the table and the column.
var addColumn = regexp.MustCompile("(?is)^ALTER\\s+TABLE\\s+(?:`?(\\w+)`?\\.)?`?(\\w+)`?\\s+(?:ON\\s+CLUSTER\\s+\\S+\\s+)?ADD\\s+COLUMN\\s+`?(\\w+)`?\\s")

// execIdempotent runs a migration statement. An ADD COLUMN whose column is there already
// is done: applied by an interrupted run of its migration, or by a process migrating at
// the same time (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS). On one server the
// catalogue says so before and after the ALTER, whatever code the error of a column added
// meanwhile has (44 ILLEGAL_COLUMN on 18.16, 15 DUPLICATE_COLUMN on current servers). On a
// cluster the ALTER runs on every node (ON CLUSTER), one of which may lack the column
// while this one has it: it always runs, and a node's "already exists" counts as done.
func (c *Client) execIdempotent(ctx context.Context, stmt string) error {
	m := addColumn.FindStringSubmatch(stmt)
	if m == nil {
		return c.conn.Exec(ctx, stmt)
	}
	if c.cfg.Cluster != "" {
		if err := c.conn.Exec(ctx, stmt); err != nil && !columnExists(stmt, err) {
			return err
		}
		return nil
	}
	database, table, column := m[1], m[2], m[3]
	if database == "" {
		database = c.cfg.Database
	}
	if there, err := c.hasColumn(ctx, database, table, column); err != nil || there {
		return err
	}
	err := c.conn.Exec(ctx, stmt)
	if err != nil {
		if there, cerr := c.hasColumn(ctx, database, table, column); cerr == nil && there {
			return nil
		}
	}
	return err
}

// hasColumn reports whether database.table has the column.
func (c *Client) hasColumn(ctx context.Context, database, table, column string) (bool, error) {
	var n uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		database, table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("look for column %s.%s.%s: %w", database, table, column, err)
	}
	return n > 0, nil
}

// columnExists reports whether err says that the column an ADD COLUMN statement adds is
// already there (ClickHouse 18.16: code 44, ILLEGAL_COLUMN; current ClickHouse: code 15,
// DUPLICATE_COLUMN; ON CLUSTER passes on the code and message of the node that failed).
func columnExists(stmt string, err error) bool {
	var e *ch.Exception
	return addColumn.MatchString(stmt) && errors.As(err, &e) && (e.Code == 44 || e.Code == 15) &&
		strings.Contains(e.Message, "already exists")
}

// copyRows matches an INSERT … SELECT … FROM a table FINAL: a copy of rows into a
// ReplacingMergeTree, whose rows keep their version, so a second copy is read once.
var copyRows = regexp.MustCompile(`(?s)^INSERT INTO \S+\s*\([^)]*\)\s*SELECT .*\sFROM (\S+) FINAL$`)

// sourceMoved reports whether err says that the table a copy reads from is gone (code
// 60, UNKNOWN_TABLE): a process migrating at the same time copied its rows and dropped
// it, in that order (218, TABLE_IS_DROPPED: while this copy started). The catalogue
// must agree: a copy that failed for want of its target is not done.
func (c *Client) sourceMoved(ctx context.Context, stmt string, err error) bool {
	var e *ch.Exception
	m := copyRows.FindStringSubmatch(stmt)
	return m != nil && errors.As(err, &e) && (e.Code == 60 || e.Code == 218) && !c.tableExists(ctx, m[1])
}

// tableExists reports whether the table database.name exists (false when the catalogue
// cannot be read).
func (c *Client) tableExists(ctx context.Context, qualified string) bool {
	db, table, _ := strings.Cut(qualified, ".")
	var n uint64
	err := c.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&n)
	return err == nil && n > 0
}

// swap matches RENAME TABLE a TO b, c TO d [ON CLUSTER x]: a table replaced by a new one.
var swap = regexp.MustCompile(`(?is)^RENAME\s+TABLE\s+(\S+)\s+TO\s+(\S+)\s*,\s*(\S+)\s+TO\s+(\S+)(?:\s+ON\s+CLUSTER\s+\S+)?$`)

// Statements of a version that replaces a table (a swap), run again on a cluster: the
// new local table's CREATE, whose replication path the swapped-in table holds now, and
// the Distributed table over the old local table, which is dropped once copied.
var (
	createReplicated = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\S+) ON CLUSTER .*\sENGINE = Replicated\w*MergeTree\('([^']+)'`)
	createDistOver   = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS \S+ ON CLUSTER \S+ AS (\S+)\nENGINE = Distributed\(`)
)

// swappedIn reports whether err says that a statement of a swap, run again, is done: the
// replicated table it creates was created and swapped in under the old name (the
// replication path is taken, on this node, by a table of the database: code 253,
// REPLICA_IS_ALREADY_EXIST), or the old local table a Distributed
// table is to read was copied and dropped (code 60, UNKNOWN_TABLE, and it is gone).
func (c *Client) swappedIn(ctx context.Context, stmt string, err error) bool {
	var e *ch.Exception
	if !errors.As(err, &e) {
		return false
	}
	if m := createReplicated.FindStringSubmatch(stmt); m != nil && e.Code == 253 {
		db, _, _ := strings.Cut(m[1], ".")
		_, path, _ := strings.Cut(m[2], "{shard}") // this node's shard is in the path before it
		var n uint64
		q := "SELECT count() FROM system.replicas WHERE database = ? AND endsWith(zookeeper_path, ?)"
		return c.conn.QueryRow(ctx, q, db, path).Scan(&n) == nil && n > 0
	}
	if m := createDistOver.FindStringSubmatch(stmt); m != nil && e.Code == 60 {
		return !c.tableExists(ctx, m[1])
	}
	return false
}

// swap runs RENAME TABLE a TO b, c TO a, which replaces table a by c (created just
// before with another sorting key), unless that is done: a has c's sorting key already,
// or c is gone (another process migrating at the same time swapped it in). A rename that
// fails because another process swapped meanwhile is done too: b exists (code 57,
// TABLE_ALREADY_EXISTS; only a swap gives a table that name), or c is gone and a has
// its sorting key (60).
func (c *Client) swap(ctx context.Context, stmt string) error {
	m := swap.FindStringSubmatch(stmt)
	a, tc := m[1], m[3]
	keyA, err := c.sortingKey(ctx, a)
	if err != nil {
		return err
	}
	keyC, err := c.sortingKey(ctx, tc)
	if err != nil {
		return err
	}
	if keyC == "" || keyA == keyC {
		return nil
	}
	err = c.conn.Exec(ctx, stmt)
	var e *ch.Exception
	switch {
	case err == nil:
	case errors.As(err, &e) && e.Code == 57:
		return nil // b is taken: only a swap gives a table that name
	case errors.As(err, &e) && e.Code == 60:
		if now, kerr := c.sortingKey(ctx, a); kerr == nil && now == keyC {
			return nil
		}
	}
	return err
}

var orderBy = regexp.MustCompile(`ORDER BY (\([^)]*\)|\S+)`)

// sortingKey returns the ORDER BY of table database.name as ClickHouse shows it, "" when
// the table does not exist.
func (c *Client) sortingKey(ctx context.Context, qualified string) (string, error) {
	if !c.tableExists(ctx, qualified) {
		return "", nil
	}
	var create string
	if err := c.conn.QueryRow(ctx, "SHOW CREATE TABLE "+qualified).Scan(&create); err != nil {
		if !c.tableExists(ctx, qualified) {
			return "", nil // renamed meanwhile
		}
		return "", fmt.Errorf("read the definition of %s: %w", qualified, err)
	}
	return orderBy.FindString(create), nil
}
