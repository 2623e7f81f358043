package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/event"
	"github.com/cxlink/cxlink/ingest/simulator"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/analytics"
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/compact"
	"github.com/cxlink/cxlink/processors/drift"
	"github.com/cxlink/cxlink/processors/partition"
	"github.com/cxlink/cxlink/processors/pipeline"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/processors/retention"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The soak's contact centre: 50 teams of 20 agents (1,000), 30 issue categories (the
// simulator's 6, each split five ways by ticket), 4 channels, weekly pulses, and a rate
// of about 60,000 customer events a day (the simulator's mix: ~17,000 survey responses
// and ~43,000 ticket events).
const (
	soakTeams         = 50
	soakAgentsPerTeam = 20
	soakCategorySplit = 5
	soakEventsPerDay  = 60000
	soakPartitions    = stream.DefaultPartitions
	soakSeed          = 11
	// soakStep is how far simulated time moves between two reads of the simulator: an
	// event is received (stamped) at most this long after it was due.
	soakStep = 10 * time.Second
)

// soakSettings are the knobs of a soak run, from the environment.
type soakSettings struct {
	Days      int           `env:"CXLINK_SOAK_DAYS" envDefault:"30"`
	PanelRuns int           `env:"CXLINK_SOAK_PANEL_RUNS" envDefault:"50"`
	PanelTime time.Duration `env:"CXLINK_SOAK_PANEL_TIME" envDefault:"10s"`
	Idle      time.Duration `env:"CXLINK_SOAK_IDLE" envDefault:"4m"`
}

// BenchmarkSoak runs a contact centre for 30 simulated days with event time running fast
// and prints what the issue-11 checks ask for (docs/storage.md, "Measured"): rows and
// bytes per table; rows written per simulated day, days 1–7 against the last 7; the
// processors' start-up after 1 and 5 days of history, from snapshots and without; rows
// written while idle; analytics and drift run times over 1 and 30 days; and p50/p99 of
// every ClickHouse panel query of deploy/grafana/dashboards over 1 and 30 days.
//
// How time runs fast. JetStream stamps every message with the time it stores it, and
// that stamp is the processors' received_at, so history published at once would all be
// received now. The soak therefore drives the processors' own state machines
// (processors/partition, one per partition, partitioned as ingest partitions) with a
// simulated clock, and writes their rows with the real sink into a real ClickHouse (the
// local 18.16), exactly as a worker does while live: one chunk per message (a live
// partition is caught up after each one), so every changed bucket is written at once,
// the most rows per event a live deployment writes. Start-up and idle, which are about
// reading the stream, run the real pipeline on a real in-process JetStream instead,
// with the history published at once and an allowed lateness of 6 days so that it
// counts: with at most 5 days of history that is the state the default configuration
// would hold (every bucket and ticket of the last 7 days).
//
// Not part of deploy/local/test.sh. Run (about 15 minutes on 2 cores):
//
//	go test -run '^$' -bench Soak -benchtime 1x -timeout 60m ./cmd/cxlink/
//
// or deploy/local/soak.sh. CXLINK_SOAK_DAYS shortens it, CXLINK_SOAK_PANEL_RUNS and
// CXLINK_SOAK_PANEL_TIME bound the runs of each panel query, CXLINK_SOAK_IDLE the idle
// stretch.
func BenchmarkSoak(b *testing.B) {
	var set soakSettings
	if err := env.Parse(&set); err != nil {
		b.Fatal(err)
	}
	if set.Days < 5 {
		b.Fatalf("CXLINK_SOAK_DAYS=%d: at least 5", set.Days)
	}
	out := os.Stdout
	srv := chtest.Start(b)
	end := time.Now().UTC().Truncate(time.Minute)
	fmt.Fprintf(out, "\nSoak: %d simulated days ending %s; %d teams, %d agents, %d categories, ~%d customer events a day, %d partitions; ClickHouse at %s\n",
		set.Days, end.Format(time.RFC3339), soakTeams, soakTeams*soakAgentsPerTeam, soakCategories(), soakEventsPerDay, soakPartitions, srv.Addr())

	long := openSoakDB(b, srv, nil)
	fed := soakFeed(b, long, end, set.Days, []int{1, 5, 7, set.Days})
	short := openSoakDB(b, srv, nil)
	soakFeed(b, short, end, 1, nil)
	fed.print(out)
	soakCompact(b, out, long, end, fmt.Sprintf("%d days", set.Days))
	soakCompact(b, out, short, end, "1 day")
	printTables(b, out, long, set.Days)

	fmt.Fprintf(out, "\nReads (history ending %s)\n", end.Format(time.RFC3339))
	shortConn, longConn := srv.Conn(b, short.Database()), srv.Conn(b, long.Database())
	reads := []readScenario{
		{name: "1 day of history, last 24 h", db: short, conn: shortConn, from: end.Add(-24 * time.Hour), interval: time.Minute},
		{name: fmt.Sprintf("%d days of history, last 24 h", set.Days), db: long, conn: longConn, from: end.Add(-24 * time.Hour), interval: time.Minute},
		{name: fmt.Sprintf("%d days of history, last %d days", set.Days, set.Days), db: long, conn: longConn, from: end.Add(-time.Duration(set.Days) * 24 * time.Hour), interval: time.Hour},
	}
	timeReads(b, out, reads, end, set)
	timeStages(b, out, map[string]*clickhouse.Client{"1 day": short, fmt.Sprintf("%d days", set.Days): long}, end)

	fmt.Fprintf(out, "\nStart-up of the processors (real in-process JetStream, %d partitions in parallel, no leases) %s\n", soakPartitions, loadAverage())
	fmt.Fprintf(out, "| history | events | snapshots (s2) | first start, nothing stored | from snapshots (median of 3) | without snapshots (median of 3) |\n|---|---|---|---|---|---|\n")
	var withSnap, without []time.Duration
	for _, days := range []int{1, 5} {
		st := soakStartup(b, srv, end, days)
		fmt.Fprintf(out, "| %d day(s) | %d | %s | %s | %s | %s |\n", days, st.events, mib(st.snapshotBytes), ms(st.first), ms(median(st.withSnapshots)), ms(median(st.withoutSnapshots)))
		withSnap, without = append(withSnap, median(st.withSnapshots)), append(without, median(st.withoutSnapshots))
		if days == 5 {
			st.idle(b, out, set.Idle)
		}
		st.close()
	}
	fmt.Fprintf(out, "5 days / 1 day: from snapshots %.2f×, without snapshots %.2f× (the issue asks ≤ 1.5× for 5× the history)\n",
		ratio(withSnap[1], withSnap[0]), ratio(without[1], without[0]))

	fmt.Fprintf(out, "\nStart-up from the soak's own snapshots (default configuration, stored in JetStream's object store; empty tail)\n| history | snapshots (s2) | pipeline to ready (median of 3) | cxlink process to every partition started (median of 3) |\n|---|---|---|---|\n")
	var fromFeed, process []time.Duration
	for _, f := range fed.snapshots {
		d := soakStartFromSnapshots(b, f.snaps)
		p := soakProcessStart(b, srv, f.snaps)
		fromFeed, process = append(fromFeed, d), append(process, p)
		fmt.Fprintf(out, "| %d day(s) | %s | %s | %s |\n", f.day, mib(f.bytes), ms(d), ms(p))
	}
	fmt.Fprintf(out, "| none (empty stream, no snapshot) | | %s | %s |\n", ms(soakStartFromSnapshots(b, nil)), ms(soakProcessStart(b, srv, nil)))
	if len(fromFeed) == 4 {
		fmt.Fprintf(out, "%d days / 7 days: pipeline %.2f×, process %.2f×; 5 days / 1 day: pipeline %.2f×, process %.2f×\n", set.Days,
			ratio(fromFeed[3], fromFeed[2]), ratio(process[3], process[2]), ratio(fromFeed[1], fromFeed[0]), ratio(process[1], process[0]))
	}
}

// BenchmarkStartFromSnapshots is the start-up part of BenchmarkSoak alone: the partitions'
// state machines are fed 1 and 5 simulated days of the soak's contact centre (rows
// discarded), and the real pipeline, and a whole `cxlink process` (which needs a
// ClickHouse to start), are started from their snapshots with an empty tail, as in
// BenchmarkSoak's "Start-up from the soak's own snapshots".
// CXLINK_SOAK_DAYS (default 5, at least 5) adds marks at 7 days and at the end.
//
//	go test -run '^$' -bench StartFromSnapshots -benchtime 1x ./cmd/cxlink/
func BenchmarkStartFromSnapshots(b *testing.B) {
	days := 5
	if v := os.Getenv("CXLINK_SOAK_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 {
			b.Fatalf("CXLINK_SOAK_DAYS=%q: want a whole number of days, at least 5", v)
		}
		days = n
	}
	marks := []int{1, 5}
	if days >= 7 {
		marks = append(marks, 7)
	}
	if days > 7 {
		marks = append(marks, days)
	}
	out := os.Stdout
	end := time.Now().UTC().Truncate(time.Minute)
	fed := soakFeed(b, nil, end, days, marks)
	srv := chtest.Start(b) // for the whole process's start
	fmt.Fprintf(out, "\nStart-up from the soak's own snapshots (%d days fed in %s; empty tail) %s\n| history | snapshots | series | tickets | decode, all partitions (one core) | pipeline to ready (median of 3) | cxlink process to every partition started (median of 3) |\n|---|---|---|---|---|---|---|\n",
		days, fed.took.Round(time.Second), loadAverage())
	fmt.Fprintf(out, "| none (empty stream, no snapshot) | | | | | %s | %s |\n", ms(soakStartFromSnapshots(b, nil)), ms(soakProcessStart(b, srv, nil)))
	var took, process []time.Duration
	for _, f := range fed.snapshots {
		d, p := soakStartFromSnapshots(b, f.snaps), soakProcessStart(b, srv, f.snaps)
		took, process = append(took, d), append(process, p)
		fmt.Fprintf(out, "| %d day(s) | %s | %d | %d | %s | %s | %s |\n", f.day, mib(f.bytes), f.series, f.tickets, ms(f.decode), ms(d), ms(p))
	}
	fmt.Fprintf(out, "5 days / 1 day: pipeline %.2f×, process %.2f× (the issue asks ≤ 1.5× for 5× the history) %s\n",
		ratio(took[1], took[0]), ratio(process[1], process[0]), loadAverage())
}

// soakStartFromSnapshots stores snaps, one per partition, and the progress they need in a
// new JetStream with an empty stream, and times the start of the pipeline (the default
// configuration) from them: reading and decoding every partition's snapshot.
func soakStartFromSnapshots(b *testing.B, snaps []checkpoint.Snapshot) time.Duration {
	st := soakJetStream(b, soakPipelineConfig(b, time.Hour))
	defer st.close()
	st.advanceTo(snaps)
	var took []time.Duration
	for range 3 {
		// A clean stop saves a snapshot of its own: put the measured ones back first.
		st.putSnapshots(snaps)
		d, stop := st.run(discardSink{}, nil)
		stop()
		took = append(took, d)
	}
	return median(took)
}

// soakProcessStart times a whole `cxlink process` (default configuration) from its start
// until every partition has started (cxlink_snapshot_loads_total counts one per
// partition), with snaps, one per partition, and the progress they need in a JetStream
// with an empty stream: what an operator waits for after a restart, the process's fixed
// costs (NATS, ClickHouse, leases, the listener) included. /readyz answers earlier: a
// replica holding no partition yet is ready. It fails unless every partition started from
// its snapshot (or, without snapshots, from nothing).
func soakProcessStart(b *testing.B, srv *chtest.Server, snaps []checkpoint.Snapshot) time.Duration {
	st := soakJetStream(b, soakPipelineConfig(b, time.Hour))
	defer st.close()
	st.advanceTo(snaps)
	env := map[string]string{"NATS_URL": st.ns.ClientURL(), "CXLINK_HTTP_ADDR": "127.0.0.1:0", "CXLINK_DATA_DIR": b.TempDir(),
		"CXLINK_STREAM_PARTITIONS": strconv.Itoa(soakPartitions)}
	maps.Copy(env, srv.Env(srv.NewDatabase(b)))
	loads := regexp.MustCompile(`(?m)^cxlink_snapshot_loads_total\{result="(\w+)"\} (\d+)$`)
	want := "none"
	if len(snaps) > 0 {
		want = "ok"
	}
	var took []time.Duration
	for range 3 {
		st.putSnapshots(snaps)
		t0 := time.Now()
		r := apptest.StartRole(b, env, io.Discard, "process")
		for {
			started := map[string]int{}
			total := 0
			if resp, err := http.Get(r.URL + "/metrics"); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, m := range loads.FindAllSubmatch(body, -1) {
					n, _ := strconv.Atoi(string(m[2]))
					started[string(m[1])] = n
					total += n
				}
			}
			if total >= soakPartitions {
				if started[want] != soakPartitions {
					b.Fatalf("cxlink process started its partitions %v, want %d %s", started, soakPartitions, want)
				}
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("cxlink process started %v of %d partitions within a minute", started, soakPartitions)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took = append(took, time.Since(t0))
		if err := r.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	return median(took)
}

// discardSink stores nothing: a start from snapshots with an empty tail writes no row.
type discardSink struct{}

func (discardSink) WriteBatch(context.Context, *records.Batch) error { return nil }

func soakCategories() int { return len(simulator.Categories()) * soakCategorySplit }

// spreadCategory gives the simulator's categories five variants each, chosen by ticket
// so that a ticket's events and its surveys agree: 30 categories.
func spreadCategory(e *event.Event) {
	if e.Category == "" {
		return
	}
	h := fnv.New32a()
	h.Write([]byte(e.TicketID))
	e.Category += "_" + strconv.Itoa(int(h.Sum32()%soakCategorySplit))
}

// soakGenerator is the contact centre of the soak, simulated from end − days to end.
func soakGenerator(b *testing.B, end time.Time, days int) *simulator.Generator {
	g, err := simulator.NewGenerator(simulator.Config{
		Rate: soakEventsPerDay / 86400.0, Teams: soakTeams, AgentsPerTeam: soakAgentsPerTeam, Seed: soakSeed,
		PulseEvery: 7 * 24 * time.Hour, History: time.Duration(days) * 24 * time.Hour,
	}, end)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func openSoakDB(b *testing.B, srv *chtest.Server, reg prometheus.Registerer) *clickhouse.Client {
	db, err := clickhouse.Open(b.Context(), srv.Config(srv.NewDatabase(b)), nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	return db
}

// soakPipelineConfig is the processors' default configuration, with an allowed lateness.
func soakPipelineConfig(b *testing.B, lateness time.Duration) pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.AllowedLateness = lateness
	return cfg
}

// soakPartitionConfig is the state machines' default configuration.
func soakPartitionConfig(b *testing.B) partition.Config {
	cfg := soakPipelineConfig(b, time.Hour)
	ws := cfg.Windows
	return partition.Config{Step: cfg.Step, Windows: ws, AllowedLateness: cfg.AllowedLateness,
		AttributionWait: cfg.AttributionWait}
}

// fedFigures is what feeding the history wrote.
type fedFigures struct {
	days      int
	rows      []map[string]int // per simulated day, rows written per table
	events    []int            // per simulated day
	snapshots []snapshotFigure
	took      time.Duration
	inserts   time.Duration // of took
}

type snapshotFigure struct {
	day              int
	bytes            int
	encode, decode   time.Duration
	series           int
	tickets, waiting int
	// The snapshots themselves, for a start of the real pipeline from them.
	snaps []checkpoint.Snapshot
}

// soakFeed runs the processors' state machines over days of simulated events ending at
// end, with the default configuration, and writes their rows into db as live workers
// would (a nil db stores nothing). At the ends of the days in marks it measures the
// partitions' snapshots.
func soakFeed(b *testing.B, db *clickhouse.Client, end time.Time, days int, marks []int) fedFigures {
	ctx := b.Context()
	cfg := soakPartitionConfig(b)
	// What the processors record at start, and the view rollups reads.
	if db != nil {
		if err := db.WriteWindows(ctx, cfg.Step, cfg.Windows); err != nil {
			b.Fatal(err)
		}
	}
	states := make([]*partition.State, soakPartitions)
	lastSeq := make([]uint64, soakPartitions)
	for p := range states {
		states[p] = partition.New(uint16(p), cfg)
	}
	gen := soakGenerator(b, end, days)
	fig := fedFigures{days: days, rows: make([]map[string]int, days), events: make([]int, days)}
	for d := range fig.rows {
		fig.rows[d] = map[string]int{}
	}
	var (
		seq   uint64
		batch records.Batch
	)
	flush := func() {
		if batch.Len() == 0 || db == nil {
			batch.Reset()
			return
		}
		t0 := time.Now()
		if err := db.WriteBatch(ctx, &batch); err != nil {
			b.Fatal(err)
		}
		fig.inserts += time.Since(t0)
		batch.Reset()
	}
	started := time.Now()
	start := gen.Start()
	nextMark := 0
	for t := start.Add(soakStep); !t.After(end); t = t.Add(soakStep) {
		day := min(int(t.Sub(start)/(24*time.Hour)), days-1)
		received := t
		v := event.Validator{Now: func() time.Time { return received }, MaxFuture: 5 * time.Minute}
		for _, e := range gen.Next(t, 0) {
			spreadCategory(&e)
			if errs := v.Validate(&e); len(errs) > 0 {
				b.Fatalf("simulated event %s: %v", e.ID, errs)
			}
			p := stream.Partition(e.RoutingKey(), soakPartitions)
			seq++
			lastSeq[p] = seq
			rows, _ := states[p].Apply(partition.Message{Seq: seq, ReceivedAt: received, Event: e})
			rows.Buckets = states[p].TakeBuckets()
			r := fig.rows[day]
			r[clickhouse.TableSurveys] += len(rows.Surveys)
			r[clickhouse.TableTickets] += len(rows.Tickets)
			r[clickhouse.TablePulses] += len(rows.Pulses)
			r[clickhouse.TableBuckets] += len(rows.Buckets)
			fig.events[day]++
			batch.Surveys = append(batch.Surveys, rows.Surveys...)
			batch.Tickets = append(batch.Tickets, rows.Tickets...)
			batch.Pulses = append(batch.Pulses, rows.Pulses...)
			batch.Buckets = append(batch.Buckets, rows.Buckets...)
		}
		// Ticks write nothing; they let the states forget what no later message can
		// change. Every 10 simulated minutes is enough for that.
		if t.Unix()%600 == 0 {
			for _, s := range states {
				s.Tick(t)
			}
		}
		// Inserts of many rows, as the writer batches chunks: the rows are the same
		// whatever the batches.
		if batch.Len() >= 200000 {
			flush()
		}
		if nextMark < len(marks) && !t.Before(start.Add(time.Duration(marks[nextMark])*24*time.Hour)) {
			fig.snapshots = append(fig.snapshots, measureSnapshots(b, cfg, states, lastSeq, marks[nextMark]))
			nextMark++
		}
	}
	flush()
	fig.took = time.Since(started)
	return fig
}

// measureSnapshots encodes every partition's state and decodes it again.
func measureSnapshots(b *testing.B, cfg partition.Config, states []*partition.State, lastSeq []uint64, day int) snapshotFigure {
	f := snapshotFigure{day: day}
	for p, s := range states {
		t0 := time.Now()
		data, err := s.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		f.encode += time.Since(t0)
		t0 = time.Now()
		if _, err := partition.Restore(uint16(p), cfg, data); err != nil {
			b.Fatal(err)
		}
		f.decode += time.Since(t0)
		f.bytes += len(data)
		f.snaps = append(f.snaps, checkpoint.Snapshot{Seq: lastSeq[p], Format: partition.SnapshotFormat, Config: s.ConfigFingerprint(), Data: data})
		series, tickets, waiting := s.Size()
		f.series += series
		f.tickets += tickets
		f.waiting += waiting
	}
	return f
}

func (f fedFigures) print(out io.Writer) {
	total := 0
	for _, n := range f.events {
		total += n
	}
	fmt.Fprintf(out, "\nFed %d events over %d simulated days in %s, of which ClickHouse inserts %s %s\n", total, f.days, f.took.Round(time.Second), f.inserts.Round(time.Second), loadAverage())
	tables := []string{clickhouse.TableSurveys, clickhouse.TableTickets, clickhouse.TablePulses, clickhouse.TableBuckets}
	fmt.Fprintf(out, "\nRows written per simulated day\n| days | events | %s | rows per event |\n|---|---|%s---|\n",
		strings.Join(tables, " | "), strings.Repeat("---|", len(tables)))
	avg := func(lo, hi int) (float64, []float64) {
		var ev float64
		per := make([]float64, len(tables))
		for d := lo; d <= hi; d++ {
			ev += float64(f.events[d])
			for i, t := range tables {
				per[i] += float64(f.rows[d][t])
			}
		}
		n := float64(hi - lo + 1)
		for i := range per {
			per[i] /= n
		}
		return ev / n, per
	}
	row := func(label string, lo, hi int) float64 {
		ev, per := avg(lo, hi)
		sum := 0.0
		cells := make([]string, len(per))
		for i, v := range per {
			cells[i] = fmt.Sprintf("%.0f", v)
			sum += v
		}
		fmt.Fprintf(out, "| %s | %.0f | %s | %.2f |\n", label, ev, strings.Join(cells, " | "), sum/ev)
		return sum
	}
	if f.days < 14 {
		for d := range f.days {
			row(strconv.Itoa(d+1), d, d)
		}
	} else {
		first := row("1–7 (mean)", 0, 6)
		last := row(fmt.Sprintf("%d–%d (mean)", f.days-6, f.days), f.days-7, f.days-1)
		fmt.Fprintf(out, "rows a day, last 7 days / first 7: %.3f\n", last/first)
	}
	fmt.Fprintf(out, "\nPartition state (all %d partitions)\n| after | series | tickets indexed | surveys waiting | snapshot bytes (s2) | encode | decode |\n|---|---|---|---|---|---|---|\n", soakPartitions)
	for _, s := range f.snapshots {
		fmt.Fprintf(out, "| day %d | %d | %d | %d | %s | %s | %s |\n", s.day, s.series, s.tickets, s.waiting, mib(s.bytes), ms(s.encode), ms(s.decode))
	}
}

// printTables prints rows and bytes per table from system.parts, and the bytes of the
// daily rollup-bucket partitions, first week against last.
func printTables(b *testing.B, out io.Writer, db *clickhouse.Client, days int) {
	ctx := b.Context()
	rows, err := db.Conn().Query(ctx, "SELECT table, sum(rows), sum(bytes_on_disk), count() FROM system.parts "+
		"WHERE database = ? AND active GROUP BY table ORDER BY table", db.Database())
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(out, "\nTables after %d days (system.parts, active parts; rows before merges collapse rewritten versions)\n| table | rows | bytes on disk | parts |\n|---|---|---|---|\n", days)
	for rows.Next() {
		var (
			table        string
			n, by, parts uint64
		)
		if err := rows.Scan(&table, &n, &by, &parts); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(out, "| %s | %d | %s | %d |\n", table, n, mib(int(by)), parts)
	}
	rows.Close()
	var final uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count() FROM "+db.Database()+".rollup_buckets FINAL").Scan(&final); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(out, "rollup_buckets FINAL (one row per bucket): %d rows\n", final)
	// Bytes of the daily bucket partitions, the first and last (partial) days left out.
	parts, err := db.Conn().Query(ctx, "SELECT partition_id, sum(bytes_on_disk) FROM system.parts "+
		"WHERE database = ? AND table = 'rollup_buckets' AND active GROUP BY partition_id ORDER BY partition_id", db.Database())
	if err != nil {
		b.Fatal(err)
	}
	var daily []float64
	for parts.Next() {
		var (
			id string
			by uint64
		)
		if err := parts.Scan(&id, &by); err != nil {
			b.Fatal(err)
		}
		daily = append(daily, float64(by))
	}
	parts.Close()
	if len(daily) >= 16 {
		daily = daily[1 : len(daily)-1]
		mean := func(v []float64) int {
			s := 0.0
			for _, x := range v {
				s += x
			}
			return int(s / float64(len(v)))
		}
		fmt.Fprintf(out, "rollup_buckets bytes per daily partition (whole days): first 7 %s, last 7 %s\n",
			mib(mean(daily[:7])), mib(mean(daily[len(daily)-7:])))
	}
}

// timeStages times the analytics stage and the drift detector on each database.
func timeStages(b *testing.B, out io.Writer, dbs map[string]*clickhouse.Client, end time.Time) {
	ctx := b.Context()
	acfg, dcfg, pcfg := analytics.DefaultConfig(), drift.DefaultConfig(), pulses.DefaultConfig()
	proc := soakPipelineConfig(b, time.Hour)
	fmt.Fprintf(out, "\nStages (default configuration; analytics reads up to %d days back) %s\n| history | analytics run (median of 3) | drift: first evaluation, folding a baseline of blocks | drift: one tick (median of 5) |\n|---|---|---|---|\n",
		acfg.Lookback(pcfg.PeriodLength())/(24*time.Hour), loadAverage())
	for _, name := range slices.Sorted(maps.Keys(dbs)) {
		db := dbs[name]
		st, err := analytics.New(acfg, analytics.Options{Store: db, Pulses: pcfg, Registerer: prometheus.NewRegistry(),
			Now: func() time.Time { return end }})
		if err != nil {
			b.Fatal(err)
		}
		var runs []time.Duration
		cpu0 := serverCPU()
		for range 3 {
			t0 := time.Now()
			if err := st.RunOnce(ctx); err != nil {
				b.Fatal(err)
			}
			runs = append(runs, time.Since(t0))
		}
		runCPU := (serverCPU() - cpu0) / 3
		d, err := drift.New(dcfg, drift.Options{Source: db, Sink: db, Windows: proc.Windows, Step: proc.Step, MaxKeys: proc.MetricsMaxKeys, Pulses: pcfg,
			Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		t0, cpu0 := time.Now(), serverCPU()
		if err := d.Evaluate(ctx, end.Add(-proc.Step)); err != nil {
			b.Fatal(err)
		}
		first, firstCPU := time.Since(t0), serverCPU()-cpu0
		var ticks []time.Duration
		cpu0 = serverCPU()
		for i := range 5 {
			t0 := time.Now()
			if err := d.Evaluate(ctx, end.Add(time.Duration(i)*proc.Step)); err != nil {
				b.Fatal(err)
			}
			ticks = append(ticks, time.Since(t0))
		}
		tickCPU := (serverCPU() - cpu0) / 5
		fmt.Fprintf(out, "| %s | %s (ClickHouse CPU %s) | %s (CPU %s) | %s (CPU %s) |\n", name, ms(median(runs)), ms(runCPU),
			ms(first), ms(firstCPU), ms(median(ticks)), ms(tickCPU))
	}
}

// soakStart is a real JetStream holding days of history, with the processors' progress
// and snapshots, and the ClickHouse database they write.
type soakStart struct {
	events                          int
	first                           time.Duration
	withSnapshots, withoutSnapshots []time.Duration
	snapshotBytes                   int

	b     *testing.B
	ns    *broker.Server
	js    jetstream.JetStream
	s     jetstream.Stream
	cps   *checkpoint.Store
	srv   *chtest.Server
	db    string
	cfg   pipeline.Config
	close func()
}

// soakStartup publishes days of history ending at end into a new in-process JetStream,
// runs the pipeline over it once, and then times its start from snapshots and without.
func soakStartup(b *testing.B, srv *chtest.Server, end time.Time, days int) *soakStart {
	ctx := b.Context()
	// Everything is received now: a lateness of 6 days keeps 5 days of history on time.
	st := soakJetStream(b, soakPipelineConfig(b, 6*24*time.Hour))
	st.srv = srv
	js, cps := st.js, st.cps

	pub := stream.NewPublisher(js, soakPartitions, prometheus.NewRegistry())
	evs := soakGenerator(b, end, days).Next(end, 0)
	for i := range evs {
		spreadCategory(&evs[i])
	}
	for first := 0; first < len(evs); first += stream.MaxAtomicBatch {
		chunk := evs[first:min(first+stream.MaxAtomicBatch, len(evs))]
		for i, r := range pub.Publish(ctx, chunk) {
			if r.Err != nil || r.Duplicate {
				b.Fatalf("publish %s: %v (duplicate %v)", chunk[i].ID, r.Err, r.Duplicate)
			}
		}
	}
	st.events = len(evs)

	db := openSoakDB(b, srv, nil)
	st.db = db.Database()
	var stop func()
	st.first, stop = st.run(db, nil)
	stop()
	for range 3 {
		d, stop := st.run(db, nil)
		stop()
		st.withSnapshots = append(st.withSnapshots, d)
	}
	for p := range soakPartitions {
		snap, ok, err := cps.Snapshot(ctx, p)
		if err != nil || !ok {
			b.Fatalf("no snapshot of partition %d after a clean stop: %v", p, err)
		}
		st.snapshotBytes += len(snap.Data)
	}
	obj, err := js.ObjectStore(ctx, checkpoint.SnapshotStore)
	if err != nil {
		b.Fatal(err)
	}
	for range 3 {
		for p := range soakPartitions {
			if err := obj.Delete(ctx, "partition-"+strconv.Itoa(p)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				b.Fatal(err)
			}
		}
		d, stop := st.run(db, nil)
		stop()
		st.withoutSnapshots = append(st.withoutSnapshots, d)
	}
	return st
}

// soakJetStream starts an in-process JetStream with the stream, the progress bucket and
// the snapshot store the processors use with cfg.
func soakJetStream(b *testing.B, cfg pipeline.Config) *soakStart {
	ctx := b.Context()
	// Listening on a free loopback port too, for a whole cxlink process (soakProcessStart).
	ns, err := broker.Start(broker.Config{DataDir: b.TempDir(), Sync: broker.SyncAlways, Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	nc, err := ns.Connect()
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(stream.MaxAtomicBatch))
	if err != nil {
		b.Fatal(err)
	}
	const maxFuture = 5 * time.Minute
	s, _, err := stream.Define(ctx, js, stream.Config{Partitions: soakPartitions}, cfg.DuplicateWindow(maxFuture))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, checkpoint.ProgressBucketConfig(1)); err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, checkpoint.SnapshotStoreConfig(1)); err != nil {
		b.Fatal(err)
	}
	cps, err := checkpoint.Open(ctx, js)
	if err != nil {
		b.Fatal(err)
	}
	return &soakStart{b: b, ns: ns, js: js, s: s, cps: cps, cfg: cfg, close: func() { nc.Close(); ns.Shutdown() }}
}

// advanceTo stores the progress that snaps, one per partition, need: each is stored up
// to its sequence.
func (st *soakStart) advanceTo(snaps []checkpoint.Snapshot) {
	for p, snap := range snaps {
		if err := st.cps.Advance(st.b.Context(), p, checkpoint.Progress{Seq: snap.Seq}); err != nil {
			st.b.Fatal(err)
		}
	}
}

// putSnapshots stores snaps, one per partition, as the partitions' snapshots.
func (st *soakStart) putSnapshots(snaps []checkpoint.Snapshot) {
	for p, snap := range snaps {
		if err := st.cps.PutSnapshot(st.b.Context(), p, snap); err != nil {
			st.b.Fatal(err)
		}
	}
}

// run starts the pipeline over every partition and returns the time until it was
// ready, and a function that stops it cleanly (storing what it applied, and a snapshot).
func (st *soakStart) run(sink pipeline.Sink, reg prometheus.Registerer) (time.Duration, func()) {
	b := st.b
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p, err := pipeline.New(st.cfg, pipeline.Options{Stream: st.s, Partitions: soakPartitions, Sink: sink, Checkpoints: st.cps,
		MaxFuture: 5 * time.Minute, Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(b.Context()))
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	for p.Ready() != nil {
		select {
		case err := <-done:
			b.Fatalf("pipeline stopped before it was ready: %v", err)
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > 15*time.Minute {
			b.Fatal("pipeline not ready after 15 minutes")
		}
	}
	took := time.Since(start)
	return took, func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// idle runs the processors, the analytics stage, the drift detector and the retention
// job over the stored history with no new events, and prints the rows each table got.
func (st *soakStart) idle(b *testing.B, out io.Writer, d time.Duration) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	reg := prometheus.NewRegistry()
	db, err := clickhouse.Open(ctx, st.srv.Config(st.db), nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	acfg, dcfg, pcfg := analytics.DefaultConfig(), drift.DefaultConfig(), pulses.DefaultConfig()
	rcfg := retention.DefaultConfig()
	an, err := analytics.New(acfg, analytics.Options{Store: db, Pulses: pcfg, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	dr, err := drift.New(dcfg, drift.Options{Source: db, Sink: db, Windows: st.cfg.Windows, Step: st.cfg.Step, MaxKeys: st.cfg.MetricsMaxKeys, Pulses: pcfg,
		Registerer: reg, Watermarks: func(ctx context.Context) ([]time.Time, error) { return st.cps.Watermarks(ctx, soakPartitions) }})
	if err != nil {
		b.Fatal(err)
	}
	ret := retention.New(rcfg, retention.Options{Store: db, Registerer: reg})
	cp := compact.New(compact.Options{Store: db, Horizon: soakPartitionConfig(b).ChangeHorizon(), Registerer: reg,
		Watermarks: func(ctx context.Context) ([]time.Time, error) { return st.cps.Watermarks(ctx, soakPartitions) }})
	_, stop := st.run(db, reg)
	defer stop()
	done := make(chan struct{}, 4)
	for _, run := range []func(context.Context) error{
		func(ctx context.Context) error { return an.Run(ctx, 1) },
		func(ctx context.Context) error { return dr.Run(ctx, 1) },
		ret.Run,
		cp.Run,
	} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	defer func() {
		cancel()
		for range 4 {
			<-done
		}
	}()
	// The stages' first runs, then the idle stretch.
	for counterValue(b, reg, "cxlink_analytics_runs_total", "outcome", "ok") < 1 || counterValue(b, reg, "cxlink_retention_runs_total", "outcome", "ok") < 1 ||
		counterValue(b, reg, "cxlink_compact_runs_total", "outcome", "ok") < 1 {
		time.Sleep(100 * time.Millisecond)
	}
	analyticsRun := rowsWritten(b, reg)
	time.Sleep(2 * time.Second)
	before := rowsWritten(b, reg)
	// The compaction, per idle minute: the days stored just before are added up again
	// while their markers are within the marker slack, then nothing is.
	compacted := func() float64 {
		return counterTotal(b, reg, "cxlink_compact_writes_total") + counterTotal(b, reg, "cxlink_compact_day_writes_total")
	}
	var compactWrites []string
	for left := d; left > 0; left -= time.Minute {
		c0 := compacted()
		time.Sleep(min(left, time.Minute))
		compactWrites = append(compactWrites, fmt.Sprintf("%.0f", compacted()-c0))
	}
	after := rowsWritten(b, reg)
	fmt.Fprintf(out, "\nIdle for %s after 5 days of history (processors ticking every %s, drift detector, retention, compaction; no new events)\n| table | rows written while idle | rows of one analytics run (every %s) |\n|---|---|---|\n",
		d, st.cfg.Step, acfg.Every)
	total := 0.0
	for _, t := range slices.Sorted(maps.Keys(after)) {
		total += after[t] - before[t]
		if after[t]-before[t] > 0 || analyticsRun[t] > 0 {
			fmt.Fprintf(out, "| %s | %.0f | %.0f |\n", t, after[t]-before[t], analyticsRun[t])
		}
	}
	last := time.Unix(int64(gaugeValue(b, reg, "cxlink_drift_last_evaluated_tick_timestamp_seconds")), 0).UTC()
	fmt.Fprintf(out, "rows written while idle, all tables: %.0f; compaction inserts (hours and days) per idle minute: %s; the drift detector's last evaluated tick: %s\n",
		total, strings.Join(compactWrites, ", "), last.Format(time.RFC3339))
}

// rowsWritten reads cxlink_clickhouse_rows_written_total per table.
func rowsWritten(b *testing.B, reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cxlink_clickhouse_rows_written_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func counterValue(b *testing.B, reg *prometheus.Registry, name, label, value string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func gaugeValue(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// quantile is the nearest-rank quantile q of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(cmp.Or(b, 1)) }

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func mib(n int) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// soakCompact runs the compaction of the hours and of the raw tables' daily totals as
// the analytics stage's holder does, here at once over the whole history (as its first
// run after an upgrade), with every partition caught up at end, and prints its cost.
func soakCompact(b *testing.B, out io.Writer, db *clickhouse.Client, end time.Time, history string) {
	c := compact.New(compact.Options{Store: db, Horizon: soakPartitionConfig(b).ChangeHorizon(),
		Watermarks: func(context.Context) ([]time.Time, error) {
			return slices.Repeat([]time.Time{end}, soakPartitions), nil
		}})
	t0, cpu0 := time.Now(), serverCPU()
	if _, err := c.RunOnce(b.Context()); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(out, "compaction of %s of history at once (hours and daily totals): %s (ClickHouse CPU %s)\n", history, ms(time.Since(t0)), ms(serverCPU()-cpu0))
}

// counterTotal is the sum of a counter's series in reg.
func counterTotal(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
