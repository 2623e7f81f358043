package clickhouse

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// envWriteGolden=1 writes testdata/single_node/<migration> for the migrations that have
// none; it never overwrites one.
const envWriteGolden = "CXLINK_WRITE_MISSING_GOLDEN"

// A released migration never changes what it runs on one node: its rendering for database
// cxlink is frozen in testdata/single_node, written once from the file as released. A new
// migration gets its golden with
//
//	CXLINK_WRITE_MISSING_GOLDEN=1 go test ./sinks/clickhouse -run TestSingleNodeRenderingIsFrozen
func TestSingleNodeRenderingIsFrozen(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		got, err := m.render(schema{Database: "cxlink", PrivateDatabase: "cxlink_private"})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "single_node", m.file())
		want, err := os.ReadFile(path)
		if os.IsNotExist(err) && os.Getenv(envWriteGolden) == "1" {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
			continue
		}
		if err != nil {
			t.Errorf("migration %s has no frozen rendering: %v; write it with %s=1", m.file(), err, envWriteGolden)
			continue
		}
		if got != string(want) {
			t.Errorf("migration %s renders differently on one node than as released (%s):\n%s", m.file(), path, firstDifference(got, string(want)))
		}
	}
}

// firstDifference quotes the two texts from a little before where they first differ.
func firstDifference(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return "got:  …" + got[from:min(len(got), i+80)] + "…\nwant: …" + want[from:min(len(want), i+80)] + "…"
}

// On a cluster every migration runs each DDL statement on every node, creates each table
// as a replicated local table with a Distributed table over it, and keeps the Distributed
// table in step with the local one's columns; reads and inserts go through the
// Distributed tables.
func TestClusterRendering(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	s := schema{Database: "db", PrivateDatabase: "db_private", Cluster: "c1"}
	// Tables are named with their database (db, or db_private for employee answers).
	var (
		ddl         = regexp.MustCompile(`^(?:CREATE (?:TABLE|VIEW|DATABASE) IF NOT EXISTS|DROP TABLE IF EXISTS|ALTER TABLE) db(?:_private)?(?:\.(\w+))? ON CLUSTER c1(?:\s|$)`)
		createLocal = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (db(?:_private)?\.\w+)_local ON CLUSTER c1\s.*\sENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/(db(?:_private)?\.\w+)', '\{replica\}'`)
		createDist  = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (db(?:_private)?\.\w+) ON CLUSTER c1 AS (db(?:_private)?\.\w+)_local\nENGINE = Distributed\(c1, (db(?:_private)?), (\w+)_local, .+\)$`)
		alterLocal  = regexp.MustCompile(`^ALTER TABLE (db(?:_private)?\.\w+)_local ON CLUSTER c1 ADD COLUMN `)
		// A table replaced by one created just before (a swap): their local tables.
		swapLocal = regexp.MustCompile(`^RENAME TABLE (db(?:_private)?\.\w+)_local TO (db(?:_private)?\.\w+)_local, (db(?:_private)?\.\w+)_local TO (db(?:_private)?\.\w+)_local ON CLUSTER c1$`)
	)
	for _, m := range ms {
		stmts, err := m.statements(s)
		if err != nil {
			t.Fatal(err)
		}
		// Tables whose local table was created or altered and whose Distributed table
		// has not been (re)created since.
		pending := map[string]bool{}
		for _, q := range stmts {
			if strings.HasPrefix(q, "INSERT") || strings.HasPrefix(q, "SELECT") || strings.HasPrefix(q, "CREATE VIEW") {
				if strings.Contains(q, localSuffix) {
					t.Errorf("%s: reads or writes a local table instead of the Distributed one:\n%s", m.file(), q)
				}
				if strings.HasPrefix(q, "INSERT") || strings.HasPrefix(q, "SELECT") {
					continue
				}
			}
			if g := swapLocal.FindStringSubmatch(q); g != nil {
				// The new local table takes the old one's name, under the Distributed
				// table that already reads that name, with the same columns.
				if g[1] != g[4] {
					t.Errorf("%s: a rename that does not swap a table:\n%s", m.file(), q)
				}
				delete(pending, g[3])
				continue
			}
			if ddl.FindStringSubmatch(q) == nil {
				t.Errorf("%s: not a DDL statement run ON CLUSTER c1:\n%s", m.file(), q)
				continue
			}
			switch {
			case strings.HasPrefix(q, "CREATE TABLE") && strings.Contains(q, "_local ON CLUSTER"):
				g := createLocal.FindStringSubmatch(q)
				if g == nil || g[1] != g[2] {
					t.Errorf("%s: local table not replicated at /clickhouse/tables/{shard}/<database>.<table>:\n%s", m.file(), q)
					continue
				}
				pending[g[1]] = true
			case strings.HasPrefix(q, "CREATE TABLE"):
				g := createDist.FindStringSubmatch(q)
				if g == nil || g[1] != g[2] || g[1] != g[3]+"."+g[4] {
					t.Errorf("%s: a table that is neither local and replicated nor Distributed over one:\n%s", m.file(), q)
					continue
				}
				delete(pending, g[1])
			case strings.HasPrefix(q, "ALTER"):
				g := alterLocal.FindStringSubmatch(q)
				if g == nil {
					t.Errorf("%s: ALTER of anything but a local table's columns (18.16 refuses ALTER ON CLUSTER of a Distributed table):\n%s", m.file(), q)
					continue
				}
				pending[g[1]] = true
			}
		}
		for table := range pending {
			t.Errorf("%s: %s_local is created or altered without a Distributed table %s over its columns after it", m.file(), table, table)
		}
	}
}

func TestMigrationsTableRendering(t *testing.T) {
	text, err := schema{Database: "d1"}.render("t", migrationsTable)
	if err != nil {
		t.Fatal(err)
	}
	// As before there was a cluster variant.
	want := []string{
		"CREATE DATABASE IF NOT EXISTS d1",
		"CREATE TABLE IF NOT EXISTS d1.schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = MergeTree ORDER BY version",
	}
	if got := split(text); !slices.Equal(got, want) {
		t.Errorf("one node: %q\nwant %q", got, want)
	}
	text, err = schema{Database: "d1", Cluster: "c1"}.render("t", migrationsTable)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"CREATE DATABASE IF NOT EXISTS d1 ON CLUSTER c1",
		"CREATE TABLE IF NOT EXISTS d1.schema_migrations_local ON CLUSTER c1 (version UInt32, name String, applied_at DateTime('UTC')) " +
			"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d1.schema_migrations', '{replica}') ORDER BY version",
		"CREATE TABLE IF NOT EXISTS d1.schema_migrations ON CLUSTER c1 AS d1.schema_migrations_local\n" +
			"ENGINE = Distributed(c1, d1, schema_migrations_local, version)",
	}
	if got := split(text); !slices.Equal(got, want) {
		t.Errorf("cluster: %q\nwant %q", got, want)
	}
}

func TestClusterRenderingRefusesWhatItCannotShard(t *testing.T) {
	s := schema{Database: "d1", Cluster: "c1"}
	for text, want := range map[string]string{
		`CREATE TABLE IF NOT EXISTS {{table "t"}} (x UInt8) ENGINE = {{engine "t" "Memory"}}`:                                  "engine \"Memory\" is not of the MergeTree family",
		`CREATE TABLE IF NOT EXISTS {{table "t"}} (x UInt8) ENGINE = {{engine "t" "MergeTree"}} ORDER BY x{{distributed "t"}}`: "table t has no sharding key",
		`ALTER TABLE {{table "t"}} ADD COLUMN y UInt8{{redistribute "t"}}`:                                                     "table t has no sharding key",
	} {
		if _, err := s.render("t", text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", text, err, want)
		}
		// One node needs neither.
		if _, err := (schema{Database: "d1"}).render("t", text); err != nil {
			t.Errorf("%s on one node: %v", text, err)
		}
	}
}
