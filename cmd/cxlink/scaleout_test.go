//go:build !windows

package main

// The scale-out test: a 3-node NATS cluster (real nats-server processes, R3 stream),
// three `cxlink process` replicas and two `cxlink drift` replicas as OS processes, under
// steady load. One replica is killed for good, another is frozen (SIGSTOP) for longer
// than its leases and then resumed, the stream leader's NATS node is killed and restarted,
// and the drift stage's holder is killed. Afterwards every accepted event is stored once,
// every survey whose ticket was sent is attributed, the rolling gauges summed over the
// replicas count each response once, and the raw rows and rollup buckets equal, row by
// row, what one process writes from the same stream into a second database.
//
// CXLINK_TEST_LEASES_OFF=1 runs the replicas without leases (every replica runs every
// partition), to show what the leases prevent: the gauges then count responses several
// times over, and the test fails.

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/natstest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

const (
	scalePartitions = 8
	scaleLeaseTTL   = 4 * time.Second
)

type replica struct {
	*apptest.Child
	id   string
	addr string // its HTTP listener: /metrics, /readyz
}

func TestScaleOutOnANATSCluster(t *testing.T) {
	leasesOff := os.Getenv("CXLINK_TEST_LEASES_OFF") == "1"
	ctx := t.Context()
	natsCluster := natstest.StartCluster(t, 3)
	ch := chtest.Start(t)
	scaled, reference := ch.NewDatabase(t), ch.NewDatabase(t)
	env := map[string]string{
		"NATS_URL":                 natsCluster.URL(),
		"CLICKHOUSE_ADDR":          ch.Addr(),
		"CLICKHOUSE_DATABASE":      scaled,
		"CXLINK_STREAM_PARTITIONS": fmt.Sprint(scalePartitions),
		"CXLINK_STREAM_REPLICAS":   "3",
		"CXLINK_LEASE_TTL":         scaleLeaseTTL.String(),
		"CXLINK_SNAPSHOT_EVERY":    "3s",
		"CXLINK_WINDOWS":           "10m,1h",
		"CXLINK_ROLLUP_STEP":       "1s",
		"CXLINK_ALLOWED_LATENESS":  lateness.String(),
		"CXLINK_ATTRIBUTION_WAIT":  "1m",
		"CXLINK_BATCH_MAX_DELAY":   "100ms",
		"CXLINK_PUBLISH_TIMEOUT":   "5s",
		"CXLINK_EMPLOYEE_ID_KEY":   testEmployeeKey,
		"CXLINK_DRIFT_DELAY":       "1s",
		"CXLINK_ANALYTICS_EVERY":   "5s",
		"CLICKHOUSE_DIAL_TIMEOUT":  "2s",
	}
	// The one owner of the definitions creates the R3 stream and its buckets.
	if err := app.Run(ctx, []string{"migrate"}, app.Options{Environ: env, Stdout: io.Discard, Stderr: apptest.TestLog(t, "migrate")}); err != nil {
		t.Fatal(err)
	}
	nc := natsCluster.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	ingestAddr := proc.FreeAddr(t)
	ienv := maps.Clone(env)
	ienv["CXLINK_HTTP_ADDR"] = ingestAddr
	apptest.StartChild(t, "ingest", ienv, "ingest")
	startRole := func(role, id string) *replica {
		e := maps.Clone(env)
		r := &replica{id: id, addr: proc.FreeAddr(t)}
		e["CXLINK_HTTP_ADDR"], e["CXLINK_REPLICA_ID"] = r.addr, id
		if leasesOff {
			e["CXLINK_LEASES_OFF"] = "true"
		}
		r.Child = apptest.StartChild(t, id, e, role)
		return r
	}
	procs := []*replica{startRole("process", "p0"), startRole("process", "p1"), startRole("process", "p2")}
	drifts := []*replica{startRole("drift", "d0"), startRole("drift", "d1")}
	kv, err := js.KeyValue(ctx, lease.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	holders := func() map[string]string {
		out := map[string]string{}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return out
		}
		for k := range keys.Keys() {
			if e, err := kv.Get(ctx, k); err == nil {
				out[k] = string(e.Value())
			}
		}
		return out
	}
	// ownedBy waits until every partition is held by one of ids, and returns how long it took.
	ownedBy := func(what string, ids ...string) time.Duration {
		t.Helper()
		if leasesOff {
			return 0
		}
		start := time.Now()
		for {
			h := holders()
			ok := true
			for p := range scalePartitions {
				holder := h[fmt.Sprintf("partition.%d", p)]
				if !strings.Contains(" "+strings.Join(ids, " ")+" ", " "+holder+" ") {
					ok = false
				}
			}
			if ok {
				return time.Since(start)
			}
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("%s: partitions not taken over in 2 minutes: %v", what, h)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ownedBy("start", "p0", "p1", "p2")
	waitHTTPReady(t, "http://"+ingestAddr+"/readyz")

	rng := rand.New(rand.NewPCG(10, 20))
	l := startLoad("http://"+ingestAddr+"/v1/events", rng, 150, 25)
	report := map[string]string{}

	time.Sleep(8 * time.Second)
	procs[0].Kill() // for good
	report["kill -9 replica p0"] = fmt.Sprintf("partitions held by p1, p2 after %s", ownedBy("kill p0", "p1", "p2").Round(10*time.Millisecond))

	time.Sleep(4 * time.Second)
	frozen := procs[1]
	frozenAt := time.Now()
	if err := syscall.Kill(frozen.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := ownedBy("freeze p1", "p2")
	time.Sleep(2*scaleLeaseTTL - time.Since(frozenAt))
	if err := syscall.Kill(frozen.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	report["SIGSTOP replica p1 for 2 TTL"] = fmt.Sprintf("partitions held by p2 after %s; p1 resumed after %s", took.Round(10*time.Millisecond), time.Since(frozenAt).Round(10*time.Millisecond))
	if !leasesOff {
		// p1 takes a share again once it is back (rendezvous hashing gives it some).
		resumed := time.Now()
		for {
			h := holders()
			shared := false
			for p := range scalePartitions {
				shared = shared || h[fmt.Sprintf("partition.%d", p)] == "p1"
			}
			if shared {
				break
			}
			if time.Since(resumed) > time.Minute {
				t.Fatalf("p1 took no partition back within a minute of resuming: %v", h)
			}
			time.Sleep(50 * time.Millisecond)
		}
		ownedBy("p1 back", "p1", "p2")
		report["p1 back"] = fmt.Sprintf("p1 owns partitions again %s after it resumed", time.Since(resumed).Round(10*time.Millisecond))
	}

	time.Sleep(4 * time.Second)
	leader := natsCluster.StreamLeader(t, stream.Name)
	natsCluster.Kill(leader)
	killedAt := time.Now()
	time.Sleep(3 * time.Second)
	natsCluster.Restart(leader)
	report["kill -9 the stream leader's NATS node"] = fmt.Sprintf("node %s back after %s", natsCluster.Name(leader), time.Since(killedAt).Round(10*time.Millisecond))

	// The drift stage: one of two replicas runs it; kill that one.
	holder := holders()["stage.drift"]
	var runner, standby *replica
	for _, d := range drifts {
		if d.id == holder {
			runner = d
		} else {
			standby = d
		}
	}
	if runner == nil {
		t.Fatalf("no drift replica holds the stage: %v", holders())
	}
	runner.Kill()
	start := time.Now()
	for holders()["stage.drift"] != standby.id {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("the standby drift replica did not take over: %v", holders())
		}
		time.Sleep(50 * time.Millisecond)
	}
	report["kill -9 the drift stage's holder"] = fmt.Sprintf("%s took over after %s", standby.id, time.Since(start).Round(10*time.Millisecond))

	time.Sleep(4 * time.Second)
	l.stop()
	if l.failure != nil {
		t.Fatalf("load: %v", l.failure)
	}
	c := &cluster{t: t, ch: ch, env: env, js: js}
	if c.db, err = clickhouse.Open(ctx, ch.Config(scaled), slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.db.Close() })
	waitPartitionsStored(t, js, scalePartitions, 2*time.Minute)
	live := []*replica{procs[1], procs[2]}

	// Every accepted event stored once, every rejected one absent, surveys attributed.
	lost, doubled, leaked := storedOnce(c, l.accepted, l.rejected)
	unattributed := len(c.query("SELECT s.id FROM " + scaled + ".survey_responses AS s FINAL " +
		"ALL INNER JOIN (SELECT DISTINCT ticket_id FROM " + scaled + ".tickets FINAL) AS k USING ticket_id " +
		"WHERE s.ticket_id != '' AND s.attributed = 0 AND s.category = ''"))
	t.Logf("scale-out: sent %d, accepted %d, rejected %d, stored once %d, lost %d, doubled %d, stored-but-not-accepted %d, surveys not attributed %d",
		l.sent, len(l.accepted), len(l.rejected), len(l.accepted)-lost-doubled, lost, doubled, leaked, unattributed)
	for _, k := range []string{"kill -9 replica p0", "SIGSTOP replica p1 for 2 TTL", "p1 back", "kill -9 the stream leader's NATS node", "kill -9 the drift stage's holder"} {
		t.Logf("scale-out: %-40s %s", k, report[k])
	}
	if lost+doubled+leaked+unattributed > 0 {
		t.Errorf("lost %d, doubled %d, stored but not accepted %d, surveys not attributed %d", lost, doubled, leaked, unattributed)
	}

	// The rolling gauges, summed over the live replicas as Prometheus sums them, count
	// each on-time response once.
	want := *c.query("SELECT toFloat64(count()) FROM " + scaled + ".survey_responses FINAL WHERE survey = 'ces' AND late = 0")[0][0].(*float64)
	gauge := func() float64 {
		sum := 0.0
		for _, r := range live {
			sum += scrape(t, r.addr, "cxlink_rolling_responses", map[string]string{"survey": "ces", "window": "1h", "dimension": "overall"})
		}
		return sum
	}
	deadline := time.Now().Add(30 * time.Second)
	got := gauge()
	for got != want && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		got = gauge()
	}
	t.Logf("scale-out: cxlink_rolling_responses{ces,1h,overall} summed over the live replicas: %v; on-time CES responses stored: %v", got, want)
	if got != want {
		t.Errorf("the replicas' gauges add up to %v CES responses in the last hour, the raw table has %v", got, want)
	}
	if h := holders()["stage.analytics"]; !leasesOff && h != "p1" && h != "p2" {
		t.Errorf("the analytics stage is held by %q, not by a live replica", h)
	}

	// One process, from the same stream, into a second database.
	for _, r := range append(live, standby) {
		if err := r.Signal(syscall.SIGTERM, 30*time.Second); err != nil {
			t.Logf("%s: %v", r.id, err)
		}
	}
	for _, bucket := range []string{checkpoint.ProgressBucket, lease.Bucket} {
		if err := js.DeleteKeyValue(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.DeleteObjectStore(ctx, checkpoint.SnapshotStore); err != nil {
		t.Fatal(err)
	}
	renv := maps.Clone(env)
	renv["CLICKHOUSE_DATABASE"] = reference
	if err := app.Run(ctx, []string{"migrate"}, app.Options{Environ: renv, Stdout: io.Discard, Stderr: apptest.TestLog(t, "migrate")}); err != nil {
		t.Fatal(err)
	}
	renv["CXLINK_HTTP_ADDR"], renv["CXLINK_REPLICA_ID"] = proc.FreeAddr(t), "single"
	apptest.StartChild(t, "single", renv, "process")
	waitPartitionsStored(t, js, scalePartitions, 2*time.Minute)
	compareDatabases(t, c, scaled, reference)
}

// compareDatabases checks that two databases hold the same raw rows and rollup buckets
// under FINAL, every column.
func compareDatabases(t *testing.T, c *cluster, a, b string) {
	t.Helper()
	for _, q := range []struct{ table, columns, order string }{
		{"survey_responses", "*", "survey, id"},
		{"tickets", "*", "ticket_id, id"},
		// In each database's private one; stored_at is when ClickHouse stored the row,
		// not part of what was written.
		{"_private.employee_pulses", "id, employee_id, team, question, occurred_at, received_at, source, score, " +
			"scale_min, scale_max, late, partition, seq, version", "team, id"},
		{"rollup_buckets", "*", "survey, dimension, bucket_start, key, partition"},
	} {
		rows := func(db string) []string {
			table := db + "." + q.table
			if strings.HasPrefix(q.table, "_") {
				table = db + q.table
			}
			return show(c.query(fmt.Sprintf("SELECT %s FROM %s FINAL ORDER BY %s", q.columns, table, q.order)))
		}
		// The single process may still be writing its last buckets: wait a little for
		// the counts to meet.
		var ra, rb []string
		deadline := time.Now().Add(time.Minute)
		for {
			ra, rb = rows(a), rows(b)
			if len(ra) == len(rb) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if len(ra) != len(rb) {
			t.Errorf("%s: %d rows from the replicas, %d from one process", q.table, len(ra), len(rb))
			continue
		}
		diff := 0
		for i := range ra {
			if ra[i] != rb[i] {
				if diff < 3 {
					t.Errorf("%s row %d:\n replicas:    %s one process: %s", q.table, i, ra[i], rb[i])
				}
				diff++
			}
		}
		t.Logf("scale-out: %s: %d rows, %d differ from what one process writes", q.table, len(ra), diff)
	}
}

// storedOnce counts the accepted events not stored, stored more than once under FINAL,
// and the events stored that were never accepted.
func storedOnce(c *cluster, accepted, rejected map[string]bool) (lost, doubled, leaked int) {
	got := map[string]int{}
	db := c.env["CLICKHOUSE_DATABASE"]
	for _, table := range []string{db + ".survey_responses", db + ".tickets", db + "_private.employee_pulses"} {
		for _, r := range c.query(fmt.Sprintf("SELECT id FROM %s FINAL", table)) {
			got[*r[0].(*string)]++
		}
	}
	for id := range accepted {
		switch got[id] {
		case 0:
			lost++
		case 1:
		default:
			doubled++
		}
	}
	for id := range got {
		if rejected[id] || !accepted[id] {
			leaked++
		}
	}
	return lost, doubled, leaked
}

// scrape reads one gauge with the given labels from a process's /metrics; 0 if absent.
func scrape(t *testing.T, addr, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics of %s: %v", addr, err)
	}
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(labels) {
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

func waitHTTPReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
