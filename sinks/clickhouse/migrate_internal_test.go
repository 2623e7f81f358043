package clickhouse

import (
	"strings"
	"testing"
)

func TestEmbeddedMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		// Versions are taken by concern (0003, 0004… are reserved by work on other
		// tables), so there may be gaps, but they must ascend.
		if i > 0 && m.Version <= ms[i-1].Version || i == 0 && m.Version != 1 {
			t.Errorf("migration %d has version %d: versions must ascend from 1", i, m.Version)
		}
		stmts, err := m.statements(schema{Database: "db_x", PrivateDatabase: "db_x_private"})
		if err != nil {
			t.Fatal(err)
		}
		if len(stmts) == 0 {
			t.Errorf("migration %04d_%s has no statement", m.Version, m.Name)
		}
		for _, s := range stmts {
			// An INSERT … SELECT from a FINAL read into a ReplacingMergeTree writes the same
			// rows with the same versions when run again.
			insertFinal := strings.HasPrefix(s, "INSERT INTO") && strings.Contains(s, " FINAL")
			if !strings.Contains(s, "IF NOT EXISTS") && !strings.Contains(s, "IF EXISTS") && !addColumn.MatchString(s) &&
				!copyRows.MatchString(s) && !swap.MatchString(s) && !insertFinal {
				t.Errorf("migration %04d_%s: statement is not idempotent:\n%s", m.Version, m.Name, s)
			}
			if strings.Contains(s, "--") || strings.Contains(s, "{{") {
				t.Errorf("migration %04d_%s: comment or template left in statement:\n%s", m.Version, m.Name, s)
			}
			// window is a keyword in current ClickHouse.
			if strings.Contains(strings.ReplaceAll(s, "`window`", ""), "window ") ||
				strings.Contains(strings.ReplaceAll(s, "`window`", ""), "window,") {
				t.Errorf("migration %04d_%s: unquoted window:\n%s", m.Version, m.Name, s)
			}
		}
	}
}

func TestStatementsSplitAndRender(t *testing.T) {
	m := Migration{Version: 9, Name: "x", sql: "-- a comment\nCREATE TABLE IF NOT EXISTS {{.Database}}.a (x UInt8) ENGINE = Memory;\n\n" +
		"  -- another\nCREATE VIEW IF NOT EXISTS {{.Database}}.b AS SELECT x FROM {{.Database}}.a;\n"}
	got, err := m.statements(schema{Database: "d1", PrivateDatabase: "d1_p"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE IF NOT EXISTS d1.a (x UInt8) ENGINE = Memory",
		"CREATE VIEW IF NOT EXISTS d1.b AS SELECT x FROM d1.a",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("statements = %q, want %q", got, want)
	}
	if _, err := (Migration{Name: "bad", sql: "{{.Nope}}"}).statements(schema{Database: "d1", PrivateDatabase: "d1_p"}); err == nil {
		t.Error("unknown template field rendered without error")
	}
}

func TestAddColumnNamesTableAndColumn(t *testing.T) {
	for stmt, want := range map[string]string{
		"ALTER TABLE db_x.rollup_partials ADD COLUMN score_sq_sum Float64 DEFAULT 0 AFTER negative": "db_x rollup_partials score_sq_sum",
		"alter table `t` add column `c` String":                                                     " t c",
		"ALTER TABLE d.t\n  ADD  COLUMN c UInt8":                                                    "d t c",
	} {
		m := addColumn.FindStringSubmatch(stmt)
		if m == nil || strings.Join(m[1:], " ") != want {
			t.Errorf("%q: %q, want %q", stmt, m, want)
		}
	}
	if addColumn.MatchString("ALTER TABLE d.t DROP COLUMN c") || addColumn.MatchString("CREATE TABLE IF NOT EXISTS d.t (c UInt8)") {
		t.Error("matches a statement that adds no column")
	}
}
