package main

// End-to-end tests of the whole path with real components: events posted over HTTP to
// the ingest role, an in-process NATS server with JetStream reached over TCP, the
// process role as a separate OS process (so that it can be killed -9), and a real
// ClickHouse server. Rollups are checked against a recomputation from the raw tables.

import (
	"encoding/json"
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
	c := &cluster{t: t, ch: ch, env: map[string]string{
		"NATS_URL":                ns.ClientURL(),
		"CXLINK_HTTP_ADDR":        "127.0.0.1:0",
		"CXLINK_PARTITIONS":       fmt.Sprint(partitions),
		"CXLINK_WINDOWS":          "10m,1h",
		"CXLINK_ROLLUP_STEP":      "1s",
		"CXLINK_ALLOWED_LATENESS": lateness.String(),
		"CXLINK_ATTRIBUTION_WAIT": "1m",
		"CXLINK_BATCH_MAX_DELAY":  "100ms",
		"CXLINK_ACK_WAIT":         "5s",
		"CXLINK_METRICS_MAX_KEYS": "20",
		"CLICKHOUSE_DIAL_TIMEOUT": "1s",
		"CXLINK_EMPLOYEE_ID_KEY":  testEmployeeKey,
	}}
	maps.Copy(c.env, ch.Env(database))
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

// waitProcessed waits until every partition's consumer has delivered and acked all. The
// limit only ends a stuck run: a busy machine can take minutes over what takes seconds.
func (c *cluster) waitProcessed() {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		busy := ""
		for p := range partitions {
			info, err := c.js.Consumer(c.t.Context(), stream.Name, fmt.Sprintf("processor-p%d", p))
			if err != nil {
				busy = err.Error()
				break
			}
			if i := info.CachedInfo(); i.NumPending > 0 || i.NumAckPending > 0 {
				busy = fmt.Sprintf("partition %d: %d pending, %d unacked", p, i.NumPending, i.NumAckPending)
				break
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("not processed in time: %s", busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) query(q string, args ...any) [][]any {
	c.t.Helper()
	return apptest.ScanRows(c.t, c.db, q, args...)
}

// checkStored checks that each raw table holds exactly the stored ids, once each under
// FINAL, and none of the rejected ones.
func (c *cluster) checkStored(stored, rejected map[string]bool) {
	c.t.Helper()
	got := map[string]int{}
	for _, table := range []string{"survey_responses", "tickets", "employee_pulses"} {
		for _, r := range c.query(fmt.Sprintf("SELECT id FROM %s.%s FINAL", c.env["CLICKHOUSE_DATABASE"], table)) {
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
