package main

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/cmd/cxlink/app"
	"github.com/cxlink/cxlink/ingest/stream"
	"github.com/cxlink/cxlink/processors/deadletter"
)

// deadletters runs `cxlink deadletters args…` against the cluster and returns its output.
func (c *cluster) deadletters(args ...string) string {
	c.t.Helper()
	var out, errOut bytes.Buffer
	err := app.Run(c.t.Context(), append([]string{"deadletters"}, args...), app.Options{Environ: c.env, Stdout: &out, Stderr: &errOut})
	if err != nil {
		c.t.Fatalf("cxlink deadletters %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// A message on the events stream that is not a valid event (here: one that did not come
// through ingest, with a time ClickHouse cannot store) goes to the dead-letter stream with
// its reason; the partition carries on; the letter can be listed, shown, replayed (kept
// while the original is inside the duplicate window) and discarded.
func TestPoisonMessageEndToEnd(t *testing.T) {
	c := newCluster(t)
	c.startProcessor()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 5))
	stored, rejected := c.postAll(testEvents(rng, "dl1", 400, time.Now()), 200)

	bad := `{"id":"from-2300","type":"survey_response","occurred_at":"2300-01-01T00:00:00Z","survey":"ces","score":3,"scale_min":1,"scale_max":7,"team":"red"}`
	subject := stream.Subject(stream.Partition("red", partitions))
	if _, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(bad),
		Header: nats.Header{jetstream.MsgIDHeader: []string{"from-2300"}}}); err != nil {
		t.Fatal(err)
	}
	s, r := c.postAll(testEvents(rng, "dl2", 400, time.Now()), 200)
	merge(stored, s)
	merge(rejected, r)
	c.waitProcessed()
	c.checkStored(stored, rejected)
	c.waitRollups()

	list := c.deadletters("list")
	t.Logf("cxlink deadletters list:\n%s", list)
	if !strings.Contains(list, "from-2300") || !strings.Contains(list, "occurred_at") || !strings.Contains(list, "1 of 1 letters") {
		t.Fatalf("the list does not show the letter with its reason:\n%s", list)
	}
	show := c.deadletters("show", "1")
	if !strings.Contains(show, `"occurred_at": "2300-01-01T00:00:00Z"`) || !strings.Contains(show, subject) {
		t.Fatalf("show does not give the event and where it came from:\n%s", show)
	}
	if out := c.deadletters("replay", "--all"); !strings.Contains(out, "letter 1 kept") || !strings.Contains(out, "0 replayed, 1 kept") {
		t.Fatalf("replay inside the duplicate window:\n%s", out)
	}
	if out := c.deadletters("discard", "1"); !strings.Contains(out, "letter 1 discarded") {
		t.Fatalf("discard:\n%s", out)
	}
	if list := c.deadletters("list"); !strings.Contains(list, "0 of 0 letters") {
		t.Fatalf("after discarding:\n%s", list)
	}
	metrics := get(t, c.processor.URL(t)+"/metrics")
	if !strings.Contains(metrics, `cxlink_dead_letters_total{reason="invalid"} 1`) {
		t.Errorf("metric not counted:\n%s", grep(metrics, "cxlink_dead_letters_total"))
	}
	// The letter is in the dead-letter stream of the configured name.
	if _, err := c.js.Stream(ctx, deadletter.StreamName); err != nil {
		t.Error(err)
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
