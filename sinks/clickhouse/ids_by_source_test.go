package clickhouse_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// Migration 0011 keys the raw tables by (source, id): on a database from before it, the
// rows are kept, each read once under FINAL (a row stored twice before stays one row),
// nothing is left behind, and afterwards two sources' events with the same id are two
// rows while one source's resent event stays one. Interrupted after its swap, or run
// again after it finished, it loses and doubles nothing.
func TestMigrateKeysRawTablesBySource(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := t.Context()
	db, priv := c.Database(), c.PrivateDatabase()
	exec := func(q string) {
		t.Helper()
		if err := c.Conn().Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func(q string) uint64 {
		t.Helper()
		var n uint64
		if err := c.Conn().QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	forget11 := func() {
		exec("CREATE TABLE " + db + ".schema_keep ENGINE = MergeTree ORDER BY version AS SELECT * FROM " + db + ".schema_migrations WHERE version != 11")
		exec("DROP TABLE " + db + ".schema_migrations")
		exec("RENAME TABLE " + db + ".schema_keep TO " + db + ".schema_migrations")
	}
	// The tables as 0001 and 0008 made them, sorted by id without the source.
	old := map[string]string{
		db + ".survey_responses": "id String, survey String, occurred_at DateTime('UTC'), received_at DateTime('UTC'), source String, " +
			"score Float64, scale_min Float64, scale_max Float64, standard_score Float64, ticket_id String, customer_id String, " +
			"channel String, category String, team String, agent_id String, comment String, attributed UInt8, late UInt8, " +
			"partition UInt16, seq UInt64, version UInt64) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(occurred_at) ORDER BY (survey, id)",
		db + ".tickets": "id String, ticket_id String, status String, occurred_at DateTime('UTC'), received_at DateTime('UTC'), source String, " +
			"channel String, category String, team String, agent_id String, handle_seconds Nullable(Float64), contacts Nullable(UInt32), " +
			"late UInt8, partition UInt16, seq UInt64, version UInt64) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(occurred_at) ORDER BY (ticket_id, id)",
		priv + ".employee_pulses": "id String, employee_id String, team String, question String, occurred_at DateTime('UTC'), " +
			"received_at DateTime('UTC'), source String, score Float64, scale_min Float64, scale_max Float64, late UInt8, partition UInt16, " +
			"seq UInt64, version UInt64, stored_at DateTime('UTC') DEFAULT now()) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(occurred_at) ORDER BY (team, id)",
	}
	for table, def := range old {
		exec("DROP TABLE " + table)
		exec("CREATE TABLE " + table + " (" + def)
	}
	// 6 events of each kind, the first 2 written twice (a redelivered message).
	for _, q := range []string{
		"INSERT INTO %s.survey_responses (id, survey, occurred_at, received_at, source, score, scale_min, scale_max, standard_score, partition, seq, version) " +
			"SELECT concat('s', toString(modulo(number, 6))), 'ces', toDateTime('2026-03-02 10:00:00', 'UTC'), toDateTime('2026-03-02 10:00:01', 'UTC'), 'crm', 5, 1, 7, 5, 0, number, 1000 - number FROM system.numbers LIMIT 8",
		"INSERT INTO %s.tickets (id, ticket_id, status, occurred_at, received_at, source, partition, seq, version) " +
			"SELECT concat('t', toString(modulo(number, 6))), 'T-1', 'solved', toDateTime('2026-03-02 10:00:00', 'UTC'), toDateTime('2026-03-02 10:00:01', 'UTC'), 'crm', 0, number, 1000 - number FROM system.numbers LIMIT 8",
	} {
		exec(fmt.Sprintf(q, db))
	}
	exec("INSERT INTO " + priv + ".employee_pulses (id, employee_id, team, question, occurred_at, received_at, source, score, scale_min, scale_max, late, partition, seq, version) " +
		"SELECT concat('p', toString(modulo(number, 6))), 'e', 'red', 'engagement', toDateTime('2026-03-02 10:00:00', 'UTC'), toDateTime('2026-03-02 10:00:01', 'UTC'), 'hr', 4, 1, 5, 0, 0, number, 1000 - number FROM system.numbers LIMIT 8")
	forget11()

	check := func(when string) {
		t.Helper()
		for table, want := range map[string]uint64{db + ".survey_responses": 6, db + ".tickets": 6, priv + ".employee_pulses": 6} {
			if n := count("SELECT count() FROM " + table + " FINAL"); n != want {
				t.Errorf("%s: %s has %d rows under FINAL, want %d", when, table, n, want)
			}
		}
		if n := count("SELECT count() FROM system.tables WHERE (database = '" + db + "' OR database = '" + priv + "') AND (name LIKE '%_before_0011' OR name LIKE '%_by_source')"); n != 0 {
			t.Errorf("%s: %d tables left behind", when, n)
		}
	}
	if err := c.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check("migrated")

	// Interrupted after its swap of survey_responses: the new table is in place (and
	// already written to), the old one not copied yet.
	forget11()
	exec("RENAME TABLE " + db + ".survey_responses TO " + db + ".survey_responses_before_0011")
	exec("CREATE TABLE " + db + ".survey_responses (" + strings.Replace(old[db+".survey_responses"], "ORDER BY (survey, id)", "ORDER BY (survey, id, source)", 1))
	exec("INSERT INTO " + db + ".survey_responses SELECT * FROM " + db + ".survey_responses_before_0011 WHERE id = 's1'")
	if err := c.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check("after an interrupted run")
	// Finished but not recorded: applied again from its start.
	forget11()
	if err := c.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check("applied again")

	// Another source's event with a taken id is a row of its own; a resend is not.
	exec("INSERT INTO " + db + ".survey_responses (id, survey, occurred_at, source, version) " +
		"SELECT 's1', 'ces', toDateTime('2026-03-02 10:00:00', 'UTC'), arrayElement(['forger', 'crm'], number + 1), 1 FROM system.numbers LIMIT 2")
	if n := count("SELECT count() FROM " + db + ".survey_responses FINAL WHERE id = 's1'"); n != 2 {
		t.Errorf("id s1 of two sources: %d rows under FINAL, want 2", n)
	}
}
