package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// open starts (or reuses) a server and returns a client on a fresh, migrated database.
func open(t testing.TB, srv *chtest.Server) (*clickhouse.Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := clickhouse.Open(context.Background(), srv.Config(srv.NewDatabase(t)), testLogger(t), reg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return c, reg
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func ptr[T any](v T) *T { return &v }

// at is a UTC time on whole seconds, as DateTime stores it.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestMigrate(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	cfg := srv.Config(srv.NewDatabase(t))
	c, err := clickhouse.Open(ctx, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	before, err := c.Migrations(ctx)
	if err != nil {
		t.Fatalf("migrations of a missing database: %v", err)
	}
	if len(before) < 2 {
		t.Fatalf("want at least 2 embedded migrations, got %d", len(before))
	}
	for _, m := range before {
		if !m.AppliedAt.IsZero() {
			t.Errorf("migration %d applied before Migrate", m.Version)
		}
	}

	start := time.Now().Add(-time.Second)
	if err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrate empty database: %v", err)
	}
	after, err := c.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		version uint32
		name    string
	}{{1, "raw_tables"}, {2, "rollups"}}
	for i, w := range want {
		m := after[i]
		if m.Version != w.version || m.Name != w.name || m.AppliedAt.Before(start.Truncate(time.Second)) {
			t.Errorf("migration %d = %d %s applied %v, want %d %s applied after %v", i, m.Version, m.Name, m.AppliedAt, w.version, w.name, start)
		}
	}

	// Applying again changes nothing.
	if err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	again, err := c.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, again) {
		t.Errorf("second Migrate changed the record:\n%v\n%v", after, again)
	}
	var recorded uint64
	if err := c.Conn().QueryRow(ctx, "SELECT count() FROM "+cfg.Database+".schema_migrations").Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != uint64(len(after)) {
		t.Errorf("schema_migrations has %d rows after two runs, want %d", recorded, len(after))
	}

	var tables []string
	rows, err := c.Conn().Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	// No table of individual employee answers in the dashboards' database.
	wantTables := []string{"drift_events", "effort_impact", "followups", "linkage", "raw_days_changed", "raw_days_done", "rollup_buckets", "rollup_hours", "rollup_hours_done", "rollup_partials", "rollup_windows", "rollups", "schema_migrations", "survey_days", "survey_responses", "team_periods", "ticket_days", "tickets"}
	if !reflect.DeepEqual(tables, wantTables) {
		t.Errorf("tables = %v, want %v", tables, wantTables)
	}
	var private uint64
	if err := c.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'employee_pulses'", c.PrivateDatabase()).Scan(&private); err != nil || private != 1 {
		t.Errorf("%s.employee_pulses: %d tables, %v", c.PrivateDatabase(), private, err)
	}
}

// A process that died after a migration's ALTER … ADD COLUMN but before recording the
// version applies it again on its next start: the column is there, so the ALTER is
// skipped. Here every version is applied again, as if none had been recorded.
func TestMigrateAgainAfterAnUnrecordedVersion(t *testing.T) {
	srv := chtest.Start(t)
	cfg := srv.Config(srv.NewDatabase(t))
	c, err := clickhouse.Open(context.Background(), cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Conn().Exec(ctx, "DROP TABLE "+cfg.Database+".schema_migrations"); err != nil {
		t.Fatal(err)
	}
	if err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrate with the columns in place but no version recorded: %v", err)
	}
	ms, err := c.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.AppliedAt.IsZero() {
			t.Errorf("migration %d not recorded", m.Version)
		}
	}
}

// Processes starting together all migrate; none may fail and the schema must be whole.
func TestMigrateConcurrently(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	for round := range 5 {
		cfg := srv.Config(srv.NewDatabase(t))
		var (
			wg   sync.WaitGroup
			errs = make([]error, 4)
		)
		for i := range errs {
			wg.Go(func() {
				c, err := clickhouse.Open(ctx, cfg, testLogger(t), nil)
				if err != nil {
					errs[i] = err
					return
				}
				defer c.Close()
				errs[i] = c.Migrate(ctx)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: concurrent migrate: %v", round, err)
		}
		c, err := clickhouse.Open(ctx, cfg, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := c.Migrations(ctx)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.AppliedAt.IsZero() {
				t.Errorf("round %d: migration %d not recorded", round, m.Version)
			}
		}
	}
}

func sampleBatch() *records.Batch {
	return &records.Batch{
		Surveys: []records.Survey{{
			Origin: records.Origin{
				ReceivedAt: at("2024-03-10T12:00:05Z"), Partition: 3, Seq: 41,
				Version: records.Version(41, 1), Late: false,
			},
			ID: "s-1", Survey: "ces",
			// A non-UTC location must land as the same instant.
			OccurredAt: at("2024-03-10T11:59:00Z").In(time.FixedZone("CET", 3600)),
			Source:     "zendesk", Score: 4, ScaleMin: 1, ScaleMax: 5, StandardScore: 5.5,
			TicketID: "T-9", CustomerID: "C-1", Channel: "chat", Category: "refund", Team: "blue",
			AgentID: "a-7", Comment: "quick, thanks ✓", Attributed: true,
		}, {
			Origin: records.Origin{
				ReceivedAt: at("2024-04-01T00:00:00Z"), Partition: 65535, Seq: math.MaxInt64,
				Version: records.Version(math.MaxInt64, 0), Late: true,
			},
			ID: "s-2", Survey: "nps", OccurredAt: at("2024-03-31T23:59:59Z"),
			Score: 0, ScaleMin: 0, ScaleMax: 10, StandardScore: 0,
		}},
		Tickets: []records.Ticket{{
			Origin: records.Origin{ReceivedAt: at("2024-03-10T11:00:01Z"), Partition: 3, Seq: 40, Version: records.Version(40, 0)},
			ID:     "t-1", TicketID: "T-9", Status: "solved", OccurredAt: at("2024-03-10T11:00:00Z"),
			Source: "zendesk", Channel: "chat", Category: "refund", Team: "blue", AgentID: "a-7",
			HandleSeconds: ptr(312.25), Contacts: ptr(int64(2)),
		}, {
			Origin: records.Origin{ReceivedAt: at("2024-03-10T10:00:01Z"), Partition: 3, Seq: 39, Version: records.Version(39, 0), Late: true},
			ID:     "t-0", TicketID: "T-9", Status: "created", OccurredAt: at("2024-03-10T10:00:00Z"),
		}},
		Pulses: []records.Pulse{{
			Origin: records.Origin{ReceivedAt: at("2024-03-11T08:00:00Z"), Partition: 1, Seq: 7, Version: records.Version(7, 0)},
			ID:     "p-1", EmployeeID: "e-1", Team: "blue", Question: "engagement", OccurredAt: at("2024-03-11T07:30:00Z"),
			Source: "culture-amp", Score: 4, ScaleMin: 1, ScaleMax: 5,
		}},
		Buckets: []records.Bucket{{
			Survey: "ces", Dimension: "overall", Start: at("2024-03-10T12:00:00Z"),
			Partition: 3, Responses: 1, ScoreSum: 5.5, Positive: 1, SquareSum: 30.25, Version: 41,
		}},
	}
}

type surveyRow struct {
	ID, Survey                              string
	OccurredAt, ReceivedAt                  time.Time
	Source                                  string
	Score, ScaleMin, ScaleMax, Standard     float64
	TicketID, CustomerID, Channel, Category string
	Team, AgentID, Comment                  string
	Attributed, Late                        uint8
	Partition                               uint16
	Seq, Version                            uint64
}

func readSurveys(t testing.TB, c *clickhouse.Client) []surveyRow {
	t.Helper()
	rows, err := c.Conn().Query(context.Background(), "SELECT id, survey, occurred_at, received_at, source, score, "+
		"scale_min, scale_max, standard_score, ticket_id, customer_id, channel, category, team, agent_id, "+
		"comment, attributed, late, partition, seq, version FROM "+c.Database()+".survey_responses FINAL ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []surveyRow
	for rows.Next() {
		var r surveyRow
		if err := rows.Scan(&r.ID, &r.Survey, &r.OccurredAt, &r.ReceivedAt, &r.Source, &r.Score, &r.ScaleMin,
			&r.ScaleMax, &r.Standard, &r.TicketID, &r.CustomerID, &r.Channel, &r.Category, &r.Team, &r.AgentID,
			&r.Comment, &r.Attributed, &r.Late, &r.Partition, &r.Seq, &r.Version); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteBatchRoundTrip(t *testing.T) {
	srv := chtest.Start(t)
	c, reg := open(t, srv)
	ctx := context.Background()
	b := sampleBatch()
	if err := c.WriteBatch(ctx, b); err != nil {
		t.Fatalf("write: %v", err)
	}

	gotSurveys := readSurveys(t, c)
	wantSurveys := []surveyRow{
		{"s-1", "ces", at("2024-03-10T11:59:00Z"), at("2024-03-10T12:00:05Z"), "zendesk", 4, 1, 5, 5.5,
			"T-9", "C-1", "chat", "refund", "blue", "a-7", "quick, thanks ✓", 1, 0, 3, 41, records.Version(41, 1)},
		{"s-2", "nps", at("2024-03-31T23:59:59Z"), at("2024-04-01T00:00:00Z"), "", 0, 0, 10, 0,
			"", "", "", "", "", "", "", 0, 1, 65535, math.MaxInt64, records.Version(math.MaxInt64, 0)},
	}
	if !reflect.DeepEqual(gotSurveys, wantSurveys) {
		t.Errorf("survey_responses:\n got %+v\nwant %+v", gotSurveys, wantSurveys)
	}
	for _, r := range gotSurveys {
		if r.OccurredAt.Location() != time.UTC {
			t.Errorf("occurred_at is read in %v, want UTC", r.OccurredAt.Location())
		}
	}

	type ticketRow struct {
		ID, TicketID, Status   string
		OccurredAt, ReceivedAt time.Time
		Source, Channel        string
		Category, Team, Agent  string
		HandleSeconds          *float64
		Contacts               *uint32
		Late                   uint8
		Partition              uint16
		Seq, Version           uint64
	}
	rows, err := c.Conn().Query(ctx, "SELECT id, ticket_id, status, occurred_at, received_at, source, channel, "+
		"category, team, agent_id, handle_seconds, contacts, late, partition, seq, version FROM "+
		c.Database()+".tickets FINAL ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var gotTickets []ticketRow
	for rows.Next() {
		var r ticketRow
		if err := rows.Scan(&r.ID, &r.TicketID, &r.Status, &r.OccurredAt, &r.ReceivedAt, &r.Source, &r.Channel,
			&r.Category, &r.Team, &r.Agent, &r.HandleSeconds, &r.Contacts, &r.Late, &r.Partition, &r.Seq, &r.Version); err != nil {
			t.Fatal(err)
		}
		gotTickets = append(gotTickets, r)
	}
	rows.Close()
	wantTickets := []ticketRow{
		{"t-0", "T-9", "created", at("2024-03-10T10:00:00Z"), at("2024-03-10T10:00:01Z"), "", "", "", "", "",
			nil, nil, 1, 3, 39, records.Version(39, 0)},
		{"t-1", "T-9", "solved", at("2024-03-10T11:00:00Z"), at("2024-03-10T11:00:01Z"), "zendesk", "chat", "refund",
			"blue", "a-7", ptr(312.25), ptr(uint32(2)), 0, 3, 40, records.Version(40, 0)},
	}
	if !reflect.DeepEqual(gotTickets, wantTickets) {
		t.Errorf("tickets:\n got %+v\nwant %+v", gotTickets, wantTickets)
	}

	type pulseRow struct {
		ID, Employee, Team, Question string
		OccurredAt, ReceivedAt       time.Time
		Source                       string
		Score, ScaleMin, ScaleMax    float64
		Late                         uint8
		Partition                    uint16
		Seq, Version                 uint64
	}
	var p pulseRow
	if err := c.Conn().QueryRow(ctx, "SELECT id, employee_id, team, question, occurred_at, received_at, source, "+
		"score, scale_min, scale_max, late, partition, seq, version FROM "+c.PrivateDatabase()+".employee_pulses FINAL").Scan(
		&p.ID, &p.Employee, &p.Team, &p.Question, &p.OccurredAt, &p.ReceivedAt, &p.Source, &p.Score, &p.ScaleMin,
		&p.ScaleMax, &p.Late, &p.Partition, &p.Seq, &p.Version); err != nil {
		t.Fatal(err)
	}
	wantPulse := pulseRow{"p-1", "e-1", "blue", "engagement", at("2024-03-11T07:30:00Z"), at("2024-03-11T08:00:00Z"),
		"culture-amp", 4, 1, 5, 0, 1, 7, records.Version(7, 0)}
	if p != wantPulse {
		t.Errorf("employee_pulses:\n got %+v\nwant %+v", p, wantPulse)
	}

	var r records.Bucket
	if err := c.Conn().QueryRow(ctx, "SELECT survey, dimension, key, bucket_start, partition, responses, "+
		"score_sum, positive, negative, score_sq_sum, version FROM "+c.Database()+".rollup_buckets FINAL").Scan(
		&r.Survey, &r.Dimension, &r.Key, &r.Start, &r.Partition, &r.Responses, &r.ScoreSum,
		&r.Positive, &r.Negative, &r.SquareSum, &r.Version); err != nil {
		t.Fatal(err)
	}
	r.Start = r.Start.UTC()
	if r != b.Buckets[0] {
		t.Errorf("rollup_buckets:\n got %+v\nwant %+v", r, b.Buckets[0])
	}

	for table, n := range map[string]float64{"survey_responses": 2, "tickets": 2, "employee_pulses": 1, "rollup_buckets": 1} {
		got := counter(t, reg, "cxlink_clickhouse_rows_written_total", table)
		if got != n {
			t.Errorf("rows written to %s = %v, want %v", table, got, n)
		}
	}
}

// counter reads one counter of the sink's from the registry.
func counter(t testing.TB, reg *prometheus.Registry, name, table string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{table=%q}", name, table)
	return 0
}

func TestWriteBatchTwiceIsIdempotent(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	for range 2 {
		if err := c.WriteBatch(ctx, sampleBatch()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		table, key string
		want       uint64
	}{
		{"survey_responses", "id", 2},
		{"tickets", "id", 2},
		{"employee_pulses", "id", 1}, // in the private database
		{"rollup_buckets", "survey, dimension, key, bucket_start, partition", 1},
	} {
		table, want := tc.table, tc.want
		var all, final, ids uint64
		q := fmt.Sprintf("SELECT (SELECT count() FROM %[1]s.%[2]s), (SELECT count() FROM %[1]s.%[2]s FINAL), "+
			"(SELECT uniqExact(%[3]s) FROM %[1]s.%[2]s FINAL)", dbOf(c, table), table, tc.key)
		if err := c.Conn().QueryRow(ctx, q).Scan(&all, &final, &ids); err != nil {
			t.Fatal(err)
		}
		if all != 2*want || final != want || ids != want {
			t.Errorf("%s: %d rows stored, %d under FINAL (%d distinct), want %d stored and %d under FINAL",
				table, all, final, ids, 2*want, want)
		}
	}
}

// records.Version decides which row of an id FINAL shows: the first stored copy (lowest
// seq) over a resend, and within one copy the attributed revision over the first.
func TestVersionSemantics(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	survey := func(id string, seq uint64, revision uint8, team string) records.Survey {
		return records.Survey{
			Origin: records.Origin{ReceivedAt: at("2024-05-01T10:00:00Z"), Seq: seq, Version: records.Version(seq, revision)},
			ID:     id, Survey: "csat", OccurredAt: at("2024-05-01T09:00:00Z"), Score: 5, ScaleMin: 1, ScaleMax: 5,
			StandardScore: 5, Team: team, Attributed: revision == 1,
		}
	}
	// Separate inserts, so that the rows are in different parts and FINAL must choose.
	for _, s := range []records.Survey{
		survey("resent", 10, 0, "first"),
		survey("resent", 900, 1, "resend"), // a later copy, even attributed, loses
		survey("attributed", 20, 1, "attributed"),
		survey("attributed", 20, 0, "unattributed"), // written after, but a lower revision
	} {
		if err := c.WriteBatch(ctx, &records.Batch{Surveys: []records.Survey{s}}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for _, r := range readSurveys(t, c) {
		got[r.ID] = fmt.Sprintf("%s seq=%d", r.Team, r.Seq)
	}
	want := map[string]string{"resent": "first seq=10", "attributed": "attributed seq=20"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FINAL shows %v, want %v", got, want)
	}
}

func TestRollupsView(t *testing.T) {
	srv := chtest.Start(t)
	c, _ := open(t, srv)
	ctx := context.Background()
	if err := c.WriteWindows(ctx, time.Minute, []effort.Window{{Name: "1h", Length: time.Hour}, {Name: "2h", Length: 2 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	// Buckets well inside the last hour, so that a minute turning during the test moves
	// none of them out of the window.
	now := time.Now().UTC().Truncate(time.Minute)
	in, old := now.Add(-20*time.Minute), now.Add(-90*time.Minute)
	bucket := func(survey, dim, key string, start time.Time, partition uint16, n uint64, sum float64, pos, neg, version uint64) records.Bucket {
		return records.Bucket{Survey: survey, Dimension: dim, Key: key, Start: start,
			Partition: partition, Responses: n, ScoreSum: sum, Positive: pos, Negative: neg, Version: version}
	}
	if err := c.WriteBatch(ctx, &records.Batch{Buckets: []records.Bucket{
		bucket("ces", "overall", "", in, 0, 2, 9, 1, 1, 1),
		bucket("ces", "overall", "", in, 0, 3, 12, 1, 2, 2), // the bucket written again: replaces the row above
		bucket("ces", "overall", "", in.Add(time.Minute), 1, 4, 22.5, 3, 0, 1),
		bucket("ces", "overall", "", old, 1, 5, 5, 0, 5, 1), // in the 2h window only
		bucket("csat", "team", "blue", in, 0, 1, 5, 1, 0, 1),
		bucket("csat", "team", "blue", in, 7, 2, 3, 0, 2, 1),
		bucket("nps", "category", "refund", in, 0, 3, 7, 0, 2, 1),
		bucket("nps", "category", "refund", in, 1, 3, 19, 1, 1, 1),
		bucket("nps", "category", "ancient", now.Add(-3*time.Hour), 1, 3, 19, 1, 1, 1), // in no window
	}}); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Survey, Window, Dimension, Key string
		Responses                      uint64
		Mean, PctPositive, PctNegative *float64
		PctEasy, PctDifficult          *float64
		PctSatisfied, NPS              *float64
	}
	rows, err := c.Conn().Query(ctx, "SELECT survey, `window`, dimension, key, window_end, responses, mean, "+
		"pct_positive, pct_negative, pct_easy, pct_difficult, pct_satisfied, nps FROM "+c.Database()+
		".rollups ORDER BY survey, key, `window`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var (
			r   row
			end time.Time
		)
		if err := rows.Scan(&r.Survey, &r.Window, &r.Dimension, &r.Key, &end, &r.Responses, &r.Mean,
			&r.PctPositive, &r.PctNegative, &r.PctEasy, &r.PctDifficult, &r.PctSatisfied, &r.NPS); err != nil {
			t.Fatal(err)
		}
		if end.Before(now) || end.After(now.Add(5*time.Minute)) || end.Unix()%60 != 0 {
			t.Errorf("window_end %v is not the current minute (%v)", end, now)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	pct := func(part, n uint64) *float64 { return ptr(float64(100*part) / float64(n)) }
	want := []row{
		// ces: partition 0's latest (3, 12, 1, 2) + partition 1's (4, 22.5, 3, 0); the 2h
		// window adds the older bucket (5, 5, 0, 5).
		{"ces", "1h", "overall", "", 7, ptr(34.5 / 7), pct(4, 7), pct(2, 7), pct(4, 7), pct(2, 7), nil, nil},
		{"ces", "2h", "overall", "", 12, ptr(39.5 / 12), pct(4, 12), pct(7, 12), pct(4, 12), pct(7, 12), nil, nil},
		{"csat", "1h", "team", "blue", 3, ptr(8.0 / 3), pct(1, 3), pct(2, 3), nil, nil, pct(1, 3), nil},
		{"csat", "2h", "team", "blue", 3, ptr(8.0 / 3), pct(1, 3), pct(2, 3), nil, nil, pct(1, 3), nil},
		// nps: 1 promoter, 3 detractors of 6: (1-3)/6 = -33.3.
		{"nps", "1h", "category", "refund", 6, ptr(26.0 / 6), pct(1, 6), pct(3, 6), nil, nil, nil, ptr(-200.0 / 6)},
		{"nps", "2h", "category", "refund", 6, ptr(26.0 / 6), pct(1, 6), pct(3, 6), nil, nil, nil, ptr(-200.0 / 6)},
	}
	if len(got) != len(want) {
		t.Fatalf("rollups has %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if g, w := fmt.Sprint(deref(got[i])), fmt.Sprint(deref(want[i])); g != w {
			t.Errorf("rollups row %d:\n got %s\nwant %s", i, g, w)
		}
	}

	// A window no longer configured leaves the view.
	if err := c.WriteWindows(ctx, time.Minute, []effort.Window{{Name: "1h", Length: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	var windows []string
	deadline := time.Now().Add(10 * time.Second) // ALTER … DELETE is a mutation: applied in the background
	for {
		windows = windows[:0]
		rows, err := c.Conn().Query(ctx, "SELECT DISTINCT `window` FROM "+c.Database()+".rollups")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var w string
			if err := rows.Scan(&w); err != nil {
				t.Fatal(err)
			}
			windows = append(windows, w)
		}
		rows.Close()
		if len(windows) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reflect.DeepEqual(windows, []string{"1h"}) {
		t.Errorf("windows in the view after 2h was removed: %v", windows)
	}
}

// deref prints a struct's pointer fields as their values, to compare and show them.
func deref(v any) []string {
	rv := reflect.ValueOf(v)
	var out []string
	for i := range rv.NumField() {
		f := rv.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				out = append(out, "NULL")
				continue
			}
			f = f.Elem()
		}
		if f.Kind() == reflect.Float64 {
			out = append(out, fmt.Sprintf("%v (%x)", f.Float(), math.Float64bits(f.Float())))
			continue
		}
		out = append(out, fmt.Sprint(f.Interface()))
	}
	return out
}

func TestWriteBatchRowError(t *testing.T) {
	srv := chtest.Start(t)
	c, reg := open(t, srv)
	b := sampleBatch()
	b.Tickets[0].Contacts = ptr(int64(-1))
	err := c.WriteBatch(context.Background(), b)
	var rowErr *clickhouse.RowError
	if !errors.As(err, &rowErr) || rowErr.Table != "tickets" || rowErr.Row != 0 {
		t.Fatalf("err = %v, want a RowError for tickets row 0", err)
	}
	if ref := rowErr.RejectedRow(); ref != (records.RowRef{Kind: records.KindTicket, Index: 0}) {
		t.Errorf("RejectedRow() = %+v, want the batch's ticket 0", ref)
	}
	if got := counter(t, reg, "cxlink_clickhouse_insert_errors_total", "tickets"); got != 1 {
		t.Errorf("insert errors = %v, want 1", got)
	}
	// The connection is still usable.
	b.Tickets[0].Contacts = nil
	if err := c.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// While ClickHouse is down WriteBatch fails; once it is back the same client writes.
func TestWriteBatchAcrossOutage(t *testing.T) {
	srv := chtest.StartPrivate(t)
	c, reg := open(t, srv)
	ctx := context.Background()
	if err := c.WriteBatch(ctx, sampleBatch()); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	if err := c.WriteBatch(ctx, sampleBatch()); err == nil {
		t.Fatal("write while ClickHouse is down succeeded")
	} else {
		t.Logf("write while down: %v (after %v)", err, time.Since(start))
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("ping while ClickHouse is down succeeded")
	}
	if got := counter(t, reg, "cxlink_clickhouse_insert_errors_total", "survey_responses"); got != 1 {
		t.Errorf("insert errors = %v, want 1", got)
	}

	srv.Start()
	b := sampleBatch()
	b.Surveys = append(b.Surveys, records.Survey{ID: "s-3", Survey: "csat", OccurredAt: at("2024-03-12T00:00:00Z"),
		Origin: records.Origin{ReceivedAt: at("2024-03-12T00:00:01Z"), Seq: 50, Version: records.Version(50, 0)}})
	if err := c.WriteBatch(ctx, b); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	got := readSurveys(t, c)
	if len(got) != 3 || got[2].ID != "s-3" {
		t.Errorf("after restart FINAL shows %+v, want s-1, s-2, s-3", got)
	}
}

func TestMetricsLint(t *testing.T) {
	srv := chtest.Start(t)
	_, reg := open(t, srv)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(reg, "cxlink_clickhouse_insert_duration_seconds",
		"cxlink_clickhouse_rows_written_total", "cxlink_clickhouse_insert_errors_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != 12 {
		t.Errorf("%d series, want 3 metrics × 4 tables", n)
	}
}

func TestOpenUnreachable(t *testing.T) {
	cfg := chtest.Start(t).Config("cxlink")
	cfg.Addr = "127.0.0.1:1"
	cfg.DialTimeout = time.Second
	if _, err := clickhouse.Open(context.Background(), cfg, nil, nil); err == nil {
		t.Fatal("open of an address nobody listens on succeeded")
	}
}

// A role that starts while ClickHouse is down opens it again and again with the same
// registry; once it answers, the client works and counts on the metrics registered first.
func TestOpenAgainWithTheSameRegistry(t *testing.T) {
	srv := chtest.Start(t)
	cfg := srv.Config(srv.NewDatabase(t))
	reg := prometheus.NewRegistry()
	down := cfg
	down.Addr, down.DialTimeout = "127.0.0.1:1", 200*time.Millisecond
	for range 2 {
		if _, err := clickhouse.Open(context.Background(), down, nil, reg); err == nil {
			t.Fatal("open of an address nobody listens on succeeded")
		}
	}
	c, err := clickhouse.Open(context.Background(), cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteBatch(context.Background(), sampleBatch()); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, "cxlink_clickhouse_rows_written_total", "survey_responses"); got != float64(len(sampleBatch().Surveys)) {
		t.Errorf("rows written = %v, want %d", got, len(sampleBatch().Surveys))
	}
}

func BenchmarkWriteBatch(b *testing.B) {
	srv := chtest.Start(b)
	c, _ := open(b, srv)
	ctx := context.Background()
	const rows = 10_000
	batch := &records.Batch{Surveys: make([]records.Survey, rows)}
	base := at("2024-06-01T00:00:00Z")
	for i := range batch.Surveys {
		batch.Surveys[i] = records.Survey{
			Origin: records.Origin{ReceivedAt: base.Add(time.Duration(i) * time.Second), Partition: uint16(i % 16),
				Seq: uint64(i), Version: records.Version(uint64(i), 0)},
			ID: fmt.Sprintf("survey-%08d", i), Survey: "ces", OccurredAt: base.Add(time.Duration(i) * time.Second),
			Source: "zendesk", Score: float64(1 + i%7), ScaleMin: 1, ScaleMax: 7, StandardScore: float64(1 + i%7),
			TicketID: fmt.Sprintf("T-%06d", i/2), CustomerID: fmt.Sprintf("C-%05d", i%5000), Channel: "chat",
			Category: "refund request", Team: "blue", AgentID: fmt.Sprintf("agent-%03d", i%300),
			Comment: "the agent sorted it out quickly",
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := c.WriteBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// dbOf is the database of table: employee pulses are in the private one.
func dbOf(c *clickhouse.Client, table string) string {
	if table == clickhouse.TablePulses {
		return c.PrivateDatabase()
	}
	return c.Database()
}

// Migration 0008 moves the pulse rows of a database migrated before it into the private
// database and drops the old table; run again (as after an interruption, the old table
// gone and the version not recorded) it changes nothing.
func TestMigrateMovesPulsesToThePrivateDatabase(t *testing.T) {
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
	// The state before 0008: pulses in the dashboards' database, 0008 not applied.
	exec("DROP TABLE " + priv + ".employee_pulses")
	exec("CREATE TABLE " + db + ".employee_pulses (id String, employee_id String, team String, question String, " +
		"occurred_at DateTime('UTC'), received_at DateTime('UTC'), source String, score Float64, scale_min Float64, " +
		"scale_max Float64, late UInt8, partition UInt16, seq UInt64, version UInt64) ENGINE = ReplacingMergeTree(version) " +
		"PARTITION BY toYYYYMM(occurred_at) ORDER BY (team, id)")
	exec("INSERT INTO " + db + ".employee_pulses SELECT concat('p', toString(number)), concat('emp-', toString(number)), 'red', " +
		"'engagement', toDateTime('2026-03-02 10:00:00', 'UTC'), toDateTime('2026-03-02 10:00:01', 'UTC'), 'hr', 4, 1, 5, 0, 0, " +
		"number, number FROM system.numbers LIMIT 7")
	exec("CREATE TABLE " + db + ".schema_keep ENGINE = MergeTree ORDER BY version AS SELECT * FROM " + db + ".schema_migrations WHERE version != 8")
	exec("DROP TABLE " + db + ".schema_migrations")
	exec("RENAME TABLE " + db + ".schema_keep TO " + db + ".schema_migrations")

	for run := 1; run <= 2; run++ {
		if err := c.Migrate(ctx); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if n := count("SELECT count() FROM system.tables WHERE database = '" + db + "' AND name = 'employee_pulses'"); n != 0 {
			t.Errorf("run %d: employee_pulses still in %s", run, db)
		}
		if n := count("SELECT count() FROM " + priv + ".employee_pulses FINAL"); n != 7 {
			t.Errorf("run %d: %d pulses in %s, want the 7 moved", run, n, priv)
		}
		if n := count("SELECT uniqExact(employee_id) FROM " + priv + ".employee_pulses WHERE stored_at > toDateTime(0)"); n != 7 {
			t.Errorf("run %d: stored_at not set on the moved rows", run)
		}
		// An interrupted run: the version not recorded, the old table already gone.
		exec("CREATE TABLE " + db + ".schema_keep ENGINE = MergeTree ORDER BY version AS SELECT * FROM " + db + ".schema_migrations WHERE version != 8")
		exec("DROP TABLE " + db + ".schema_migrations")
		exec("RENAME TABLE " + db + ".schema_keep TO " + db + ".schema_migrations")
	}
}
