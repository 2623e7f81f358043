package main

// End-to-end tests of the whole path with real components: events posted over HTTP to
// the ingest role, an in-process NATS server with JetStream reached over TCP, the
// process role as a separate OS process (so that it can be killed -9), and a real
// ClickHouse server. Rollups are checked against a recomputation from the raw tables.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest"
	"github.com/cxlink/cxlink/ingest/broker"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/checkpoint"
	"github.com/cxlink/cxlink/processors/lease"
	"github.com/cxlink/cxlink/sinks/clickhouse"
	"github.com/cxlink/cxlink/sinks/clickhouse/chtest"
)

// The test binary doubles as cxlink: apptest.NewChild runs it again as a role.
func TestMain(m *testing.M) { apptest.Main(m, main) }

const (
	partitions = 4
	lateness   = 10 * time.Minute
)

var windows = map[string]time.Duration{"10m": 10 * time.Minute, "1h": time.Hour}

type cluster struct {
	t         *testing.T
	env       map[string]string
	ch        *chtest.Server
	db        *clickhouse.Client
	js        jetstream.JetStream
	ingestURL string
	processor *apptest.Child // the process role, once startProcessor ran
}

// clusterEnv is the environment of the end-to-end and fault suites' roles on database of
// ch: short windows and waits, so that a test sees results in seconds.
func clusterEnv(ch *chtest.Server, database string) map[string]string {
	env := map[string]string{
		"CXLINK_STREAM_PARTITIONS":  fmt.Sprint(partitions),
		"CXLINK_WINDOWS":            "10m,1h",
		"CXLINK_ROLLUP_STEP":        "1s",
		"CXLINK_ALLOWED_LATENESS":   lateness.String(),
		"CXLINK_ATTRIBUTION_WAIT":   "1m",
		"CXLINK_BATCH_MAX_DELAY":    "100ms",
		"CXLINK_SNAPSHOT_EVERY":     "2s",
		"CXLINK_METRICS_MAX_KEYS":   "20",
		"CLICKHOUSE_DIAL_TIMEOUT":   "1s",
		"CLICKHOUSE_INSERT_TIMEOUT": "5s",
		"CXLINK_EMPLOYEE_ID_KEY":    testEmployeeKey,
	}
	maps.Copy(env, ch.Env(database))
	return env
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := t.Context()
	ns, err := broker.Start(broker.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	ch := chtest.StartPrivate(t)
	database := ch.NewDatabase(t)
	c := &cluster{t: t, ch: ch, env: clusterEnv(ch, database)}
	c.env["NATS_URL"], c.env["CXLINK_HTTP_ADDR"] = ns.ClientURL(), "127.0.0.1:0"
	// Long enough for renewals on a loaded machine (at 3 s, a busy processor lost its
	// leases every few seconds and spent its time restarting partitions); a restart after
	// kill -9 waits for it once.
	c.env["CXLINK_LEASE_TTL"] = "10s"
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	// The ingest role runs in this process; it creates the stream.
	c.ingestURL = apptest.StartRole(t, c.env, nil, "ingest").URL + "/v1/events"
	if c.db, err = clickhouse.Open(ctx, ch.Config(database), slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.db.Close() })
	return c
}

// startProcessor starts the process role as a child process, with the cluster's
// environment as it is at the first start.
func (c *cluster) startProcessor() {
	c.t.Helper()
	if c.processor == nil {
		c.processor = apptest.NewChild(c.t, "process", c.env, "process")
	}
	if err := c.processor.Start(); err != nil {
		c.t.Fatal(err)
	}
}

type postAnswer struct {
	Accepted, Duplicates, Rejected, Failed int
	Results                                []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
}

// post sends events as NDJSON and returns the API's answer.
func (c *cluster) post(events []map[string]any) postAnswer {
	c.t.Helper()
	resp, raw, err := apptest.PostNDJSON(nil, c.ingestURL, events)
	if err != nil {
		c.t.Fatal(err)
	}
	var a postAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		c.t.Fatalf("answer %d %s: %v", resp.StatusCode, raw, err)
	}
	if a.Failed > 0 {
		c.t.Fatalf("publish failed: %s", raw)
	}
	return a
}

// postAll posts events in batches and returns the ids the API accepted (or reported as
// duplicates of stored events) and those it rejected.
func (c *cluster) postAll(events []map[string]any, batch int) (stored, rejected map[string]bool) {
	stored, rejected = map[string]bool{}, map[string]bool{}
	for i := 0; i < len(events); i += batch {
		part := events[i:min(i+batch, len(events))]
		a := c.post(part)
		notAccepted := map[string]string{}
		for _, r := range a.Results {
			notAccepted[r.ID] = r.Status
		}
		for _, e := range part {
			id, _ := e["id"].(string)
			switch notAccepted[id] {
			case "rejected":
				rejected[id] = true
			default:
				stored[id] = true
			}
		}
	}
	return stored, rejected
}

// waitProcessed waits until every partition's progress has passed its last message:
// the rows of every message in the stream are stored. The limit only ends a stuck run:
// a busy machine can take minutes over what takes seconds.
func (c *cluster) waitProcessed() {
	c.t.Helper()
	waitPartitionsStored(c.t, c.js, partitions, 5*time.Minute) // a limit for a stuck run, not a speed test
}

// partitionsOwned reports whether each of n partitions has a lease holder.
func partitionsOwned(t *testing.T, js jetstream.JetStream, n int) bool {
	kv, err := js.KeyValue(t.Context(), lease.Bucket)
	if err != nil {
		return false
	}
	for p := range n {
		if _, err := kv.Get(t.Context(), fmt.Sprintf("partition.%d", p)); err != nil {
			return false
		}
	}
	return true
}

// waitPartitionsStored waits until the progress of each of n partitions has passed the
// partition's last message in the stream, for at most timeout.
func waitPartitionsStored(t testing.TB, js jetstream.JetStream, n int, timeout time.Duration) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(timeout)
	for {
		busy := ""
		s, err := js.Stream(ctx, stream.Name)
		var cp *checkpoint.Store
		if err == nil {
			cp, err = checkpoint.Open(ctx, js)
		}
		for p := 0; p < n && err == nil && busy == ""; p++ {
			last, lerr := s.GetLastMsgForSubject(ctx, stream.Subject(p))
			if errors.Is(lerr, jetstream.ErrMsgNotFound) {
				continue
			}
			if lerr != nil {
				err = lerr
				break
			}
			pr, _, perr := cp.Progress(ctx, p)
			if perr != nil {
				err = perr
			} else if pr.Seq < last.Sequence {
				busy = fmt.Sprintf("partition %d: stored through seq %d of %d", p, pr.Seq, last.Sequence)
			}
		}
		if err != nil {
			busy = err.Error()
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not processed in time: %s", busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) query(q string, args ...any) [][]any {
	c.t.Helper()
	return apptest.ScanRows(c.t, c.db.Conn(), q, args...)
}

// checkStored checks that each raw table holds exactly the stored ids, once each under
// FINAL, and none of the rejected ones.
func (c *cluster) checkStored(stored, rejected map[string]bool) {
	c.t.Helper()
	got := map[string]int{}
	db := c.env["CLICKHOUSE_DATABASE"]
	for _, table := range []string{db + ".survey_responses", db + ".tickets", db + "_private.employee_pulses"} {
		for _, r := range c.query(fmt.Sprintf("SELECT id FROM %s FINAL", table)) {
			got[*r[0].(*string)]++
		}
	}
	lost, doubled, leaked := 0, 0, 0
	for id := range stored {
		switch got[id] {
		case 0:
			lost++
		case 1:
		default:
			doubled++
		}
	}
	for id := range got {
		if rejected[id] || !stored[id] {
			leaked++
		}
	}
	c.t.Logf("accepted %d, stored %d distinct, lost %d, doubled %d, not accepted but stored %d", len(stored), len(got), lost, doubled, leaked)
	if lost+doubled+leaked > 0 {
		c.t.Fatalf("raw tables do not hold exactly the accepted events")
	}
}
