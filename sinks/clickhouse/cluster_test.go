package clickhouse_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cxlink/cxlink/processors/effort"
	"github.com/cxlink/cxlink/processors/pulses"
	"github.com/cxlink/cxlink/processors/records"
	"github.com/cxlink/cxlink/processors/retention"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The cluster variant on ClickHouse 18.16 (or the local server): a ZooKeeper and three
// servers, two shards, the first with two replicas. Two processes migrate at once, the
// migrations are applied once more, the sink writes through one node, rewrites and
// retries through the others, and every read, through every node, returns what it
// returns from one server given the same writes.
func TestClusterMatchesOneNode(t *testing.T) {
	start := time.Now()
	cl := chtest.StartCluster(t, 2, 1)
	t.Logf("ZooKeeper and %d ClickHouse servers started in %s", cl.Nodes(), time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	db := cl.NewDatabase()
	nodes := make([]*clickhouse.Client, cl.Nodes())
	for i := range nodes {
		nodes[i] = openNode(t, cl, i, db)
	}
	single, _ := open(t, chtest.Start(t))

	// One process migrates a cluster (docs/storage.md: two adding a column at once can
	// stall 18.16's DDL queue); a second, through another shard, finds nothing to do.
	start = time.Now()
	for _, c := range []*clickhouse.Client{nodes[0], nodes[2]} {
		if err := c.Migrate(ctx); err != nil {
			t.Fatalf("migrate the cluster: %v", err)
		}
	}
	t.Logf("migrated the cluster in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := nodes[1].ReapplyMigrations(ctx); err != nil {
		t.Fatalf("migrations applied again: %v", err)
	}
	t.Logf("every migration applied again in %s", time.Since(start).Round(time.Millisecond))
	checkClusterTables(t, cl, single, db)

	// A cluster the servers do not know is named before any DDL waits on it.
	wrong := cl.Config(0, db)
	wrong.Cluster = "no_such_cluster"
	c, err := clickhouse.Open(ctx, wrong, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Migrate(ctx)
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "CLICKHOUSE_CLUSTER=no_such_cluster") {
		t.Errorf("migrate with an unknown cluster: %v", err)
	}
	// Neither layout's database is migrated as the other's.
	for _, m := range []struct {
		cluster, database, want string
	}{
		{"", db, "was created on a ClickHouse cluster: set CLICKHOUSE_CLUSTER"},
		{chtest.ClusterName, oneServerDatabase(t, cl), "was created for one server"},
	} {
		cfg := cl.Config(0, m.database)
		cfg.Cluster = m.cluster
		c, err := clickhouse.Open(ctx, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Migrate(ctx)
		c.Close()
		if err == nil || !strings.Contains(err.Error(), m.want) {
			t.Errorf("migrate %s with CLICKHOUSE_CLUSTER=%q: %v, want an error saying %q", m.database, m.cluster, err, m.want)
		}
	}

	// Writes: the batch through node 1; corrections and a redelivery through the
	// second shard's node; the same batch again, as a retry, through node 1's replica.
	now := time.Now().UTC().Truncate(time.Minute)
	first, second := clusterBatches(now)
	type step struct {
		node int
		do   func(*clickhouse.Client) error
	}
	steps := []step{
		{0, func(c *clickhouse.Client) error { return c.WriteBatch(ctx, first) }},
		{0, func(c *clickhouse.Client) error {
			return c.WriteWindows(ctx, time.Minute, []effort.Window{{Name: "1h", Length: time.Hour},
				{Name: "24h", Length: 24 * time.Hour}, {Name: "7d", Length: 7 * 24 * time.Hour}})
		}},
		{2, func(c *clickhouse.Client) error { return c.WriteBatch(ctx, second) }},
		{1, func(c *clickhouse.Client) error { return c.WriteBatch(ctx, first) }},
		// A window no longer configured is deleted (ALTER … DELETE on every shard).
		{2, func(c *clickhouse.Client) error {
			return c.WriteWindows(ctx, time.Minute, []effort.Window{{Name: "1h", Length: time.Hour}, {Name: "24h", Length: 24 * time.Hour}})
		}},
	}
	// The hourly compaction, and the same hours compacted again through another node.
	for _, node := range []int{1, 2} {
		steps = append(steps, step{node, func(c *clickhouse.Client) error {
			return c.CompactHours(ctx, now.Add(-30*time.Hour).Truncate(time.Hour), now.Add(-5*time.Hour).Truncate(time.Hour))
		}})
	}
	// The daily totals of the raw tables, and the same days again through another node.
	for node := 1; node <= 2; node++ {
		steps = append(steps, step{node, func(c *clickhouse.Client) error {
			return c.CompactDays(ctx, now.Add(-10*24*time.Hour).Truncate(24*time.Hour), now.Add(2*24*time.Hour).Truncate(24*time.Hour), uint64(node))
		}})
	}
	for v := uint64(1); v <= 2; v++ { // a rerun of the analytics stage rewrites its rows
		teams, links, impact := clusterAnalytics(now, v)
		steps = append(steps, step{int(v), func(c *clickhouse.Client) error { return c.WriteAnalytics(ctx, teams, links, impact, now, v) }})
	}
	for i, events := range clusterDriftEvents(now) {
		steps = append(steps, step{i % 3, func(c *clickhouse.Client) error { return c.WriteDriftEvents(ctx, events) }})
	}
	start = time.Now()
	for i, s := range steps {
		if err := s.do(nodes[s.node]); err != nil {
			t.Fatalf("write %d through node %d: %v", i, s.node, err)
		}
		if err := s.do(single); err != nil {
			t.Fatalf("write %d to one server: %v", i, err)
		}
		if i == 0 {
			// A batch is stored when every shard stored its rows, not when the node
			// queued them: with the second shard down, writing fails (and is retried
			// below, after the shard is back).
			cl.Stop(2)
			if err := nodes[0].WriteBatch(ctx, second); err == nil {
				t.Error("a batch was reported stored while a shard was down")
			}
			cl.Start(2)
			nodes[2] = openNode(t, cl, 2, db)
		}
	}
	t.Logf("%d writes through the nodes in %s", len(steps), time.Since(start).Round(time.Millisecond))
	cl.SyncReplicas(db)
	cl.SyncReplicas(nodes[0].PrivateDatabase())
	// ALTER … DELETE is a mutation, applied in the background on 18.16.
	waitMutations(t, cl, nodes, db)

	want := readEverything(ctx, t, single, now)
	// Reads go to each shard's first replica (the servers' profile, as docs/storage.md
	// advises), and also, as ClickHouse does by default, to the node's own replica of its
	// shard and over the network to the others.
	modes := map[string]context.Context{
		"profile":                    ctx,
		"prefer_localhost_replica=1": ch.Context(ctx, ch.WithSettings(ch.Settings{"prefer_localhost_replica": 1})),
	}
	for i, c := range nodes {
		for mode, ctx := range modes {
			got := readEverything(ctx, t, c, now)
			got["rollups"], want["rollups"] = readRollups(ctx, t, c, single)
			if len(want["rollups"]) == 0 {
				t.Error("the rollups view is empty: comparing it proves nothing")
			}
			for _, name := range slices.Sorted(maps.Keys(want)) {
				if !reflect.DeepEqual(got[name], want[name]) {
					_, shard, replica := cl.Node(i)
					t.Errorf("%s through shard %d replica %d (%s) differs from one server:\n got %d rows: %s\nwant %d rows: %s",
						name, shard, replica, mode, len(got[name]), head(got[name]), len(want[name]), head(want[name]))
				}
			}
		}
	}
	for _, name := range []string{"survey_days", "ticket_days"} {
		if len(want[name]) == 0 {
			t.Errorf("%s is empty: comparing it proves nothing", name)
		}
	}
	if n := len(want["survey_responses"]); n != len(first.Surveys)+20 {
		t.Errorf("survey_responses: %d rows under FINAL, want %d", n, len(first.Surveys)+20)
	}
	checkShardsShareTheRows(t, cl, nodes, db)
	checkRetentionDropsOnEveryNode(t, cl, nodes, single)
}

// checkRetentionDropsOnEveryNode: the retention job sees on a node of the cluster the
// partitions one server has, and a partition it drops leaves every node.
func checkRetentionDropsOnEveryNode(t *testing.T, cl *chtest.Cluster, nodes []*clickhouse.Client, single *clickhouse.Client) {
	t.Helper()
	ctx := context.Background()
	names := func(c *clickhouse.Client) []string {
		ps, err := c.Partitions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.Table+"/"+p.ID)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	want := names(single)
	if got := names(nodes[0]); !reflect.DeepEqual(got, want) {
		t.Fatalf("retention on the cluster sees partitions %v, one server %v", got, want)
	}
	ps, err := nodes[0].Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var drop retention.Partition
	for _, p := range ps {
		if p.Table == "survey_responses" {
			drop = p
		}
	}
	if drop.Table == "" {
		t.Fatal("no survey_responses partition to drop")
	}
	if err := nodes[0].DropPartition(ctx, drop); err != nil {
		t.Fatal(err)
	}
	for i := range cl.Nodes() {
		var n uint64
		if err := nodes[i].Conn().QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND partition_id = ? AND active",
			nodes[i].Database(), "survey_responses_local", drop.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			addr, _, _ := cl.Node(i)
			t.Errorf("partition %s of survey_responses still has %d parts on %s after the drop", drop.ID, n, addr)
		}
	}
}

// openNode opens a client of the cluster through node i.
func openNode(t *testing.T, cl *chtest.Cluster, i int, db string) *clickhouse.Client {
	t.Helper()
	c, err := clickhouse.Open(context.Background(), cl.Config(i, db), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// oneServerDatabase is a database migrated on the cluster's first node as if it were one
// server.
func oneServerDatabase(t *testing.T, cl *chtest.Cluster) string {
	t.Helper()
	cfg := cl.Config(0, cl.NewDatabase())
	cfg.Cluster = ""
	c, err := clickhouse.Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// checkClusterTables: every node has the tables one server has, each as a replicated
// local table and a Distributed table of the same name, and the view.
func checkClusterTables(t *testing.T, cl *chtest.Cluster, single *clickhouse.Client, db string) {
	t.Helper()
	ctx := context.Background()
	engines := func(c *clickhouse.Client, database string) map[string]string {
		rows, err := c.Conn().Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", database)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			out[name] = engine
		}
		return out
	}
	one := engines(single, single.Database())
	for i := range cl.Nodes() {
		c, err := clickhouse.Open(ctx, cl.Config(i, db), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := engines(c, db)
		c.Close()
		for name, engine := range one {
			switch {
			case engine == "View":
				if got[name] != "View" {
					t.Errorf("node %d: %s is %q, want a view", i, name, got[name])
				}
			case got[name] != "Distributed" || got[name+"_local"] != "Replicated"+engine:
				t.Errorf("node %d: %s is %q over %s_local %q, want Distributed over Replicated%s", i, name, got[name], name, got[name+"_local"], engine)
			}
		}
		if len(got) != 2*len(one)-countViews(one) {
			t.Errorf("node %d has tables %v; one server has %v", i, got, one)
		}
	}
}

func countViews(engines map[string]string) int {
	n := 0
	for _, e := range engines {
		if e == "View" {
			n++
		}
	}
	return n
}

// checkShardsShareTheRows: both shards hold rows of every table the sink writes, and
// the rows under FINAL of the shards add up to those of the Distributed table, so that no
// row has versions on two shards.
func checkShardsShareTheRows(t *testing.T, cl *chtest.Cluster, nodes []*clickhouse.Client, db string) {
	t.Helper()
	ctx := context.Background()
	shardNode := map[int]int{} // shard → a node of it
	for i := range cl.Nodes() {
		_, shard, _ := cl.Node(i)
		shardNode[shard] = i
	}
	for _, table := range []string{"survey_responses", "tickets", privateTable, "rollup_buckets", "linkage", "drift_events"} {
		db := db
		if table == privateTable {
			db, table = nodes[0].PrivateDatabase(), "employee_pulses"
		}
		var total uint64
		if err := nodes[0].Conn().QueryRow(ctx, "SELECT count() FROM "+db+"."+table+" FINAL").Scan(&total); err != nil {
			t.Fatal(err)
		}
		var sum uint64
		var counts []uint64
		for shard := 1; shard <= len(shardNode); shard++ {
			var n uint64
			if err := nodes[shardNode[shard]].Conn().QueryRow(ctx, "SELECT count() FROM "+db+"."+table+"_local FINAL").Scan(&n); err != nil {
				t.Fatal(err)
			}
			counts = append(counts, n)
			sum += n
			if n == 0 {
				t.Errorf("%s: shard %d holds no row", table, shard)
			}
		}
		if sum != total {
			t.Errorf("%s: the shards hold %v rows under FINAL, %d together; the Distributed table %d", table, counts, sum, total)
		}
	}
}

// waitMutations waits until no mutation of database is pending on any node.
func waitMutations(t *testing.T, cl *chtest.Cluster, nodes []*clickhouse.Client, db string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for i, c := range nodes {
		for {
			var pending uint64
			if err := c.Conn().QueryRow(context.Background(), "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db).Scan(&pending); err != nil {
				t.Fatal(err)
			}
			if pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				addr, _, _ := cl.Node(i)
				t.Fatalf("%d mutations of %s pending on %s after a minute", pending, db, addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// readEverything is every table under FINAL and what every reader of the sink returns,
// as text.
func readEverything(ctx context.Context, t *testing.T, c *clickhouse.Client, now time.Time) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range []string{"survey_responses", "tickets", privateTable, "rollup_buckets", "rollup_hours", "rollup_hours_done", "rollup_windows",
		"survey_days", "ticket_days", "team_periods", "linkage", "effort_impact", "drift_events"} {
		var leaveOut []string
		switch table {
		case "rollup_windows":
			leaveOut = []string{"version"} // the writer's clock
		case privateTable:
			leaveOut = []string{"stored_at"} // the server's clock
		}
		out[table] = dump(ctx, t, c, table+" FINAL", leaveOut...)
	}
	// The days the sink marked as changed (the markers' changed_at is the server's clock).
	days, err := c.ChangedDays(ctx, time.Unix(1, 0))
	out["ChangedDays"] = []string{fmt.Sprint(days, err)}
	week := 7 * 24 * time.Hour
	off := pulses.EpochOffset(week)
	from, to := now.Add(-2*week), now.Add(week)
	emp, err := c.PulseGroups(ctx, week, off, from, to, time.Time{}, time.Time{}, 3)
	for i := range emp {
		emp[i].LastStored = time.Time{} // the server's clock
	}
	out["PulseGroups"] = texts(emp, err)
	cust, err := c.CustomerAggregates(ctx, week, off, from, to)
	out["CustomerAggregates"] = texts(cust, err)
	tk, err := c.CategoryTickets(ctx, from, to)
	out["CategoryTickets"] = texts(tk, err)
	ces, err := c.CategoryCES(ctx, from, to)
	out["CategoryCES"] = texts(ces, err)
	totals, err := c.WindowTotals(ctx, effort.Window{Name: "1h", Length: time.Hour}, []time.Time{now, now.Add(-time.Hour), now.Add(-5 * time.Hour)})
	slices.SortFunc(totals, func(a, b records.WindowTotal) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	out["WindowTotals"] = texts(totals, err)
	// Hourly ends: the compacted hours, and the buckets after them.
	h := now.Truncate(time.Hour)
	totals, err = c.WindowTotals(ctx, effort.Window{Name: "24h", Length: 24 * time.Hour}, []time.Time{h, h.Add(-3 * time.Hour), h.Add(-10 * time.Hour)})
	slices.SortFunc(totals, func(a, b records.WindowTotal) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	out["WindowTotals hourly"] = texts(totals, err)
	impact, err := c.LatestEffortImpact(ctx)
	out["LatestEffortImpact"] = texts(impact, err)
	links, at, err := c.CurrentLinkage(ctx, "7d", []string{"period", "between_teams", "within_teams"})
	out["CurrentLinkage"] = append(texts(links, err), at.String())
	events, err := c.DriftEvents(ctx, now.Add(-week))
	out["DriftEvents"] = texts(events, err)
	openEvents, err := c.OpenDriftEvents(ctx)
	out["OpenDriftEvents"] = texts(openEvents, err)
	ms, err := c.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		out["Migrations"] = append(out["Migrations"], fmt.Sprint(m.Version, m.Name, m.AppliedAt.IsZero()))
	}
	return out
}

// readRollups reads the view rollups through c and from one server within one minute: its
// windows end at the current minute.
func readRollups(ctx context.Context, t *testing.T, c, single *clickhouse.Client) (got, want []string) {
	t.Helper()
	for range 3 {
		minute := time.Now().Truncate(time.Minute)
		got, want = dump(ctx, t, c, "rollups"), dump(ctx, t, single, "rollups")
		if time.Now().Truncate(time.Minute).Equal(minute) {
			break
		}
	}
	return got, want
}

// privateTable names the employee answers, which live in the private database.
const privateTable = "private.employee_pulses"

// dump is every row of from (a table or view, and FINAL) as text, sorted, without the
// columns left out.
func dump(ctx context.Context, t *testing.T, c *clickhouse.Client, from string, leaveOut ...string) []string {
	t.Helper()
	db := c.Database()
	if strings.HasPrefix(from, privateTable) {
		db, from = c.PrivateDatabase(), strings.Replace(from, privateTable, "employee_pulses", 1)
	}
	table, _, _ := strings.Cut(from, " ")
	rows, err := c.Conn().Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ? ORDER BY name",
		db, table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(leaveOut, name) {
			// toString of a Float64 is its shortest exact text.
			cols = append(cols, "ifNull(toString(`"+name+"`), 'NULL')")
		}
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatalf("%s.%s has no columns", db, table)
	}
	// Sorted outside the FINAL read: 18.16 cannot sort a FINAL read of a Distributed table
	// that has no WHERE (docs/storage.md).
	rows, err = c.Conn().Query(ctx, "SELECT line FROM (SELECT arrayStringConcat(["+strings.Join(cols, ", ")+"], ' | ') AS line FROM "+
		db+"."+from+") ORDER BY line")
	if err != nil {
		t.Fatalf("read %s: %v", from, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		out = append(out, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// texts is each element of a reader's result as text (pointers followed, floats exact),
// or the reader's error.
func texts[T any](v []T, err error) []string {
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	out := make([]string, len(v))
	for i, e := range v {
		out[i] = strings.Join(deref(e), " ")
	}
	return out
}

func head(rows []string) string {
	if len(rows) > 8 {
		rows = append(rows[:8:8], "…")
	}
	return "\n  " + strings.Join(rows, "\n  ")
}

// clusterBatches are the processors' writes: first, and then second, which redelivers
// some of first's events (a higher stream sequence: a lower version, which loses),
// attributes some of its surveys (a higher revision, which wins), updates buckets and adds
// events. Scores are whole, so that sums are exact in any order of addition.
func clusterBatches(now time.Time) (first, second *records.Batch) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	teams := []string{"red", "blue", "green", "gold"}
	first, second = &records.Batch{}, &records.Batch{}
	var seq uint64
	origin := func(at time.Time) records.Origin {
		seq++
		return records.Origin{ReceivedAt: at.Add(time.Duration(r.IntN(60)) * time.Second), Partition: uint16(seq % 16),
			Seq: seq, Version: records.Version(seq, 0), Late: r.IntN(20) == 0}
	}
	ago := func(within time.Duration) time.Time {
		return now.Add(-time.Duration(r.Int64N(int64(within))).Truncate(time.Second))
	}
	scale := func(kind string) (lo, hi float64) {
		switch kind {
		case "csat", "engagement":
			return 1, 5
		case "nps", "enps":
			return 0, 10
		}
		return 1, 7
	}
	survey := func(i int) records.Survey {
		kind := pick("ces", "csat", "nps")
		lo, hi := scale(kind)
		score := lo + float64(r.IntN(int(hi-lo)+1))
		at := ago(10 * 24 * time.Hour)
		return records.Survey{Origin: origin(at), ID: fmt.Sprintf("s-%d", i), Survey: kind, OccurredAt: at, Source: "zendesk",
			Score: score, ScaleMin: lo, ScaleMax: hi, StandardScore: score, TicketID: fmt.Sprintf("T-%d", r.IntN(150)),
			Channel: pick("chat", "phone", "email"), Category: pick("billing", "refund", "plan correction", "login"),
			Team: pick(teams...), AgentID: fmt.Sprintf("a-%d", r.IntN(12))}
	}
	for i := range 300 {
		first.Surveys = append(first.Surveys, survey(i))
	}
	for i := range 150 {
		at := ago(10 * 24 * time.Hour)
		handle, contacts := float64(60*r.IntN(30)), int64(1+r.IntN(4))
		first.Tickets = append(first.Tickets, records.Ticket{Origin: origin(at), ID: fmt.Sprintf("t-%d", i),
			TicketID: fmt.Sprintf("T-%d", i/2), Status: pick("created", "solved", "solved", "reopened"), OccurredAt: at,
			Category: pick("billing", "refund", "plan correction", "login"), Team: pick(teams...),
			HandleSeconds: &handle, Contacts: &contacts})
	}
	for i := range 160 {
		at := ago(14 * 24 * time.Hour)
		q := pick("engagement", "enps")
		lo, hi := scale(q)
		first.Pulses = append(first.Pulses, records.Pulse{Origin: origin(at), ID: fmt.Sprintf("p-%d", i),
			EmployeeID: fmt.Sprintf("e-%d", i%40), Team: teams[i%40%4], Question: q, OccurredAt: at,
			Score: lo + float64(r.IntN(int(hi-lo)+1)), ScaleMin: lo, ScaleMax: hi})
	}
	for i := range 400 {
		n := uint64(1 + r.IntN(5))
		sum := float64(n) * float64(1+r.IntN(7))
		first.Buckets = append(first.Buckets, records.Bucket{Survey: pick("ces", "csat", "nps"),
			Dimension: pick("overall", "category", "team", "channel", "agent"), Key: pick("", "billing", "red", "chat", "a-1"),
			Start: now.Add(-time.Duration(1+r.IntN(26*60)) * time.Minute), Partition: uint16(i % 16),
			Responses: n, ScoreSum: sum, SquareSum: sum * 7, Positive: n / 2, Negative: n / 3, Version: uint64(1 + r.IntN(1000))})
	}

	second.Surveys = append(second.Surveys, first.Surveys[:40]...) // redelivered unchanged
	for _, s := range first.Surveys[40:80] {                       // redelivered later: loses
		s.Seq += 10000
		s.Version, s.Team = records.Version(s.Seq, 0), "redelivered"
		second.Surveys = append(second.Surveys, s)
	}
	for _, s := range first.Surveys[80:110] { // attributed to their ticket: wins
		s.Version, s.Team, s.Attributed = records.Version(s.Seq, 1), "attributed", true
		second.Surveys = append(second.Surveys, s)
	}
	for i := range 20 {
		second.Surveys = append(second.Surveys, survey(1000+i))
	}
	for _, b := range first.Buckets[:120] { // changed again by later events
		b.Responses, b.ScoreSum, b.Version = b.Responses+2, b.ScoreSum+9, b.Version+1000
		second.Buckets = append(second.Buckets, b)
	}
	second.Tickets = append(second.Tickets, first.Tickets[:30]...)
	second.Pulses = append(second.Pulses, first.Pulses[:30]...)
	return first, second
}

// clusterAnalytics are the analytics stage's rows of its run with version v.
func clusterAnalytics(now time.Time, v uint64) ([]records.TeamPeriod, []records.Linkage, []records.EffortImpact) {
	monday := now.Truncate(7 * 24 * time.Hour)
	f := func(x float64) *float64 { return &x }
	var (
		teams  []records.TeamPeriod
		links  []records.Linkage
		impact []records.EffortImpact
	)
	for w := range 6 {
		start := monday.Add(-time.Duration(w) * 7 * 24 * time.Hour)
		for i, team := range []string{"red", "blue", "green", "gold"} {
			teams = append(teams, records.TeamPeriod{Period: "7d", PeriodStart: start, Team: team,
				EngagementRespondents: uint32(5 + i), Engagement: f(float64(i) + float64(v)/4), CESResponses: uint32(10 * i), CES: f(4 + float64(v))})
		}
		for _, scope := range []string{"period", "between_teams", "within_teams"} {
			for lag := range uint8(3) {
				df := uint32(2 + lag)
				links = append(links, records.Linkage{Period: "7d", PeriodStart: start, Scope: scope, SpanPeriods: 4, Lag: lag,
					EmployeeMetric: "engagement", CustomerMetric: "ces", Teams: 4, Pairs: 16, Periods: 4, DF: &df,
					Pearson: f(0.25 * float64(v)), Spearman: f(0.5), CILow: f(-0.5), CIHigh: f(0.75), P: f(0.125),
					MinDetectable: f(0.875), Status: "ok", Reading: "too_uncertain"})
			}
		}
		for i, category := range []string{"billing", "refund", "plan correction", "login"} {
			rank := uint16(i + 1)
			impact = append(impact, records.EffortImpact{Window: "7d", WindowEnd: start, Category: category, Tickets: uint64(10 * i),
				VolumeShare: 0.25, HandleHours: float64(i), CESResponses: uint64(i), CES: f(3 + float64(v)), Impact: f(float64(4 - i)),
				Rank: &rank, Status: "ok"})
		}
	}
	return teams, links, impact
}

// clusterDriftEvents are the drift detector's writes, in order: episodes that start, peak
// and end, each write with a higher version.
func clusterDriftEvents(now time.Time) [][]records.DriftEvent {
	var writes [][]records.DriftEvent
	for i, key := range []string{"billing", "refund", "plan correction", "login", "red", "blue"} {
		e := records.DriftEvent{Survey: "ces", Dimension: "category", Key: key, Owner: "support", Detector: "mean",
			Direction: "worse", StartedAt: now.Add(-time.Duration(i+1) * time.Hour), PeakStatistic: -3, PeakRecent: 4,
			PeakBaseline: 5, PeakRecentResponses: 40, PeakBaselineResponses: 900, RecentWindow: "1h", BaselineWindow: "7d",
			Version: 1}
		e.PeakAt = e.StartedAt
		peak := e
		peak.PeakAt, peak.PeakStatistic, peak.Version = e.StartedAt.Add(time.Minute), -5, 2
		writes = append(writes, []records.DriftEvent{e}, []records.DriftEvent{peak})
		if i%2 == 0 {
			ended := peak
			ended.EndedAt, ended.Version = e.StartedAt.Add(10*time.Minute), 3
			writes = append(writes, []records.DriftEvent{ended, ended})
		}
	}
	return writes
}
