package main

// The fault-injection suite: while events stream in at a steady rate, cxlink's roles are
// killed -9 at random points and restarted, ClickHouse is stopped for at least 30 s, NATS
// is restarted (the external server, and the embedded one inside `cxlink run`), and
// roles are stopped with SIGTERM. After each scenario every event that got a 202 must be
// in ClickHouse exactly once under the documented read (FINAL), every rejected one
// absent, and the rollups must equal a recomputation from the raw tables.
//
// The senders behave as the README tells clients to: a request that failed (503, or
// no answer because ingest died) is sent again as a whole until it gets an answer.
//
// Longer runs: CXLINK_FAULT_SEEDS (seeds per random scenario, default 2),
// CXLINK_FAULT_LOAD (how long events stream in per scenario, default 12s),
// CXLINK_FAULT_OUTAGE (ClickHouse downtime, default and minimum 30s),
// CXLINK_FAULT_RATE (events per second, default 250). CXLINK_FAULT_REPORT names a file
// that receives the table of counts (deploy/local/test.sh prints it).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/cmd/cxlink/apptest/proc"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// faultSettings are the suite's knobs, from the environment.
type faultSettings struct {
	seeds  int
	load   time.Duration
	outage time.Duration
	rate   int
}

func readFaultSettings(t *testing.T) faultSettings {
	t.Helper()
	s := faultSettings{seeds: 2, load: 12 * time.Second, outage: 30 * time.Second, rate: 250}
	if v := os.Getenv("CXLINK_FAULT_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CXLINK_FAULT_SEEDS=%q is not a positive number", v)
		}
		s.seeds = n
	}
	for name, d := range map[string]*time.Duration{"CXLINK_FAULT_LOAD": &s.load, "CXLINK_FAULT_OUTAGE": &s.outage} {
		if v := os.Getenv(name); v != "" {
			got, err := time.ParseDuration(v)
			if err != nil || got <= 0 {
				t.Fatalf("%s=%q is not a positive duration", name, v)
			}
			*d = got
		}
	}
	if s.outage < 30*time.Second {
		t.Fatalf("CXLINK_FAULT_OUTAGE=%s: ClickHouse must stay down for at least 30s", s.outage)
	}
	if s.load < 6*time.Second {
		t.Fatalf("CXLINK_FAULT_LOAD=%s: at least 6s, so that faults land mid-stream", s.load)
	}
	if v := os.Getenv("CXLINK_FAULT_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("CXLINK_FAULT_RATE=%q is not a number of events per second (10 or more)", v)
		}
		s.rate = n
	}
	return s
}

// counts is what a scenario prints.
type counts struct {
	scenario                                     string
	sent, accepted, rejected, stored, dups, lost int
	leaked, requests, resent, faults             int
	elapsed                                      time.Duration
}

var report struct {
	mu   sync.Mutex
	rows []counts
}

func (c counts) String() string {
	return fmt.Sprintf("%-28s sent %6d  accepted %6d  rejected %4d  stored %6d  duplicates %d  lost %d  stored-but-not-accepted %d  (requests %d, resent %d, faults %d, %s)",
		c.scenario, c.sent, c.accepted, c.rejected, c.stored, c.dups, c.lost, c.leaked, c.requests, c.resent, c.faults, c.elapsed.Round(time.Second))
}

// TestFaultInjection runs every scenario; each is a subtest with its own NATS store,
// ClickHouse server and cxlink processes, and they run two at a time.
func TestFaultInjection(t *testing.T) {
	set := readFaultSettings(t)
	type scenario struct {
		name   string
		random bool // repeated with several seeds
		run    func(f *faultCluster, rng *rand.Rand)
	}
	scenarios := []scenario{
		{"kill-ingest", true, func(f *faultCluster, rng *rand.Rand) { f.killLoop(rng, f.ingest, 2) }},
		{"kill-process", true, func(f *faultCluster, rng *rand.Rand) { f.killLoop(rng, f.proc, 3) }},
		{"kill-run", true, func(f *faultCluster, rng *rand.Rand) { f.killLoop(rng, f.run, 2) }},
		{"clickhouse-down", false, func(f *faultCluster, rng *rand.Rand) { f.clickHouseOutage(rng, set.outage) }},
		{"nats-restart", true, func(f *faultCluster, rng *rand.Rand) { f.natsRestarts(rng, 2) }},
		{"sigterm-process", false, func(f *faultCluster, rng *rand.Rand) { f.termLoop(rng, f.proc, 2) }},
		{"sigterm-ingest", false, func(f *faultCluster, rng *rand.Rand) { f.termLoop(rng, f.ingest, 2) }},
		{"sigterm-run", false, func(f *faultCluster, rng *rand.Rand) { f.termLoop(rng, f.run, 2) }},
	}
	t.Cleanup(func() {
		report.mu.Lock()
		defer report.mu.Unlock()
		var out strings.Builder
		fmt.Fprintf(&out, "fault-injection suite: %d seeds per random scenario, %s of load at %d events/s, ClickHouse down %s\n",
			set.seeds, set.load, set.rate, set.outage)
		for _, c := range report.rows {
			fmt.Fprintln(&out, c)
		}
		t.Log("\n" + out.String())
		if path := os.Getenv("CXLINK_FAULT_REPORT"); path != "" {
			if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
				t.Errorf("write %s: %v", path, err)
			}
		}
	})
	for _, sc := range scenarios {
		seeds := 1
		if sc.random {
			seeds = set.seeds
		}
		for seed := 1; seed <= seeds; seed++ {
			name := sc.name
			if sc.random {
				name = fmt.Sprintf("%s/seed-%d", sc.name, seed)
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(uint64(seed), uint64(len(sc.name))))
				embedded := strings.HasSuffix(sc.name, "-run")
				f := newFaultCluster(t, embedded)
				start := time.Now()
				l := f.startLoad(rng, set.rate)
				// Faults happen while the load streams in, which lasts at least set.load.
				sc.run(f, rand.New(rand.NewPCG(rng.Uint64(), 1)))
				time.Sleep(set.load - time.Since(start))
				l.stop()
				f.heal()
				c := f.check(l)
				c.scenario, c.elapsed, c.faults = name, time.Since(start), f.faults
				report.mu.Lock()
				report.rows = append(report.rows, c)
				report.mu.Unlock()
				t.Log(c)
				if c.lost+c.dups+c.leaked > 0 {
					t.Errorf("%s: %d accepted events lost, %d stored twice, %d stored without being accepted", name, c.lost, c.dups, c.leaked)
				}
			})
		}
	}
}

// faultCluster is one scenario's world: ClickHouse, NATS (in this process, or embedded
// in a `run` child) and cxlink children.
type faultCluster struct {
	*cluster
	ingestAddr string
	// External NATS: restartable in this process.
	natsDir, natsListen string
	natsMu              sync.Mutex
	nats                *broker.Server
	// The roles: ingest and proc (external NATS), or run (embedded).
	ingest, proc, run *apptest.Child
	faults            int
}

func newFaultCluster(t *testing.T, embedded bool) *faultCluster {
	ch := chtest.StartPrivate(t)
	database := ch.NewDatabase(t)
	f := &faultCluster{cluster: &cluster{t: t, ch: ch, env: clusterEnv(ch, database)}}
	f.env["CXLINK_LEASE_TTL"], f.env["CXLINK_PUBLISH_TIMEOUT"] = "3s", "5s"
	f.ingestAddr = proc.FreeAddr(t)
	natsURL := ""
	if embedded {
		f.natsListen = proc.FreeAddr(t)
		env := maps.Clone(f.env)
		env["CXLINK_DATA_DIR"] = t.TempDir()
		env["CXLINK_EMBEDDED_NATS_LISTEN"] = f.natsListen
		env["CXLINK_HTTP_ADDR"] = f.ingestAddr
		f.run = apptest.StartChild(t, "run", env, "run")
		natsURL = "nats://" + f.natsListen
	} else {
		f.natsDir, f.natsListen = t.TempDir(), proc.FreeAddr(t)
		f.startNATS()
		t.Cleanup(f.stopNATS)
		natsURL = "nats://" + f.natsListen
		f.env["NATS_URL"] = natsURL
		ienv := maps.Clone(f.env)
		ienv["CXLINK_HTTP_ADDR"] = f.ingestAddr
		f.ingest = apptest.StartChild(t, "ingest", ienv, "ingest")
		penv := maps.Clone(f.env)
		penv["CXLINK_HTTP_ADDR"] = "127.0.0.1:0"
		f.proc = apptest.StartChild(t, "process", penv, "process")
	}
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if f.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if f.db, err = clickhouse.Open(t.Context(), ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	f.waitReady()
	return f
}

func (f *faultCluster) startNATS() {
	f.natsMu.Lock()
	defer f.natsMu.Unlock()
	s, err := broker.Start(broker.Config{DataDir: f.natsDir, Listen: f.natsListen}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.t.Errorf("start nats: %v", err)
		return
	}
	f.nats = s
}

func (f *faultCluster) stopNATS() {
	f.natsMu.Lock()
	defer f.natsMu.Unlock()
	if f.nats != nil {
		f.nats.Shutdown()
		f.nats = nil
	}
}

// waitReady waits until ingest answers and every partition has an owner.
func (f *faultCluster) waitReady() {
	f.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + f.ingestAddr + "/readyz")
		ok := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			resp.Body.Close()
		}
		if ok {
			ok = partitionsOwned(f.t, f.js, partitions)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("cxlink not ready in time (ingest %s: %v)", f.ingestAddr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sleep waits a random time between lo and hi.
func sleep(rng *rand.Rand, lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(rng.Int64N(int64(hi-lo)+1)))
}

// killLoop kills c with SIGKILL n times at random points and restarts it after a random
// pause.
func (f *faultCluster) killLoop(rng *rand.Rand, c *apptest.Child, n int) {
	for range n {
		sleep(rng, 1500*time.Millisecond, 4*time.Second)
		c.Kill()
		f.faults++
		sleep(rng, 0, 2*time.Second)
		f.start(c)
	}
}

// start starts c again; a failure fails the test, which goes on to show the damage.
func (f *faultCluster) start(c *apptest.Child) {
	if err := c.Start(); err != nil {
		f.t.Error(err)
	}
}

// termLoop stops c with SIGTERM n times at random points: it must exit cleanly (status
// 0) and in time, having stored and acked what it took, and is then started again.
func (f *faultCluster) termLoop(rng *rand.Rand, c *apptest.Child, n int) {
	for range n {
		sleep(rng, 1500*time.Millisecond, 4*time.Second)
		// A process handles SIGTERM once main has set up its signal handling; before,
		// the signal kills it (a loaded machine can take seconds to get there). The role
		// listens only after that.
		c.URL(f.t)
		start := time.Now()
		if err := c.Signal(syscall.SIGTERM, 45*time.Second); err != nil {
			f.t.Errorf("%s after SIGTERM: %v", c.Name(), err)
		}
		f.faults++
		f.t.Logf("%s exited %s after SIGTERM", c.Name(), time.Since(start).Round(time.Millisecond))
		if c == f.proc || c == f.run {
			// A stop before the role took anything on (it was still waiting for its
			// stream) has nothing to drain.
			after := c.Log()
			after = after[strings.LastIndex(after, "---- terminated"):]
			if !strings.Contains(after, "drained") && !strings.Contains(after, "stopped while starting") {
				f.t.Errorf("%s did not report a complete drain after SIGTERM", c.Name())
			}
		}
		sleep(rng, 0, time.Second)
		f.start(c)
	}
}

// clickHouseOutage stops ClickHouse for d while events keep coming; in the middle of the
// outage the processor is killed -9 and restarted, so that whatever it held unstored is
// lost unless it was left unacked.
func (f *faultCluster) clickHouseOutage(rng *rand.Rand, d time.Duration) {
	sleep(rng, time.Second, 2*time.Second)
	f.ch.Stop()
	f.faults++
	start := time.Now()
	time.Sleep(d/3 + time.Duration(rng.Int64N(int64(d/3))))
	f.proc.Kill()
	f.faults++
	sleep(rng, 0, 2*time.Second)
	f.start(f.proc)
	time.Sleep(d - time.Since(start))
	f.ch.Start()
}

// natsRestarts restarts the external NATS server n times, with the same store and port.
func (f *faultCluster) natsRestarts(rng *rand.Rand, n int) {
	for range n {
		sleep(rng, 1500*time.Millisecond, 3*time.Second)
		f.stopNATS()
		f.faults++
		sleep(rng, 200*time.Millisecond, 2*time.Second)
		f.startNATS()
	}
}

// whereInStream says, for each event id, at which subject and sequence the stream holds
// a message with that Nats-Msg-Id, or that it holds none: a lost event that the stream
// never held was lost on the way in, one that it holds was lost by the processors.
func (f *faultCluster) whereInStream(ids []string) string {
	ctx := f.t.Context()
	s, err := f.js.Stream(ctx, stream.Name)
	if err != nil {
		return err.Error()
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err.Error()
	}
	at := map[string]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); slices.Contains(ids, id) {
			at[id] = fmt.Sprintf("%s seq %d", m.Subject, seq)
		}
	}
	var out []string
	for _, id := range ids {
		where, ok := at[id]
		if !ok {
			where = "not in the stream"
		}
		out = append(out, id+": "+where)
	}
	return strings.Join(out, "; ")
}

// heal makes sure every component runs again.
func (f *faultCluster) heal() {
	for _, c := range []*apptest.Child{f.ingest, f.proc, f.run} {
		if c != nil && !c.Running() {
			f.start(c)
		}
	}
}

// load sends events at a steady rate, in batches, each batch resent until it gets an
// answer, and records what became of every event.
type load struct {
	url      string
	done     chan struct{}
	quit     chan struct{}
	mu       sync.Mutex
	accepted map[string]bool
	rejected map[string]bool
	sent     int
	requests int
	resent   int
	failure  error
}

func (f *faultCluster) startLoad(rng *rand.Rand, rate int) *load {
	return startLoad("http://"+f.ingestAddr+"/v1/events", rng, rate, 25)
}

// startLoad sends rate events per second to url in batches.
func startLoad(url string, rng *rand.Rand, rate, batch int) *load {
	l := &load{url: url, done: make(chan struct{}), quit: make(chan struct{}),
		accepted: map[string]bool{}, rejected: map[string]bool{}}
	interval := time.Second * time.Duration(batch) / time.Duration(rate)
	rng = rand.New(rand.NewPCG(rng.Uint64(), 2))
	go func() {
		defer close(l.done)
		client := &http.Client{Timeout: 20 * time.Second}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-l.quit:
				return
			case <-tick.C:
			}
			events := testEvents(rng, fmt.Sprintf("b%d", n), batch, time.Now())
			if n == 0 {
				// One invalid event for certain: a short load (a slow machine, ingest
				// down most of the time) may draw none at random.
				events = append(events, map[string]any{"id": "b0-off-scale", "type": "survey_response",
					"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "survey": "ces", "score": 42})
			}
			if err := l.send(client, events); err != nil {
				l.mu.Lock()
				l.failure = err
				l.mu.Unlock()
				return
			}
		}
	}()
	return l
}

// send posts one batch until it gets a final answer (202 or 400 with per-event
// results), resending the same body after a failure, for at most two minutes.
func (l *load) send(client *http.Client, events []map[string]any) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range events {
		enc.Encode(e)
	}
	l.mu.Lock()
	l.sent += len(events)
	l.mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			l.mu.Lock()
			l.resent++
			l.mu.Unlock()
			if time.Now().After(deadline) {
				return errors.New("a batch got no answer for two minutes")
			}
			time.Sleep(200 * time.Millisecond)
		}
		l.mu.Lock()
		l.requests++
		l.mu.Unlock()
		resp, err := client.Post(l.url, "application/x-ndjson", bytes.NewReader(body.Bytes()))
		if err != nil {
			continue // no answer: ingest is down or died mid-request
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode == http.StatusServiceUnavailable {
			continue
		}
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusBadRequest {
			return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
		}
		var a postAnswer
		if err := json.Unmarshal(raw, &a); err != nil || a.Failed > 0 {
			return fmt.Errorf("status %d: unexpected answer %s", resp.StatusCode, raw)
		}
		status := map[string]string{}
		for _, r := range a.Results {
			status[r.ID] = r.Status
		}
		l.mu.Lock()
		for _, e := range events {
			id := e["id"].(string)
			if status[id] == "rejected" {
				l.rejected[id] = true
			} else {
				l.accepted[id] = true
			}
		}
		l.mu.Unlock()
		return nil
	}
}

func (l *load) stop() {
	close(l.quit)
	<-l.done
}

// check waits until the processors caught up and compares ClickHouse with the answers.
func (f *faultCluster) check(l *load) counts {
	f.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure != nil {
		f.t.Fatalf("load: %v", l.failure)
	}
	f.waitReady()
	f.waitProcessed()
	for _, c := range []*apptest.Child{f.ingest, f.proc, f.run} {
		if c != nil {
			if err := c.Exited(); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	got := map[string]int{}
	db := f.env["CLICKHOUSE_DATABASE"]
	for _, table := range []string{db + ".survey_responses", db + ".tickets", db + "_private.employee_pulses"} {
		for _, r := range f.query(fmt.Sprintf("SELECT id, count() FROM %s FINAL GROUP BY id", table)) {
			got[*r[0].(*string)] += int(*r[1].(*uint64))
		}
	}
	c := counts{sent: l.sent, accepted: len(l.accepted), rejected: len(l.rejected), stored: len(got),
		requests: l.requests, resent: l.resent}
	var lost []string
	for id := range l.accepted {
		switch n := got[id]; {
		case n == 0:
			c.lost++
			lost = append(lost, id)
		case n > 1:
			c.dups++
		}
	}
	for id := range got {
		if !l.accepted[id] {
			c.leaked++
		}
	}
	if len(lost) > 0 {
		f.t.Logf("lost events, and where the stream holds them: %s", f.whereInStream(lost))
	}
	if c.accepted+c.rejected != c.sent {
		f.t.Errorf("%d events sent, but %d accepted and %d rejected", c.sent, c.accepted, c.rejected)
	}
	if c.accepted == 0 || c.rejected == 0 {
		f.t.Errorf("the load did not exercise both outcomes: %d accepted, %d rejected", c.accepted, c.rejected)
	}
	f.waitRollups()
	return c
}
